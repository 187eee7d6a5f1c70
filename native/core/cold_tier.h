// ColdTier: immutable columnar segments plus a deletion bitmap per segment.
//
// Files: cold-<segment id, 8 hex digits>.seg in the store directory, each
// written whole to a .tmp file and renamed into place (sealed), so a segment
// file either exists complete or not at all. The bytes of a segment (format
// version 2; another version is CORRUPTION "unsupported format version") are
// in docs/format/cold.md: a header with a column directory, the immutable
// columns (keys, sequence numbers, scalars, per-row checksums, embeddings,
// ids, contents, metadata), then the parts changed in place: the access
// statistics (not checksummed: best effort) and the deletion bitmap.
//
// Filter files: beside each segment, cold-<id>.filter (cold_filter_file.h,
// docs/format/cold-filter.md) holds its rows' metadata signatures, so that
// the first filtered scan after an open reads them instead of the whole
// metadata column. Derived data: written with the segment at every seal
// (Append, MergeIfNeeded, Compact; fdatasynced and covered by the
// segment's directory sync when durable), removed just before the segment's
// file, read only by the first filtered scan of the segment. One that is
// missing or does not check out is made again from the segment by that
// scan (and, in a writable tier, written again): never an error, never a
// different answer.
//
// Deletion bitmap: two checksummed copies, the one with the higher
// generation active. Delete writes the inactive copy and then commits it by
// one aligned store of its new generation, so a process killed mid-update
// loses at most that deletion -- safe, because the Store logs every
// deletion in its write-ahead log before it touches the cold tier and
// forgets the log only after the update completed. Against power loss a
// durable Delete orders its writes with msync so the newest generation on
// disk always has its words; a relaxed Delete orders nothing, and a power
// cut before the next Sync() may leave the newest generation without its
// words, which opens as CORRUPTION naming the file, never as a silent
// change. At open an invalid active copy, or equal generations whose
// copies differ, is CORRUPTION.
//
// Cold keys: every row gets a store-unique, ascending cold_key when it is
// appended; merging segments keeps the keys, so an iteration cursor (the last
// key yielded) stays meaningful across merges. Segments have disjoint key
// ranges and are kept in key order.
//
// Opening writes nothing: Open only reads and maps (read-write mappings when
// not read_only, but nothing is stored through them; read_only maps privately,
// copy-on-write, so UpdateAccess keeps statistics in this process only), and
// reads no filter file. The mutations a crash leaves for later (removing
// stale cold-*.tmp files of an interrupted seal, and filter files whose
// segment is gone) are done by FinishOpen(), which the Store calls once
// every tier has opened and recovery's reads succeeded, before any mutation.
//
// Synchronization: one std::shared_mutex guards the segment set and the
// bitmaps. Scans (ForEachLive, ScanFrom, NthLive) take it shared once per
// call — once per batch — never once per record. Append (sealing), Delete,
// DeleteMany, MergeIfNeeded and Compact take it exclusively (FinishOpen
// takes only the internal mutex that serializes seals). Read, UpdateAccess
// and Sync take it shared. A scan callback — or MergeIfNeeded/Compact's
// before_unlink — may call the readers (Read, KeyOf, IsLive, NthLiveKey,
// ScanFrom, ScanSegments, Stats, UpdateAccess) without locking again; a
// mutator called from such a callback returns INVALID_ARGUMENT instead of
// deadlocking. A segment's signatures are loaded (and its filter file
// written again) under the shared lock and a mutex of that segment's own:
// a merge or compaction, which removes filter files, waits for it.
//
// Staging: a record moved to cold alone (Stage) is not sealed into a
// segment of its own: it waits in memory (cold_staging.h) under a cold key
// above every sealed one, as a row of the pseudo segment
// kColdStagingSegment, until SealStaging writes every staged row into one
// segment, keys kept. Staged rows are cold rows for every call here (Read,
// scans, deletes, counts). Their durability is the caller's: the Store logs
// each in its hot log, and seals before the log forgets them. Append refuses
// to run while rows are staged (seal first), so staged keys stay above
// every sealed key and an iteration's key order holds.
//
// Lifetime of views: the string_views and embedding pointers handed out stay
// valid until the segment holding them is dropped, which happens only in
// Merge/Compact/Close; for staged rows, until the next Stage, Unstage,
// Restage or SealStaging. The Store runs those under its own exclusive lock, so
// a reader holding the Store's shared lock never sees a view freed.
// ColdSegmentView::signatures lives as long as its segment too (loaded
// once, never changed).
// ColdSegmentView::deleted points to the bitmap copy active at the time of
// the scan: it shows the current deletions while no Delete runs (deletes
// are exclusive, under the tier's and the Store's exclusive locks).
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "metadata_signature.h"
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
// live when bit (r % 64) of deleted[r / 64] is 0. `deleted` points to the
// active bitmap copy; it is exact while the caller holds the tier's shared
// lock (inside ScanSegments' callback) or the Store's lock that excludes
// Delete. A later Delete switches the active copy; the old pointer stays
// readable (same mapping) but shows the old state, and the Delete after that
// rewrites it, so do not keep it across deletes.
struct ColdSegmentView {
  uint32_t segment = 0;               // segment id, as in ColdLoc
  uint64_t rows = 0;
  const float* embeddings = nullptr;  // rows x dimensions, row-major
  const float* norms = nullptr;       // rows
  const float* confidence = nullptr;  // rows
  const float* activation = nullptr;  // rows
  const double* created_at = nullptr; // rows
  // Row r's metadata JSON: metadata_bytes[metadata_offsets[r] ..
  // metadata_offsets[r + 1]), the bytes not checksummed here (a scan reads
  // what it returns again). The offsets are checked on each call (an open
  // the persisted index vouches for does not read them): false when they
  // lie outside the column, a damaged row.
  const uint64_t* metadata_offsets = nullptr;  // rows + 1
  const char* metadata_bytes = nullptr;
  uint64_t metadata_size = 0;                  // bytes of the metadata column

