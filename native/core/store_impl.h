// StoreImpl: the Store of store.h, private to native/core (the binding and
// the tests see only store.h). One class, its parts in one file each:
//
//   store.cc            record operations: put, get, has, delete, move,
//                       counts, stats; the plumbing between index and tiers
//   store_open.cc       open and close, the in-process registry, the
//                       read-only / writable swap, the manifest
//   store_recovery.cc   rebuilding the index from the tiers at open
//   store_migration.cc  migration between tiers, log checkpoints, flush,
//                       compaction
//   store_iteration.cc  iterators, list() with its offsets and cursors
//   store_recall.cc     exact top-k cosine recall
//   hot_tier.{h,cc}     the hot tier (warm_tier.h and cold_tier.h: the others)
//
// Locks (checked by clang's -Wthread-safety; see mutex.h), in the order they
// are taken:
//   1. g_registry_mu        the registry of open stores and each store's
//                           reference counts
//   2. StoreImpl::mu_       everything opened from the store's files: the
//                           index, the three tiers, the log, sequence numbers,
//                           counts; shared for reads and scans, exclusive for
//                           any change
//   3. IteratorImpl::mu_    one iterator's position (see IteratorImpl)
//   4. StoreImpl::iter_mu_  the list of open iterators
//   ColdTier keeps a lock of its own (cold_tier.h), taken after mu_.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "cold_tier.h"
#include "file_util.h"
#include "hot_log.h"
#include "hot_tier.h"
#include "id_index.h"
#include "index_file.h"
#include "location.h"
#include "manifest.h"
#include "mutex.h"
#include "store.h"
#include "thread_annotations.h"
#include "warm_tier.h"

namespace tierstore {

// Cold segments beyond this count are merged (a batch of migrations seals
// one segment each; merging keeps scans from degrading into many tiny files).
constexpr size_t kMaxColdSegments = 16;
// Records moved per migration step: bounds the RAM of one cold segment build.
constexpr size_t kMigrationBatch = 16384;
// How many records ahead a loop over a batch prefetches their index slots.
constexpr size_t kIndexPrefetch = 8;
// warm.blocks of a tier that never held a record: its header page alone.
constexpr uint64_t kWarmHeaderPageBytes = 4096;
// The hot log is rewritten once it is this large and mostly records that
// have left hot.
constexpr uint64_t kLogCheckpointMinBytes = 64ull << 20;

// The tier a scan is reading, in scan order; kDone once it has read them
// all. The values are the cursor's phase digit and equal Tier's.
enum class ScanPhase : uint8_t { kHot = 0, kWarm = 1, kCold = 2, kDone = 3 };

inline ScanPhase PhaseOf(Tier t) { return static_cast<ScanPhase>(t); }

// A scan position: the tier being read and the position key of the last
// record read in it (0 = none yet). Position keys: hot key; warm slot + 1;
// cold key. They never change while a record stays in its tier.
struct ScanState {
  TierSelector selector = TierSelector::kAll;
  ScanPhase phase = ScanPhase::kHot;
  uint64_t after = 0;

  static ScanState Start(TierSelector sel) {
    ScanState s;
    s.selector = sel;
    s.phase = sel == TierSelector::kAll ? ScanPhase::kHot : static_cast<ScanPhase>(sel);
    return s;
  }
  bool InScope(Tier t) const { return selector == TierSelector::kAll || static_cast<int>(t) == static_cast<int>(selector); }
  void NextPhase() {
    phase = selector == TierSelector::kAll ? static_cast<ScanPhase>(static_cast<int>(phase) + 1) : ScanPhase::kDone;
    after = 0;
  }
  bool Done() const { return phase == ScanPhase::kDone; }
  // Has the scan already passed this position?
  bool Passed(Tier t, uint64_t key) const {
    if (!InScope(t)) return false;
    return PhaseOf(t) < phase || (PhaseOf(t) == phase && key <= after);
  }
};

// "hot", "warm", "cold" or "all".
const char* SelectorName(TierSelector s);
// The Euclidean norm in double; non-finite for any NaN or infinite value.
double NormOf(const float* v, uint32_t dims);
// A file's sequence number above kMaxSequence: damage (see record.h).
Status ImpossibleSequence(uint64_t seq, const std::string& file);

class StoreImpl;

// The registry of open stores (store_open.cc); taken before any store's mu_.
extern Mutex g_registry_mu;

class IteratorImpl final : public StoreIterator {
 public:
  // max_seq: the store's sequence number when the iterator began.
  IteratorImpl(std::shared_ptr<StoreImpl> store, TierSelector sel, uint64_t max_seq,
               std::shared_ptr<const RecordFilter> filter)
      : store_(std::move(store)), state_(ScanState::Start(sel)), max_seq_(max_seq), filter_(std::move(filter)) {}
  ~IteratorImpl() override { Close(); }
  Status Next(size_t max, bool include_embeddings, RecordBatch* out) override;
  void Close() override;

