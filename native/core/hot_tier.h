// HotTier: the records held in RAM, beside WarmTier and ColdTier. Each record
// is a HotRecord (owned copies of its strings); the embeddings sit in an
// EmbeddingArena, contiguous for scans. Records are kept in arrival order
// under a key (1, 2, ... never reused), which is also the iteration order
// and a record's position for iterators and cursors.
//
// Durability is the hot log's (hot_log.h), not this class's: the Store
// appends every write to the log before it changes the tier, and rebuilds
// the tier from the log at open. Access statistics that Get changes here are
// marked dirty until the Store writes them to the log (DirtyAccess).
//
// Synchronization: none inside; the Store's mutex guards the tier (shared
// for reads and scans, exclusive for any change).
// Lifetimes: a HotRecord, its strings and its arena row live until Take()
// or Clear() removes it; pointers and views into it stay valid until then.
#pragma once

#include <cstdint>
#include <cstring>
#include <memory>
#include <new>
#include <string_view>
#include <vector>

#include "embedding_arena.h"
#include "hot_log.h"
#include "key_ordered_table.h"
#include "metadata_signature.h"
#include "record.h"

namespace tierstore {

// A hot record: its fields and owned copies of its id, metadata and content
// in one allocation (the bytes follow the struct: one malloc per record,
// not two, matters when an open loads a whole log); its embedding lives in
// the tier's EmbeddingArena (contiguous with the other hot embeddings, for
// scans), released when the record dies. Made only by CopyOf; deleted as
// usual (unique_ptr), which the class's operator delete pairs with CopyOf's
// allocation.
struct HotRecord {
  EmbeddingArena* arena = nullptr;
  uint32_t row = 0;
  uint32_t id_len = 0, meta_len = 0;
  uint64_t content_len = 0;
  uint32_t dims = 0;
  float norm = 0, confidence = 0, activation = 0;
  double created_at = 0, last_access_at = 0, access_count = 0;
  uint64_t seq = 0;
  uint64_t key = 0;  // arrival order in hot: the iteration order
  bool access_dirty = false;
  // Of the metadata, made with the copy (the filter arrays' entry; see
  // filter_entry.h).
  MetadataSignature signature;

  HotRecord(const HotRecord&) = delete;
  HotRecord& operator=(const HotRecord&) = delete;
  ~HotRecord() {
    if (arena != nullptr) arena->Release(row);
  }
  static void operator delete(void* p) { ::operator delete(p); }

  const float* embedding() const { return arena->Row(row); }
  const char* bytes() const { return reinterpret_cast<const char*>(this + 1); }
  std::string_view id() const { return {bytes(), id_len}; }
  std::string_view metadata() const { return {bytes() + id_len, meta_len}; }
  std::string_view content() const { return {bytes() + id_len + meta_len, content_len}; }

  static std::unique_ptr<HotRecord> CopyOf(const RecordView& v, uint32_t dims, EmbeddingArena* arena);
  RecordView View() const;

  // What the record holds in RAM, as the hot tier's byte count reports it.
  uint64_t Bytes() const { return id_len + meta_len + content_len + uint64_t{dims} * 4 + 96; }

