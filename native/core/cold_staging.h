// ColdStaging: records moved to the cold tier one at a time, held in memory
// in columns until the cold tier seals them into a segment.
//
// A segment costs a file, a rename and a manifest update; a single
// move(id, 'cold') that paid for one each time would cost far more than the
// record. Staged rows instead live here, each under a cold key above every
// sealed key, so they are cold for every reader at once (reads, scans,
// similarity, counts) and iterate after the sealed rows, in key order. Their
// durability is not this class's: the Store logs each staged record in its
// hot log (docs/format/hot-log.md, stage entries) before it removes the
// record's source, and the cold tier seals the staging into one segment
// (keeping the keys) before the log forgets them.
//
// Columns: the same a ColdSegmentView exposes (embeddings contiguous and
// 64-byte aligned, norms, scalars, metadata offsets and bytes, a deletion
// bitmap, metadata signatures), plus per row its key, seq, id, content and
// access statistics.
//
// Synchronization: none inside. The cold tier's mutex guards it: Add,
// PopBack, Delete and Clear under it exclusively; the readers under it
// shared. UpdateAccess may run under the shared lock concurrently with
// readers (relaxed atomics, like a segment's access columns).
//
// Lifetime of views: the string_views, embedding pointers and column
// pointers handed out stay valid until the next Add, PopBack or Clear (which
// may reallocate); the cold tier calls those only under its exclusive lock,
// and the Store only under its own exclusive lock.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "metadata_signature.h"
#include "record.h"

namespace tierstore {

struct ColdSegmentView;

class ColdStaging {
 public:
  explicit ColdStaging(uint32_t dims) : dims_(dims) {}
  ColdStaging(const ColdStaging&) = delete;
  ColdStaging& operator=(const ColdStaging&) = delete;

  // Adds a copy of rec (its embedding of `dims` floats must be set) under
  // key, which must be above every key added since the last Clear. Returns
  // the row. May throw std::bad_alloc, leaving the staging as it was.
  uint32_t Add(const RecordView& rec, uint64_t key);
  // Removes the row the last Add added (an Add whose log write failed).
  void PopBack();
  // Drops every row (after they were sealed into a segment).
  void Clear();

  uint64_t rows() const { return keys_.size(); }
  uint64_t live() const { return live_; }
  bool empty() const { return keys_.empty(); }
  // Bytes held for the rows (embeddings, strings): what sealing would write.
  uint64_t bytes() const { return bytes_; }

  uint64_t Key(uint64_t r) const { return keys_[r]; }
  uint64_t Seq(uint64_t r) const { return seqs_[r]; }
  uint64_t LastKey() const { return keys_.back(); }
  bool Deleted(uint64_t r) const { return (deleted_[r >> 6] >> (r & 63)) & 1; }
  // Marks row r deleted; false if it already was.
  bool Delete(uint64_t r);
  // Row r's record, access statistics included.
  void Fill(uint64_t r, RecordView* out) const;
  void UpdateAccess(uint64_t r, double last_access_at, double access_count);

  // The first live row at or after r (rows() if none).
  uint64_t NextLive(uint64_t r) const;
  // The first row whose key is above `key`.
  uint64_t UpperBound(uint64_t key) const;
  // The key of the n-th live row (n < live()).
  uint64_t NthLiveKey(uint64_t n) const;

  // The columns as a similarity scan reads a segment's, under segment id
  // `segment`; signatures set when asked.
  ColdSegmentView View(uint32_t segment, bool with_signatures) const;

 private:
  // Floats aligned to 64 bytes that grow by doubling (a std::vector's
  // storage is not aligned for the SIMD kernels).
  struct AlignedDeleter {
    void operator()(float* p) const;
  };
  void ReserveEmbeddings(uint64_t rows);

  const uint32_t dims_;
  std::vector<uint64_t> keys_, seqs_;
  std::vector<std::string> ids_, contents_;
  std::string metadata_bytes_;
  std::vector<uint64_t> metadata_offsets_{0};  // rows + 1
  std::unique_ptr<float[], AlignedDeleter> embeddings_;
  uint64_t embedding_capacity_ = 0;  // rows
  std::vector<float> norms_, confidence_, activation_;
  std::vector<double> created_at_;
  // Bit patterns of doubles, stored and loaded as relaxed atomics.
  std::vector<uint64_t> last_access_, access_count_;
  std::vector<MetadataSignature> signatures_;
  std::vector<uint64_t> deleted_;  // ceil(rows / 64) words
  uint64_t live_ = 0;
  uint64_t bytes_ = 0;
};

}  // namespace tierstore