 private:
  friend class StoreImpl;

  // Called by the store, with its mutex held exclusively and its iterator
  // list locked, whenever a record moves between tiers while this iterator
  // is open.
  void OnMove(uint64_t seq, std::string_view id, Tier from, uint64_t from_key, Tier to, uint64_t to_key);
  // Called as the store closes (same locks as OnMove).
  void MarkStoreClosed();
  // During ScanLocked: is this version one not to yield (newer than the
  // iterator, or already yielded before it moved ahead of the scan)?
  bool Skips(uint64_t seq) REQUIRES(mu_) { return seq > max_seq_ || skip_.erase(seq) > 0; }

  // The iterator's state below changes in Next and Close (holding the
  // store's mutex shared and mu_) and in OnMove and MarkStoreClosed (holding
  // the store's mutex exclusively, which excludes the other two).
  Mutex mu_;
  const std::shared_ptr<StoreImpl> store_;
  ScanState state_ GUARDED_BY(mu_);
  // Versions written after the iterator began (a higher sequence number:
  // new records, upserts) are not yielded, so a loop that writes a record
  // per record it reads ends, as over a snapshot.
  const uint64_t max_seq_;
  // Only matching records are yielded (null: all). A record version matches
  // or not for good (the filter reads nothing get() updates), so skipped
  // records need no tracking. Immutable.
  const std::shared_ptr<const RecordFilter> filter_;
  bool closed_ GUARDED_BY(mu_) = false;
  // Records already yielded that will be met again where they moved to.
  std::unordered_set<uint64_t> skip_ GUARDED_BY(mu_);
  // Records already yielded that moved out of a single-tier scan: should
  // one move back in ahead of the scan, it goes to skip_ (out of hot and
  // back in, it would otherwise be yielded twice).
  std::unordered_set<uint64_t> left_ GUARDED_BY(mu_);
  // Records not yet yielded that moved behind the scan: yielded at the end.
  std::map<uint64_t, std::string> pending_ GUARDED_BY(mu_);
};

class StoreImpl final : public Store {
 public:
  StoreImpl(std::string path, bool read_only) : path_(std::move(path)), read_only_(read_only) {}
  ~StoreImpl() override;

  // Opens the files of a store no one else holds yet (Store::Open, and the
  // swaps below, on a fresh StoreImpl).
  Status OpenFiles(uint32_t dimensions) EXCLUDES(mu_);
  // Makes this read-only store writable in place, for a writable open of its
  // path in this process (a second open in one process shares the store). A
  // writable store is opened from the same files (taking the lock
  // exclusively, recovering as any writable open does) and its state swapped
  // into this object under the exclusive store mutex, so every handle
  // already holding this object reads the writer's state from then on.
  // STORE_LOCKED, changing nothing, while an iteration of this store is in
  // progress (its position belongs to the read-only state) or when another
  // process holds the store.
  Status UpgradeToWritable(uint32_t dimensions) REQUIRES(g_registry_mu) EXCLUDES(mu_);
  // The reverse, when the last writable reference is released while
  // read-only ones remain: closes the writable state cleanly (releasing the
  // exclusive lock) and reopens the files read-only in its place. Skipped
  // (the store stays writable and locked exclusively) while an iteration is
  // in progress. Should the read-only reopen fail, the files are reopened
  // for writing; should that fail too, the store is closed.
  void DowngradeToReadOnly() REQUIRES(g_registry_mu) EXCLUDES(mu_);
  void AddRef(bool writable) REQUIRES(g_registry_mu) {
    ++open_refs_;
    if (writable) ++writable_refs_;
  }
  void CountFirstOpenWritable() REQUIRES(g_registry_mu) { writable_refs_ = 1; }
  bool IsOpen() const { return !closed_; }