 private:
  HotRecord() = default;
};

inline std::unique_ptr<HotRecord> HotRecord::CopyOf(const RecordView& v, uint32_t dims, EmbeddingArena* arena) {
  const size_t string_bytes = v.id.size() + v.metadata.size() + v.content.size();
  void* mem = ::operator new(sizeof(HotRecord) + string_bytes);  // throws std::bad_alloc
  std::unique_ptr<HotRecord> r(new (mem) HotRecord());  // noexcept: the unique_ptr owns mem from here on
  r->dims = dims;
  r->id_len = static_cast<uint32_t>(v.id.size());
  r->meta_len = static_cast<uint32_t>(v.metadata.size());
  r->content_len = v.content.size();
  char* p = reinterpret_cast<char*>(r.get() + 1);
  // memcpy from a null pointer is undefined even for 0 bytes (an empty
  // string_view may hold one).
  if (!v.id.empty()) std::memcpy(p, v.id.data(), v.id.size());
  if (!v.metadata.empty()) std::memcpy(p + v.id.size(), v.metadata.data(), v.metadata.size());
  if (!v.content.empty()) std::memcpy(p + v.id.size() + v.metadata.size(), v.content.data(), v.content.size());
  r->row = arena->Allocate();
  r->arena = arena;  // from here on the destructor releases the row
  std::memcpy(arena->Row(r->row), v.embedding, size_t{dims} * sizeof(float));
  r->norm = v.norm;
  r->confidence = v.confidence;
  r->activation = v.activation;
  r->created_at = v.created_at;
  r->last_access_at = v.last_access_at;
  r->access_count = v.access_count;
  r->seq = v.seq;
  r->signature = MetadataSignature::Of(v.metadata);
  return r;
}

inline RecordView HotRecord::View() const {
  RecordView v;
  v.id = id();
  v.content = content();
  v.metadata = metadata();
  v.embedding = embedding();
  v.norm = norm;
  v.confidence = confidence;
  v.activation = activation;
  v.created_at = created_at;
  v.last_access_at = last_access_at;
  v.access_count = access_count;
  v.seq = seq;
  return v;
}

class HotTier {
 public:
  using Table = KeyOrderedTable<HotRecord>;

  HotTier() = default;
  HotTier(const HotTier&) = delete;
  HotTier& operator=(const HotTier&) = delete;

  // Creates the arena for records of `dims` dimensions (once, at open).
  void Init(uint32_t dims) {
    dims_ = dims;
    arena_ = std::make_unique<EmbeddingArena>(dims);
  }

  // A copy of v (strings and embedding), not yet in the tier.
  std::unique_ptr<HotRecord> Copy(const RecordView& v) { return HotRecord::CopyOf(v, dims_, arena_.get()); }
  // Gives rec the next key, counts its bytes and fills its arena row's scan
  // info; returns the key. Append then adds it to the tier.
  uint64_t AssignKey(HotRecord* rec) {
    rec->key = ++last_key_;
    bytes_ += rec->Bytes();
    EmbeddingArena::RowInfo& info = arena_->Info(rec->row);
    info.key = rec->key;
    info.norm = rec->norm;
    info.confidence = rec->confidence;
    info.filter.created_at = rec->created_at;
    info.filter.confidence = rec->confidence;
    info.filter.activation = rec->activation;
    info.filter.signature = rec->signature;
    return rec->key;
  }
  void Append(std::unique_ptr<HotRecord> rec) {
    const uint64_t key = rec->key;
    records_.Append(key, std::move(rec));
  }
  // Removes the record under key from the tier and hands it over.
  std::unique_ptr<HotRecord> Take(uint64_t key) {
    std::unique_ptr<HotRecord> rec = records_.Take(key);
    bytes_ -= rec->Bytes();
    return rec;
  }
  HotRecord* Find(uint64_t key) const { return records_.Find(key); }

  // Updates a record's access statistics (Get), to be logged later.
  static void RecordAccess(HotRecord* r, double last_access_at, double access_count) {
    r->last_access_at = last_access_at;
    r->access_count = access_count;
    r->access_dirty = true;
  }
  // The access statistics changed since the last ClearAccessDirty (views
  // into the records).
  std::vector<LogAccessUpdate> DirtyAccess() const;
  void ClearAccessDirty();

  size_t size() const { return records_.size(); }
  bool empty() const { return records_.empty(); }
  uint64_t bytes() const { return bytes_; }  // sum of HotRecord::Bytes()
  Table::Iterator begin() const { return records_.begin(); }
  Table::Iterator end() const { return records_.end(); }
  Table::Iterator UpperBound(uint64_t key) const { return records_.UpperBound(key); }
  Table::Iterator Nth(size_t n) const { return records_.Nth(n); }
  const EmbeddingArena& arena() const { return *arena_; }

  void Clear() { records_.Clear(); }
  void Swap(HotTier& other) noexcept;

 private:
  // Declared before records_: records release their rows into it as they die.
  std::unique_ptr<EmbeddingArena> arena_;
  Table records_;
  uint32_t dims_ = 0;
  uint64_t last_key_ = 0;
  uint64_t bytes_ = 0;
};

}  // namespace tierstore
