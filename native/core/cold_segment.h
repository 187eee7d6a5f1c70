// Segment: one mapped cold segment file (docs/format/cold.md): row
// accessors, per-row checksums, and the deletion bitmap with its two
// copies. OpenSegment maps and checks a file. Private to native/core.
//
// Synchronization: none inside. The cold tier's mutex (cold_tier.cc) guards
// the bitmap and the live count: CommitDeletes under it exclusively, the
// readers under it shared. The immutable columns need no lock while the
// segment is alive.
#pragma once

#include <sys/mman.h>

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <limits>
#include <memory>
#include <string>
#include <string_view>

#include "cold_format.h"
#include "file_util.h"
#include "metadata_signature.h"
#include "mutex.h"
#include "status.h"

namespace tierstore::cold {

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
  uint32_t col_crc[kNumCols] = {};  // from the column directory
  // CheckColumns passed (at open, or later), or this process wrote the file.
  mutable std::atomic<bool> columns_checked{false};
  mutable std::atomic<bool> structure_checked{false};  // EnsureStructure passed
  // The metadata signature of every row (metadata_signature.h), loaded by
  // the first filtered scan that asks for them (cold_filter_file.h) and
  // immutable after, so a pointer to them stays valid as long as the segment.
  mutable Mutex signatures_mu;
  mutable std::unique_ptr<MetadataSignature[]> signatures GUARDED_BY(signatures_mu);

  // Reads every column: their checksums, the string offsets (monotone,
  // within limits, ending at their bytes' size) and the key order. What an
  // open with verify_crcs does; otherwise Verify's part.
  Status CheckColumns() const { return CheckColumns(/*structure_only=*/false); }
  // What a scan relies on beyond each row's own checksums: the key, seq and
  // string offset columns' checksums, the offsets' order and the keys'. Run
  // once per segment, by the first scan that walks it (a few bytes a row).
  Status EnsureStructure() const {
    if (columns_checked.load(std::memory_order_relaxed) || structure_checked.load(std::memory_order_relaxed)) {
      return Status::OK();
    }
    TS_RETURN_IF_ERROR(CheckColumns(/*structure_only=*/true));
    structure_checked.store(true, std::memory_order_relaxed);
    return Status::OK();
  }
  Status CheckColumns(bool structure_only) const;

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

  // Row r's bytes of a string column. The offsets were checked at open, but
  // the mapping can change under a store that is open (another process
  // writing the file): a pair that no longer lies within the column gives
  // an empty view and *ok = false, never a read outside the mapping.
  std::string_view Bytes(int offcol, int bytecol, uint64_t r, bool* ok) const {
    uint64_t a = Load<uint64_t>(base + off[offcol] + r * 8);
    uint64_t b = Load<uint64_t>(base + off[offcol] + (r + 1) * 8);
    if (a > b || b > size[bytecol]) {
      *ok = false;
      return std::string_view();
    }
    return std::string_view(reinterpret_cast<const char*>(base + off[bytecol] + a), b - a);
  }
  const float* Embedding(uint64_t r) const {
    return reinterpret_cast<const float*>(base + off[kEmbeddings] + r * dims * 4);
  }

  // Views of row r. False when its string offsets are out of range (the
  // strings are then empty views): the row is damaged.
  bool Fill(uint64_t r, RecordView* v) const {
    bool ok = true;
    v->id = Bytes(kIdOffsets, kIdBytes, r, &ok);
    v->content = Bytes(kContentOffsets, kContentBytes, r, &ok);
    v->metadata = Bytes(kMetaOffsets, kMetaBytes, r, &ok);
    v->embedding = Embedding(r);
    v->norm = Load<float>(base + off[kNorm] + r * 4);
    v->confidence = Load<float>(base + off[kConfidence] + r * 4);
    v->activation = Load<float>(base + off[kActivation] + r * 4);
    v->created_at = Load<double>(base + off[kCreatedAt] + r * 8);
    v->last_access_at = LastAccess(r);
    v->access_count = AccessCount(r);
    v->seq = Seq(r);
    return ok;
  }

  Status BadOffsets(uint64_t r) const { return Corrupt("row " + std::to_string(r) + ": string offsets out of range"); }

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

  // AdviseWillNeed for rows [r0, r1) of the columns a scan reads (the
  // embeddings only when asked), string offsets bounds-checked.
  void WillNeedRows(uint64_t r0, uint64_t r1, bool embeddings) const {
    r1 = std::min(r1, rows);
    if (r0 >= r1) return;
    const int fixed[] = {kKey, kSeq, kConfidence, kActivation, kCreatedAt, kNorm, kDataCrc, kEmbCrc, kLastAccess, kAccessCount};
    for (int c : fixed) {
      const uint64_t w = size[c] / rows;
      AdviseWillNeed(base + off[c] + r0 * w, static_cast<size_t>((r1 - r0) * w));
    }
    if (embeddings) AdviseWillNeed(Embedding(r0), static_cast<size_t>((r1 - r0) * dims * 4));
    const int offcols[3] = {kIdOffsets, kContentOffsets, kMetaOffsets};
    const int bytecols[3] = {kIdBytes, kContentBytes, kMetaBytes};
    for (int k = 0; k < 3; ++k) {
      AdviseWillNeed(base + off[offcols[k]] + r0 * 8, static_cast<size_t>((r1 - r0 + 1) * 8));
      const uint64_t a = Load<uint64_t>(base + off[offcols[k]] + r0 * 8);
      const uint64_t b = Load<uint64_t>(base + off[offcols[k]] + r1 * 8);
      if (a <= b && b <= size[bytecols[k]]) AdviseWillNeed(base + off[bytecols[k]] + a, static_cast<size_t>(b - a));
    }
  }

  // Start of the mutable part (access statistics, bitmaps), for msync.
  uint64_t MutableStart() const { return off[kLastAccess]; }
};

// Maps and validates one segment file. verify_crcs: check the column crcs
// and the offset arrays (skipped only for a file this process just wrote).
// Maps the segment file at path and checks its header, column directory
// and (verify_crcs) the column checksums; CORRUPTION naming the file on any
// mismatch.
Status OpenSegment(const std::string& path, uint32_t id, uint32_t dims, bool read_only, bool verify_crcs,
                   std::unique_ptr<Segment>* out);

}  // namespace tierstore::cold