  using Store::Release;
  void Release(bool writable) override EXCLUDES(g_registry_mu, mu_);
  const std::string& path() const override { return path_; }
  uint32_t dimensions() const override { return dims_; }
  bool read_only() const override { return read_only_.load(std::memory_order_acquire); }

  Status Put(const RecordView* recs, size_t n, const WriteOptions& opts) override EXCLUDES(mu_);
  Status Get(std::string_view id, bool include_embedding, double now_ms, RecordBatch* out) override EXCLUDES(mu_);
  Status Has(std::string_view id, bool* found) override EXCLUDES(mu_);
  Status Delete(std::string_view id, const WriteOptions& opts, bool* existed) override EXCLUDES(mu_);
  Status Move(std::string_view id, Tier tier, const WriteOptions& opts, bool* found) override EXCLUDES(mu_);
  Status Migrate(const WriteOptions& opts, MigrationReport* report) override EXCLUDES(mu_);
  Status Counts(TierCounts* counts) override EXCLUDES(mu_);
  Status NewIterator(TierSelector tier, std::shared_ptr<const RecordFilter> filter,
                     std::unique_ptr<StoreIterator>* out) override EXCLUDES(mu_);
  using Store::NewIterator;
  Status List(const ListRequest& request, ListResult* result) override EXCLUDES(mu_);
  Status Flush() override EXCLUDES(mu_);
  Status Compact(const WriteOptions& opts, CompactionReport* report) override EXCLUDES(mu_);
  Status Stats(StoreStats* stats) override EXCLUDES(mu_);
  Status Verify(VerifyReport* report) override EXCLUDES(mu_);
  Status Recall(const float* query, const RecallOptions& options, RecallResult* result) override EXCLUDES(mu_);

 private:
  friend class IteratorImpl;

  Status CheckOpen() const {
    if (closed_) return Status::StoreClosed("the store at " + path_ + " is closed");
    return Status::OK();
  }
  Status CheckWritable() const {
    TS_RETURN_IF_ERROR(CheckOpen());
    if (read_only_) return Status::ReadOnly("the store at " + path_ + " is open read-only; writes are refused");
    return Status::OK();
  }

  // --- store_open.cc
  Status OpenFilesLocked(uint32_t dimensions) REQUIRES(mu_);
  Status CheckInventory(const Manifest& manifest) const REQUIRES_SHARED(mu_);
  void CloseFiles() REQUIRES(mu_);
  // Exchanges everything opened from the files (not the path, the
  // dimensions, the handle count or the iterator list) with `other`, a store
  // no one else holds (its mutex is taken here, after this one's).
  void SwapOpenState(StoreImpl& other) noexcept REQUIRES(mu_) EXCLUDES(other.mu_);
  Status WriteCleanManifest(uint64_t index_token) REQUIRES_SHARED(mu_);
  // The manifest of an open store: dirty, listing the cold segments that
  // must exist (the current ones, or `segments` during a merge).
  Status WriteDirtyManifest(bool durable) REQUIRES_SHARED(mu_);
  Status WriteDirtyManifest(const std::vector<uint32_t>& segments, bool durable) REQUIRES_SHARED(mu_);

  // --- store_recovery.cc
  // Builds the index: the warm and cold entries from the persisted index
  // when `from_index` (already adopted into index_), else from the lower
  // tiers' data, and the hot records from the log. Reads first; only once
  // every file has opened and replayed does it mark the store dirty and
  // write (drop losing copies, rewrite the log), so a failed open changes
  // no file.
  Status Recover(const Manifest& manifest, bool from_index) REQUIRES(mu_);
  // Writes id.index from the current index (its warm and cold entries) and
  // the warm tier's state; *token receives the token it carries.
  Status WriteIndex(bool durable, uint64_t* token) REQUIRES(mu_);
  // The sequence number of the copy at loc, once it reads back whole (data
  // checksum, which covers the id) as `id`; CORRUPTION naming its file
  // otherwise. Hot copies (log entries are checksummed whole) are not read.
  Status VerifiedSeqOf(std::string_view id, const Location& loc, uint64_t* seq) const REQUIRES_SHARED(mu_);