  bool Metadata(uint64_t r, std::string_view* out) const {
    const uint64_t a = metadata_offsets[r], b = metadata_offsets[r + 1];
    if (a > b || b > metadata_size) return false;
    *out = std::string_view(metadata_bytes + a, b - a);
    return true;
  }
  const uint64_t* deleted = nullptr;  // ceil(rows / 64) words
  // Row r's metadata signature (metadata_signature.h): set only when the
  // scan asked for them; a row whose metadata offsets are damaged has every
  // bit set (the exact check reports it).
  const MetadataSignature* signatures = nullptr;

  std::string_view Metadata(uint64_t r) const {
    return std::string_view(metadata_bytes + metadata_offsets[r], metadata_offsets[r + 1] - metadata_offsets[r]);
  }
};

struct ColdStats {
  std::vector<uint32_t> segment_ids;             // ascending: the segments in use, always exact
  std::vector<uint64_t> segment_live_records;    // parallel to segment_ids: live rows of each
  // Segments merged away whose files could not be unlinked yet (before_unlink
  // or unlink failed): not in use, not in segment_ids, still on disk until
  // a later MergeIfNeeded/Compact removes them. Ascending.
  std::vector<uint32_t> orphan_segment_ids;
  uint64_t live_records = 0;    // staged rows included
  uint64_t staged_records = 0;  // live rows waiting in the staging (see "Staging")
  uint64_t deleted_rows = 0;
  uint64_t segments = 0;
  uint64_t file_bytes = 0;
};

// The segment id of staged rows (no segment file ever has it: ids start at 1).
constexpr uint32_t kColdStagingSegment = 0;
// SealStaging is due (StagingFull) from this many staged rows or bytes on.
constexpr uint64_t kColdStagingMaxRows = 4096;
constexpr uint64_t kColdStagingMaxBytes = uint64_t{64} << 20;

// "cold-<id, 8 lowercase hex digits>.seg": the file of one segment.
std::string ColdSegmentFileName(uint32_t id);
constexpr const char* kColdFilePrefix = "cold-";

// Called during MergeIfNeeded/Compact after the merged segments are sealed
// (durable when asked) and before any source file is unlinked, with the
// ascending ids of the segments that will exist afterwards.
using ColdBeforeUnlink = std::function<Status(const std::vector<uint32_t>& segment_ids_after)>;
using ColdRelocate = std::function<void(ColdLoc from, ColdLoc to)>;

class ColdTier {
 public:
  virtual ~ColdTier() = default;

