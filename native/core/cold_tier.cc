// ColdTier implementation: see cold_tier.h for the contract.
//
// The segment layout is docs/format/cold.md; the constants and the Col enum
// below follow it.
//
// Overlapping key ranges: a crash between sealing a merged segment and
// unlinking its sources (or a before_unlink that failed) leaves two copies
// of some rows (same key, same seq).
// Both are reported (the Store's recovery deletes one). Segments whose key
// ranges overlap form a "group"; scans walk a group with a k-way merge by key,
// so key order holds in every case. Normally every group has one segment.
#include "cold_tier.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <bit>
#include <cstdio>
#include <cstring>
#include <limits>
#include <unordered_map>
#include <unordered_set>
#include <utility>

#include "crc32c.h"
#include "file_util.h"
#include "mutex.h"

namespace tierstore {
namespace {

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

bool ColHasCrc(int c) { return c <= kEmbCrc || c == kIdOffsets || c == kContentOffsets || c == kMetaOffsets; }
bool ColIsBytes(int c) { return c == kIdBytes || c == kContentBytes || c == kMetaBytes; }

template <class T>
T Load(const uint8_t* p) {
  T v;
  std::memcpy(&v, p, sizeof v);
  return v;
}
template <class T>
void StoreAt(uint8_t* p, T v) {
  std::memcpy(p, &v, sizeof v);
}

uint64_t AlignUp(uint64_t x, uint64_t a) { return (x + a - 1) / a * a; }

uint64_t BitmapWords(uint64_t n) { return (n + 63) / 64; }
// Bytes of one bitmap copy (header + words), a multiple of 64.
uint64_t BitmapCopySize(uint64_t n) { return AlignUp(kBitmapHeader + BitmapWords(n) * 8, kAlign); }

// crc32c(generation as 8 little-endian bytes, then the bitmap words).
uint32_t BitmapCrc(uint64_t generation, const uint8_t* words, uint64_t nwords) {
  uint8_t g[8];
  StoreAt<uint64_t>(g, generation);
  return Crc32cExtend(Crc32cExtend(0, g, sizeof g), words, static_cast<size_t>(nwords * 8));
}

std::string SegmentName(uint32_t id) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "cold-%08x.seg", id);
  return buf;
}

}  // namespace

std::string ColdSegmentFileName(uint32_t id) { return SegmentName(id); }