  // --- store.cc: plumbing between the index and the tiers
  TierCounts CountsLocked() const REQUIRES_SHARED(mu_) {
    return TierCounts{hot_.size(), warm_count_, cold_count_};
  }
  uint64_t PositionKey(const Location& loc) const REQUIRES_SHARED(mu_) {
    switch (loc.tier()) {
      case Tier::kHot: return loc.hot_key();
      case Tier::kWarm: return uint64_t{loc.warm_slot()} + 1;
      case Tier::kCold: return cold_->KeyOf(loc.cold());
    }
    return 0;
  }
  void NotifyMove(uint64_t seq, std::string_view id, const Location& from, const Location& to)
      REQUIRES(mu_) EXCLUDES(iter_mu_);
  HotRecord* HotAt(const Location& loc) const REQUIRES_SHARED(mu_) { return hot_.Find(loc.hot_key()); }
  Status ReadAt(const Location& loc, bool verify_embedding, RecordView* out) const REQUIRES_SHARED(mu_);
  // ReadAt of the record the index places `id` at: CORRUPTION unless it
  // reads back whole as `id`.
  Status ReadIndexed(std::string_view id, const Location& loc, bool verify_embedding, RecordView* out) const
      REQUIRES_SHARED(mu_);
  // The file holding a warm or cold copy (for error messages).
  std::string FileOf(const Location& loc) const;
  // Adds rec to hot and points the index at it.
  void InsertHot(std::unique_ptr<HotRecord> rec) REQUIRES(mu_);
  // A put's new version: copied into hot (PutHot), or already at `to`
  // (PlaceNewVersion); an older version is dropped (DropSuperseded).
  void PutHot(const RecordView& v) REQUIRES(mu_);
  void PlaceNewVersion(std::string_view id, const Location& to) REQUIRES(mu_);
  std::unique_ptr<HotRecord> TakeHot(const Location& loc) REQUIRES(mu_);
  // Removes the copy at loc from its tier (not from the index).
  // superseded_in_log: a log entry written since (an upsert's new version, a
  // delete's tombstone) outranks the copy, so a warm block may be freed
  // lazily (WarmTier::FreeLater; CheckpointLog publishes before that entry
  // can go).
  Status RemoveFromTier(const Location& loc, bool superseded_in_log = false) REQUIRES(mu_);
  // Removes the copy at loc, which a log entry written since supersedes
  // (RemoveFromTier), and counts it out. Errors are ignored: the log entry
  // already decides, and recovery drops a copy left behind.
  void DropSuperseded(Location loc) REQUIRES(mu_);
  // The warm or cold count, for a location in one of those tiers.
  uint64_t& LowerCount(Tier t) REQUIRES(mu_) { return t == Tier::kWarm ? warm_count_ : cold_count_; }

