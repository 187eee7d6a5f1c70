// Store: the three tiers behind one id index, with sequence numbers,
// migration, recovery and tier iteration.
//
// Guarantees:
// - Every write that returned OK is in the hot log (write(2) done) or sealed
//   in a lower tier, so it survives SIGKILL; with WriteOptions::sync it was
//   also fsynced. A batch Put is atomic across crashes.
// - Every record has a store-wide sequence number, assigned by Put and kept
//   when the record moves between tiers. Migration writes the destination
//   before it removes the source; on open, recovery keeps one copy per id
//   (highest seq; the colder copy on a tie) and removes the others.
// - Any error leaves the store as it was before the call.
// - Iterators yield, in 'all' mode, hot then warm then cold, and yield a
//   record that stays unchanged for the iterator's whole life exactly once,
//   whatever puts, deletes, moves, migrations and compactions happen meanwhile.
//   Versions written after the iterator began (new records, upserts) are
//   never yielded by it, so a loop that writes while it reads ends.
//
// Synchronization: every public method is thread-safe. One shared_mutex
// guards the index and the hot and warm tiers (readers shared, writers
// exclusive); the cold tier has its own shared_mutex (taken after this one).
//
// Sharing: Open() of a path already open in this process returns the same
// Store (reference counted by Open/Release pairs). The files stay open until
// the last Release(); after that every method returns STORE_CLOSED, and the
// object itself lives on while shared_ptrs to it remain. The directory lock
// follows the opens: exclusive while a writable open is unreleased (a
// writable Open of a store opened read-only here reopens it for writing in
// place), shared once only read-only ones remain (the last writable Release
// reopens it read-only in place), so other processes' readers get in.
//
// Memory handed out: RecordBatch owns copies; nothing returned points into
// the store.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "record.h"
#include "record_filter.h"
#include "status.h"

namespace tierstore {

enum class TierSelector : uint8_t { kHot = 0, kWarm = 1, kCold = 2, kAll = 3 };

struct StoreOptions {
  uint32_t dimensions = 0;  // 0: read from the manifest (the store must exist)
  bool read_only = false;
};

// Options every write applies (each handle passes its own: options
// other than dimensions are not stored).
struct WriteOptions {
  uint64_t hot_capacity = 10000;
  uint64_t warm_capacity = 1000000;
  bool skip_warm = false;
  bool sync = false;  // durability 'sync': fsync before returning
};

struct TierCounts {
  uint64_t hot = 0, warm = 0, cold = 0;
  uint64_t total() const { return hot + warm + cold; }
};

// n records, column by column. Strings are UTF-8 bytes in `bytes`: record i's
// id, content and metadata are at offsets[3i+k], lengths[3i+k] for k = 0,1,2.
struct RecordBatch {
  std::vector<Tier> tiers;
  std::string bytes;
  std::vector<uint64_t> offsets;
  std::vector<uint32_t> lengths;
  std::vector<float> confidence, activation;
  std::vector<double> created_at, last_access_at, access_count;
  std::vector<float> embeddings;  // size()*dimensions when asked for, else empty

  size_t size() const { return tiers.size(); }
  void Clear();
  void Append(Tier tier, const RecordView& rec, bool with_embedding, uint32_t dimensions);
  std::string_view Id(size_t i) const { return Str(i, 0); }
  std::string_view Content(size_t i) const { return Str(i, 1); }
  std::string_view Metadata(size_t i) const { return Str(i, 2); }

