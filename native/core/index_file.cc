#include "index_file.h"

#include <fcntl.h>

#include <cstring>
#include <limits>
#include <memory>

#include "crc32c.h"
#include "file_util.h"

namespace tierstore {
namespace {

constexpr char kMagic[8] = {'T', 'S', 'I', 'D', 'X', 'F', 'I', 'L'};
constexpr uint32_t kVersion = 1;
constexpr size_t kHeaderBytes = 128;
constexpr size_t kBodyCrcOffset = 120;
constexpr size_t kHeaderCrcOffset = 124;  // covers every header byte before it, the body's crc included
constexpr size_t kSlotBytes = IdIndex<Location>::kSlotBytes;

template <class T>
T Get(const uint8_t* p) {
  T v;
  std::memcpy(&v, p, sizeof v);
  return v;
}
template <class T>
void Put(uint8_t* p, T v) {
  std::memcpy(p, &v, sizeof v);
}

// a * b + c, or false on overflow.
bool MulAdd(uint64_t a, uint64_t b, uint64_t c, uint64_t* out) {
  if (b != 0 && a > (std::numeric_limits<uint64_t>::max() - c) / b) return false;
  *out = a * b + c;
  return true;
}

uint64_t WarmStateBytes(uint64_t free_slots, uint64_t var_tails) {
  return 32 + (free_slots * 4 + 7) / 8 * 8 + var_tails * 16;
}
uint64_t WarmStateBytes(const WarmOpenState& w) { return WarmStateBytes(w.free_slots.size(), w.var_tails.size()); }

}  // namespace

const char* IndexRejectionName(IndexRejection r) {
  switch (r) {
    case IndexRejection::kNone: return "";
    case IndexRejection::kMissing: return "missing";
    case IndexRejection::kUnclean: return "unclean";
    case IndexRejection::kDamaged: return "damaged";
    case IndexRejection::kStale: return "stale";
    case IndexRejection::kFormat: return "format";
  }
  return "damaged";
}

Status ParseIndexFile(const std::string& path, uint8_t* data, size_t size, uint32_t dimensions, ParsedIndexFile* out,
                      IndexRejection* rejection) {
  *rejection = IndexRejection::kDamaged;
  auto bad = [&](const std::string& what) { return Status::Corruption(path + ": " + what); };
  if (size < kHeaderBytes) return bad("file is " + std::to_string(size) + " bytes, shorter than its header");
  const uint8_t* h = data;
  if (std::memcmp(h, kMagic, sizeof kMagic) != 0) return bad("bad magic (not an id index)");
  if (Get<uint32_t>(h + kHeaderCrcOffset) != Crc32c(h, kHeaderCrcOffset)) return bad("header checksum mismatch");
  const uint32_t version = Get<uint32_t>(h + 8);
  if (version != kVersion) {
    *rejection = IndexRejection::kFormat;
    return bad("unsupported format version " + std::to_string(version));
  }
  if (Get<uint32_t>(h + 12) != dimensions) return bad("written for another number of dimensions");
  if (Get<uint32_t>(h + 16) != kSlotBytes) return bad("unexpected slot size");
  if (Get<uint64_t>(h + 48) != size) return bad("size does not match its header (truncated or extended)");
  if (Get<uint32_t>(h + kBodyCrcOffset) != Crc32c(data + kHeaderBytes, size - kHeaderBytes)) {
    return bad("checksum mismatch");
  }
  if (Get<uint64_t>(h + 88) != IdIndex<Location>::HashCheck()) {
    *rejection = IndexRejection::kStale;
    return bad("written by a build that hashes ids differently");
  }
  ParsedIndexFile p;
  p.info.store_id = Get<uint64_t>(h + 24);
  p.info.token = Get<uint64_t>(h + 32);
  p.info.sequence = Get<uint64_t>(h + 40);
  p.entries = Get<uint64_t>(h + 56);
  p.capacity = Get<uint64_t>(h + 64);
  p.info.warm_count = Get<uint64_t>(h + 72);
  p.info.cold_count = Get<uint64_t>(h + 80);
  const uint64_t nchunks = Get<uint64_t>(h + 96);
  const uint64_t warm_bytes = Get<uint64_t>(h + 104);
  // Sections: slots, chunk sizes, warm state, id bytes.
  uint64_t at = kHeaderBytes;
  uint64_t end = 0;
  if (!MulAdd(p.capacity, kSlotBytes, at, &end) || end > size) return bad("slot array lies outside the file");
  p.slots = data + at;
  at = end;
  if (!MulAdd(nchunks, 8, at, &end) || end > size) return bad("chunk table lies outside the file");
  const uint8_t* chunk_sizes = data + at;
  at = end;
  if (warm_bytes > size - at || warm_bytes < 32) return bad("warm state lies outside the file");
  const uint8_t* w = data + at;
  const uint64_t warm_end = at + warm_bytes;
  WarmOpenState& ws = p.info.warm;
  ws.live = Get<uint64_t>(w);
  ws.var_live_bytes = Get<uint64_t>(w + 8);
  ws.scan_limit = Get<uint32_t>(w + 16);
  const uint32_t nfree = Get<uint32_t>(w + 20);
  const uint32_t ntails = Get<uint32_t>(w + 24);
  // Sized from the file before anything is allocated for it.
  if (WarmStateBytes(nfree, ntails) != warm_bytes) return bad("warm state has the wrong size");
  ws.free_slots.resize(nfree);
  ws.var_tails.resize(ntails);
  if (nfree > 0) std::memcpy(ws.free_slots.data(), w + 32, size_t{nfree} * 4);
  const uint8_t* t = w + 32 + (uint64_t{nfree} * 4 + 7) / 8 * 8;
  for (uint32_t i = 0; i < ntails; ++i) {
    ws.var_tails[i].gen = Get<uint32_t>(t + i * 16);
    ws.var_tails[i].tail = Get<uint64_t>(t + i * 16 + 8);
  }
  at = warm_end;
  p.chunks.reserve(static_cast<size_t>(nchunks));
  for (uint64_t c = 0; c < nchunks; ++c) {
    const uint64_t n = Get<uint64_t>(chunk_sizes + c * 8);
    if (n == 0 || n > size - at) return bad("id chunk " + std::to_string(c) + " lies outside the file");
    p.chunks.emplace_back(reinterpret_cast<char*>(data + at), static_cast<size_t>(n));
    at += n;
  }
  if (at != size) return bad("bytes after the last id chunk");
  uint64_t warm = 0, cold = 0;
  std::string why;
  auto value_ok = [&](const Location& loc) {
    if (!loc.IsLowerTierShape()) return false;
    ++(loc.tier() == Tier::kWarm ? warm : cold);
    return true;
  };
  if (!IdIndex<Location>::CheckExported(p.slots, static_cast<size_t>(p.capacity), static_cast<size_t>(p.entries),
                                        p.chunks, value_ok, &why)) {
    return bad(why);
  }
  if (warm != p.info.warm_count || cold != p.info.cold_count) return bad("entry counts do not match its header");
  *out = std::move(p);
  *rejection = IndexRejection::kNone;
  return Status::OK();
}

Status WriteIndexFile(const std::string& dir, uint32_t dimensions, const IdIndex<Location>& lower,
                      const IndexFileInfo& info, bool durable, uint64_t* file_bytes) {
  const uint64_t capacity = lower.capacity();
  const auto chunks = lower.ExportedChunks();
  const WarmOpenState& ws = info.warm;
  uint64_t id_bytes = 0;
  for (const auto& c : chunks) id_bytes += c.second;
  const uint64_t warm_bytes = WarmStateBytes(ws);
  const uint64_t size = kHeaderBytes + capacity * kSlotBytes + chunks.size() * 8 + warm_bytes + id_bytes;
  std::string bytes(static_cast<size_t>(size), '\0');
  uint8_t* d = reinterpret_cast<uint8_t*>(bytes.data());
  std::memcpy(d, kMagic, sizeof kMagic);
  Put<uint32_t>(d + 8, kVersion);
  Put<uint32_t>(d + 12, dimensions);
  Put<uint32_t>(d + 16, static_cast<uint32_t>(kSlotBytes));
  Put<uint64_t>(d + 24, info.store_id);
  Put<uint64_t>(d + 32, info.token);
  Put<uint64_t>(d + 40, info.sequence);
  Put<uint64_t>(d + 48, size);
  Put<uint64_t>(d + 56, lower.size());
  Put<uint64_t>(d + 64, capacity);
  Put<uint64_t>(d + 72, info.warm_count);
  Put<uint64_t>(d + 80, info.cold_count);
  Put<uint64_t>(d + 88, IdIndex<Location>::HashCheck());
  Put<uint64_t>(d + 96, chunks.size());
  Put<uint64_t>(d + 104, warm_bytes);
  uint64_t at = kHeaderBytes;
  if (capacity > 0) std::memcpy(d + at, lower.ExportedSlots(), static_cast<size_t>(capacity * kSlotBytes));
  at += capacity * kSlotBytes;
  for (const auto& c : chunks) {
    Put<uint64_t>(d + at, c.second);
    at += 8;
  }
  Put<uint64_t>(d + at, ws.live);
  Put<uint64_t>(d + at + 8, ws.var_live_bytes);
  Put<uint32_t>(d + at + 16, ws.scan_limit);
  Put<uint32_t>(d + at + 20, static_cast<uint32_t>(ws.free_slots.size()));
  Put<uint32_t>(d + at + 24, static_cast<uint32_t>(ws.var_tails.size()));
  if (!ws.free_slots.empty()) std::memcpy(d + at + 32, ws.free_slots.data(), ws.free_slots.size() * 4);
  uint8_t* t = d + at + 32 + (uint64_t{ws.free_slots.size()} * 4 + 7) / 8 * 8;
  for (size_t i = 0; i < ws.var_tails.size(); ++i) {
    Put<uint32_t>(t + i * 16, ws.var_tails[i].gen);
    Put<uint64_t>(t + i * 16 + 8, ws.var_tails[i].tail);
  }
  at += warm_bytes;
  for (const auto& c : chunks) {
    std::memcpy(d + at, c.first, c.second);
    at += c.second;
  }
  // Bytes 112..119 stay zero (reserved); the header checksum covers them.
  Put<uint32_t>(d + kBodyCrcOffset, Crc32c(d + kHeaderBytes, size - kHeaderBytes));
  Put<uint32_t>(d + kHeaderCrcOffset, Crc32c(d, kHeaderCrcOffset));
  TS_RETURN_IF_ERROR(AtomicWriteFile(JoinPath(dir, kIndexFileName), bytes, durable));
  *file_bytes = size;
  return Status::OK();
}

Status LoadIndexFile(const std::string& dir, uint32_t dimensions, IdIndex<Location>* index, IndexFileInfo* info,
                     uint64_t* file_bytes, IndexRejection* rejection) {
  const std::string path = JoinPath(dir, kIndexFileName);
  *file_bytes = 0;
  if (!PathExists(path)) {
    *rejection = IndexRejection::kMissing;
    return Status::Corruption(path + " is missing");
  }
  *rejection = IndexRejection::kDamaged;
  File f;
  TS_RETURN_IF_ERROR(File::Open(path, O_RDONLY, &f));
  uint64_t size = 0;
  TS_RETURN_IF_ERROR(f.Size(&size));
  *file_bytes = size;
  if (size < kHeaderBytes || size > std::numeric_limits<size_t>::max()) {
    return Status::Corruption(path + ": file is " + std::to_string(size) + " bytes, shorter than its header");
  }
  auto map = std::make_shared<MappedRegion>();
  TS_RETURN_IF_ERROR(MappedRegion::MapPrivate(f, 0, static_cast<size_t>(size), map.get()));
  ParsedIndexFile parsed;
  TS_RETURN_IF_ERROR(ParseIndexFile(path, map->data(), map->size(), dimensions, &parsed, rejection));
  index->Adopt(std::move(map), parsed.slots, static_cast<size_t>(parsed.capacity), static_cast<size_t>(parsed.entries),
               parsed.chunks);
  *info = std::move(parsed.info);
  return Status::OK();
}

}  // namespace tierstore