  // --- store_migration.cc
  Status RelocateCold(const std::function<Status(const std::function<void(ColdLoc, ColdLoc)>&)>& op) REQUIRES(mu_);
  // Keeping the manifest's list of cold segments current (see Manifest).
  Status ListNewSegments(const WriteOptions& opts) REQUIRES(mu_);
  std::function<Status(const std::vector<uint32_t>&)> ListSegmentsBeforeUnlink(const WriteOptions& opts)
      REQUIRES(mu_);
  // Seals the cold tier's staged rows (single moves to cold) into a segment
  // and lists it; the index follows. Runs before anything else seals a
  // segment (AppendCold), before the log forgets the stage entries
  // (CheckpointLog), and at close. No-op when nothing is staged.
  Status SealColdStaging(const WriteOptions& opts) REQUIRES(mu_);
  // cold_->Append, after sealing the staged rows (which must keep the
  // lowest unsealed keys).
  Status AppendCold(const RecordView* recs, size_t n, const WriteOptions& opts, std::vector<ColdLoc>* locs)
      REQUIRES(mu_);
  // *listed (when given) becomes true once a merge wrote the manifest.
  Status MergeColdIfNeeded(const WriteOptions& opts, bool* listed = nullptr) REQUIRES(mu_);
  Status MigrateLocked(const WriteOptions& opts, bool to_capacity, MigrationReport* report) REQUIRES(mu_);
  Status DemoteHot(size_t count, Tier dest, const WriteOptions& opts, MigrationReport* report) REQUIRES(mu_);
  // Moves these hot records (in this order) to dest.
  Status DemoteHotRecords(const std::vector<HotRecord*>& records, Tier dest, const WriteOptions& opts,
                          MigrationReport* report) REQUIRES(mu_);
  // A put's records that the capacity migration would demote at once go
  // straight to the warm tier, written once (docs/durability.md, "Writes
  // that skip the log"): which ones, and which hot records go with them.
  struct DirectPlan {
    std::vector<char> direct;             // per record of the batch: goes straight to warm
    size_t direct_count = 0;
    std::vector<HotRecord*> demote_hot;   // hot records demoted after the batch commits
  };
  void PlanDirectPut(const std::vector<RecordView>& views, const WriteOptions& opts, DirectPlan* plan) REQUIRES(mu_);
  // store.cc, a Put whose plan sends records straight down: their warm
  // blocks (all or, on failure, none), then the commit and the rest.
  Status WriteDirect(const std::vector<RecordView>& views, const DirectPlan& plan, const WriteOptions& opts,
                     std::vector<uint32_t>* slots) REQUIRES(mu_);
  Status CommitDirect(const std::vector<RecordView>& views, const DirectPlan& plan, const std::vector<uint32_t>& slots,
                      const WriteOptions& opts) REQUIRES(mu_);
  // Frees the warm blocks of a put that failed before its commit.
  void UndoDirect(const std::vector<uint32_t>& written, const WriteOptions& opts) REQUIRES(mu_);
  Status DemoteWarm(size_t count, const WriteOptions& opts, MigrationReport* report) REQUIRES(mu_);
  Status SyncLowerTiers() REQUIRES(mu_);
  // durable: make the lower tiers reach the disk before the log forgets
  // what it protected (power-loss safety, durability 'sync' and close).
  // Without it they are in the page cache, which a SIGKILL does not lose.
  Status CheckpointLog(bool durable) REQUIRES(mu_);
  Status MaybeCheckpointLog(bool durable) REQUIRES(mu_);
  Status LogDirtyAccess() REQUIRES(mu_);

  // --- store_iteration.cc
  // Reads up to `max` records from st's position on, advancing it. With an
  // iterator (whose mutex the caller holds), records it already yielded
  // elsewhere are skipped. With a filter, only matching records are read
  // out (the others are passed over).
  Status ScanLocked(ScanState* st, size_t max, bool emb, RecordBatch* out, IteratorImpl* it,
                    const RecordFilter* filter) REQUIRES_SHARED(mu_);
  // Appends the record `id` if its current version is `seq` (and matches `filter`, if given).
  Status AppendCurrent(std::string_view id, uint64_t seq, bool emb, RecordBatch* out, const RecordFilter* filter)
      REQUIRES_SHARED(mu_);
  // A record read by a scan whose sequence number is beyond every one the
  // store has given out is damage (an iterator would take it for a version
  // written after it began, and pass over it): CORRUPTION naming its file.
  Status CheckSequence(uint64_t seq, const Location& loc) const REQUIRES_SHARED(mu_) {
    if (seq <= seq_) return Status::OK();
    return Status::Corruption(FileOf(loc) + ": a record's sequence number " + std::to_string(seq) +
                              " is beyond the store's " + std::to_string(seq_));
  }
  // Moves st past `offset` records (matching ones, with a filter).
  Status SeekOffset(ScanState* st, uint64_t offset, const RecordFilter* filter) REQUIRES_SHARED(mu_);
  void Unregister(IteratorImpl* it) EXCLUDES(iter_mu_);