 private:
  std::string_view Str(size_t i, int k) const {
    return std::string_view(bytes).substr(offsets[3 * i + k], lengths[3 * i + k]);
  }
};

struct MigrationReport {
  uint64_t hot_to_warm = 0, hot_to_cold = 0, warm_to_cold = 0, batches = 0;
};

struct CompactionReport {
  uint64_t warm_bytes_reclaimed = 0;
  uint64_t cold_bytes_reclaimed = 0;
  uint64_t cold_segments_before = 0, cold_segments_after = 0;
  uint64_t hot_log_bytes_before = 0, hot_log_bytes_after = 0;
};

struct StoreStats {
  TierCounts counts;
  uint32_t dimensions = 0;
  uint64_t sequence = 0;            // last sequence number assigned
  uint64_t hot_log_bytes = 0;
  uint64_t hot_bytes = 0;           // bytes of records held in RAM
  uint64_t warm_slots = 0, warm_block_file_bytes = 0, warm_var_file_bytes = 0, warm_var_live_bytes = 0;
  uint64_t cold_segments = 0, cold_file_bytes = 0, cold_deleted_rows = 0;
  uint64_t cold_staged_records = 0;  // cold records moved alone, not yet sealed into a segment
  uint64_t open_iterators = 0;
  uint64_t recovered_duplicates = 0;  // copies removed by recovery at open
  // Warm copies torn by a crash (found at open after an unclean shutdown,
  // failing their checksums while the hot log still held that exact
  // version): dropped, the log's copy kept.
  uint64_t torn_warm_copies = 0;
  uint64_t torn_log_bytes = 0;        // unacknowledged tail dropped from the log at open
  uint64_t index_file_bytes = 0;      // id.index as last read or written (0: none)
  uint64_t index_memory_bytes = 0;    // heap the id index holds
  uint64_t index_mapped_bytes = 0;    // bytes of id.index the index uses in place
  bool index_rebuilt = false;         // the last open rebuilt the index from the data
  std::string index_rebuild_reason;   // why: missing, unclean, damaged, stale, format ('' if not)
  bool read_only = false;
};

// What Verify found: every record read and its checksums checked.
struct VerifyReport {
  uint64_t records = 0;  // records read
  uint64_t bytes = 0;    // their id, content, metadata and embedding bytes
  struct Damage {
    Tier tier = Tier::kHot;
    std::string file;    // the file holding the damaged copy
    std::string id;      // the record's id (from the index)
    std::string reason;  // what failed
  };
  std::vector<Damage> damaged;
};

struct ListRequest {
  TierSelector tier = TierSelector::kHot;
  uint64_t offset = 0;  // counts matching records only
  uint32_t limit = 100;
  std::string cursor;  // empty: start at offset
  bool include_embeddings = false;
  // Only records matching it are listed (null: all). Counts stay unfiltered.
  std::shared_ptr<const RecordFilter> filter;
};

struct ListResult {
  RecordBatch records;
  std::string next_cursor;  // empty on the last page
  TierCounts counts;
};

struct RecallOptions {
  uint32_t k = 10;
  TierSelector tier = TierSelector::kAll;
  bool has_min_confidence = false;
  float min_confidence = 0;
  bool include_embeddings = false;
  unsigned threads = 1;  // >1 splits the scan across that many threads
  // The top k among the records matching it (null: all records).
  std::shared_ptr<const RecordFilter> filter;
};

// The top k, best first: records[i] scored scores[i], the cosine computed
// in double from the float32 embeddings (0 for an all-zero vector).
struct RecallResult {
  RecordBatch records;
  std::vector<double> scores;
};

class Store;

// A tier iterator. Next fills `out` with up to max records (out->size() == 0
// means the end). Thread-safety: one caller at a time per iterator (it has its
// own mutex, so misuse is safe, not fast). Close() unregisters it; the
// destructor does too.
class StoreIterator {
 public:
  virtual ~StoreIterator() = default;
  virtual Status Next(size_t max, bool include_embeddings, RecordBatch* out) = 0;
  virtual void Close() = 0;
};

class Store : public std::enable_shared_from_this<Store> {
 public:
  virtual ~Store() = default;

  static Status Open(const std::string& path, const StoreOptions& options, std::shared_ptr<Store>* out);
  // Drops the reference taken by one successful Open. The last one closes.
  // `writable`: that Open was not read-only (so the lock can turn shared
  // when the last such reference goes). Release() counts as read-only.
  virtual void Release(bool writable) = 0;
  void Release() { Release(false); }

  virtual const std::string& path() const = 0;
  virtual uint32_t dimensions() const = 0;
  virtual bool read_only() const = 0;

  // Upserts recs[0..n) atomically (all or none, also across a crash). Within
  // the batch a repeated id: the last wins. Each rec's seq and norm are
  // ignored (assigned here); last_access_at and access_count are stored as
  // given. May migrate a batch to keep the capacities of `opts`.
  virtual Status Put(const RecordView* recs, size_t n, const WriteOptions& opts) = 0;
  // Appends the record (0 or 1) to out; updates its access statistics (now_ms).
  virtual Status Get(std::string_view id, bool include_embedding, double now_ms, RecordBatch* out) = 0;
  virtual Status Has(std::string_view id, bool* found) = 0;
  virtual Status Delete(std::string_view id, const WriteOptions& opts, bool* existed) = 0;
  virtual Status Move(std::string_view id, Tier tier, const WriteOptions& opts, bool* found) = 0;
  virtual Status Migrate(const WriteOptions& opts, MigrationReport* report) = 0;
  virtual Status Counts(TierCounts* counts) = 0;
  // An iterator yielding only the records matching `filter` (null: all).
  virtual Status NewIterator(TierSelector tier, std::shared_ptr<const RecordFilter> filter,
                             std::unique_ptr<StoreIterator>* out) = 0;
  Status NewIterator(TierSelector tier, std::unique_ptr<StoreIterator>* out) { return NewIterator(tier, nullptr, out); }
  virtual Status List(const ListRequest& request, ListResult* result) = 0;
  virtual Status Flush() = 0;
  virtual Status Compact(const WriteOptions& opts, CompactionReport* report) = 0;
  virtual Status Stats(StoreStats* stats) = 0;
  // Reads every record of every tier and checks its checksums (embedding
  // included), listing each damaged one in the report instead of failing.
  // Errors: STORE_CLOSED, IO_ERROR. Holds the shared lock throughout, so
  // writers wait for it.
  virtual Status Verify(VerifyReport* report) = 0;
  // Exact cosine top-k over the selected tiers (every tier scored the same
  // way, on the stored float32 embeddings), among the records matching
  // options.filter; ties by ascending id bytes.
  // query has dimensions() finite values; an all-zero one scores every
  // record 0 (an all-zero vector's cosine with anything is 0).
  virtual Status Recall(const float* query, const RecallOptions& options, RecallResult* result) = 0;
};

}  // namespace tierstore
