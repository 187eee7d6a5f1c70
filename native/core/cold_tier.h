// ColdTier: immutable columnar segments plus a deletion bitmap per segment.
//
// Files: cold-<segment id, 8 hex digits>.seg in the store directory, each
// written whole to a .tmp file and renamed into place (sealed), so a segment
// file either exists complete or not at all. Layout of one segment:
//   header (magic, format version, dimensions, row count, column directory,
//   header crc), then columns, each 64-byte aligned:
//     cold_key u64[n] (ascending), seq u64[n], confidence f32[n],
//     activation f32[n], created_at f64[n], norm f32[n],
//     data_crc u32[n] (id+content+metadata+scalars+seq of the row),
//     embedding_crc u32[n],
//     embeddings f32[n*dims] row-major (each row starts 64-byte aligned when
//       dims*4 is a multiple of 64; the matrix itself always does),
//     id offsets u64[n+1] + id bytes, content offsets u64[n+1] + bytes,
//     metadata offsets u64[n+1] + bytes,
//   then the mutable part, changed in place and not covered by checksums:
//     last_access_at f64[n], access_count f64[n], deleted bitmap u64[ceil(n/64)].
//   A crc of each fixed-width immutable column sits in the column directory
//   and is verified on open; the variable columns and embeddings are
//   verified per row on Read (data_crc / embedding_crc).
//
// Cold keys: every row gets a store-unique, ascending cold_key when it is
// appended; merging segments keeps the keys, so an iteration cursor (the last
// key yielded) stays meaningful across merges. Segments have disjoint key
// ranges and are kept in key order.
//
// Synchronization: one std::shared_mutex guards the segment set. Scans
// (ForEachLive, ScanFrom, NthLive) take it shared once per call — once per
// batch — never once per record. Append (sealing), Delete, Merge and Compact
// take it exclusively. Read and UpdateAccess take it shared. A scan
// callback may call the readers (Read, KeyOf, IsLive, NthLiveKey, ScanFrom,
// Stats, UpdateAccess) without locking again; a mutator called from a scan
// callback returns INVALID_ARGUMENT instead of deadlocking.
//
// Lifetime of views: the string_views and embedding pointers handed out stay
// valid until the segment holding them is dropped, which happens only in
// Merge/Compact/Close. The Store runs those under its own exclusive lock, so
// a reader holding the Store's shared lock never sees a view freed.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "record.h"
#include "status.h"

namespace tierstore {

struct ColdLoc {
  uint32_t segment = 0;  // segment id (the number in its file name)
  uint32_t row = 0;
  bool operator==(const ColdLoc& o) const { return segment == o.segment && row == o.row; }
};

// The columns of one segment, for similarity scans (no per-row checksum is
// verified). Pointers into the mapping, valid as long as other views (see
// "Lifetime of views" above); all columns are 64-byte aligned. A row r is
// live when bit (r % 64) of deleted[r / 64] is 0; the bitmap is changed only
// by Delete, so it is stable while the Store holds its own lock.
struct ColdSegmentView {
  uint32_t segment = 0;               // segment id, as in ColdLoc
  uint64_t rows = 0;
  const float* embeddings = nullptr;  // rows x dimensions, row-major
  const float* norms = nullptr;       // rows
  const float* confidence = nullptr;  // rows
  const uint64_t* deleted = nullptr;  // ceil(rows / 64) words
};

struct ColdStats {
  std::vector<uint32_t> segment_ids;  // ascending
  uint64_t live_records = 0;
  uint64_t deleted_rows = 0;
  uint64_t segments = 0;
  uint64_t file_bytes = 0;
};

// "cold-<id, 8 lowercase hex digits>.seg": the file of one segment.
std::string ColdSegmentFileName(uint32_t id);
constexpr const char* kColdFilePrefix = "cold-";

class ColdTier {
 public:
  virtual ~ColdTier() = default;

  // Opens every segment in dir (creating nothing until the first Append).
  // Leftover *.tmp files from an interrupted seal are removed (unless read_only).
  static Status Open(const std::string& dir, uint32_t dimensions, bool read_only,
                     std::unique_ptr<ColdTier>* out);

  // Every live row in key order (used once, at open, to build the index).
  virtual Status ForEachLive(const std::function<Status(ColdLoc, uint64_t key, const RecordView&)>& fn) = 0;

  // Seals one new segment holding copies of recs[0..n) (with their seq and
  // access statistics), keys ascending in the given order. locs receives the
  // location of each. durable: fdatasync the file and directory before rename
  // returns (always done before the segment becomes visible when durable).
  virtual Status Append(const RecordView* recs, size_t n, bool durable, std::vector<ColdLoc>* locs) = 0;

  virtual Status Read(ColdLoc loc, bool verify_embedding, RecordView* out) const = 0;
  virtual uint64_t KeyOf(ColdLoc loc) const = 0;
  virtual bool IsLive(ColdLoc loc) const = 0;

  // Sets the row's deletion bit.
  virtual Status Delete(ColdLoc loc) = 0;
  virtual void UpdateAccess(ColdLoc loc, double last_access_at, double access_count) = 0;

  // Calls fn for up to max live rows with key > after_key, in key order,
  // holding the shared lock once for the whole call. Returns how many rows fn saw
  // through *visited. fn returning non-OK stops the scan with that status.
  // Every row's data_crc is verified (CORRUPTION, naming the file, on a
  // mismatch); its embedding_crc too when verify_embedding.
  virtual Status ScanFrom(uint64_t after_key, size_t max, bool verify_embedding,
                          const std::function<Status(ColdLoc, uint64_t key, const RecordView&)>& fn,
                          size_t* visited) const = 0;

  // Similarity fast path: calls fn once per segment, in key order, under one
  // shared lock, with views of its contiguous columns (see ColdSegmentView).
  virtual Status ScanSegments(const std::function<Status(const ColdSegmentView&)>& fn) const = 0;

  // The key of the n-th live row (0-based) in key order; false if n >= live count.
  virtual bool NthLiveKey(uint64_t n, uint64_t* key) const = 0;

  // Merges segments: when more than max_segments exist, adjacent small
  // segments are merged (dropping deleted rows) until at most max_segments
  // remain; Compact merges all segments into one. relocate(old, new) is
  // called for every surviving row so the caller can fix its index; the old
  // segments' files are removed after the new one is sealed.
  virtual Status MergeIfNeeded(size_t max_segments, bool durable,
                               const std::function<void(ColdLoc from, ColdLoc to)>& relocate) = 0;
  virtual Status Compact(bool durable, const std::function<void(ColdLoc from, ColdLoc to)>& relocate,
                         uint64_t* bytes_reclaimed) = 0;

  // msync/fdatasync of the mutable parts (bitmaps, access statistics).
  virtual Status Sync() = 0;

  virtual ColdStats Stats() const = 0;
};

}  // namespace tierstore