  // Opens every segment in dir (creating nothing until the first Append) and
  // changes no file: see "Opening writes nothing" above. A damaged segment
  // (including its deletion bitmap) is CORRUPTION naming the file.
  static Status Open(const std::string& dir, uint32_t dimensions, bool read_only,
                     std::unique_ptr<ColdTier>* out);
  // verify_columns false: each segment's header, column directory and
  // deletion bitmap are read and checked, but not its columns (their
  // checksums, the string offsets, the key order), so the open reads no
  // row. For an open the persisted index vouches for (a clean close);
  // rows are then checked as they are read (Read verifies a row's
  // checksums; string offsets are bounds-checked wherever they are used),
  // and VerifyColumns() checks the rest on demand.
  static Status Open(const std::string& dir, uint32_t dimensions, bool read_only, bool verify_columns,
                     std::unique_ptr<ColdTier>* out);

  // The mutations Open deferred: removes leftover cold-*.tmp files of an
  // interrupted seal and filter files whose segment is gone. Call once, after every tier opened and recovery's
  // reads succeeded, before any mutation. No-op when read_only.
  virtual Status FinishOpen() = 0;

  // Checks every segment's columns as an open with verify_columns does
  // (their checksums, string offsets, key order): fn(file, reason) for
  // each segment that fails.
  virtual void VerifyColumns(const std::function<void(const std::string& file, const std::string& reason)>& fn) const = 0;

  // Every live row in key order (used once, at open, to build the index).
  virtual Status ForEachLive(const std::function<Status(ColdLoc, uint64_t key, const RecordView&)>& fn) = 0;

  // Seals one new segment holding copies of recs[0..n) (with their seq and
  // access statistics), keys ascending in the given order. locs receives the
  // location of each. durable: fdatasync the file and directory before rename
  // returns (always done before the segment becomes visible when durable).
  // INVALID_ARGUMENT while rows are staged: SealStaging first.
  virtual Status Append(const RecordView* recs, size_t n, bool durable, std::vector<ColdLoc>* locs) = 0;

  // Staging (see "Staging" above). Stage adds a copy of rec under the next
  // cold key and returns its location and key; Unstage(loc) takes back the
  // row the last Stage added (its log write failed). Restage re-adds a row
  // the log held, under its logged key, at open: a key at or below the
  // highest sealed key was sealed already (or deleted before its seal) and
  // is skipped (*staged false); a key below the last staged one is
  // CORRUPTION. None writes a file.
  virtual Status Stage(const RecordView& rec, ColdLoc* loc, uint64_t* key) = 0;
  virtual void Unstage(ColdLoc loc) = 0;
  virtual Status Restage(const RecordView& rec, uint64_t key, bool* staged) = 0;
  // Seals every live staged row into one new segment (durable: synced
  // before the rename), keys kept, and empties the staging; relocate(old,
  // new) for each. On failure nothing changed. No-op when nothing is staged.
  virtual Status SealStaging(bool durable, const ColdRelocate& relocate) = 0;
  // Whether rows are staged, and whether enough to seal them now.
  virtual bool HasStaged() const = 0;
  virtual bool StagingFull() const = 0;
  static bool IsStaged(ColdLoc loc) { return loc.segment == kColdStagingSegment; }

  virtual Status Read(ColdLoc loc, bool verify_embedding, RecordView* out) const = 0;
  virtual uint64_t KeyOf(ColdLoc loc) const = 0;
  virtual bool IsLive(ColdLoc loc) const = 0;

  // Sets the row's deletion bit (a new bitmap generation; a row already
  // deleted changes nothing and writes nothing). durable: ordered msyncs
  // (see "Deletion bitmap"), the deletion is on disk when it returns; costs
  // 2-3 msyncs of one bitmap copy. On error the in-memory state is unchanged
  // (the disk holds the old or the new state, both valid).
  // Delete(loc) is Delete(loc, false).
  virtual Status Delete(ColdLoc loc, bool durable) = 0;
  Status Delete(ColdLoc loc) { return Delete(loc, false); }
  // Deletes several rows: all locations are checked first (INVALID_ARGUMENT
  // changes nothing), then one new generation per segment touched (one
  // bitmap copy and, when durable, one msync per segment instead of per
  // row). Each segment's update is atomic; the set across segments is not
  // (the Store's log covers that).
  virtual Status DeleteMany(const ColdLoc* locs, size_t n, bool durable) = 0;
  virtual void UpdateAccess(ColdLoc loc, double last_access_at, double access_count) = 0;