  // --- store_recall.cc: the steps of Recall (see there)
  struct RecallQuery;
  struct ScanRange;
  struct Scored;
  Status CollectRanges(const RecallOptions& options, const WarmFilterArray::View* warm_filter,
                       std::vector<ScanRange>* out) REQUIRES_SHARED(mu_);
  Status Scan(const std::vector<ScanRange>& ranges, const RecallQuery& q, const RecallOptions& options,
            std::vector<Scored>* candidates) REQUIRES_SHARED(mu_);
  void Rescore(const RecallQuery& q, std::vector<Scored>* candidates) const;
  Status Rank(std::vector<Scored>* candidates, const RecallOptions& options, RecallResult* result)
      REQUIRES_SHARED(mu_);

  // Read-only opens after a crash: is the copy at (t, warm slot or cold key)
  // one recovery did not keep but could not remove?
  static uint64_t ColdKey(ColdLoc c) { return (uint64_t{c.segment} << 32) | c.row; }
  bool Masked(Tier t, uint64_t a) const REQUIRES_SHARED(mu_) {
    if (t == Tier::kWarm) return !masked_warm_.empty() && masked_warm_.count(static_cast<uint32_t>(a)) > 0;
    return !masked_cold_.empty() && masked_cold_.count(a) > 0;
  }

  const std::string path_;
  // Changes only under the registry mutex and the exclusive store mutex
  // (UpgradeToWritable, DowngradeToReadOnly); atomic for read_only()
  // callers holding neither.
  std::atomic<bool> read_only_;
  // Set by OpenFiles before the store is shared; the same for its life.
  uint32_t dims_ = 0;
  // Set under the exclusive mu_ (CloseFiles), and, while the store is in the
  // registry, under g_registry_mu too; read under either, so atomic.
  std::atomic<bool> closed_{false};
  // Handles: Open/Release pairs, and of them the writable ones.
  int open_refs_ GUARDED_BY(g_registry_mu) = 1;
  int writable_refs_ GUARDED_BY(g_registry_mu) = 0;

  mutable SharedMutex mu_ ACQUIRED_AFTER(g_registry_mu);
  uint64_t store_id_ GUARDED_BY(mu_) = 0;
  bool opened_ GUARDED_BY(mu_) = false;  // OpenFiles succeeded: only then does closing write anything
  DirectoryLock lock_ GUARDED_BY(mu_);
  std::unique_ptr<HotLog> log_ GUARDED_BY(mu_);
  std::unique_ptr<WarmTier> warm_ GUARDED_BY(mu_);
  std::unique_ptr<ColdTier> cold_ GUARDED_BY(mu_);
  HotTier hot_ GUARDED_BY(mu_);
  IdIndex<Location> index_ GUARDED_BY(mu_);
  uint64_t seq_ GUARDED_BY(mu_) = 0;
  uint64_t warm_count_ GUARDED_BY(mu_) = 0;
  uint64_t cold_count_ GUARDED_BY(mu_) = 0;
  uint64_t recovered_duplicates_ GUARDED_BY(mu_) = 0;
  uint64_t torn_warm_copies_ GUARDED_BY(mu_) = 0;
  // Warm blocks of puts killed before their commit, dropped at open.
  uint64_t uncommitted_warm_blocks_ GUARDED_BY(mu_) = 0;
  uint64_t torn_log_bytes_ GUARDED_BY(mu_) = 0;
  // The last open's index: rebuilt from the data (and why) or adopted.
  IndexRejection index_rejection_ GUARDED_BY(mu_) = IndexRejection::kNone;
  bool index_rebuilt_ GUARDED_BY(mu_) = false;
  uint64_t index_file_bytes_ GUARDED_BY(mu_) = 0;
  // Read-only opens after a crash: copies recovery did not keep but could
  // not remove (empty otherwise).
  std::unordered_set<uint32_t> masked_warm_ GUARDED_BY(mu_);
  std::unordered_set<uint64_t> masked_cold_ GUARDED_BY(mu_);

  Mutex iter_mu_ ACQUIRED_AFTER(mu_);
  std::vector<IteratorImpl*> iterators_ GUARDED_BY(iter_mu_);
};

}  // namespace tierstore