namespace {

bool ParseSegmentName(const std::string& name, uint32_t* id) {
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

bool IsStaleTmp(const std::string& name) {
  return name.size() > 9 && name.compare(0, 5, "cold-") == 0 && name.compare(name.size() - 4, 4, ".tmp") == 0;
}

// Expected byte size of a fixed-width column for n rows (byte columns: 0).
uint64_t FixedColSize(int c, uint64_t n, uint64_t dims) {
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

Layout ComputeLayout(uint64_t n, uint64_t dims, uint64_t id_bytes, uint64_t content_bytes, uint64_t meta_bytes) {
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
uint32_t RowDataCrc(const RecordView& v) {
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

uint32_t RowEmbCrc(const float* e, uint64_t dims) { return Crc32c(e, dims * 4); }

uint64_t BitsToU64(double d) { return std::bit_cast<uint64_t>(d); }
double U64ToBits(uint64_t u) { return std::bit_cast<double>(u); }

// ---------------------------------------------------------------------------
// One mapped segment.
struct Segment {
  uint32_t id = 0;
  std::string path;
  File file;
  MappedRegion map;
  uint8_t* base = nullptr;
  uint64_t rows = 0, dims = 0, file_size = 0;
  uint64_t min_key = 0, max_key = 0;
  uint64_t live = 0;  // maintained under the exclusive lock
  // The access columns may be stored to (a shared writable mapping, or a
  // read-only tier's private one); set at open.
  bool access_writable = false;
  // The active bitmap copy (0 or 1) and its generation: set at open, then
  // changed only by CommitDeletes under the exclusive lock. Readers use
  // these, never the generations stored in the file.
  int active = 0;
  uint64_t generation = 0;
  // Whether the active copy (words, crc and generation) is known to be on
  // disk: set by a durable delete and by Sync (which runs under the shared
  // lock, hence atomic), cleared by a relaxed delete. False after open: a
  // SIGKILLed writer may have left it in the page cache only.
  std::atomic<bool> bitmap_synced{false};
  uint64_t off[kNumCols] = {};
  uint64_t size[kNumCols] = {};

  uint64_t Key(uint64_t r) const { return Load<uint64_t>(base + off[kKey] + r * 8); }
  uint64_t Seq(uint64_t r) const { return Load<uint64_t>(base + off[kSeq] + r * 8); }
  uint32_t DataCrc(uint64_t r) const { return Load<uint32_t>(base + off[kDataCrc] + r * 4); }
  uint32_t EmbCrc(uint64_t r) const { return Load<uint32_t>(base + off[kEmbCrc] + r * 4); }
  uint64_t Words() const { return BitmapWords(rows); }
  // Bitmap copy i: {generation, crc} at Copy(i), words at Copy(i) + kBitmapHeader.
  uint8_t* Copy(int i) const { return base + off[kDeleted] + static_cast<uint64_t>(i) * BitmapCopySize(rows); }
  const uint8_t* ActiveWords() const { return Copy(active) + kBitmapHeader; }
  uint64_t BitmapWord(uint64_t w) const { return Load<uint64_t>(ActiveWords() + w * 8); }
  bool Deleted(uint64_t r) const { return (BitmapWord(r >> 6) >> (r & 63)) & 1; }

  // Picks the active copy at open (rules in cold_tier.h, "Deletion bitmap")
  // and counts the live rows.
  Status LoadBitmap() {
    const uint64_t words = Words();
    uint64_t gen[2];
    bool valid[2];
    for (int i = 0; i < 2; ++i) {
      const uint8_t* c = Copy(i);
      gen[i] = Load<uint64_t>(c);
      valid[i] = BitmapCrc(gen[i], c + kBitmapHeader, words) == Load<uint32_t>(c + 8);
    }
    if (gen[0] == gen[1]) {
      // Never written by Delete (it always goes above both): accept only
      // the one unambiguous case, two valid identical copies.
      if (!valid[0] || !valid[1])
        return Corrupt("deletion bitmap checksum mismatch: both copies have generation " + std::to_string(gen[0]) +
                       " and copy " + std::to_string(valid[0] ? 1 : 0) + " is damaged");
      if (std::memcmp(Copy(0) + kBitmapHeader, Copy(1) + kBitmapHeader, static_cast<size_t>(words * 8)) != 0)
        return Corrupt("deletion bitmap copies both have generation " + std::to_string(gen[0]) + " but differ");
      active = 0;
    } else {
      active = gen[1] > gen[0] ? 1 : 0;
      if (!valid[active])
        return Corrupt("deletion bitmap checksum mismatch (copy " + std::to_string(active) + ", generation " +
                       std::to_string(gen[active]) + ")");
    }
    generation = gen[active];
    if ((rows & 63) != 0 && (BitmapWord(words - 1) >> (rows & 63)) != 0)
      return Corrupt("deletion bitmap marks rows past the last one");
    live = CountLive();
    return Status::OK();
  }

  // Deletes rows (indices < rows; already deleted ones are skipped) as one
  // new bitmap generation: the active words are copied into the inactive
  // copy, the bits set, the crc written for generation+1, and then the
  // generation is stored last by one aligned 8-byte release store — the
  // commit point. A crash before it leaves the inactive copy with its old,
  // lower generation, which open ignores.
  // durable adds three msyncs (MS_SYNC), so that at every moment the disk
  // holds a highest generation whose words and crc are there too:
  //   a. the active copy, unless known synced: it is about to be the only
  //      valid copy on disk while the other one is rewritten;
  //   b. the new copy's words and crc, before its generation is stored;
  //   c. the new generation, before returning (the delete is then durable).
  // Caller holds the exclusive lock. On error the in-memory state is
  // unchanged and the disk holds a valid old or new state.
  Status CommitDeletes(const uint64_t* del, size_t n, bool durable) {
    size_t fresh = 0;
    for (size_t i = 0; i < n; ++i) fresh += !Deleted(del[i]);
    if (fresh == 0) return Status::OK();
    if (generation == std::numeric_limits<uint64_t>::max())
      return Corrupt("deletion bitmap generation exhausted");  // only a forged file gets here
    const int next = 1 - active;
    uint8_t* copy = Copy(next);
    uint8_t* words = copy + kBitmapHeader;
    if (durable && !bitmap_synced.load(std::memory_order_relaxed)) {
      TS_RETURN_IF_ERROR(SyncBytes(Copy(active), BitmapCopySize(rows)));  // a
      bitmap_synced.store(true, std::memory_order_relaxed);
    }
    std::memcpy(words, ActiveWords(), static_cast<size_t>(Words() * 8));
    uint64_t added = 0;
    for (size_t i = 0; i < n; ++i) {
      uint8_t* p = words + (del[i] >> 6) * 8;
      const uint64_t word = Load<uint64_t>(p), bit = uint64_t{1} << (del[i] & 63);
      if ((word & bit) == 0) {
        StoreAt<uint64_t>(p, word | bit);
        ++added;
      }
    }
    const uint64_t gen = generation + 1;
    StoreAt<uint32_t>(copy + 8, BitmapCrc(gen, words, Words()));
    if (durable) TS_RETURN_IF_ERROR(SyncBytes(copy, BitmapCopySize(rows)));  // b
    std::atomic_ref<uint64_t> stored_gen(*reinterpret_cast<uint64_t*>(copy));  // 64-byte aligned
    const uint64_t old_gen = stored_gen.load(std::memory_order_relaxed);
    stored_gen.store(gen, std::memory_order_release);  // the commit point
    if (durable) {
      Status st = SyncBytes(copy, 8);  // c
      if (!st.ok()) {
        stored_gen.store(old_gen, std::memory_order_release);  // not committed after all
        return st;
      }
    } else {
      bitmap_synced.store(false, std::memory_order_relaxed);
    }
    active = next;
    generation = gen;
    live -= added;
    return Status::OK();
  }

  // msync(MS_SYNC) of the pages holding [p, p + n) of the mapping.
  Status SyncBytes(const uint8_t* p, uint64_t n) const {
    const uint64_t page = PageSize();
    const uint64_t begin = static_cast<uint64_t>(p - base) / page * page;
    const uint64_t end = static_cast<uint64_t>(p - base) + n;
    if (::msync(base + begin, static_cast<size_t>(end - begin), MS_SYNC) != 0) return ErrnoStatus("msync", path, errno);
    return Status::OK();
  }

  // The mutable access statistics are read and written with relaxed atomics:
  // UpdateAccess runs under the shared lock, concurrently with readers.
  // Columns are 64-byte aligned, so every element is 8-byte aligned.
  std::atomic_ref<uint64_t> AccessWord(int col, uint64_t r) const {
    return std::atomic_ref<uint64_t>(*reinterpret_cast<uint64_t*>(base + off[col] + r * 8));
  }
  double LastAccess(uint64_t r) const { return U64ToBits(AccessWord(kLastAccess, r).load(std::memory_order_relaxed)); }
  double AccessCount(uint64_t r) const { return U64ToBits(AccessWord(kAccessCount, r).load(std::memory_order_relaxed)); }

  std::string_view Bytes(int offcol, int bytecol, uint64_t r) const {
    uint64_t a = Load<uint64_t>(base + off[offcol] + r * 8);
    uint64_t b = Load<uint64_t>(base + off[offcol] + (r + 1) * 8);
    return std::string_view(reinterpret_cast<const char*>(base + off[bytecol] + a), b - a);
  }
  const float* Embedding(uint64_t r) const {
    return reinterpret_cast<const float*>(base + off[kEmbeddings] + r * dims * 4);
  }

  void Fill(uint64_t r, RecordView* v) const {
    v->id = Bytes(kIdOffsets, kIdBytes, r);
    v->content = Bytes(kContentOffsets, kContentBytes, r);
    v->metadata = Bytes(kMetaOffsets, kMetaBytes, r);
    v->embedding = Embedding(r);
    v->norm = Load<float>(base + off[kNorm] + r * 4);
    v->confidence = Load<float>(base + off[kConfidence] + r * 4);
    v->activation = Load<float>(base + off[kActivation] + r * 4);
    v->created_at = Load<double>(base + off[kCreatedAt] + r * 8);
    v->last_access_at = LastAccess(r);
    v->access_count = AccessCount(r);
    v->seq = Seq(r);
  }

  Status Corrupt(const std::string& what) const {
    return Status::Corruption("cold segment " + path + ": " + what);
  }

  Status VerifyRow(uint64_t r, const RecordView& v, bool verify_embedding) const {
    if (RowDataCrc(v) != DataCrc(r)) return Corrupt("row " + std::to_string(r) + ": data checksum mismatch");
    if (verify_embedding && RowEmbCrc(v.embedding, dims) != EmbCrc(r))
      return Corrupt("row " + std::to_string(r) + ": embedding checksum mismatch");
    return Status::OK();
  }

  // First row >= r that is not deleted, or rows.
  uint64_t NextLive(uint64_t r) const {
    while (r < rows) {
      uint64_t live_bits = ~BitmapWord(r >> 6) >> (r & 63);
      if (live_bits != 0) return std::min(rows, r + static_cast<uint64_t>(std::countr_zero(live_bits)));
      r = (r | 63) + 1;
    }
    return rows;
  }

  // First row whose key is > key.
  uint64_t UpperBound(uint64_t key) const {
    uint64_t lo = 0, hi = rows;
    while (lo < hi) {
      uint64_t mid = lo + (hi - lo) / 2;
      if (Key(mid) <= key) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }

  uint64_t CountLive() const {
    uint64_t dead = 0;
    for (uint64_t w = 0; w < Words(); ++w) {
      uint64_t word = BitmapWord(w);
      if (w + 1 == Words() && (rows & 63) != 0) word &= (uint64_t{1} << (rows & 63)) - 1;
      dead += static_cast<uint64_t>(std::popcount(word));
    }
    return rows - dead;
  }

  // Key of the n-th (0-based) live row; requires n < live.
  uint64_t NthLive(uint64_t n) const {
    for (uint64_t w = 0; w < Words(); ++w) {
      uint64_t mask = (w + 1 == Words() && (rows & 63) != 0) ? (uint64_t{1} << (rows & 63)) - 1 : ~uint64_t{0};
      uint64_t bits = ~BitmapWord(w) & mask;
      uint64_t c = static_cast<uint64_t>(std::popcount(bits));
      if (n < c) {
        for (uint64_t i = 0; i < n; ++i) bits &= bits - 1;
        return Key(w * 64 + static_cast<uint64_t>(std::countr_zero(bits)));
      }
      n -= c;
    }
    return 0;  // unreachable when n < live
  }

  // Start of the mutable part (access statistics, bitmaps), for msync.
  uint64_t MutableStart() const { return off[kLastAccess]; }
};

// Maps and validates one segment file. verify_crcs: check the column crcs
// and the offset arrays (skipped only for a file this process just wrote).
Status OpenSegment(const std::string& path, uint32_t id, uint32_t dims, bool read_only, bool verify_crcs,
                   std::unique_ptr<Segment>* out) {
  auto seg = std::make_unique<Segment>();
  seg->id = id;
  seg->path = path;
  TS_RETURN_IF_ERROR(File::Open(path, read_only ? O_RDONLY : O_RDWR, &seg->file));
  uint64_t actual = 0;
  TS_RETURN_IF_ERROR(seg->file.Size(&actual));
  if (actual < kHeaderSize) return seg->Corrupt("truncated: " + std::to_string(actual) + " bytes, smaller than the header");

  // Header: read with pread first, so nothing is mapped before it checks out.
  uint8_t h[kHeaderSize];
  TS_RETURN_IF_ERROR(seg->file.ReadAt(0, h, kHeaderSize));
  if (std::memcmp(h, kMagic, sizeof kMagic) != 0) return seg->Corrupt("bad magic (not a cold segment)");
  if (Crc32c(h, kHeaderCrcOffset) != Load<uint32_t>(h + kHeaderCrcOffset)) return seg->Corrupt("header checksum mismatch");
  uint32_t version = Load<uint32_t>(h + 8);
  if (version != kFormatVersion) return seg->Corrupt("unsupported format version " + std::to_string(version));
  uint32_t file_dims = Load<uint32_t>(h + 12);
  uint64_t n = Load<uint64_t>(h + 16);
  uint64_t file_size = Load<uint64_t>(h + 24);
  uint32_t file_id = Load<uint32_t>(h + 32);
  uint32_t ncols = Load<uint32_t>(h + 36);
  uint64_t min_key = Load<uint64_t>(h + 40), max_key = Load<uint64_t>(h + 48);
  if (file_dims != dims)
    return seg->Corrupt("holds " + std::to_string(file_dims) + "-dimensional embeddings, the store has " +
                        std::to_string(dims));
  if (file_id != id) return seg->Corrupt("header names segment " + std::to_string(file_id));
  if (ncols != kNumCols) return seg->Corrupt("unexpected column count " + std::to_string(ncols));
  if (n == 0 || n > std::numeric_limits<uint32_t>::max()) return seg->Corrupt("bad row count " + std::to_string(n));
  if (file_size != actual)
    return seg->Corrupt(std::string(actual < file_size ? "truncated" : "trailing bytes") + ": header says " +
                        std::to_string(file_size) + " bytes, file has " + std::to_string(actual));
  uint32_t col_crc[kNumCols];
  uint64_t prev_end = kHeaderSize;
  for (int c = 0; c < kNumCols; ++c) {
    const uint8_t* e = h + kDirOffset + c * kDirEntrySize;
    uint64_t o = Load<uint64_t>(e), s = Load<uint64_t>(e + 8);
    col_crc[c] = Load<uint32_t>(e + 16);
    std::string name = kColNames[c];
    if (o % kAlign != 0) return seg->Corrupt("column " + name + " is not 64-byte aligned");
    if (o < prev_end) return seg->Corrupt("column " + name + " overlaps the previous one (offsets not monotone)");
    if (o > file_size || s > file_size - o) return seg->Corrupt("column " + name + " lies outside the file");
    if (!ColIsBytes(c) && s != FixedColSize(c, n, dims))
      return seg->Corrupt("column " + name + " has size " + std::to_string(s) + ", expected " +
                          std::to_string(FixedColSize(c, n, dims)));
    seg->off[c] = o;
    seg->size[c] = s;
    prev_end = o + s;
  }
  if (prev_end != file_size) return seg->Corrupt("columns do not end at the end of the file");

  // Everything checks out against the real size: map it.
  // A read-only tier maps segments privately (copy-on-write), so get() keeps
  // access statistics in memory as it does for hot records, never in the
  // file; read-only when the kernel will not commit the private pages.
  seg->access_writable = true;
  if (!read_only) {
    TS_RETURN_IF_ERROR(MappedRegion::Map(seg->file, 0, static_cast<size_t>(file_size), true, &seg->map));
  } else if (!MappedRegion::MapPrivate(seg->file, 0, static_cast<size_t>(file_size), &seg->map).ok()) {
    seg->access_writable = false;
    TS_RETURN_IF_ERROR(MappedRegion::Map(seg->file, 0, static_cast<size_t>(file_size), false, &seg->map));
  }
  seg->base = seg->map.data();
  seg->rows = n;
  seg->dims = dims;
  seg->file_size = file_size;
  seg->min_key = min_key;
  seg->max_key = max_key;
  TS_RETURN_IF_ERROR(seg->LoadBitmap());

  if (verify_crcs) {
    for (int c = 0; c < kNumCols; ++c) {
      if (!ColHasCrc(c)) continue;
      if (Crc32c(seg->base + seg->off[c], seg->size[c]) != col_crc[c])
        return seg->Corrupt(std::string("column ") + kColNames[c] + " checksum mismatch");
    }
    const int offcols[3] = {kIdOffsets, kContentOffsets, kMetaOffsets};
    const int bytecols[3] = {kIdBytes, kContentBytes, kMetaBytes};
    const uint64_t limits[3] = {kMaxIdBytes, kMaxContentBytes, kMaxMetadataBytes};
    for (int k = 0; k < 3; ++k) {
      const uint8_t* p = seg->base + seg->off[offcols[k]];
      uint64_t prev = Load<uint64_t>(p);
      if (prev != 0) return seg->Corrupt(std::string("column ") + kColNames[offcols[k]] + " does not start at 0");
      for (uint64_t r = 1; r <= n; ++r) {
        uint64_t cur = Load<uint64_t>(p + r * 8);
        if (cur < prev || cur - prev > limits[k])
          return seg->Corrupt(std::string("column ") + kColNames[offcols[k]] + " has a bad entry at row " +
                              std::to_string(r - 1));
        prev = cur;
      }
      if (prev != seg->size[bytecols[k]])
        return seg->Corrupt(std::string("column ") + kColNames[offcols[k]] + " does not match the size of " +
                            kColNames[bytecols[k]]);
    }
    uint64_t prev_key = 0;
    for (uint64_t r = 0; r < n; ++r) {
      uint64_t k = seg->Key(r);
      if (k == 0 || k <= prev_key) return seg->Corrupt("cold keys are not strictly ascending at row " + std::to_string(r));
      prev_key = k;
    }
    if (seg->Key(0) != min_key || seg->Key(n - 1) != max_key) return seg->Corrupt("key range does not match the header");
  } else if (seg->Key(0) != min_key || seg->Key(n - 1) != max_key) {
    return seg->Corrupt("key range does not match the header");
  }
  *out = std::move(seg);
  return Status::OK();
}

// ---------------------------------------------------------------------------
// Writing a segment.

// The rows of a segment to write, in key order.
class RowSource {
 public:
  virtual ~RowSource() = default;
  virtual uint64_t size() const = 0;
  virtual void Get(uint64_t i, RecordView* v) const = 0;
  virtual uint64_t Key(uint64_t i) const = 0;
  // Copies of existing rows keep their stored checksums, so a damaged row
  // stays detectably damaged instead of being re-sealed as valid.
  virtual bool HasCrcs() const { return false; }
  virtual uint32_t DataCrc(uint64_t) const { return 0; }
  virtual uint32_t EmbCrc(uint64_t) const { return 0; }
};

class AppendSource final : public RowSource {
 public:
  AppendSource(const RecordView* recs, uint64_t n, uint64_t first_key) : recs_(recs), n_(n), first_key_(first_key) {}
  uint64_t size() const override { return n_; }
  void Get(uint64_t i, RecordView* v) const override { *v = recs_[i]; }
  uint64_t Key(uint64_t i) const override { return first_key_ + i; }

 private:
  const RecordView* recs_;
  uint64_t n_, first_key_;
};

struct RowRef {
  const Segment* seg;
  uint64_t row;
};

class MergeSource final : public RowSource {
 public:
  explicit MergeSource(const std::vector<RowRef>* rows) : rows_(rows) {}
  uint64_t size() const override { return rows_->size(); }
  void Get(uint64_t i, RecordView* v) const override { (*rows_)[i].seg->Fill((*rows_)[i].row, v); }
  uint64_t Key(uint64_t i) const override { return (*rows_)[i].seg->Key((*rows_)[i].row); }
  bool HasCrcs() const override { return true; }
  uint32_t DataCrc(uint64_t i) const override { return (*rows_)[i].seg->DataCrc((*rows_)[i].row); }
  uint32_t EmbCrc(uint64_t i) const override { return (*rows_)[i].seg->EmbCrc((*rows_)[i].row); }

 private:
  const std::vector<RowRef>* rows_;
};

// Sequential buffered writer with a running crc and position.
class BufWriter {
 public:
  explicit BufWriter(File* f) : f_(f) { buf_.reserve(kWriteBuffer); }

  Status Put(const void* p, size_t n) {
    if (crc_on_) crc_ = Crc32cExtend(crc_, p, n);
    pos_ += n;
    if (n >= kWriteBuffer / 2) {
      TS_RETURN_IF_ERROR(Flush());
      return f_->Write(p, n);
    }
    if (buf_.size() + n > kWriteBuffer) TS_RETURN_IF_ERROR(Flush());
    const auto* b = static_cast<const uint8_t*>(p);
    buf_.insert(buf_.end(), b, b + n);
    return Status::OK();
  }
  template <class T>
  Status PutValue(T v) {
    uint8_t b[sizeof(T)];
    std::memcpy(b, &v, sizeof v);
    if (crc_on_) crc_ = Crc32cExtend(crc_, b, sizeof b);
    pos_ += sizeof b;
    if (buf_.size() + sizeof b > kWriteBuffer) TS_RETURN_IF_ERROR(Flush());
    buf_.insert(buf_.end(), b, b + sizeof b);
    return Status::OK();
  }
  Status PadTo(uint64_t offset) {
    static const uint8_t zeros[kAlign] = {};
    while (pos_ < offset) TS_RETURN_IF_ERROR(Put(zeros, static_cast<size_t>(std::min<uint64_t>(kAlign, offset - pos_))));
    return Status::OK();
  }
  Status Zeros(uint64_t n) {
    static const uint8_t zeros[4096] = {};
    while (n > 0) {
      size_t k = static_cast<size_t>(std::min<uint64_t>(n, sizeof zeros));
      TS_RETURN_IF_ERROR(Put(zeros, k));
      n -= k;
    }
    return Status::OK();
  }
  Status Flush() {
    if (buf_.empty()) return Status::OK();
    Status s = f_->Write(buf_.data(), buf_.size());
    buf_.clear();
    return s;
  }
  void BeginCrc() { crc_on_ = true; crc_ = 0; }
  uint32_t EndCrc() { crc_on_ = false; return crc_; }
  uint64_t pos() const { return pos_; }

 private:
  File* f_;
  std::vector<uint8_t> buf_;
  uint64_t pos_ = 0;
  bool crc_on_ = false;
  uint32_t crc_ = 0;
};

// Writes the whole segment to tmp_path (created/truncated). Streams each
// column straight from the source: no copy of the data is held in memory.
Status WriteSegmentFile(const std::string& tmp_path, uint32_t id, uint32_t dims, const RowSource& src, bool durable) {
  const uint64_t n = src.size();
  RecordView v;
  uint64_t id_bytes = 0, content_bytes = 0, meta_bytes = 0;
  for (uint64_t i = 0; i < n; ++i) {
    src.Get(i, &v);
    id_bytes += v.id.size();
    content_bytes += v.content.size();
    meta_bytes += v.metadata.size();
  }
  const Layout l = ComputeLayout(n, dims, id_bytes, content_bytes, meta_bytes);
  uint32_t crcs[kNumCols] = {};

  File f;
  TS_RETURN_IF_ERROR(File::Open(tmp_path, O_WRONLY | O_CREAT | O_TRUNC, &f));
  BufWriter w(&f);
  TS_RETURN_IF_ERROR(w.Zeros(kHeaderSize));  // the header is written last, in place

  auto column = [&](int c, auto&& per_row) -> Status {
    TS_RETURN_IF_ERROR(w.PadTo(l.off[c]));
    if (ColHasCrc(c)) w.BeginCrc();
    for (uint64_t i = 0; i < n; ++i) TS_RETURN_IF_ERROR(per_row(i));
    if (ColHasCrc(c)) crcs[c] = w.EndCrc();
    if (w.pos() != l.off[c] + l.size[c]) return Status::IoError("internal error: column size mismatch writing " + tmp_path);
    return Status::OK();
  };
  auto offsets = [&](int c, auto field) -> Status {
    TS_RETURN_IF_ERROR(w.PadTo(l.off[c]));
    w.BeginCrc();
    uint64_t acc = 0;
    TS_RETURN_IF_ERROR(w.PutValue<uint64_t>(0));
    for (uint64_t i = 0; i < n; ++i) {
      src.Get(i, &v);
      acc += field(v).size();
      TS_RETURN_IF_ERROR(w.PutValue<uint64_t>(acc));
    }
    crcs[c] = w.EndCrc();
    return Status::OK();
  };

  TS_RETURN_IF_ERROR(column(kKey, [&](uint64_t i) { return w.PutValue<uint64_t>(src.Key(i)); }));
  TS_RETURN_IF_ERROR(column(kSeq, [&](uint64_t i) { src.Get(i, &v); return w.PutValue<uint64_t>(v.seq); }));
  TS_RETURN_IF_ERROR(column(kConfidence, [&](uint64_t i) { src.Get(i, &v); return w.PutValue<float>(v.confidence); }));
  TS_RETURN_IF_ERROR(column(kActivation, [&](uint64_t i) { src.Get(i, &v); return w.PutValue<float>(v.activation); }));
  TS_RETURN_IF_ERROR(column(kCreatedAt, [&](uint64_t i) { src.Get(i, &v); return w.PutValue<double>(v.created_at); }));
  TS_RETURN_IF_ERROR(column(kNorm, [&](uint64_t i) { src.Get(i, &v); return w.PutValue<float>(v.norm); }));
  TS_RETURN_IF_ERROR(column(kDataCrc, [&](uint64_t i) {
    if (src.HasCrcs()) return w.PutValue<uint32_t>(src.DataCrc(i));
    src.Get(i, &v);
    return w.PutValue<uint32_t>(RowDataCrc(v));
  }));
  TS_RETURN_IF_ERROR(column(kEmbCrc, [&](uint64_t i) {
    if (src.HasCrcs()) return w.PutValue<uint32_t>(src.EmbCrc(i));
    src.Get(i, &v);
    return w.PutValue<uint32_t>(RowEmbCrc(v.embedding, dims));
  }));
  TS_RETURN_IF_ERROR(column(kEmbeddings, [&](uint64_t i) { src.Get(i, &v); return w.Put(v.embedding, size_t{dims} * 4); }));
  TS_RETURN_IF_ERROR(offsets(kIdOffsets, [](const RecordView& r) { return r.id; }));
  TS_RETURN_IF_ERROR(column(kIdBytes, [&](uint64_t i) { src.Get(i, &v); return w.Put(v.id.data(), v.id.size()); }));
  TS_RETURN_IF_ERROR(offsets(kContentOffsets, [](const RecordView& r) { return r.content; }));
  TS_RETURN_IF_ERROR(
      column(kContentBytes, [&](uint64_t i) { src.Get(i, &v); return w.Put(v.content.data(), v.content.size()); }));
  TS_RETURN_IF_ERROR(offsets(kMetaOffsets, [](const RecordView& r) { return r.metadata; }));
  TS_RETURN_IF_ERROR(
      column(kMetaBytes, [&](uint64_t i) { src.Get(i, &v); return w.Put(v.metadata.data(), v.metadata.size()); }));
  TS_RETURN_IF_ERROR(column(kLastAccess, [&](uint64_t i) { src.Get(i, &v); return w.PutValue<double>(v.last_access_at); }));
  TS_RETURN_IF_ERROR(column(kAccessCount, [&](uint64_t i) { src.Get(i, &v); return w.PutValue<double>(v.access_count); }));
  // Two empty bitmap copies: copy 0 active at generation 1, copy 1 at 0.
  const uint64_t words = BitmapWords(n);
  for (uint64_t copy = 0; copy < 2; ++copy) {
    const uint64_t gen = copy == 0 ? 1 : 0;
    uint8_t g[8];
    StoreAt<uint64_t>(g, gen);
    uint32_t crc = Crc32cExtend(0, g, sizeof g);
    static const uint8_t zeros[4096] = {};
    for (uint64_t left = words * 8; left > 0;) {
      size_t k = static_cast<size_t>(std::min<uint64_t>(left, sizeof zeros));
      crc = Crc32cExtend(crc, zeros, k);
      left -= k;
    }
    TS_RETURN_IF_ERROR(w.PadTo(l.off[kDeleted] + copy * BitmapCopySize(n)));
    TS_RETURN_IF_ERROR(w.PutValue<uint64_t>(gen));
    TS_RETURN_IF_ERROR(w.PutValue<uint32_t>(crc));
    TS_RETURN_IF_ERROR(w.Zeros(kBitmapHeader - 12 + words * 8));
  }
  TS_RETURN_IF_ERROR(w.PadTo(l.off[kDeleted] + l.size[kDeleted]));
  TS_RETURN_IF_ERROR(w.Flush());
  if (w.pos() != l.file_size) return Status::IoError("internal error: segment size mismatch writing " + tmp_path);

  uint8_t h[kHeaderSize] = {};
  std::memcpy(h, kMagic, sizeof kMagic);
  StoreAt<uint32_t>(h + 8, kFormatVersion);
  StoreAt<uint32_t>(h + 12, dims);
  StoreAt<uint64_t>(h + 16, n);
  StoreAt<uint64_t>(h + 24, l.file_size);
  StoreAt<uint32_t>(h + 32, id);
  StoreAt<uint32_t>(h + 36, kNumCols);
  StoreAt<uint64_t>(h + 40, src.Key(0));
  StoreAt<uint64_t>(h + 48, src.Key(n - 1));
  for (int c = 0; c < kNumCols; ++c) {
    uint8_t* e = h + kDirOffset + c * kDirEntrySize;
    StoreAt<uint64_t>(e, l.off[c]);
    StoreAt<uint64_t>(e + 8, l.size[c]);
    StoreAt<uint32_t>(e + 16, crcs[c]);
  }
  StoreAt<uint32_t>(h + kHeaderCrcOffset, Crc32c(h, kHeaderCrcOffset));
  TS_RETURN_IF_ERROR(f.WriteAt(0, h, sizeof h));
  if (durable) TS_RETURN_IF_ERROR(f.Sync());
  return Status::OK();
}

// ---------------------------------------------------------------------------
// Walking live rows of a set of segments in key order (k-way merge; k is 1
// unless a crash left overlapping segments behind).
class Walker {
 public:
  // from_start: every row; else rows with key > after_key.
  Walker(const Segment* const* segs, size_t k, bool from_start, uint64_t after_key) {
    cur_.reserve(k);
    for (size_t i = 0; i < k; ++i) {
      const Segment* s = segs[i];
      uint64_t r = from_start ? 0 : s->UpperBound(after_key);
      cur_.push_back({s, s->NextLive(r)});
    }
  }
  bool Next(const Segment** seg, uint64_t* row) {
    size_t best = cur_.size();
    if (cur_.size() == 1) {
      if (cur_[0].row < cur_[0].seg->rows) best = 0;
    } else {
      uint64_t best_key = 0;
      for (size_t i = 0; i < cur_.size(); ++i) {
        if (cur_[i].row >= cur_[i].seg->rows) continue;
        uint64_t k = cur_[i].seg->Key(cur_[i].row);
        if (best == cur_.size() || k < best_key) {
          best = i;
          best_key = k;
        }
      }
    }
    if (best == cur_.size()) return false;
    *seg = cur_[best].seg;
    *row = cur_[best].row;
    cur_[best].row = cur_[best].seg->NextLive(cur_[best].row + 1);
    return true;
  }

 private:
  std::vector<RowRef> cur_;
};

struct Group {
  size_t begin = 0, end = 0;  // indices into the key-ordered segment list
  uint64_t max_key = 0;
};

// The tiers whose shared lock this thread holds inside a scan (ForEachLive,
// ScanFrom, ScanSegments). Readers called from a scan callback (the Store's
// recovery reads a duplicate's seq from inside ForEachLive) must not lock the
// std::shared_mutex again: a recursive lock_shared is undefined behaviour and
// deadlocks behind a waiting writer. Mutators called from a callback fail
// instead of deadlocking.
thread_local std::vector<const void*> tls_scanning;

bool ScanningOnThisThread(const void* tier) {
  return std::find(tls_scanning.begin(), tls_scanning.end(), tier) != tls_scanning.end();
}

// Shared lock of `mu`, unless this thread already holds it for `tier`.
// Either way mu is held (at least shared) for the guard's scope, which is
// what the annotation tells the analysis.
class SCOPED_CAPABILITY ReentrantReaderLock {
 public:
  ReentrantReaderLock(SharedMutex& mu, const void* tier) ACQUIRE_SHARED(mu)
      : mu_(mu), owns_(!ScanningOnThisThread(tier)) {
    if (owns_) mu_.LockShared();
  }
  // NO_THREAD_SAFETY_ANALYSIS: the release is conditional (owns_), which the
  // analysis cannot follow; the scope's end is what it needs to see.
  ~ReentrantReaderLock() RELEASE() NO_THREAD_SAFETY_ANALYSIS {
    if (owns_) mu_.UnlockShared();
  }
  ReentrantReaderLock(const ReentrantReaderLock&) = delete;
  ReentrantReaderLock& operator=(const ReentrantReaderLock&) = delete;

 private:
  SharedMutex& mu_;
  bool owns_;
};

// Marks this thread as inside a callback of `tier` while it holds the
// tier's lock (exclusively, for before_unlink): readers called from the
// callback do not lock again, mutators fail instead of deadlocking.
class CallbackScope {
 public:
  explicit CallbackScope(const void* tier) : tier_(tier) { tls_scanning.push_back(tier); }
  ~CallbackScope() {
    auto it = std::find(tls_scanning.rbegin(), tls_scanning.rend(), tier_);
    if (it != tls_scanning.rend()) tls_scanning.erase(std::next(it).base());
  }
  CallbackScope(const CallbackScope&) = delete;
  CallbackScope& operator=(const CallbackScope&) = delete;

 private:
  const void* tier_;
};

// Held for a whole scan: the shared lock plus this thread's marker.
class SCOPED_CAPABILITY ScanLock {
 public:
  ScanLock(SharedMutex& mu, const void* tier) ACQUIRE_SHARED(mu) : lock_(mu, tier), scope_(tier) {}
  ~ScanLock() RELEASE() {}

 private:
  ReentrantReaderLock lock_;  // taken first (it checks the marker), released last
  CallbackScope scope_;
};

// ---------------------------------------------------------------------------
class ColdTierImpl final : public ColdTier {
 public:
  ColdTierImpl(std::string dir, uint32_t dims, bool read_only) : dir_(std::move(dir)), dims_(dims), read_only_(read_only) {}

  Status Load() {
    // Not shared with anyone yet: the locks are for the analysis's sake.
    MutexLock wlock(write_mu_);
    WriterLock lock(mu_);
    if (!PathExists(dir_)) return Status::OK();
    std::vector<std::string> names;
    TS_RETURN_IF_ERROR(ListDirectory(dir_, &names));
    std::sort(names.begin(), names.end());
    for (const auto& name : names) {
      uint32_t id = 0;
      // Stale *.tmp files are left for FinishOpen: opening changes nothing.
      if (!ParseSegmentName(name, &id)) continue;
      std::unique_ptr<Segment> seg;
      TS_RETURN_IF_ERROR(OpenSegment(JoinPath(dir_, name), id, dims_, read_only_, /*verify_crcs=*/true, &seg));
      next_id_ = std::max<uint64_t>(next_id_, uint64_t{id} + 1);
      next_key_ = std::max(next_key_, seg->max_key + 1);
      segs_.push_back(std::move(seg));
    }
    Reindex();
    return CheckSharedKeys();
  }

  // Segments whose key ranges overlap (a crash between sealing a merge and
  // unlinking its sources leaves such copies) may share a key only for the
  // same record: same id and seq. Two different records under one key would
  // be merged into a segment with a repeated key, which no open accepts.
  Status CheckSharedKeys() const REQUIRES_SHARED(mu_) {
    RecordView a, b;
    for (const Group& g : groups_) {
      if (g.end - g.begin < 2) continue;
      Walker walk(ptrs_.data() + g.begin, g.end - g.begin, true, 0);
      const Segment* prev = nullptr;
      uint64_t prev_row = 0;
      const Segment* s;
      uint64_t r;
      while (walk.Next(&s, &r)) {
        if (prev != nullptr && prev->Key(prev_row) == s->Key(r)) {
          prev->Fill(prev_row, &a);
          s->Fill(r, &b);
          if (a.id != b.id || a.seq != b.seq) {
            return Status::Corruption(s->path + " and " + prev->path + " hold different records under cold key " +
                                      std::to_string(s->Key(r)));
          }
        }
        prev = s;
        prev_row = r;
      }
    }
    return Status::OK();
  }

  Status FinishOpen() override {
    if (read_only_) return Status::OK();
    TS_RETURN_IF_ERROR(NotInScan("FinishOpen"));
    MutexLock wlock(write_mu_);  // no Seal is writing a .tmp meanwhile
    if (!PathExists(dir_)) return Status::OK();
    std::vector<std::string> names;
    TS_RETURN_IF_ERROR(ListDirectory(dir_, &names));
    for (const auto& name : names)
      if (IsStaleTmp(name)) TS_RETURN_IF_ERROR(RemoveFile(JoinPath(dir_, name)));
    return Status::OK();
  }

  Status ForEachLive(const std::function<Status(ColdLoc, uint64_t, const RecordView&)>& fn) override {
    ScanLock lock(mu_, this);
    RecordView v;
    for (const Group& g : groups_) {
      Walker walk(ptrs_.data() + g.begin, g.end - g.begin, true, 0);
      const Segment* s;
      uint64_t r;
      while (walk.Next(&s, &r)) {
        s->Fill(r, &v);
        TS_RETURN_IF_ERROR(fn(ColdLoc{s->id, static_cast<uint32_t>(r)}, s->Key(r), v));
      }
    }
    return Status::OK();
  }

  Status Append(const RecordView* recs, size_t n, bool durable, std::vector<ColdLoc>* locs) override {
    if (read_only_) return Status::ReadOnly("the cold tier in " + dir_ + " is open read-only");
    TS_RETURN_IF_ERROR(NotInScan("Append"));
    if (locs) locs->clear();
    if (n == 0) return Status::OK();
    if (n > std::numeric_limits<uint32_t>::max())
      return Status::InvalidArgument("a cold segment holds at most 2^32-1 rows");
    for (size_t i = 0; i < n; ++i) {
      const RecordView& r = recs[i];
      if (r.embedding == nullptr) return Status::InvalidArgument("cold append: record without an embedding");
      if (r.id.size() > kMaxIdBytes) return Status::InvalidArgument("cold append: id longer than 1024 bytes");
      if (r.content.size() > kMaxContentBytes) return Status::ContentTooLarge("cold append: content too large");
      if (r.metadata.size() > kMaxMetadataBytes) return Status::ContentTooLarge("cold append: metadata too large");
    }
    MutexLock wlock(write_mu_);
    if (next_key_ > std::numeric_limits<uint64_t>::max() - n) return Status::IoError("cold keys exhausted in " + dir_);
    uint32_t id = 0;
    TS_RETURN_IF_ERROR(NewSegmentId(&id));
    TS_RETURN_IF_ERROR(CreateDirectories(dir_));
    const uint64_t first_key = next_key_;
    AppendSource src(recs, n, first_key);
    std::unique_ptr<Segment> seg;
    TS_RETURN_IF_ERROR(Seal(id, src, durable, &seg));
    {
      WriterLock lock(mu_);
      segs_.push_back(std::move(seg));
      Reindex();
    }
    next_key_ = first_key + n;
    if (locs) {
      locs->resize(n);
      for (size_t i = 0; i < n; ++i) (*locs)[i] = ColdLoc{id, static_cast<uint32_t>(i)};
    }
    return Status::OK();
  }

  Status Read(ColdLoc loc, bool verify_embedding, RecordView* out) const override {
    ReentrantReaderLock lock(mu_, this);
    const Segment* s = Find(loc);
    if (s == nullptr) return BadLoc(loc);
    s->Fill(loc.row, out);
    return s->VerifyRow(loc.row, *out, verify_embedding);
  }

  uint64_t KeyOf(ColdLoc loc) const override {
    ReentrantReaderLock lock(mu_, this);
    const Segment* s = Find(loc);
    return s ? s->Key(loc.row) : 0;
  }

  bool IsLive(ColdLoc loc) const override {
    ReentrantReaderLock lock(mu_, this);
    const Segment* s = Find(loc);
    return s != nullptr && !s->Deleted(loc.row);
  }

  using ColdTier::Delete;
  Status Delete(ColdLoc loc, bool durable) override {
    if (read_only_) return Status::ReadOnly("the cold tier in " + dir_ + " is open read-only");
    TS_RETURN_IF_ERROR(NotInScan("Delete"));
    WriterLock lock(mu_);
    Segment* s = Find(loc);
    if (s == nullptr) return BadLoc(loc);
    const uint64_t row = loc.row;
    return s->CommitDeletes(&row, 1, durable);
  }

  Status DeleteMany(const ColdLoc* locs, size_t n, bool durable) override {
    if (read_only_) return Status::ReadOnly("the cold tier in " + dir_ + " is open read-only");
    TS_RETURN_IF_ERROR(NotInScan("DeleteMany"));
    WriterLock lock(mu_);
    // Check everything before changing anything; group rows by segment.
    std::vector<std::pair<Segment*, std::vector<uint64_t>>> groups;
    std::unordered_map<uint32_t, size_t> group_of;
    for (size_t i = 0; i < n; ++i) {
      Segment* s = Find(locs[i]);
      if (s == nullptr) return BadLoc(locs[i]);
      auto [it, inserted] = group_of.emplace(s->id, groups.size());
      if (inserted) groups.push_back({s, {}});
      groups[it->second].second.push_back(locs[i].row);
    }
    for (const auto& [s, rows] : groups)
      if (s->generation == std::numeric_limits<uint64_t>::max())
        return s->Corrupt("deletion bitmap generation exhausted");
    // Only an msync can fail from here on (durable); segments done before
    // it keep their deletions (the Store's log holds them all anyway).
    for (const auto& [s, rows] : groups) TS_RETURN_IF_ERROR(s->CommitDeletes(rows.data(), rows.size(), durable));
    return Status::OK();
  }

  void UpdateAccess(ColdLoc loc, double last_access_at, double access_count) override {
    ReentrantReaderLock lock(mu_, this);
    const Segment* s = Find(loc);
    if (s == nullptr || !s->access_writable) return;
    s->AccessWord(kLastAccess, loc.row).store(BitsToU64(last_access_at), std::memory_order_relaxed);
    s->AccessWord(kAccessCount, loc.row).store(BitsToU64(access_count), std::memory_order_relaxed);
  }

  Status ScanFrom(uint64_t after_key, size_t max, bool verify_embedding,
                  const std::function<Status(ColdLoc, uint64_t, const RecordView&)>& fn,
                  size_t* visited) const override {
    size_t seen = 0;
    if (visited) *visited = 0;
    if (max == 0) return Status::OK();
    ScanLock lock(mu_, this);
    // Groups have disjoint, ascending key ranges: binary search the first
    // one that can hold a key > after_key.
    auto it = std::partition_point(groups_.begin(), groups_.end(),
                                   [&](const Group& g) { return g.max_key <= after_key; });
    RecordView v;
    Status st;
    // A batch never ends inside a run of equal keys (copies of one record
    // that a crash mid-merge left in two segments, or damage): the next call
    // resumes after the last key, and would skip the rest of the run.
    bool have_last = false;
    uint64_t last_key = 0;
    bool full = false;
    for (; it != groups_.end() && !full; ++it) {
      Walker walk(ptrs_.data() + it->begin, it->end - it->begin, false, after_key);
      const Segment* s;
      uint64_t r;
      while (walk.Next(&s, &r)) {
        const uint64_t key = s->Key(r);
        if (seen >= max && !(have_last && key == last_key)) {
          full = true;  // this row (key > last_key) is the next call's first
          break;
        }
        have_last = true;
        last_key = key;
        s->Fill(r, &v);
        st = s->VerifyRow(r, v, verify_embedding);
        if (st.ok()) st = fn(ColdLoc{s->id, static_cast<uint32_t>(r)}, key, v);
        if (!st.ok()) break;
        ++seen;
      }
      if (!st.ok()) break;
      if (seen >= max) full = true;  // groups hold disjoint key ranges: no run crosses them
    }
    if (visited) *visited = seen;
    return st;
  }

  Status ScanSegments(const std::function<Status(const ColdSegmentView&)>& fn) const override {
    ScanLock lock(mu_, this);
    for (const Segment* s : ptrs_) {
      ColdSegmentView view;
      view.segment = s->id;
      view.rows = s->rows;
      // Each column starts 64-byte aligned in a page-aligned mapping.
      view.embeddings = reinterpret_cast<const float*>(s->base + s->off[kEmbeddings]);
      view.norms = reinterpret_cast<const float*>(s->base + s->off[kNorm]);
      view.confidence = reinterpret_cast<const float*>(s->base + s->off[kConfidence]);
      // The active copy: exact under this shared lock (Delete is exclusive).
      view.deleted = reinterpret_cast<const uint64_t*>(s->ActiveWords());
      TS_RETURN_IF_ERROR(fn(view));
    }
    return Status::OK();
  }

  bool NthLiveKey(uint64_t n, uint64_t* key) const override {
    ReentrantReaderLock lock(mu_, this);
    for (const Group& g : groups_) {
      uint64_t live = 0;
      for (size_t i = g.begin; i < g.end; ++i) live += ptrs_[i]->live;
      if (n >= live) {
        n -= live;
        continue;
      }
      if (g.end - g.begin == 1) {
        *key = ptrs_[g.begin]->NthLive(n);
        return true;
      }
      Walker walk(ptrs_.data() + g.begin, g.end - g.begin, true, 0);
      const Segment* s;
      uint64_t r;
      while (walk.Next(&s, &r)) {
        if (n-- == 0) {
          *key = s->Key(r);
          return true;
        }
      }
      return false;  // unreachable: live counts match the bitmaps
    }
    return false;
  }

  using ColdTier::MergeIfNeeded;
  Status MergeIfNeeded(size_t max_segments, bool durable, const ColdRelocate& relocate,
                       const ColdBeforeUnlink& before_unlink) override {
    if (read_only_) return Status::ReadOnly("the cold tier in " + dir_ + " is open read-only");
    TS_RETURN_IF_ERROR(NotInScan("MergeIfNeeded"));
    std::vector<std::pair<ColdLoc, ColdLoc>> moves;
    Status st;
    {
      MutexLock wlock(write_mu_);
      WriterLock lock(mu_);
      const size_t target = std::max<size_t>(1, max_segments);
      std::vector<std::vector<Segment*>> todo;
      if (segs_.size() > target)
        for (auto& b : Plan(target))
          if (b.size() >= 2) todo.push_back(std::move(b));
      st = RunMerge(todo, durable, before_unlink, &moves);
    }
    if (relocate)
      for (const auto& m : moves) relocate(m.first, m.second);
    return st;
  }

  using ColdTier::Compact;
  Status Compact(bool durable, const ColdRelocate& relocate, uint64_t* bytes_reclaimed,
                 const ColdBeforeUnlink& before_unlink) override {
    if (bytes_reclaimed) *bytes_reclaimed = 0;
    if (read_only_) return Status::ReadOnly("the cold tier in " + dir_ + " is open read-only");
    TS_RETURN_IF_ERROR(NotInScan("Compact"));
    std::vector<std::pair<ColdLoc, ColdLoc>> moves;
    Status st;
    {
      MutexLock wlock(write_mu_);
      WriterLock lock(mu_);
      const uint64_t before = TotalBytes();
      std::vector<std::vector<Segment*>> todo;
      for (auto& b : Plan(1)) {
        if (b.size() == 1 && b[0]->live == b[0]->rows) continue;  // nothing to reclaim
        todo.push_back(std::move(b));
      }
      st = RunMerge(todo, durable, before_unlink, &moves);
      const uint64_t after = TotalBytes();
      if (bytes_reclaimed) *bytes_reclaimed = before > after ? before - after : 0;
    }
    if (relocate)
      for (const auto& m : moves) relocate(m.first, m.second);
    return st;
  }

  Status Sync() override {
    if (read_only_) return Status::OK();
    ReentrantReaderLock lock(mu_, this);
    const uint64_t page = PageSize();
    for (const auto& s : segs_) {
      uint64_t start = s->MutableStart() / page * page;
      if (::msync(s->base + start, s->file_size - start, MS_SYNC) != 0) return ErrnoStatus("msync", s->path, errno);
      TS_RETURN_IF_ERROR(s->file.Sync());
      s->bitmap_synced.store(true, std::memory_order_relaxed);
    }
    return Status::OK();
  }

  ColdStats Stats() const override {
    ReentrantReaderLock lock(mu_, this);
    ColdStats st;
    std::vector<std::pair<uint32_t, uint64_t>> live;  // (id, live rows)
    for (const auto& s : segs_) {
      st.live_records += s->live;
      st.deleted_rows += s->rows - s->live;
      st.file_bytes += s->file_size;
      live.push_back({s->id, s->live});
    }
    std::sort(live.begin(), live.end());
    for (const auto& [id, n] : live) {
      st.segment_ids.push_back(id);
      st.segment_live_records.push_back(n);
    }
    st.segments = segs_.size();
    for (const auto& o : orphans_) st.orphan_segment_ids.push_back(o.first);
    std::sort(st.orphan_segment_ids.begin(), st.orphan_segment_ids.end());
    return st;
  }

 private:
  Status NotInScan(const char* op) const {
    if (!ScanningOnThisThread(this)) return Status::OK();
    return Status::InvalidArgument(std::string("cold tier: ") + op +
                                   " called from inside a scan callback (it would deadlock)");
  }

  Segment* Find(ColdLoc loc) const REQUIRES_SHARED(mu_) {
    auto it = by_id_.find(loc.segment);
    if (it == by_id_.end() || loc.row >= it->second->rows) return nullptr;
    return it->second;
  }
  Status BadLoc(ColdLoc loc) const {
    return Status::InvalidArgument("no cold row " + std::to_string(loc.row) + " in segment " +
                                   std::to_string(loc.segment) + " of " + dir_);
  }
  uint64_t TotalBytes() const REQUIRES_SHARED(mu_) {
    uint64_t b = 0;
    for (const auto& s : segs_) b += s->file_size;
    return b;
  }

  Status NewSegmentId(uint32_t* id) REQUIRES(write_mu_) {
    if (next_id_ > std::numeric_limits<uint32_t>::max()) return Status::IoError("cold segment ids exhausted in " + dir_);
    *id = static_cast<uint32_t>(next_id_);
    return Status::OK();
  }

  // Writes src as segment `id`: .tmp, (fdatasync), rename, (fsync dir), map.
  // On failure nothing of the new segment remains on disk.
  Status Seal(uint32_t id, const RowSource& src, bool durable, std::unique_ptr<Segment>* out) REQUIRES(write_mu_) {
    std::string path = JoinPath(dir_, SegmentName(id));
    std::string tmp = path + ".tmp";
    Status st = WriteSegmentFile(tmp, id, dims_, src, durable);
    if (st.ok()) st = RenameFile(tmp, path);
    if (!st.ok()) {
      (void)RemoveFile(tmp);
      return st;
    }
    if (durable) st = SyncDirectory(dir_);
    if (st.ok()) st = OpenSegment(path, id, dims_, read_only_, /*verify_crcs=*/false, out);
    if (!st.ok()) {
      (void)RemoveFile(path);
      return st;
    }
    next_id_ = uint64_t{id} + 1;
    return Status::OK();
  }

  // Sorts the segments by key range and rebuilds the lookup structures.
  void Reindex() REQUIRES(mu_) {
    std::sort(segs_.begin(), segs_.end(), [](const auto& a, const auto& b) {
      return a->min_key != b->min_key ? a->min_key < b->min_key : a->id < b->id;
    });
    ptrs_.clear();
    by_id_.clear();
    groups_.clear();
    for (size_t i = 0; i < segs_.size(); ++i) {
      Segment* s = segs_[i].get();
      ptrs_.push_back(s);
      by_id_[s->id] = s;
      if (!groups_.empty() && s->min_key <= groups_.back().max_key) {
        groups_.back().end = i + 1;
        groups_.back().max_key = std::max(groups_.back().max_key, s->max_key);
      } else {
        groups_.push_back(Group{i, i + 1, s->max_key});
      }
    }
  }

  // Runs of adjacent segments to merge so that at most `target` remain:
  // repeatedly joins the adjacent pair with the smallest combined live size.
  std::vector<std::vector<Segment*>> Plan(size_t target) const REQUIRES_SHARED(mu_) {
    struct Block {
      std::vector<Segment*> segs;
      uint64_t weight = 0, live = 0;
    };
    std::vector<Block> blocks;
    for (const auto& s : segs_) {
      Block b;
      b.segs.push_back(s.get());
      // Estimated live bytes (a fully deleted segment weighs nothing).
      b.weight = s->rows == 0 ? 0 : static_cast<uint64_t>(static_cast<double>(s->file_size) * s->live / s->rows);
      b.live = s->live;
      blocks.push_back(std::move(b));
    }
    while (blocks.size() > target) {
      size_t best = blocks.size();
      uint64_t best_w = 0;
      for (size_t i = 0; i + 1 < blocks.size(); ++i) {
        if (blocks[i].live + blocks[i + 1].live > std::numeric_limits<uint32_t>::max()) continue;
        uint64_t w = blocks[i].weight + blocks[i + 1].weight;
        if (best == blocks.size() || w < best_w) {
          best = i;
          best_w = w;
        }
      }
      if (best == blocks.size()) break;
      Block& a = blocks[best];
      Block& b = blocks[best + 1];
      a.segs.insert(a.segs.end(), b.segs.begin(), b.segs.end());
      a.weight += b.weight;
      a.live += b.live;
      blocks.erase(blocks.begin() + static_cast<std::ptrdiff_t>(best) + 1);
    }
    std::vector<std::vector<Segment*>> out;
    for (auto& b : blocks) out.push_back(std::move(b.segs));
    return out;
  }

  // Merges each block of `todo` (adjacent segments) into one new segment
  // holding its live rows in key order (into none when nothing is live), in
  // the steps listed at ColdTier::MergeIfNeeded: seal all (undone on
  // failure), before_unlink, apply in memory, unlink sources and orphans.
  // Fills *moves for the caller's relocate. Caller holds write_mu_ and mu_
  // exclusively.
  Status RunMerge(const std::vector<std::vector<Segment*>>& todo, bool durable, const ColdBeforeUnlink& before_unlink,
                  std::vector<std::pair<ColdLoc, ColdLoc>>* moves) REQUIRES(write_mu_, mu_) {
    if (todo.empty() && orphans_.empty()) return Status::OK();
    // 1. Seal every merged segment; the sources stay untouched meanwhile.
    struct Merged {
      const std::vector<Segment*>* sources;
      std::vector<RowRef> rows;
      std::unique_ptr<Segment> seg;
    };
    std::vector<Merged> merged;
    merged.reserve(todo.size());
    for (const auto& block : todo) {
      Merged m{&block, {}, nullptr};
      uint64_t total_live = 0;
      for (const Segment* s : block) total_live += s->live;
      m.rows.reserve(total_live);
      Walker walk(block.data(), block.size(), true, 0);
      const Segment* s;
      uint64_t r;
      while (walk.Next(&s, &r)) m.rows.push_back(RowRef{s, r});
      Status st;
      if (!m.rows.empty()) {
        uint32_t id = 0;
        st = NewSegmentId(&id);
        if (st.ok()) st = Seal(id, MergeSource(&m.rows), durable, &m.seg);
      }
      if (!st.ok()) {
        // Undo: the segments sealed so far were never listed nor used.
        bool removed = false;
        for (auto& done : merged) {
          if (!done.seg) continue;
          const std::string path = done.seg->path;
          done.seg.reset();
          (void)RemoveFile(path);
          removed = true;
        }
        if (durable && removed) (void)SyncDirectory(dir_);
        return st;
      }
      merged.push_back(std::move(m));
    }

    // 2. The ids in use afterwards, for the caller's manifest.
    std::unordered_set<const Segment*> gone;
    for (const auto& m : merged) gone.insert(m.sources->begin(), m.sources->end());
    std::vector<uint32_t> after;
    for (const auto& s : segs_)
      if (gone.count(s.get()) == 0) after.push_back(s->id);
    for (const auto& m : merged)
      if (m.seg) after.push_back(m.seg->id);
    std::sort(after.begin(), after.end());
    Status cb;
    if (before_unlink) {
      CallbackScope scope(this);
      cb = before_unlink(after);
    }

    // 3. Apply in memory whatever before_unlink said: the merged segments are
    // sealed and hold every live row, so memory never goes back to sources
    // that may be unlisted already.
    for (auto& m : merged) {
      if (!m.seg) continue;
      const uint32_t id = m.seg->id;
      moves->reserve(moves->size() + m.rows.size());
      for (size_t i = 0; i < m.rows.size(); ++i)
        moves->push_back({ColdLoc{m.rows[i].seg->id, static_cast<uint32_t>(m.rows[i].row)},
                          ColdLoc{id, static_cast<uint32_t>(i)}});
      segs_.push_back(std::move(m.seg));
    }
    std::vector<std::pair<uint32_t, std::string>> unlink;  // (id, path) of the sources
    for (auto it = segs_.begin(); it != segs_.end();) {
      if (gone.count(it->get()) != 0) {
        unlink.push_back({(*it)->id, (*it)->path});
        it = segs_.erase(it);  // unmaps it: the Store holds its exclusive lock
      } else {
        ++it;
      }
    }
    Reindex();
    if (!cb.ok()) {
      // The sources stay on disk (duplicates recovery resolves) until a
      // later merge's before_unlink succeeds.
      orphans_.insert(orphans_.end(), unlink.begin(), unlink.end());
      return cb;
    }

    // 4. The caller's list no longer names them: unlink sources and orphans.
    unlink.insert(unlink.end(), orphans_.begin(), orphans_.end());
    orphans_.clear();
    Status st;
    for (const auto& u : unlink) {
      Status r = RemoveFile(u.second);
      if (!r.ok()) {
        orphans_.push_back(u);
        if (st.ok()) st = r;
      }
    }
    if (durable && !unlink.empty()) {
      Status r = SyncDirectory(dir_);
      if (st.ok()) st = r;
    }
    return st;
  }

  const std::string dir_;
  const uint32_t dims_;
  const bool read_only_;

  // Serializes the writers that seal segments (Append, MergeIfNeeded,
  // Compact): segment ids and cold keys. Taken before mu_, and held while a
  // segment file is written, when mu_ is not.
  Mutex write_mu_;
  // The segment set: which segments exist, their order and lookup tables,
  // and the segments' deletion bitmaps and live counts (Segment::live,
  // changed by CommitDeletes). Shared for reads and scans (a scan holds it
  // for its whole batch), exclusive to change any of it.
  mutable SharedMutex mu_ ACQUIRED_AFTER(write_mu_);
  std::vector<std::unique_ptr<Segment>> segs_ GUARDED_BY(mu_);  // key order
  std::vector<Segment*> ptrs_ GUARDED_BY(mu_);                  // segs_ as raw pointers, same order
  std::unordered_map<uint32_t, Segment*> by_id_ GUARDED_BY(mu_);
  std::vector<Group> groups_ GUARDED_BY(mu_);
  uint64_t next_key_ GUARDED_BY(write_mu_) = 1;
  uint64_t next_id_ GUARDED_BY(write_mu_) = 1;
  // Merged-away segments whose files are still on disk: (id, path). Written
  // under write_mu_ and mu_ (exclusive), read under either.
  std::vector<std::pair<uint32_t, std::string>> orphans_ GUARDED_BY(mu_);
};

}  // namespace

Status ColdTier::Open(const std::string& dir, uint32_t dimensions, bool read_only, std::unique_ptr<ColdTier>* out) {
  if (dimensions == 0 || dimensions > kMaxDimensions)
    return Status::InvalidArgument("cold tier: dimensions must be in 1.." + std::to_string(kMaxDimensions));
  auto tier = std::make_unique<ColdTierImpl>(dir, dimensions, read_only);
  TS_RETURN_IF_ERROR(tier->Load());
  *out = std::move(tier);
  return Status::OK();
}

}  // namespace tierstore
