// The cold segment format (docs/format/cold.md) as code: constants, the
// column order, sizes and checksums shared by the segment reader
// (cold_segment.h), the writer (cold_segment_writer.h) and the tier.
// Private to native/core.
#pragma once

#include <bit>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <string>

#include "crc32c.h"
#include "record.h"

namespace tierstore::cold {


static_assert(std::endian::native == std::endian::little, "the cold segment format assumes a little-endian host");

constexpr char kMagic[8] = {'T', 'S', 'C', 'O', 'L', 'D', '0', '1'};
constexpr uint32_t kFormatVersion = 2;
constexpr uint64_t kHeaderSize = 512;
constexpr uint64_t kAlign = 64;
constexpr uint64_t kDirOffset = 64;
constexpr uint64_t kDirEntrySize = 24;
constexpr size_t kWriteBuffer = size_t{4} << 20;
// Each deletion bitmap copy starts with {u64 generation, u32 crc}, padded to
// 64 bytes so the words that follow stay 64-byte aligned.
constexpr uint64_t kBitmapHeader = 64;

enum Col : int {
  kKey = 0,
  kSeq,
  kConfidence,
  kActivation,
  kCreatedAt,
  kNorm,
  kDataCrc,
  kEmbCrc,
  kEmbeddings,
  kIdOffsets,
  kIdBytes,
  kContentOffsets,
  kContentBytes,
  kMetaOffsets,
  kMetaBytes,
  kLastAccess,
  kAccessCount,
  kDeleted,
  kNumCols
};
constexpr uint64_t kHeaderCrcOffset = kDirOffset + kNumCols * kDirEntrySize;  // 496
static_assert(kHeaderCrcOffset + 4 <= kHeaderSize);

constexpr const char* kColNames[kNumCols] = {
    "cold_key", "seq", "confidence", "activation", "created_at", "norm", "data_crc", "embedding_crc",
    "embeddings", "id_offsets", "id_bytes", "content_offsets", "content_bytes", "metadata_offsets",
    "metadata_bytes", "last_access_at", "access_count", "deleted"};

inline bool ColHasCrc(int c) { return c <= kEmbCrc || c == kIdOffsets || c == kContentOffsets || c == kMetaOffsets; }
inline bool ColIsBytes(int c) { return c == kIdBytes || c == kContentBytes || c == kMetaBytes; }

template <class T>
inline T Load(const uint8_t* p) {
  T v;
  std::memcpy(&v, p, sizeof v);
  return v;
}
template <class T>
inline void StoreAt(uint8_t* p, T v) {
  std::memcpy(p, &v, sizeof v);
}

inline uint64_t AlignUp(uint64_t x, uint64_t a) { return (x + a - 1) / a * a; }

inline uint64_t BitmapWords(uint64_t n) { return (n + 63) / 64; }
// Bytes of one bitmap copy (header + words), a multiple of 64.
inline uint64_t BitmapCopySize(uint64_t n) { return AlignUp(kBitmapHeader + BitmapWords(n) * 8, kAlign); }

// crc32c(generation as 8 little-endian bytes, then the bitmap words).
inline uint32_t BitmapCrc(uint64_t generation, const uint8_t* words, uint64_t nwords) {
  uint8_t g[8];
  StoreAt<uint64_t>(g, generation);
  return Crc32cExtend(Crc32cExtend(0, g, sizeof g), words, static_cast<size_t>(nwords * 8));
}

inline std::string SegmentName(uint32_t id) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "cold-%08x.seg", id);
  return buf;
}


inline bool ParseSegmentName(const std::string& name, uint32_t* id) {
  // cold-XXXXXXXX.seg, lowercase hex, exactly.
  if (name.size() != 17 || name.compare(0, 5, "cold-") != 0 || name.compare(13, 4, ".seg") != 0) return false;
  uint32_t v = 0;
  for (size_t i = 5; i < 13; ++i) {
    char c = name[i];
    uint32_t d;
    if (c >= '0' && c <= '9') d = static_cast<uint32_t>(c - '0');
    else if (c >= 'a' && c <= 'f') d = static_cast<uint32_t>(c - 'a' + 10);
    else return false;
    v = (v << 4) | d;
  }
  *id = v;
  return true;
}

inline bool IsStaleTmp(const std::string& name) {
  return name.size() > 9 && name.compare(0, 5, "cold-") == 0 && name.compare(name.size() - 4, 4, ".tmp") == 0;
}

// Expected byte size of a fixed-width column for n rows (byte columns: 0).
inline uint64_t FixedColSize(int c, uint64_t n, uint64_t dims) {
  switch (c) {
    case kKey: case kSeq: case kCreatedAt: case kLastAccess: case kAccessCount: return n * 8;
    case kConfidence: case kActivation: case kNorm: case kDataCrc: case kEmbCrc: return n * 4;
    case kEmbeddings: return n * dims * 4;
    case kIdOffsets: case kContentOffsets: case kMetaOffsets: return (n + 1) * 8;
    case kDeleted: return 2 * BitmapCopySize(n);
    default: return 0;
  }
}

struct Layout {
  uint64_t off[kNumCols] = {};
  uint64_t size[kNumCols] = {};
  uint64_t file_size = 0;
};

inline Layout ComputeLayout(uint64_t n, uint64_t dims, uint64_t id_bytes, uint64_t content_bytes, uint64_t meta_bytes) {
  Layout l;
  uint64_t pos = kHeaderSize;
  for (int c = 0; c < kNumCols; ++c) {
    uint64_t sz = FixedColSize(c, n, dims);
    if (c == kIdBytes) sz = id_bytes;
    if (c == kContentBytes) sz = content_bytes;
    if (c == kMetaBytes) sz = meta_bytes;
    pos = AlignUp(pos, kAlign);
    l.off[c] = pos;
    l.size[c] = sz;
    pos += sz;
  }
  l.file_size = pos;
  return l;
}

// The checksum of a row's id, content, metadata, scalars and seq (not its key
// nor its access statistics).
inline uint32_t RowDataCrc(const RecordView& v) {
  uint8_t buf[52];
  StoreAt<uint64_t>(buf + 0, v.seq);
  StoreAt<float>(buf + 8, v.confidence);
  StoreAt<float>(buf + 12, v.activation);
  StoreAt<double>(buf + 16, v.created_at);
  StoreAt<float>(buf + 24, v.norm);
  StoreAt<uint64_t>(buf + 28, v.id.size());
  StoreAt<uint64_t>(buf + 36, v.content.size());
  StoreAt<uint64_t>(buf + 44, v.metadata.size());
  uint32_t crc = Crc32cExtend(0, buf, sizeof buf);
  crc = Crc32cExtend(crc, v.id.data(), v.id.size());
  crc = Crc32cExtend(crc, v.content.data(), v.content.size());
  return Crc32cExtend(crc, v.metadata.data(), v.metadata.size());
}

inline uint32_t RowEmbCrc(const float* e, uint64_t dims) { return Crc32c(e, dims * 4); }

inline uint64_t BitsToU64(double d) { return std::bit_cast<uint64_t>(d); }
inline double U64ToBits(uint64_t u) { return std::bit_cast<double>(u); }

}  // namespace tierstore::cold
