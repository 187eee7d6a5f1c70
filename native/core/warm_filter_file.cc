#include "warm_filter_file.h"

#include <cstring>
#include <string_view>
#include <type_traits>

#include "crc32c.h"
#include "file_util.h"

namespace tierstore {

namespace {

// The header's fields (docs/format/warm-filter.md).
constexpr char kMagic[8] = {'T', 'S', 'W', 'F', 'I', 'L', 'T', 'R'};
constexpr size_t kOffVersion = 8, kOffSlotsPerChunk = 12, kOffChunkCount = 16, kOffEntryBytes = 20,
                 kOffStoreId = 24, kOffToken = 32, kOffHeaderCrc = 40;

// The entries are stored as the host lays out these structs (little-endian
// x86-64 and arm64, as every file of the store); the layout is fixed here.
static_assert(std::is_standard_layout_v<FilterEntry> && sizeof(FilterEntry) == 32);
static_assert(offsetof(FilterEntry, created_at) == 0 && offsetof(FilterEntry, confidence) == 8 &&
              offsetof(FilterEntry, activation) == 12 && offsetof(FilterEntry, signature) == 16);
static_assert(std::is_standard_layout_v<WarmFilterArray::Chunk> &&
              sizeof(WarmFilterArray::Chunk) == WarmFilterArray::kSlotsPerChunk * 32 + WarmFilterArray::kSlotsPerChunk / 8);
static_assert(kWarmFilterChunkBytes % 64 == 0);

template <typename T>
T Load(const uint8_t* p) {
  T v;
  std::memcpy(&v, p, sizeof v);
  return v;
}
template <typename T>
void Put(uint8_t* p, T v) {
  std::memcpy(p, &v, sizeof v);
}

}  // namespace

Status WriteWarmFilterFile(const std::string& dir, uint64_t store_id, uint64_t token,
                           const std::vector<const WarmFilterArray::Chunk*>& chunks, bool durable) {
  const std::string path = JoinPath(dir, kWarmFilterFileName);
  std::string bytes;
  try {
    bytes.assign(kWarmFilterHeaderBytes + chunks.size() * kWarmFilterChunkBytes, '\0');
  } catch (const std::bad_alloc&) {
    return Status::IoError("out of memory writing " + path);
  }
  auto* p = reinterpret_cast<uint8_t*>(bytes.data());
  std::memcpy(p, kMagic, sizeof kMagic);
  Put<uint32_t>(p + kOffVersion, kWarmFilterFormatVersion);
  Put<uint32_t>(p + kOffSlotsPerChunk, WarmFilterArray::kSlotsPerChunk);
  Put<uint32_t>(p + kOffChunkCount, static_cast<uint32_t>(chunks.size()));
  Put<uint32_t>(p + kOffEntryBytes, static_cast<uint32_t>(sizeof(FilterEntry)));
  Put<uint64_t>(p + kOffStoreId, store_id);
  Put<uint64_t>(p + kOffToken, token);
  Put<uint32_t>(p + kOffHeaderCrc, Crc32c(p, kOffHeaderCrc));
  for (size_t c = 0; c < chunks.size(); ++c) {
    uint8_t* q = p + kWarmFilterHeaderBytes + c * kWarmFilterChunkBytes;
    if (chunks[c] != nullptr) std::memcpy(q, chunks[c], sizeof(WarmFilterArray::Chunk));  // else: zeros, none known
    Put<uint32_t>(q + sizeof(WarmFilterArray::Chunk), Crc32c(q, sizeof(WarmFilterArray::Chunk)));
  }
  return AtomicWriteFile(path, bytes, durable);
}

Status ParseWarmFilterHeader(const std::string& path, const uint8_t* data, size_t size, uint64_t store_id,
                             uint64_t token, uint32_t* chunk_count) {
  auto bad = [&](const std::string& why) { return Status::Corruption(path + ": " + why); };
  if (size < kWarmFilterHeaderBytes) return bad("shorter than its header");
  if (std::memcmp(data, kMagic, sizeof kMagic) != 0) return bad("bad magic");
  if (Load<uint32_t>(data + kOffHeaderCrc) != Crc32c(data, kOffHeaderCrc)) return bad("header checksum mismatch");
  if (Load<uint32_t>(data + kOffVersion) != kWarmFilterFormatVersion) {
    return bad("unsupported format version " + std::to_string(Load<uint32_t>(data + kOffVersion)));
  }
  if (Load<uint32_t>(data + kOffSlotsPerChunk) != WarmFilterArray::kSlotsPerChunk ||
      Load<uint32_t>(data + kOffEntryBytes) != sizeof(FilterEntry)) {
    return bad("chunk shape differs from this build's");
  }
  const uint64_t chunks = Load<uint32_t>(data + kOffChunkCount);
  if (size != kWarmFilterHeaderBytes + chunks * kWarmFilterChunkBytes) {
    return bad("size " + std::to_string(size) + " does not fit its " + std::to_string(chunks) + " chunks");
  }
  if (Load<uint64_t>(data + kOffStoreId) != store_id) return bad("belongs to another store");
  if (Load<uint64_t>(data + kOffToken) != token) return bad("written by another close than the index");
  *chunk_count = static_cast<uint32_t>(chunks);
  return Status::OK();
}

bool WarmFilterChunkValid(const uint8_t* data, uint32_t c) {
  const uint8_t* q = WarmFilterChunkBytes(data, c);
  return Load<uint32_t>(q + sizeof(WarmFilterArray::Chunk)) == Crc32c(q, sizeof(WarmFilterArray::Chunk));
}

}  // namespace tierstore
