// The warm file formats (docs/format/warm.md) as code: the header page and
// blocks of warm.blocks, the header page and extent prefix of
// warm-var-<gen>.dat, and their checksums. Private to native/core.
#pragma once

#include <cstdint>
#include <cstring>
#include <limits>
#include <string>

#include "crc32c.h"
#include "warm_tier.h"

namespace tierstore::warm {

constexpr uint64_t kHeaderPage = 4096;
constexpr uint32_t kBlocksFormatVersion = 3;
constexpr uint32_t kVarFormatVersion = 1;
constexpr char kBlocksMagic[8] = {'T', 'S', 'W', 'A', 'R', 'M', 'B', 'K'};
constexpr char kVarMagic[8] = {'T', 'S', 'W', 'A', 'R', 'M', 'V', 'R'};

// Block states.
constexpr uint32_t kStateFree = 0;             // never written (zero-filled)
constexpr uint32_t kStateFreed = 0x45455246u;  // "FREE"
constexpr uint32_t kStateWriting = 0x54495257u;  // "WRIT"
constexpr uint32_t kStateLive = warm_block::kStateLive;

// Block fields.
constexpr size_t kOffState = warm_block::kStateOffset;
constexpr size_t kOffHeaderCrc = 4;
constexpr size_t kOffSeq = 8;
constexpr size_t kOffCreatedAt = warm_block::kCreatedAtOffset;
constexpr size_t kOffLastAccess = 24;
constexpr size_t kOffAccessCount = 32;
constexpr size_t kOffLoc = 40;  // u64: offset (low 40 bits), generation (high 24)
constexpr size_t kOffEmbeddingCrc = 48;
constexpr size_t kOffConfidence = warm_block::kConfidenceOffset;
constexpr size_t kOffActivation = warm_block::kActivationOffset;
constexpr size_t kOffNorm = warm_block::kNormOffset;
constexpr size_t kBlockHeaderBytes = 64;  // the embedding's offset in a block
// Var extent prefix fields.
constexpr size_t kPrefixBytes = 20;
constexpr size_t kPrefixKeyCrc = 12;
constexpr size_t kPrefixDataCrc = 16;
constexpr unsigned kOffsetBits = 40;
constexpr uint64_t kMaxOffset = (uint64_t{1} << kOffsetBits) - 1;
constexpr uint32_t kMaxGen = (uint32_t{1} << 24) - 1;

static_assert(kBlockHeaderBytes % 64 == 0, "embeddings are 64-byte aligned");
static_assert(kOffLoc % 8 == 0, "loc is stored by one aligned 8-byte store");

// Header page fields (see the format above).
constexpr size_t kOffHeaderFixedCrc = 28;
constexpr size_t kOffMark = 32;     // u32 mark, u32 crc32c(mark): one aligned u64
constexpr size_t kOffCovered = 40;  // u32 covered mark, u32 crc32c: one aligned u64
constexpr size_t kHeaderReadBytes = 48;

inline bool IsLiveState(uint32_t s) { return s == kStateLive; }

template <typename T>
inline T Load(const uint8_t* p) {
  T v;
  std::memcpy(&v, p, sizeof(T));
  return v;
}

template <typename T>
inline void Store(uint8_t* p, T v) {
  std::memcpy(p, &v, sizeof(T));
}

inline uint32_t LoadState(const uint8_t* block) {
  return __atomic_load_n(reinterpret_cast<const uint32_t*>(block + kOffState), __ATOMIC_ACQUIRE);
}

inline void PublishState(uint8_t* block, uint32_t state) {
  __atomic_store_n(reinterpret_cast<uint32_t*>(block + kOffState), state, __ATOMIC_RELEASE);
}

// The mark word: the mark in the low half (bytes [32,36) on the
// little-endian hosts the format targets), its crc32c in the high half.
inline uint64_t PackMark(uint32_t mark) {
  uint8_t b[4];
  std::memcpy(b, &mark, 4);
  return uint64_t{mark} | (uint64_t{Crc32c(b, 4)} << 32);
}

// Decodes the mark at p (8 bytes); false when its check does not match.
inline bool UnpackMark(const uint8_t* p, uint32_t* mark) {
  if (Load<uint32_t>(p + 4) != Crc32c(p, 4)) return false;
  *mark = Load<uint32_t>(p);
  return true;
}

inline uint64_t RoundUp(uint64_t v, uint64_t m) { return (v + m - 1) / m * m; }

inline uint64_t Gcd(uint64_t a, uint64_t b) {
  while (b != 0) {
    uint64_t t = a % b;
    a = b;
    b = t;
  }
  return a;
}

inline uint32_t BlockSizeFor(uint32_t dims) {
  return static_cast<uint32_t>(RoundUp(kBlockHeaderBytes + uint64_t{4} * dims, 64));
}

// The block's fixed fields, [8,24) and [48,64): header_crc. data_crc
// extends the crc of the var bytes with exactly these, too.
inline uint32_t ExtendFixed(uint32_t c, const uint8_t* h) {
  c = Crc32cExtend(c, h + kOffSeq, kOffLastAccess - kOffSeq);
  c = Crc32cExtend(c, h + kOffEmbeddingCrc, kBlockHeaderBytes - kOffEmbeddingCrc);
  return c;
}

// key_crc: prefix [0,12), the id, then the block's seq.
inline uint32_t ComputeKeyCrc(const uint8_t* prefix, const uint8_t* id, uint32_t id_len, uint64_t seq) {
  uint8_t s[8];
  std::memcpy(s, &seq, 8);
  uint32_t c = Crc32cExtend(0, prefix, kPrefixKeyCrc);
  c = Crc32cExtend(c, id, id_len);
  return Crc32cExtend(c, s, 8);
}

inline uint64_t PackLoc(uint32_t gen, uint64_t off) { return off | (uint64_t{gen} << kOffsetBits); }
inline uint32_t LocGen(uint64_t loc) { return static_cast<uint32_t>(loc >> kOffsetBits); }
inline uint64_t LocOffset(uint64_t loc) { return loc & kMaxOffset; }

inline std::string VarFileName(uint32_t gen) { return WarmTier::kVarFilePrefix + std::to_string(gen) + ".dat"; }

inline bool ParseVarFileName(const std::string& name, uint32_t* gen) {
  static const std::string prefix = WarmTier::kVarFilePrefix, suffix = ".dat";
  if (name.size() <= prefix.size() + suffix.size()) return false;
  if (name.compare(0, prefix.size(), prefix) != 0) return false;
  if (name.compare(name.size() - suffix.size(), suffix.size(), suffix) != 0) return false;
  std::string digits = name.substr(prefix.size(), name.size() - prefix.size() - suffix.size());
  if (digits.empty() || digits.size() > 10) return false;
  uint64_t v = 0;
  for (char ch : digits) {
    if (ch < '0' || ch > '9') return false;
    v = v * 10 + static_cast<uint64_t>(ch - '0');
  }
  if (v == 0 || v > std::numeric_limits<uint32_t>::max()) return false;
  if (VarFileName(static_cast<uint32_t>(v)) != name) return false;  // no leading zeros
  *gen = static_cast<uint32_t>(v);
  return true;
}

inline std::string BlocksHeaderPage(uint32_t dims, uint32_t block_size, uint32_t bpc) {
  std::string page(kHeaderPage, '\0');
  auto* p = reinterpret_cast<uint8_t*>(page.data());
  std::memcpy(p, kBlocksMagic, 8);
  Store<uint32_t>(p + 8, kBlocksFormatVersion);
  Store<uint32_t>(p + 12, dims);
  Store<uint32_t>(p + 16, block_size);
  Store<uint32_t>(p + 20, bpc);
  Store<uint32_t>(p + 24, static_cast<uint32_t>(kBlockHeaderBytes));
  Store<uint32_t>(p + kOffHeaderFixedCrc, Crc32c(p, kOffHeaderFixedCrc));
  Store<uint64_t>(p + kOffMark, PackMark(0));
  Store<uint64_t>(p + kOffCovered, PackMark(0));
  return page;
}

inline std::string VarHeaderPage(uint32_t gen) {
  std::string page(kHeaderPage, '\0');
  auto* p = reinterpret_cast<uint8_t*>(page.data());
  std::memcpy(p, kVarMagic, 8);
  Store<uint32_t>(p + 8, kVarFormatVersion);
  Store<uint32_t>(p + 12, gen);
  Store<uint32_t>(p + 16, 0);
  Store<uint32_t>(p + 20, Crc32c(p, 20));
  return page;
}

}  // namespace tierstore::warm