  // Calls fn for up to max live rows with key > after_key, in key order,
  // holding the shared lock once for the whole call — more than max only to
  // finish a run of equal keys (copies of one record a crash mid-merge left
  // in two segments), so that resuming after the last key skips nothing.
  // Returns how many rows fn saw through *visited. fn returning non-OK stops the scan with that status.
  // Every row's data_crc is verified (CORRUPTION, naming the file, on a
  // mismatch); its embedding_crc too when verify_embedding.
  virtual Status ScanFrom(uint64_t after_key, size_t max, bool verify_embedding,
                          const std::function<Status(ColdLoc, uint64_t key, const RecordView&)>& fn,
                          size_t* visited) const = 0;

  // Similarity fast path: calls fn once per segment, in key order, under one
  // shared lock, with views of its contiguous columns (see ColdSegmentView).
  // with_signatures: fill ColdSegmentView::signatures, loaded on the first
  // such scan of a segment (from its filter file, else made from its
  // metadata column and, when writable, the file written again: a durable
  // write, once per segment) and kept with it.
  virtual Status ScanSegments(const std::function<Status(const ColdSegmentView&)>& fn, bool with_signatures) const = 0;
  Status ScanSegments(const std::function<Status(const ColdSegmentView&)>& fn) const { return ScanSegments(fn, false); }

  // The key of the n-th live row (0-based) in key order; false if n >= live count.
  virtual bool NthLiveKey(uint64_t n, uint64_t* key) const = 0;

  // Merges segments: when more than max_segments exist, adjacent small
  // segments are merged (dropping deleted rows) until at most max_segments
  // remain; Compact merges all segments into one (nothing when one clean
  // segment or none exists). Steps:
  //  1. every merged segment is sealed (durable: file and directory synced).
  //     A failure here removes the new files and returns the error with
  //     nothing changed (memory and disk as before; relocate not called).
  //  2. before_unlink(ids after), when given. It is also called, with the
  //     current ids, when there is nothing to merge but orphans (see
  //     ColdStats) are waiting, so that they can be unlinked. It runs with
  //     the tier's lock held exclusively: it may call the readers (they see
  //     the state before the merge); a mutator returns INVALID_ARGUMENT.
  //  3. the merge is applied in memory (sources dropped, Stats() reflects it)
  //     and relocate(old, new) is called for every surviving row, so the
  //     caller can fix its index — this happens whether or not
  //     before_unlink succeeded: the in-memory state is always the merged one.
  //  4. only if before_unlink succeeded (or none was given): the sources'
  //     files, and earlier orphans, are unlinked (directory synced when
  //     durable). If before_unlink failed, its error is returned and the
  //     sources stay on disk as orphans (duplicates of rows in the merged
  //     segment with the same key and seq, which recovery resolves by
  //     sequence number if the process dies before a later merge removes
  //     them). An unlink that fails also leaves an orphan and returns the error.
  // bytes_reclaimed: file bytes of the segments in use before minus after.
  virtual Status MergeIfNeeded(size_t max_segments, bool durable, const ColdRelocate& relocate,
                               const ColdBeforeUnlink& before_unlink) = 0;
  virtual Status Compact(bool durable, const ColdRelocate& relocate, uint64_t* bytes_reclaimed,
                         const ColdBeforeUnlink& before_unlink) = 0;
  // The same without before_unlink (sources unlinked right after sealing).
  Status MergeIfNeeded(size_t max_segments, bool durable, const ColdRelocate& relocate) {
    return MergeIfNeeded(max_segments, durable, relocate, nullptr);
  }
  Status Compact(bool durable, const ColdRelocate& relocate, uint64_t* bytes_reclaimed) {
    return Compact(durable, relocate, bytes_reclaimed, nullptr);
  }

  // msync (MS_SYNC) + fdatasync of the mutable parts (bitmaps, access
  // statistics) of every segment.
  virtual Status Sync() = 0;

  virtual ColdStats Stats() const = 0;
};

}  // namespace tierstore
