#include "store.h"

#include <fcntl.h>
#include <stdlib.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cmath>
#include <condition_variable>
#include <cstdio>
#include <cstring>
#include <functional>
#include <limits>
#include <map>
#include <mutex>
#include <new>
#include <random>
#include <shared_mutex>
#include <system_error>
#include <thread>
#include <unordered_map>
#include <unordered_set>

#include "cold_tier.h"
#include "embedding_arena.h"
#include "file_util.h"
#include "hot_log.h"
#include "id_index.h"
#include "key_ordered_table.h"
#include "manifest.h"
#include "similarity.h"
#include "warm_tier.h"

namespace tierstore {

void RecordBatch::Clear() {
  tiers.clear();
  bytes.clear();
  offsets.clear();
  lengths.clear();
  confidence.clear();
  activation.clear();
  created_at.clear();
  last_access_at.clear();
  access_count.clear();
  embeddings.clear();
}

void RecordBatch::Append(Tier tier, const RecordView& rec, bool with_embedding, uint32_t dimensions) {
  tiers.push_back(tier);
  for (std::string_view s : {rec.id, rec.content, rec.metadata}) {
    offsets.push_back(bytes.size());
    lengths.push_back(static_cast<uint32_t>(s.size()));
    bytes.append(s);
  }
  confidence.push_back(rec.confidence);
  activation.push_back(rec.activation);
  created_at.push_back(rec.created_at);
  last_access_at.push_back(rec.last_access_at);
  access_count.push_back(rec.access_count);
  if (with_embedding) embeddings.insert(embeddings.end(), rec.embedding, rec.embedding + dimensions);
}

namespace {

// Cold segments beyond this count are merged (a batch of migrations seals
// one segment each; merging keeps scans from degrading into many tiny files).
constexpr size_t kMaxColdSegments = 16;
// Records moved per migration step: bounds the RAM of one cold segment build.
constexpr size_t kMigrationBatch = 16384;
// warm.blocks of a tier that never held a record: its header page alone.
constexpr uint64_t kWarmHeaderPageBytes = 4096;
// The hot log is rewritten once it is this large and mostly records that
// have left hot.
constexpr uint64_t kLogCheckpointMinBytes = 64ull << 20;

struct StringHash {
  using is_transparent = void;
  size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
};

// A hot record: owned copies of its id, metadata and content in one
// allocation; its embedding lives in the store's EmbeddingArena (contiguous
// with the other hot embeddings, for scans), released when the record dies.
struct HotRecord {
  std::unique_ptr<char[]> data;
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

  HotRecord() = default;
  HotRecord(const HotRecord&) = delete;
  HotRecord& operator=(const HotRecord&) = delete;
  ~HotRecord() {
    if (arena != nullptr) arena->Release(row);
  }

  const float* embedding() const { return arena->Row(row); }
  const char* bytes() const { return data.get(); }
  std::string_view id() const { return {bytes(), id_len}; }
  std::string_view metadata() const { return {bytes() + id_len, meta_len}; }
  std::string_view content() const { return {bytes() + id_len + meta_len, content_len}; }

  static std::unique_ptr<HotRecord> CopyOf(const RecordView& v, uint32_t dims, EmbeddingArena* arena) {
    auto r = std::make_unique<HotRecord>();
    r->dims = dims;
    r->id_len = static_cast<uint32_t>(v.id.size());
    r->meta_len = static_cast<uint32_t>(v.metadata.size());
    r->content_len = v.content.size();
    const size_t string_bytes = v.id.size() + v.metadata.size() + v.content.size();
    r->data.reset(new char[string_bytes == 0 ? 1 : string_bytes]);
    char* p = r->data.get();
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
    return r;
  }

  RecordView View() const {
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

  uint64_t Bytes() const { return id_len + meta_len + content_len + uint64_t{dims} * 4 + 96; }
};

// Where a record lives. hot: b = hot key; warm: a = slot; cold: a = segment, b = row.
struct Loc {
  Tier tier = Tier::kHot;
  uint32_t a = 0;
  uint64_t b = 0;
  ColdLoc cold() const { return ColdLoc{a, static_cast<uint32_t>(b)}; }
  static Loc Hot(uint64_t key) { return Loc{Tier::kHot, 0, key}; }
  static Loc Warm(uint32_t slot) { return Loc{Tier::kWarm, slot, 0}; }
  static Loc Cold(ColdLoc c) { return Loc{Tier::kCold, c.segment, c.row}; }
};

// A scan position: the tier being read and the position key of the last
// record read in it (0 = none yet). Position keys: hot key; warm slot + 1;
// cold key. They never change while a record stays in its tier.
struct ScanState {
  TierSelector selector = TierSelector::kAll;
  int phase = 0;  // 0 hot, 1 warm, 2 cold, 3 done
  uint64_t after = 0;

  static ScanState Start(TierSelector sel) {
    ScanState s;
    s.selector = sel;
    s.phase = sel == TierSelector::kAll ? 0 : static_cast<int>(sel);
    return s;
  }
  bool InScope(Tier t) const { return selector == TierSelector::kAll || static_cast<int>(t) == static_cast<int>(selector); }
  void NextPhase() {
    phase = selector == TierSelector::kAll ? phase + 1 : 3;
    after = 0;
  }
  // Has the scan already passed this position?
  bool Passed(Tier t, uint64_t key) const {
    if (!InScope(t)) return false;
    int ti = static_cast<int>(t);
    return ti < phase || (ti == phase && key <= after);
  }
};

const char* SelectorName(TierSelector s) {
  return s == TierSelector::kAll ? "all" : TierName(static_cast<Tier>(s));
}

// The Euclidean norm in double. Eight independent partial sums, so the adds
// pipeline (and vectorize) instead of each waiting ~4 cycles on the last one:
// this runs once per put, and took a microsecond at 768 dimensions. It is
// non-finite for any NaN or infinite value (squares of finite floats cannot
// overflow a double).
double NormOf(const float* v, uint32_t dims) {
  double acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  uint32_t i = 0;
  for (; i + 8 <= dims; i += 8) {
    for (uint32_t k = 0; k < 8; ++k) acc[k] += static_cast<double>(v[i + k]) * v[i + k];
  }
  double sum = ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]));
  for (; i < dims; ++i) sum += static_cast<double>(v[i]) * v[i];
  return std::sqrt(sum);
}

// Checks r; on success *norm is its embedding's norm (computed here, outside
// the store's lock: the finiteness check needs the same pass).
Status ValidateRecord(const RecordView& r, uint32_t dims, float* norm) {
  if (r.id.empty() || r.id.size() > kMaxIdBytes) {
    return Status::InvalidArgument("id must be 1.." + std::to_string(kMaxIdBytes) + " UTF-8 bytes, got " +
                                   std::to_string(r.id.size()));
  }
  if (r.content.size() > kMaxContentBytes) return Status::ContentTooLarge("content exceeds the format limit of 2 GiB");
  if (r.metadata.size() > kMaxMetadataBytes) return Status::InvalidArgument("metadata exceeds the format limit of 2 GiB");
  if (r.embedding == nullptr) return Status::InvalidArgument("embedding is missing");
  const double n = NormOf(r.embedding, dims);
  if (!std::isfinite(n)) return Status::InvalidArgument("embedding values must be finite");
  *norm = static_cast<float>(n);
  if (!(r.confidence >= 0.0f && r.confidence <= 1.0f)) return Status::InvalidArgument("confidence must be in [0, 1]");
  if (!(r.activation >= 0.0f && r.activation <= 1.0f)) return Status::InvalidArgument("activation must be in [0, 1]");
  if (!std::isfinite(r.created_at) || !std::isfinite(r.last_access_at) || !std::isfinite(r.access_count)) {
    return Status::InvalidArgument("timestamps and counts must be finite");
  }
  return Status::OK();
}

class StoreImpl;

class IteratorImpl final : public StoreIterator {
 public:
  // max_seq: the store's sequence number when the iterator began.
  IteratorImpl(std::shared_ptr<StoreImpl> store, TierSelector sel, uint64_t max_seq,
               std::shared_ptr<const RecordFilter> filter)
      : store_(std::move(store)), state_(ScanState::Start(sel)), max_seq_(max_seq), filter_(std::move(filter)) {}
  ~IteratorImpl() override { Close(); }
  Status Next(size_t max, bool include_embeddings, RecordBatch* out) override;
  void Close() override;

  // Called by the store, under its exclusive lock, whenever a record moves
  // between tiers while this iterator is open.
  void OnMove(uint64_t seq, std::string_view id, Tier from, uint64_t from_key, Tier to, uint64_t to_key);

 private:
  friend class StoreImpl;
  std::mutex mu_;
  std::shared_ptr<StoreImpl> store_;
  ScanState state_;
  // Versions written after the iterator began (a higher sequence number:
  // new records, upserts) are not yielded, so a loop that writes a record
  // per record it reads ends, as over a snapshot.
  const uint64_t max_seq_;
  // Only matching records are yielded (null: all). A record version matches
  // or not for good (the filter reads nothing get() updates), so skipped
  // records need no tracking.
  const std::shared_ptr<const RecordFilter> filter_;
  bool closed_ = false;
  // Records already yielded that will be met again where they moved to.
  std::unordered_set<uint64_t> skip_;
  // Records already yielded that moved out of a single-tier scan: should
  // one move back in ahead of the scan, it goes to skip_ (found by a probe:
  // out of hot and back in, a record was yielded twice).
  std::unordered_set<uint64_t> left_;
  // Records not yet yielded that moved behind the scan: yielded at the end.
  std::map<uint64_t, std::string> pending_;
};

class StoreImpl final : public Store {
 public:
  StoreImpl(std::string path, bool read_only) : path_(std::move(path)), read_only_(read_only) {}
  ~StoreImpl() override { CloseFiles(); }

  Status OpenFiles(uint32_t dimensions);
  // Makes this read-only store writable in place, for a writable open of its
  // path in this process (DESIGN: a second open in one process shares the
  // store). A writable store is opened from the same files (taking the lock
  // exclusively, recovering as any writable open does) and its state swapped
  // into this object under the exclusive store mutex, so every handle
  // already holding this object reads the writer's state from then on.
  // STORE_LOCKED, changing nothing, while an iteration of this store is in
  // progress (its position belongs to the read-only state) or when another
  // process holds the store. Call with the registry mutex held.
  Status UpgradeToWritable(uint32_t dimensions);
  // The reverse, when the last writable reference is released while
  // read-only ones remain: closes the writable state cleanly (releasing the
  // exclusive lock) and reopens the files read-only in its place. Skipped
  // (the store stays writable and locked exclusively) while an iteration is
  // in progress. Should the read-only reopen fail, the files are reopened
  // for writing; should that fail too, the store is closed. Call with the
  // registry mutex held.
  void DowngradeToReadOnly();
  // Registry mutex held.
  void AddRef(bool writable) {
    ++open_refs_;
    if (writable) ++writable_refs_;
  }
  void CountFirstOpenWritable() { writable_refs_ = 1; }
  bool IsOpen() const { return !closed_; }

  using Store::Release;
  void Release(bool writable) override;
  const std::string& path() const override { return path_; }
  uint32_t dimensions() const override { return dims_; }
  bool read_only() const override { return read_only_.load(std::memory_order_acquire); }

  Status Put(const RecordView* recs, size_t n, const WriteOptions& opts) override;
  Status Get(std::string_view id, bool include_embedding, double now_ms, RecordBatch* out) override;
  Status Has(std::string_view id, bool* found) override;
  Status Delete(std::string_view id, const WriteOptions& opts, bool* existed) override;
  Status Move(std::string_view id, Tier tier, const WriteOptions& opts, bool* found) override;
  Status Migrate(const WriteOptions& opts, MigrationReport* report) override;
  Status Counts(TierCounts* counts) override;
  Status NewIterator(TierSelector tier, std::shared_ptr<const RecordFilter> filter,
                     std::unique_ptr<StoreIterator>* out) override;
  using Store::NewIterator;
  Status List(const ListRequest& request, ListResult* result) override;
  Status Flush() override;
  Status Compact(const WriteOptions& opts, CompactionReport* report) override;
  Status Stats(StoreStats* stats) override;
  Status Verify(VerifyReport* report) override;
  Status Recall(const float* query, const RecallOptions& options, RecallResult* result) override;

  // For iterators (they hold the shared lock while calling these).
  std::shared_mutex& mutex() { return mu_; }
  Status CheckOpen() const {
    if (closed_) return Status::StoreClosed("the store at " + path_ + " is closed");
    return Status::OK();
  }
  // `filter` (may be null): only matching records are appended.
  Status ScanLocked(ScanState* st, size_t max, bool emb, RecordBatch* out, IteratorImpl* it,
                    const RecordFilter* filter);
  Status AppendCurrent(std::string_view id, uint64_t seq, bool emb, RecordBatch* out, const RecordFilter* filter);
  void Unregister(IteratorImpl* it) {
    std::lock_guard<std::mutex> g(iter_mu_);
    iterators_.erase(std::remove(iterators_.begin(), iterators_.end(), it), iterators_.end());
  }

 private:
  Status CheckWritable() const {
    TS_RETURN_IF_ERROR(CheckOpen());
    if (read_only_) return Status::ReadOnly("the store at " + path_ + " is open read-only; writes are refused");
    return Status::OK();
  }
  // Rebuilds the index from the three tiers. Reads first; only once every
  // file has opened and replayed does it mark the store dirty and write (drop
  // losing copies, rewrite the log), so a failed open changes no file.
  Status Recover(const Manifest& manifest);
  Status CheckInventory(const Manifest& manifest) const;
  void CloseFiles();
  // Exchanges everything opened from the files (not the path, the
  // dimensions, the handle count or the iterator list) with `other`. This
  // store's mutex held exclusively; `other` not shared with anyone.
  void SwapOpenState(StoreImpl& other) noexcept;
  Status WriteCleanManifest();
  // The manifest of an open store: dirty, listing the cold segments that
  // must exist (the current ones, or `segments` during a merge).
  Status WriteDirtyManifest(bool durable);
  Status WriteDirtyManifest(const std::vector<uint32_t>& segments, bool durable);

  TierCounts CountsLocked() const { return TierCounts{hot_.size(), warm_count_, cold_count_}; }
  uint64_t PositionKey(const Loc& loc) const {
    switch (loc.tier) {
      case Tier::kHot: return loc.b;
      case Tier::kWarm: return uint64_t{loc.a} + 1;
      case Tier::kCold: return cold_->KeyOf(loc.cold());
    }
    return 0;
  }
  void NotifyMove(uint64_t seq, std::string_view id, const Loc& from, const Loc& to);
  HotRecord* HotAt(const Loc& loc) const { return hot_.Find(loc.b); }
  Status ReadAt(const Loc& loc, bool verify_embedding, RecordView* out) const;
  // The file holding a warm or cold copy (for error messages).
  std::string FileOf(const Loc& loc) const;
  // The sequence number of the copy at loc, once it reads back whole (data
  // checksum, which covers the id) as `id`; CORRUPTION naming its file
  // otherwise. Hot copies (log entries are checksummed whole) are not read.
  Status VerifiedSeqOf(std::string_view id, const Loc& loc, uint64_t* seq) const;
  void InsertHot(std::unique_ptr<HotRecord> rec);
  std::unique_ptr<HotRecord> TakeHot(const Loc& loc);
  // Removes the copy at loc from its tier (not from the index).
  // superseded_in_log: a log entry written since (an upsert's new version, a
  // delete's tombstone) outranks the copy, so a warm block may be freed
  // lazily (WarmTier::FreeLater; CheckpointLog publishes before that entry
  // can go).
  Status RemoveFromTier(const Loc& loc, bool superseded_in_log = false);
  Status RelocateCold(const std::function<Status(const std::function<void(ColdLoc, ColdLoc)>&)>& op);
  // Keeping the manifest's list of cold segments current (see Manifest).
  Status ListNewSegments(const WriteOptions& opts);
  std::function<Status(const std::vector<uint32_t>&)> ListSegmentsBeforeUnlink(const WriteOptions& opts);
  // *listed (when given) becomes true once a merge wrote the manifest.
  Status MergeColdIfNeeded(const WriteOptions& opts, bool* listed = nullptr);

  Status MigrateLocked(const WriteOptions& opts, bool to_capacity, MigrationReport* report);
  Status DemoteHot(size_t count, Tier dest, const WriteOptions& opts, MigrationReport* report);
  Status DemoteWarm(size_t count, const WriteOptions& opts, MigrationReport* report);
  Status SyncLowerTiers();
  // durable: make the lower tiers reach the disk before the log forgets
  // what it protected (power-loss safety, durability 'sync' and close).
  // Without it they are in the page cache, which a SIGKILL does not lose.
  Status CheckpointLog(bool durable);
  Status MaybeCheckpointLog(bool durable);
  Status LogDirtyAccess();
  Status SeekOffset(ScanState* st, uint64_t offset, const RecordFilter* filter);

  const std::string path_;
  // Changes only under the registry mutex and the exclusive store mutex
  // (UpgradeToWritable, DowngradeToReadOnly); atomic for read_only()
  // callers holding neither.
  std::atomic<bool> read_only_;
  uint32_t dims_ = 0;
  uint64_t store_id_ = 0;
  mutable std::shared_mutex mu_;
  bool closed_ = false;
  bool opened_ = false;  // OpenFiles succeeded: only then does closing write anything
  int open_refs_ = 1;  // guarded by the registry mutex
  int writable_refs_ = 0;  // of open_refs_, writable opens; guarded by the registry mutex
  DirectoryLock lock_;
  std::unique_ptr<HotLog> log_;
  std::unique_ptr<WarmTier> warm_;
  std::unique_ptr<ColdTier> cold_;
  // Declared before hot_: records release their rows into it as they die.
  std::unique_ptr<EmbeddingArena> hot_embeddings_;
  KeyOrderedTable<HotRecord> hot_;
  IdIndex<Loc> index_;
  uint64_t seq_ = 0;
  uint64_t hot_key_ = 0;
  uint64_t hot_bytes_ = 0;
  uint64_t warm_count_ = 0;
  uint64_t cold_count_ = 0;
  uint64_t recovered_duplicates_ = 0;
  uint64_t torn_warm_copies_ = 0;
  uint64_t torn_log_bytes_ = 0;
  std::mutex iter_mu_;
  std::vector<IteratorImpl*> iterators_;
  // Read-only opens after a crash: copies recovery did not keep but could
  // not remove (empty otherwise).
  std::unordered_set<uint32_t> masked_warm_;
  std::unordered_set<uint64_t> masked_cold_;
  static uint64_t ColdKey(ColdLoc c) { return (uint64_t{c.segment} << 32) | c.row; }
  bool Masked(Tier t, uint64_t a) const {
    if (t == Tier::kWarm) return !masked_warm_.empty() && masked_warm_.count(static_cast<uint32_t>(a)) > 0;
    return !masked_cold_.empty() && masked_cold_.count(a) > 0;
  }
};

// ---------------------------------------------------------------------------
// Registry: one StoreImpl per canonical path in this process.

std::mutex& RegistryMutex() {
  static std::mutex mu;
  return mu;
}
std::unordered_map<std::string, std::weak_ptr<StoreImpl>>& Registry() {
  static std::unordered_map<std::string, std::weak_ptr<StoreImpl>> reg;
  return reg;
}
// Paths whose last handle is closing its files now (Release, after the
// registry entry went), with how many such closes run. An open of the same
// path waits for them: it would otherwise find the file lock still held by
// this very process and report STORE_LOCKED (found with worker threads
// opening and closing one path at once). Registry mutex held.
std::unordered_map<std::string, int>& Closing() {
  static std::unordered_map<std::string, int> closing;
  return closing;
}
std::condition_variable& ClosingDone() {
  static std::condition_variable done;
  return done;
}

// ---------------------------------------------------------------------------
// Open and recovery

uint64_t NewStoreId() {
  std::random_device rd;
  uint64_t id = 0;
  while (id == 0) id = (uint64_t{rd()} << 32) ^ rd();
  return id;
}

// A file's sequence number above kMaxSequence: damage (see record.h).
Status ImpossibleSequence(uint64_t seq, const std::string& file) {
  return Status::Corruption(file + ": sequence number " + std::to_string(seq) + " is beyond any a store reaches");
}

Status StoreImpl::OpenFiles(uint32_t dimensions) {
  TS_RETURN_IF_ERROR(lock_.Acquire(path_, !read_only_));
  Manifest manifest;
  if (PathExists(JoinPath(path_, Manifest::kFileName))) {
    TS_RETURN_IF_ERROR(Manifest::Read(path_, &manifest));
    if (dimensions != 0 && dimensions != manifest.dimensions) {
      return Status::DimensionMismatch("the store at " + path_ + " has " + std::to_string(manifest.dimensions) +
                                       " dimensions, but " + std::to_string(dimensions) +
                                       " were asked for; open it with dimensions: " +
                                       std::to_string(manifest.dimensions) + " or omit dimensions");
    }
  } else {
    if (read_only_) return Status::InvalidArgument("no tierstore store at " + path_);
    // A new store: its files first, the manifest last, so that a store with
    // a manifest always has its log and warm block file (one missing is
    // damage, never "not created yet"). The manifest stays dirty until the
    // first clean close.
    manifest.dimensions = dimensions;
    manifest.store_id = NewStoreId();
    TS_RETURN_IF_ERROR(HotLog::Create(path_, dimensions, manifest.store_id));
    // An empty warm.blocks may be left by a creation that stopped before its
    // manifest (Store::Open checked that it holds nothing).
    const std::string blocks = JoinPath(path_, WarmTier::kBlockFileName);
    if (PathExists(blocks)) TS_RETURN_IF_ERROR(RemoveFile(blocks));
    TS_RETURN_IF_ERROR(WarmTier::Create(path_, dimensions));
    TS_RETURN_IF_ERROR(manifest.Write(path_));
  }
  dims_ = manifest.dimensions;
  store_id_ = manifest.store_id;
  hot_embeddings_ = std::make_unique<EmbeddingArena>(dims_);

  // Reads only from here to the end of Recover's read phase: an open that
  // fails changes no file.
  TS_RETURN_IF_ERROR(HotLog::Open(path_, dims_, manifest.store_id, read_only_, &log_));
  if (manifest.clean && log_->size() != manifest.hot_log_size) {
    return Status::Corruption(log_->path() + ": " + std::to_string(log_->size()) + " bytes, but the store was closed with " +
                              std::to_string(manifest.hot_log_size) + " (the file was truncated or extended)");
  }
  if (manifest.sequence_floor > kMaxSequence) {
    return ImpossibleSequence(manifest.sequence_floor, JoinPath(path_, Manifest::kFileName));
  }
  seq_ = manifest.sequence_floor;
  TS_RETURN_IF_ERROR(WarmTier::Open(path_, dims_, read_only_, !manifest.clean, &warm_));
  TS_RETURN_IF_ERROR(ColdTier::Open(path_, dims_, read_only_, &cold_));
  TS_RETURN_IF_ERROR(CheckInventory(manifest));
  TS_RETURN_IF_ERROR(Recover(manifest));
  opened_ = true;
  return Status::OK();
}

Status StoreImpl::CheckInventory(const Manifest& manifest) const {
  // Nothing listed may be missing: a deleted or cut-short file must be
  // CORRUPTION, never records silently gone. The list is kept current while
  // the store is open, so this holds after a crash too.
  const ColdStats cold = cold_->Stats();
  for (uint32_t id : manifest.cold_segments) {
    if (!std::binary_search(cold.segment_ids.begin(), cold.segment_ids.end(), id)) {
      return Status::Corruption(JoinPath(path_, ColdSegmentFileName(id)) + " is missing; the store's MANIFEST lists it");
    }
  }
  // After a crash a segment sealed just before it may not be listed yet, and
  // the counts were not recorded: the rest needs a clean close.
  if (!manifest.clean) return Status::OK();
  for (uint32_t id : cold.segment_ids) {
    if (!std::binary_search(manifest.cold_segments.begin(), manifest.cold_segments.end(), id)) {
      return Status::Corruption(JoinPath(path_, ColdSegmentFileName(id)) + " was not part of the store when it was closed");
    }
  }
  if (cold.live_records != manifest.cold_records) {
    // The manifest keeps no per-segment counts: name every segment, one of
    // which was damaged.
    std::string files;
    for (uint32_t id : cold.segment_ids) files += (files.empty() ? "" : ", ") + JoinPath(path_, ColdSegmentFileName(id));
    return Status::Corruption("the cold segments " + files + " hold " + std::to_string(cold.live_records) +
                              " records; the store was closed with " + std::to_string(manifest.cold_records));
  }
  const WarmStats warm = warm_->Stats();
  if (warm.live_records != manifest.warm_records) {
    return Status::Corruption(JoinPath(path_, WarmTier::kBlockFileName) + " holds " + std::to_string(warm.live_records) +
                              " records; the store was closed with " + std::to_string(manifest.warm_records));
  }
  return Status::OK();
}

Status StoreImpl::Recover(const Manifest& manifest) {
  // Room for the lower tiers' records and a quarter more (the hot ones,
  // later puts): the index then does not rehash every id as it fills, and
  // stays about as full as growth leaves it. The counts come from the tiers'
  // own opens (blocks and segments that exist), not from the manifest, whose
  // numbers a damaged file could make huge (manifest_fuzz: a 30 GB table).
  const uint64_t lower = warm_->Stats().live_records + cold_->Stats().live_records;
  if (lower > 0 && lower < (uint64_t{1} << 30)) {
    try {
      index_.Reserve(static_cast<size_t>(lower + lower / 4));
    } catch (const std::bad_alloc&) {
      // The index grows as records come instead.
    }
  }
  std::unordered_map<std::string, uint64_t, StringHash, std::equal_to<>> tombstones;
  auto killed = [&](std::string_view id, uint64_t seq) {
    if (tombstones.empty()) return false;  // the usual case: no id hashed for nothing
    auto t = tombstones.find(id);
    return t != tombstones.end() && t->second > seq;
  };
  LogReplayHandler handler;
  // After an unclean shutdown, the versions the log still holds: a warm copy
  // of one of them may have been torn by a power loss before its pages
  // reached the disk (see WarmTier::TornCopyPolicy); the log's copy stands.
  std::unordered_set<uint64_t> log_seqs;
  handler.on_put = [&](const RecordView& rec) -> Status {
    if (rec.seq > kMaxSequence) return ImpossibleSequence(rec.seq, log_->path());
    seq_ = std::max(seq_, rec.seq);
    if (!manifest.clean) log_seqs.insert(rec.seq);
    if (killed(rec.id, rec.seq)) return Status::OK();
    if (const Loc* found = index_.Find(rec.id)) {
      if (HotAt(*found)->seq > rec.seq) return Status::OK();
      TakeHot(*found);
      index_.Erase(rec.id);
    }
    InsertHot(HotRecord::CopyOf(rec, dims_, hot_embeddings_.get()));
    return Status::OK();
  };
  handler.on_delete = [&](std::string_view id, uint64_t seq) -> Status {
    if (seq > kMaxSequence) return ImpossibleSequence(seq, log_->path());
    seq_ = std::max(seq_, seq);
    const Loc* found = index_.Find(id);
    if (found != nullptr && HotAt(*found)->seq < seq) {
      TakeHot(*found);
      index_.Erase(id);
    }
    auto [t, inserted] = tombstones.try_emplace(std::string(id), seq);
    if (!inserted) t->second = std::max(t->second, seq);
    return Status::OK();
  };
  handler.on_access = [&](const LogAccessUpdate& u) -> Status {
    if (const Loc* found = index_.Find(u.id)) {
      HotRecord* r = HotAt(*found);
      if (r->seq == u.seq) {
        r->last_access_at = u.last_access_at;
        r->access_count = u.access_count;
      }
    }
    return Status::OK();
  };
  TS_RETURN_IF_ERROR(log_->Replay(handler, !manifest.clean, &torn_log_bytes_));

  // Lower tiers: keep one copy per id, the highest seq, the colder on a tie.
  // Losers are collected and removed after each scan (never mid-scan).
  std::vector<Loc> losers;
  auto offer = [&](std::string_view id, uint64_t seq, const Loc& loc) -> Status {
    if (seq > kMaxSequence) {
      return ImpossibleSequence(seq, FileOf(loc));
    }
    seq_ = std::max(seq_, seq);
    uint64_t checked_seq = 0;
    if (killed(id, seq)) {
      TS_RETURN_IF_ERROR(VerifiedSeqOf(id, loc, &checked_seq));
      losers.push_back(loc);
      return Status::OK();
    }
    auto [existing, inserted] = index_.TryEmplace(id, loc);
    if (inserted) {
      (loc.tier == Tier::kWarm ? warm_count_ : cold_count_)++;
      return Status::OK();
    }
    ++recovered_duplicates_;
    // One of two copies is about to be dropped: both must read back whole
    // and as this id first. Ids are not checksummed on their own in every
    // format (a cold segment's id column, warm format 2), so a damaged id
    // can name another record; dropping on that claim lost the damaged
    // record silently (found by the damage stress run).
    uint64_t existing_seq = 0;
    TS_RETURN_IF_ERROR(VerifiedSeqOf(id, *existing, &existing_seq));
    if (Status whole = VerifiedSeqOf(id, loc, &checked_seq); !whole.ok()) {
      // After a crash, a damaged copy of the very write the log holds (same
      // sequence number: the log's copy of a record that moved down) may be
      // one a power loss tore: the log's copy stays and the damaged one goes.
      // After a clean close every tier was synced, so it is damage, and is
      // reported (dropping it moved the record to hot without a word).
      if (manifest.clean || existing->tier != Tier::kHot || existing_seq != seq) return whole;
      if (loc.tier == Tier::kWarm) ++torn_warm_copies_;
      losers.push_back(loc);
      return Status::OK();
    }
    if (existing_seq > seq) {
      losers.push_back(loc);
      return Status::OK();
    }
    Loc old = *existing;
    if (old.tier == Tier::kHot) {
      TakeHot(old);
    } else {
      losers.push_back(old);
      (old.tier == Tier::kWarm ? warm_count_ : cold_count_)--;
    }
    *existing = loc;  // TakeHot above leaves the index alone: the pointer holds
    (loc.tier == Tier::kWarm ? warm_count_ : cold_count_)++;
    return Status::OK();
  };
  WarmTier::TornCopyPolicy torn{
      [&](uint64_t seq) { return log_seqs.count(seq) > 0; },
      [&](uint32_t slot) {
        losers.push_back(Loc::Warm(slot));
        ++torn_warm_copies_;
      }};
  TS_RETURN_IF_ERROR(warm_->ForEachLiveKey(
      [&](uint32_t slot, std::string_view id, uint64_t seq) { return offer(id, seq, Loc::Warm(slot)); },
      manifest.clean ? nullptr : &torn));
  TS_RETURN_IF_ERROR(cold_->ForEachLive([&](ColdLoc loc, uint64_t, const RecordView& rec) {
    return offer(rec.id, rec.seq, Loc::Cold(loc));
  }));
  if (read_only_) {
    // Nothing may be written: hide the losing copies from scans instead.
    for (const Loc& loc : losers) {
      if (loc.tier == Tier::kWarm) masked_warm_.insert(loc.a);
      if (loc.tier == Tier::kCold) masked_cold_.insert(ColdKey(loc.cold()));
    }
  } else {
    // Every read succeeded: now the writes the tiers deferred (a torn log
    // tail cut off, unpublished warm blocks freed, stale temporary files
    // removed), then the manifest, dirty from now until a clean close (a
    // torn log tail means a crash), listing the segments found.
    TS_RETURN_IF_ERROR(log_->FinishOpen());
    TS_RETURN_IF_ERROR(warm_->FinishOpen());
    TS_RETURN_IF_ERROR(cold_->FinishOpen());
    TS_RETURN_IF_ERROR(WriteDirtyManifest(/*durable=*/true));
    for (const Loc& loc : losers) TS_RETURN_IF_ERROR(RemoveFromTier(loc));
    TS_RETURN_IF_ERROR(MaybeCheckpointLog(true));
  }
  return Status::OK();
}

}  // namespace

Status Store::Open(const std::string& path, const StoreOptions& options, std::shared_ptr<Store>* out) {
  if (path.empty()) return Status::InvalidArgument("path must be a non-empty string");
  if (options.dimensions > kMaxDimensions) {
    return Status::InvalidArgument("dimensions must be 1.." + std::to_string(kMaxDimensions));
  }
  if (!PathExists(JoinPath(path, Manifest::kFileName))) {
    std::vector<std::string> names;
    if (ListDirectory(path, &names).ok()) {
      for (const std::string& name : names) {
        // A creation interrupted before its manifest leaves an empty log and
        // an empty warm block file (header only), which creation rewrites;
        // anything holding records means the manifest of a store was lost.
        uint64_t size = 0;
        File f;
        const bool empty_leftover =
            (name == HotLog::kFileName || name == WarmTier::kBlockFileName) &&
            File::Open(JoinPath(path, name), O_RDONLY, &f).ok() && f.Size(&size).ok() &&
            size <= (name == HotLog::kFileName ? HotLog::kHeaderBytes : kWarmHeaderPageBytes);
        if (empty_leftover) continue;
        if (name == HotLog::kFileName || name == WarmTier::kBlockFileName ||
            name.rfind(WarmTier::kVarFilePrefix, 0) == 0 || name.rfind(kColdFilePrefix, 0) == 0) {
          return Status::Corruption(JoinPath(path, Manifest::kFileName) + " is missing, but " + name +
                                    " is there: the directory holds a damaged store");
        }
      }
    }
    if (options.read_only) return Status::InvalidArgument("no tierstore store at " + path + " to open read-only");
    if (options.dimensions == 0) {
      return Status::InvalidArgument("no store exists at " + path + "; pass dimensions (1.." +
                                     std::to_string(kMaxDimensions) + ") to create one");
    }
    TS_RETURN_IF_ERROR(CreateDirectories(path));
  }
  char* resolved = ::realpath(path.c_str(), nullptr);
  if (resolved == nullptr) return ErrnoStatus("realpath", path, errno);
  std::string canonical(resolved);
  ::free(resolved);

  std::unique_lock<std::mutex> g(RegistryMutex());
  ClosingDone().wait(g, [&] { return Closing().count(canonical) == 0; });
  auto& reg = Registry();
  auto found = reg.find(canonical);
  if (found != reg.end()) {
    if (std::shared_ptr<StoreImpl> existing = found->second.lock(); existing && existing->IsOpen()) {
      if (options.dimensions != 0 && options.dimensions != existing->dimensions()) {
        return Status::DimensionMismatch("the store at " + canonical + " has " + std::to_string(existing->dimensions()) +
                                         " dimensions, but " + std::to_string(options.dimensions) + " were asked for");
      }
      if (!options.read_only && existing->read_only()) {
        TS_RETURN_IF_ERROR(existing->UpgradeToWritable(options.dimensions));
      }
      existing->AddRef(!options.read_only);
      *out = existing;
      return Status::OK();
    }
  }
  auto store = std::make_shared<StoreImpl>(canonical, options.read_only);
  TS_RETURN_IF_ERROR(store->OpenFiles(options.dimensions));
  if (!options.read_only) store->CountFirstOpenWritable();
  reg[canonical] = store;
  *out = store;
  return Status::OK();
}

namespace {

Status StoreImpl::UpgradeToWritable(uint32_t dimensions) {
  std::unique_lock<std::shared_mutex> lock(mu_);
  TS_RETURN_IF_ERROR(CheckOpen());
  if (!read_only_) return Status::OK();
  {
    std::lock_guard<std::mutex> g(iter_mu_);
    if (!iterators_.empty()) {
      return Status::StoreLocked("the store at " + path_ +
                                 " is open read-only in this process and being iterated; finish or close those "
                                 "iterations before opening it for writing");
    }
  }
  // This object's shared lock would block the writer's exclusive one (flock
  // locks belong to the open file, not the process).
  lock_.Release();
  auto writer = std::make_unique<StoreImpl>(path_, /*read_only=*/false);
  Status s = writer->OpenFiles(dimensions);
  if (!s.ok()) {
    writer.reset();  // a failed open writes nothing; it releases what it took
    // Back to where it was. Should a writer of another process have taken
    // the store in the instant between, this store reads on unlocked, as a
    // read-only open of a store without a lock file could.
    (void)lock_.Acquire(path_, /*exclusive=*/false);
    return s;
  }
  SwapOpenState(*writer);
  read_only_.store(false, std::memory_order_release);
  writer->read_only_.store(true, std::memory_order_release);
  // `writer` now holds the read-only state: closing it writes nothing.
  writer.reset();
  return Status::OK();
}

void StoreImpl::DowngradeToReadOnly() {
  std::unique_lock<std::shared_mutex> lock(mu_);
  if (closed_ || read_only_) return;
  {
    std::lock_guard<std::mutex> g(iter_mu_);
    if (!iterators_.empty()) return;
  }
  {
    // Closed as at the last release: the clean manifest, the lock let go.
    StoreImpl writer(path_, /*read_only=*/false);
    SwapOpenState(writer);
  }
  auto reader = std::make_unique<StoreImpl>(path_, /*read_only=*/true);
  if (reader->OpenFiles(0).ok()) {
    SwapOpenState(*reader);
    read_only_.store(true, std::memory_order_release);
    return;  // `reader` now holds nothing opened: closing it writes nothing
  }
  // Another process took the store in between, or the files would not open
  // read-only: keep writing rights rather than lose the store.
  reader.reset();
  auto writer = std::make_unique<StoreImpl>(path_, /*read_only=*/false);
  if (writer->OpenFiles(0).ok()) {
    SwapOpenState(*writer);
    return;
  }
  CloseFiles();  // nothing left open: every later call is STORE_CLOSED
  auto& reg = Registry();
  auto it = reg.find(path_);
  if (it != reg.end() && it->second.lock().get() == this) reg.erase(it);
}

void StoreImpl::SwapOpenState(StoreImpl& other) noexcept {
  using std::swap;
  // Not swapped: the dimensions are the store's for life (read without the
  // mutex by Recall and dimensions()); `other` either has the same or was
  // never opened, and gets them so that closing it writes them.
  other.dims_ = dims_;
  swap(store_id_, other.store_id_);
  swap(opened_, other.opened_);
  lock_.Swap(other.lock_);
  swap(log_, other.log_);
  swap(warm_, other.warm_);
  swap(cold_, other.cold_);
  swap(hot_embeddings_, other.hot_embeddings_);
  hot_.Swap(other.hot_);
  index_.Swap(other.index_);
  swap(seq_, other.seq_);
  swap(hot_key_, other.hot_key_);
  swap(hot_bytes_, other.hot_bytes_);
  swap(warm_count_, other.warm_count_);
  swap(cold_count_, other.cold_count_);
  swap(recovered_duplicates_, other.recovered_duplicates_);
  swap(torn_warm_copies_, other.torn_warm_copies_);
  swap(torn_log_bytes_, other.torn_log_bytes_);
  swap(masked_warm_, other.masked_warm_);
  swap(masked_cold_, other.masked_cold_);
}

void StoreImpl::Release(bool writable) {
  {
    std::lock_guard<std::mutex> g(RegistryMutex());
    if (closed_) return;
    if (writable && writable_refs_ > 0) --writable_refs_;
    if (--open_refs_ > 0) {
      if (writable && writable_refs_ == 0 && !read_only_) DowngradeToReadOnly();
      return;
    }
    auto& reg = Registry();
    auto it = reg.find(path_);
    if (it != reg.end() && it->second.lock().get() == this) reg.erase(it);
    ++Closing()[path_];
  }
  // Opens of this path wait until the files (and the file lock) are let go,
  // however CloseFiles ends.
  struct ClosedNotice {
    const std::string& path;
    ~ClosedNotice() {
      {
        std::lock_guard<std::mutex> g(RegistryMutex());
        auto c = Closing().find(path);
        if (c != Closing().end() && --c->second == 0) Closing().erase(c);
      }
      ClosingDone().notify_all();
    }
  } notice{path_};
  std::unique_lock<std::shared_mutex> lock(mu_);
  CloseFiles();
}

Status StoreImpl::WriteDirtyManifest(bool durable) {
  Manifest m;
  m.dimensions = dims_;
  m.store_id = store_id_;
  m.clean = false;
  m.sequence_floor = seq_;
  m.cold_segments = cold_->Stats().segment_ids;
  return m.Write(path_, durable);
}

Status StoreImpl::WriteDirtyManifest(const std::vector<uint32_t>& segments, bool durable) {
  Manifest m;
  m.dimensions = dims_;
  m.store_id = store_id_;
  m.clean = false;
  m.sequence_floor = seq_;
  m.cold_segments = segments;
  return m.Write(path_, durable);
}

Status StoreImpl::WriteCleanManifest() {
  Manifest m;
  m.dimensions = dims_;
  m.store_id = store_id_;
  m.clean = true;
  m.hot_log_size = log_->size();
  m.sequence_floor = seq_;
  m.warm_records = warm_->Stats().live_records;
  const ColdStats cold = cold_->Stats();
  m.cold_records = cold.live_records;
  m.cold_segments = cold.segment_ids;
  return m.Write(path_);
}

void StoreImpl::CloseFiles() {
  if (closed_) return;
  closed_ = true;
  {
    std::lock_guard<std::mutex> g(iter_mu_);
    for (IteratorImpl* it : iterators_) it->closed_ = true;
    iterators_.clear();
  }
  if (opened_ && !read_only_) {
    // Best effort: a failure here leaves the store marked unclean, which the
    // next open handles as after a crash (nothing acknowledged is lost).
    Status s = LogDirtyAccess();
    // At close the log is rewritten as soon as it holds noticeably more than
    // the hot records (copies of records that moved down, tombstones), so
    // the next open replays only what is hot.
    if (s.ok() && log_->size() > 2 * hot_bytes_ + (1u << 20)) s = CheckpointLog(true);
    // Segments merged away but not yet unlinked (their manifest update had
    // failed) go now; a clean manifest must list exactly the segments.
    if (s.ok() && !cold_->Stats().orphan_segment_ids.empty()) s = MergeColdIfNeeded(WriteOptions{});
    if (s.ok()) s = SyncLowerTiers();
    if (s.ok()) s = log_->Trim();  // the clean manifest records the file's size
    if (s.ok()) s = log_->Sync();
    if (s.ok()) s = WriteCleanManifest();
    if (s.ok()) warm_->TrimAtClose();
  }
  hot_.Clear();
  index_.Clear();
  cold_.reset();
  warm_.reset();
  log_.reset();
  lock_.Release();
}

// ---------------------------------------------------------------------------
// Tier plumbing

void StoreImpl::InsertHot(std::unique_ptr<HotRecord> rec) {
  rec->key = ++hot_key_;
  hot_bytes_ += rec->Bytes();
  uint64_t key = rec->key;
  auto [loc, inserted] = index_.TryEmplace(rec->id(), Loc::Hot(key));
  if (!inserted) *loc = Loc::Hot(key);
  EmbeddingArena::RowInfo& info = hot_embeddings_->Info(rec->row);
  info.key = key;
  info.norm = rec->norm;
  info.confidence = rec->confidence;
  hot_.Append(key, std::move(rec));
}

std::unique_ptr<HotRecord> StoreImpl::TakeHot(const Loc& loc) {
  std::unique_ptr<HotRecord> rec = hot_.Take(loc.b);
  hot_bytes_ -= rec->Bytes();
  return rec;
}

Status StoreImpl::ReadAt(const Loc& loc, bool verify_embedding, RecordView* out) const {
  switch (loc.tier) {
    case Tier::kHot: *out = HotAt(loc)->View(); return Status::OK();
    case Tier::kWarm: return warm_->Read(loc.a, verify_embedding, out);
    case Tier::kCold: return cold_->Read(loc.cold(), verify_embedding, out);
  }
  return Status::OK();
}

std::string StoreImpl::FileOf(const Loc& loc) const {
  return loc.tier == Tier::kWarm ? JoinPath(path_, WarmTier::kBlockFileName)
                                 : JoinPath(path_, ColdSegmentFileName(loc.cold().segment));
}

Status StoreImpl::VerifiedSeqOf(std::string_view id, const Loc& loc, uint64_t* seq) const {
  if (loc.tier == Tier::kHot) {
    *seq = HotAt(loc)->seq;
    return Status::OK();
  }
  RecordView v;
  TS_RETURN_IF_ERROR(ReadAt(loc, /*verify_embedding=*/false, &v));
  if (v.id != id) return Status::Corruption(FileOf(loc) + ": a copy read as one id at open reads back as another");
  *seq = v.seq;
  return Status::OK();
}

Status StoreImpl::RemoveFromTier(const Loc& loc, bool superseded_in_log) {
  switch (loc.tier) {
    case Tier::kHot: TakeHot(loc); return Status::OK();
    case Tier::kWarm: return superseded_in_log ? warm_->FreeLater(loc.a) : warm_->Free(loc.a);
    case Tier::kCold: return cold_->Delete(loc.cold());
  }
  return Status::OK();
}

void StoreImpl::NotifyMove(uint64_t seq, std::string_view id, const Loc& from, const Loc& to) {
  std::lock_guard<std::mutex> g(iter_mu_);
  if (iterators_.empty()) return;
  uint64_t from_key = PositionKey(from), to_key = PositionKey(to);
  for (IteratorImpl* it : iterators_) it->OnMove(seq, id, from.tier, from_key, to.tier, to_key);
}

Status StoreImpl::RelocateCold(const std::function<Status(const std::function<void(ColdLoc, ColdLoc)>&)>& op) {
  // Merges change (segment, row) but not cold keys; only the index follows.
  std::unordered_map<uint64_t, ColdLoc> moved;
  TS_RETURN_IF_ERROR(op([&](ColdLoc from, ColdLoc to) {
    moved.emplace(ColdKey(from), to);
  }));
  if (moved.empty()) return Status::OK();
  index_.ForEach([&](std::string_view, Loc& loc) {
    if (loc.tier != Tier::kCold) return;
    auto m = moved.find(ColdKey(loc.cold()));
    if (m != moved.end()) loc = Loc::Cold(m->second);
  });
  return Status::OK();
}

Status StoreImpl::ListNewSegments(const WriteOptions& opts) {
  // A merge, when one is due, lists the final segment set itself (before it
  // unlinks its sources); otherwise the manifest is written here. Either way
  // one write per sealed batch. Listing is best effort: the sealed segment
  // is already in use; unlisted, it is merely not yet protected against
  // going missing after a crash.
  bool listed = false;
  Status merged = MergeColdIfNeeded(opts, &listed);
  if (!listed) (void)WriteDirtyManifest(opts.sync);
  return merged;
}

std::function<Status(const std::vector<uint32_t>&)> StoreImpl::ListSegmentsBeforeUnlink(const WriteOptions& opts) {
  // A segment leaves the manifest before its file is unlinked; if the
  // manifest cannot be written the sources stay on disk (duplicates that
  // recovery resolves by sequence number).
  return [this, sync = opts.sync](const std::vector<uint32_t>& after) { return WriteDirtyManifest(after, sync); };
}

Status StoreImpl::MergeColdIfNeeded(const WriteOptions& opts, bool* listed) {
  return RelocateCold([&](const auto& relocate) {
    auto list = ListSegmentsBeforeUnlink(opts);
    return cold_->MergeIfNeeded(kMaxColdSegments, opts.sync, relocate, [&](const std::vector<uint32_t>& after) {
      Status s = list(after);
      if (s.ok() && listed != nullptr) *listed = true;
      return s;
    });
  });
}

// ---------------------------------------------------------------------------
// Writes

Status StoreImpl::Put(const RecordView* recs, size_t n, const WriteOptions& opts) {
  if (n == 0) {
    std::shared_lock<std::shared_mutex> lock(mu_);
    return CheckWritable();
  }
  std::vector<float> norms(n);
  for (size_t i = 0; i < n; ++i) {
    TS_RETURN_IF_ERROR(ValidateRecord(recs[i], dims_, &norms[i]));
  }
  // Within one batch a repeated id: the last wins.
  std::vector<size_t> keep;
  keep.reserve(n);
  if (n == 1) {
    keep.push_back(0);
  } else {
    std::unordered_map<std::string_view, size_t> last;
    last.reserve(n);
    for (size_t i = 0; i < n; ++i) last[recs[i].id] = i;
    for (size_t i = 0; i < n; ++i) {
      if (last[recs[i].id] == i) keep.push_back(i);
    }
  }
  std::unique_lock<std::shared_mutex> lock(mu_);
  TS_RETURN_IF_ERROR(CheckWritable());
  std::vector<RecordView> views(keep.size());
  std::vector<const RecordView*> ptrs(keep.size());
  for (size_t k = 0; k < keep.size(); ++k) {
    const RecordView& in = recs[keep[k]];
    views[k] = in;
    views[k].seq = seq_ + 1 + k;
    views[k].norm = norms[keep[k]];
    ptrs[k] = &views[k];
  }
  // The log append is the commit point: before it nothing changed; after it
  // the batch survives a crash, and recovery would redo what follows.
  TS_RETURN_IF_ERROR(log_->AppendPuts(ptrs.data(), ptrs.size(), opts.sync));
  if (opts.sync) TS_RETURN_IF_ERROR(log_->Sync());
  seq_ += keep.size();
  for (size_t k = 0; k < keep.size(); ++k) {
    if (const Loc* found = index_.Find(views[k].id)) {
      Loc old = *found;
      (void)RemoveFromTier(old, /*superseded_in_log=*/true);  // an older version; recovery drops it anyway
      if (old.tier == Tier::kWarm) --warm_count_;
      if (old.tier == Tier::kCold) --cold_count_;
    }
    InsertHot(HotRecord::CopyOf(views[k], dims_, hot_embeddings_.get()));
  }
  // Capacity migration inside the write: the records are safe in the log
  // already, so a failure here leaves them in hot for the next attempt.
  MigrationReport ignored;
  (void)MigrateLocked(opts, false, &ignored);
  (void)MaybeCheckpointLog(opts.sync);
  return Status::OK();
}

Status StoreImpl::Delete(std::string_view id, const WriteOptions& opts, bool* existed) {
  *existed = false;
  std::unique_lock<std::shared_mutex> lock(mu_);
  TS_RETURN_IF_ERROR(CheckWritable());
  const Loc* found = index_.Find(id);
  if (found == nullptr) return Status::OK();
  TS_RETURN_IF_ERROR(log_->AppendDelete(id, seq_ + 1, opts.sync));
  if (opts.sync) TS_RETURN_IF_ERROR(log_->Sync());
  ++seq_;
  const Loc loc = *found;
  index_.Erase(id);
  (void)RemoveFromTier(loc, /*superseded_in_log=*/true);  // the tombstone in the log already decides
  if (loc.tier == Tier::kWarm) --warm_count_;
  if (loc.tier == Tier::kCold) --cold_count_;
  *existed = true;
  return Status::OK();
}

Status StoreImpl::Move(std::string_view id, Tier tier, const WriteOptions& opts, bool* found) {
  *found = false;
  std::unique_lock<std::shared_mutex> lock(mu_);
  TS_RETURN_IF_ERROR(CheckWritable());
  const Loc* at = index_.Find(id);
  if (at == nullptr) return Status::OK();
  *found = true;
  const Loc from = *at;
  if (from.tier == tier) return Status::OK();
  RecordView v;
  TS_RETURN_IF_ERROR(ReadAt(from, true, &v));  // verified before it is copied anywhere
  Loc to;
  std::unique_ptr<HotRecord> copy;
  // 1. Write the destination.
  switch (tier) {
    case Tier::kHot: {
      const RecordView* p = &v;
      TS_RETURN_IF_ERROR(log_->AppendPuts(&p, 1, opts.sync));
      if (opts.sync) TS_RETURN_IF_ERROR(log_->Sync());
      copy = HotRecord::CopyOf(v, dims_, hot_embeddings_.get());
      break;
    }
    case Tier::kWarm: {
      uint32_t slot = 0;
      TS_RETURN_IF_ERROR(warm_->Insert(v, &slot));
      to = Loc::Warm(slot);
      ++warm_count_;
      if (from.tier == Tier::kCold) {
        // The cold copy goes next: the warm block must stand on its own.
        if (opts.sync) {
          Status synced = warm_->Sync();
          if (!synced.ok()) {
            (void)warm_->Free(slot);  // the cold copy stays the record
            --warm_count_;
            return synced;
          }
        } else {
          warm_->CoverAll();
        }
      }
      break;
    }
    case Tier::kCold: {
      std::vector<ColdLoc> locs;
      TS_RETURN_IF_ERROR(cold_->Append(&v, 1, opts.sync, &locs));
      to = Loc::Cold(locs[0]);
      ++cold_count_;
      break;
    }
  }
  // 2. Remove the source (views into it are not used past this point).
  const uint64_t seq = v.seq;
  std::string id_copy(id);
  if (from.tier == Tier::kHot) {
    TakeHot(from);
  } else {
    (void)RemoveFromTier(from);
    (from.tier == Tier::kWarm ? warm_count_ : cold_count_)--;
  }
  if (copy) {
    InsertHot(std::move(copy));
    to = *index_.Find(id_copy);
  } else {
    *index_.Find(id_copy) = to;
  }
  NotifyMove(seq, id_copy, from, to);
  if (tier == Tier::kCold) {
    (void)ListNewSegments(opts);
  }
  return Status::OK();
}

Status StoreImpl::Migrate(const WriteOptions& opts, MigrationReport* report) {
  std::unique_lock<std::shared_mutex> lock(mu_);
  TS_RETURN_IF_ERROR(CheckWritable());
  TS_RETURN_IF_ERROR(MigrateLocked(opts, true, report));
  return MaybeCheckpointLog(opts.sync);
}

Status StoreImpl::MigrateLocked(const WriteOptions& opts, bool to_capacity, MigrationReport* report) {
  // Inside a write, demote a slack below capacity so the next puts do not
  // each trigger a migration (batches, never one per put).
  auto target = [&](uint64_t capacity) -> uint64_t {
    uint64_t slack = to_capacity ? 0 : std::min<uint64_t>(capacity / 8, 4096);
    return capacity - slack;
  };
  bool migrated = false;
  if (hot_.size() > opts.hot_capacity) {
    Tier dest = opts.skip_warm ? Tier::kCold : Tier::kWarm;
    migrated = true;
    TS_RETURN_IF_ERROR(DemoteHot(hot_.size() - target(opts.hot_capacity), dest, opts, report));
  }
  if (warm_count_ > opts.warm_capacity) {
    migrated = true;
    TS_RETURN_IF_ERROR(DemoteWarm(warm_count_ - target(opts.warm_capacity), opts, report));
  }
  // The frees upserts and deletes left unpublished (WarmTier::FreeLater)
  // are stored with the batch, a write that is slow anyway, rather than in
  // one put each; after the demotion, so blocks it reused are skipped.
  if (migrated) warm_->PublishFrees();
  return Status::OK();
}

namespace {
// Demotion order: lowest activation first, then oldest access, then arrival.
struct Candidate {
  float activation;
  double last_access_at;
  uint64_t position;
  HotRecord* record = nullptr;  // hot: the record itself (valid until taken)
  bool operator<(const Candidate& o) const {
    if (activation != o.activation) return activation < o.activation;
    if (last_access_at != o.last_access_at) return last_access_at < o.last_access_at;
    return position < o.position;
  }
};

void KeepLowest(std::vector<Candidate>* c, size_t count) {
  if (count < c->size()) {
    std::nth_element(c->begin(), c->begin() + static_cast<std::ptrdiff_t>(count), c->end());
    c->resize(count);
  }
  std::sort(c->begin(), c->end());
}
}  // namespace

Status StoreImpl::DemoteHot(size_t count, Tier dest, const WriteOptions& opts, MigrationReport* report) {
  std::vector<Candidate> cand;
  cand.reserve(hot_.size());
  for (const auto& e : hot_) cand.push_back({e.value()->activation, e.value()->last_access_at, e.key(), e.value()});
  KeepLowest(&cand, count);
  for (size_t start = 0; start < cand.size(); start += kMigrationBatch) {
    size_t end = std::min(cand.size(), start + kMigrationBatch);
    ++report->batches;
    if (dest == Tier::kWarm) {
      for (size_t i = start; i < end; ++i) {
        // Candidates are in activation order, their records anywhere in
        // memory: fetch a few ahead (a cache miss per record otherwise).
        if (i + 8 < end) __builtin_prefetch(cand[i + 8].record);
        if (i + 4 < end) {
          __builtin_prefetch(cand[i + 4].record->bytes());
          __builtin_prefetch(cand[i + 4].record->embedding());
        }
        Loc from = Loc::Hot(cand[i].position);
        HotRecord* rec = cand[i].record;
        uint32_t slot = 0;
        TS_RETURN_IF_ERROR(warm_->Insert(rec->View(), &slot));  // destination first
        Loc to = Loc::Warm(slot);
        *index_.Find(rec->id()) = to;
        ++warm_count_;
        ++report->hot_to_warm;
        NotifyMove(rec->seq, rec->id(), from, to);
        TakeHot(from);  // the log still holds it; recovery prefers the colder copy on a tie
      }
    } else {
      std::vector<RecordView> views;
      views.reserve(end - start);
      for (size_t i = start; i < end; ++i) views.push_back(cand[i].record->View());
      std::vector<ColdLoc> locs;
      TS_RETURN_IF_ERROR(cold_->Append(views.data(), views.size(), opts.sync, &locs));
      for (size_t i = start; i < end; ++i) {
        Loc from = Loc::Hot(cand[i].position);
        HotRecord* rec = cand[i].record;
        Loc to = Loc::Cold(locs[i - start]);
        *index_.Find(rec->id()) = to;
        ++cold_count_;
        ++report->hot_to_cold;
        NotifyMove(rec->seq, rec->id(), from, to);
        TakeHot(from);
      }
      TS_RETURN_IF_ERROR(ListNewSegments(opts));
    }
  }
  return Status::OK();
}

Status StoreImpl::DemoteWarm(size_t count, const WriteOptions& opts, MigrationReport* report) {
  std::vector<Candidate> cand;
  cand.reserve(warm_count_);
  const uint32_t limit = warm_->SlotLimit();
  for (uint32_t slot = 0; slot < limit; ++slot) {
    if (!warm_->IsLive(slot)) continue;
    WarmScalars sc = warm_->Scalars(slot);
    cand.push_back({sc.activation, sc.last_access_at, slot});
  }
  KeepLowest(&cand, count);
  for (size_t start = 0; start < cand.size(); start += kMigrationBatch) {
    size_t end = std::min(cand.size(), start + kMigrationBatch);
    ++report->batches;
    std::vector<RecordView> views(end - start);
    for (size_t i = start; i < end; ++i) {
      // Verified before copying: a damaged record must not get a fresh checksum.
      TS_RETURN_IF_ERROR(warm_->Read(static_cast<uint32_t>(cand[i].position), true, &views[i - start]));
    }
    std::vector<ColdLoc> locs;
    TS_RETURN_IF_ERROR(cold_->Append(views.data(), views.size(), opts.sync, &locs));
    for (size_t i = start; i < end; ++i) {
      Loc from = Loc::Warm(static_cast<uint32_t>(cand[i].position));
      Loc to = Loc::Cold(locs[i - start]);
      const RecordView& v = views[i - start];
      *index_.Find(v.id) = to;
      NotifyMove(v.seq, v.id, from, to);
      ++cold_count_;
      ++report->warm_to_cold;
    }
    for (size_t i = start; i < end; ++i) {
      (void)warm_->Free(static_cast<uint32_t>(cand[i].position));
      --warm_count_;
    }
    TS_RETURN_IF_ERROR(ListNewSegments(opts));
  }
  return Status::OK();
}

Status StoreImpl::SyncLowerTiers() {
  TS_RETURN_IF_ERROR(warm_->Sync());
  return cold_->Sync();
}

Status StoreImpl::CheckpointLog(bool durable) {
  // Tombstones and records that moved down leave the log. The warm blocks
  // they superseded (see WarmTier::FreeLater) must read free first, or a
  // crash would bring them back.
  warm_->PublishFrees();
  if (durable) {
    TS_RETURN_IF_ERROR(SyncLowerTiers());
  } else {
    warm_->CoverAll();  // their warm blocks become their only copies
  }
  std::vector<RecordView> views;
  views.reserve(hot_.size());
  for (const auto& e : hot_) views.push_back(e.value()->View());
  std::vector<const RecordView*> ptrs;
  ptrs.reserve(views.size());
  for (auto& v : views) ptrs.push_back(&v);
  TS_RETURN_IF_ERROR(log_->Rewrite(ptrs));
  for (const auto& e : hot_) e.value()->access_dirty = false;
  return Status::OK();
}

Status StoreImpl::MaybeCheckpointLog(bool durable) {
  uint64_t size = log_->size();
  if (size < kLogCheckpointMinBytes || size < 4 * hot_bytes_ + (16ull << 20)) return Status::OK();
  return CheckpointLog(durable);
}

Status StoreImpl::LogDirtyAccess() {
  std::vector<LogAccessUpdate> updates;
  for (const auto& e : hot_) {
    const HotRecord* rec = e.value();
    if (rec->access_dirty) updates.push_back({rec->id(), rec->seq, rec->last_access_at, rec->access_count});
  }
  TS_RETURN_IF_ERROR(log_->AppendAccess(updates, /*durable=*/true));  // flush and close sync next
  for (const auto& e : hot_) e.value()->access_dirty = false;
  return Status::OK();
}

Status StoreImpl::Flush() {
  std::unique_lock<std::shared_mutex> lock(mu_);
  TS_RETURN_IF_ERROR(CheckOpen());
  if (read_only_) return Status::OK();
  TS_RETURN_IF_ERROR(LogDirtyAccess());
  TS_RETURN_IF_ERROR(log_->Sync());
  return SyncLowerTiers();
}

Status StoreImpl::Compact(const WriteOptions& opts, CompactionReport* report) {
  std::unique_lock<std::shared_mutex> lock(mu_);
  TS_RETURN_IF_ERROR(CheckWritable());
  report->hot_log_bytes_before = log_->size();
  TS_RETURN_IF_ERROR(CheckpointLog(true));
  report->hot_log_bytes_after = log_->size();
  TS_RETURN_IF_ERROR(warm_->Compact(&report->warm_bytes_reclaimed));
  report->cold_segments_before = cold_->Stats().segments;
  TS_RETURN_IF_ERROR(RelocateCold([&](const auto& relocate) {
    return cold_->Compact(opts.sync, relocate, &report->cold_bytes_reclaimed, ListSegmentsBeforeUnlink(opts));
  }));
  report->cold_segments_after = cold_->Stats().segments;
  return Status::OK();
}

// ---------------------------------------------------------------------------
// Reads

Status StoreImpl::Get(std::string_view id, bool include_embedding, double now_ms, RecordBatch* out) {
  // Exclusive: get updates the access statistics in place.
  std::unique_lock<std::shared_mutex> lock(mu_);
  TS_RETURN_IF_ERROR(CheckOpen());
  const Loc* at = index_.Find(id);
  if (at == nullptr) return Status::OK();
  const Loc loc = *at;
  RecordView v;
  TS_RETURN_IF_ERROR(ReadAt(loc, include_embedding, &v));
  v.last_access_at = now_ms;
  v.access_count += 1;
  switch (loc.tier) {
    case Tier::kHot: {
      HotRecord* r = HotAt(loc);
      r->last_access_at = v.last_access_at;
      r->access_count = v.access_count;
      r->access_dirty = true;
      break;
    }
    case Tier::kWarm: warm_->UpdateAccess(loc.a, v.last_access_at, v.access_count); break;
    case Tier::kCold: cold_->UpdateAccess(loc.cold(), v.last_access_at, v.access_count); break;
  }
  out->Append(loc.tier, v, include_embedding, dims_);
  return Status::OK();
}

Status StoreImpl::Has(std::string_view id, bool* found) {
  std::shared_lock<std::shared_mutex> lock(mu_);
  TS_RETURN_IF_ERROR(CheckOpen());
  *found = index_.Find(id) != nullptr;
  return Status::OK();
}

Status StoreImpl::Counts(TierCounts* counts) {
  std::shared_lock<std::shared_mutex> lock(mu_);
  TS_RETURN_IF_ERROR(CheckOpen());
  *counts = CountsLocked();
  return Status::OK();
}

Status StoreImpl::Verify(VerifyReport* report) {
  *report = VerifyReport();
  std::shared_lock<std::shared_mutex> lock(mu_);
  TS_RETURN_IF_ERROR(CheckOpen());
  Status failed;
  index_.ForEach([&](std::string_view id, Loc& loc) {
    if (!failed.ok()) return;
    RecordView v;
    Status st = ReadAt(loc, /*verify_embedding=*/true, &v);
    if (st.ok() && v.id != id) st = Status::Corruption("the copy reads back as another id");
    if (st.ok()) {
      ++report->records;
      report->bytes += v.id.size() + v.content.size() + v.metadata.size() + uint64_t{dims_} * sizeof(float);
      return;
    }
    if (st.code() != StatusCode::kCorruption) {
      failed = std::move(st);
      return;
    }
    VerifyReport::Damage d;
    d.tier = loc.tier;
    d.file = loc.tier == Tier::kHot ? JoinPath(path_, HotLog::kFileName) : FileOf(loc);
    d.id = std::string(id);
    d.reason = st.message();
    report->damaged.push_back(std::move(d));
  });
  return failed;
}

Status StoreImpl::Stats(StoreStats* stats) {
  std::shared_lock<std::shared_mutex> lock(mu_);
  TS_RETURN_IF_ERROR(CheckOpen());
  stats->counts = CountsLocked();
  stats->dimensions = dims_;
  stats->sequence = seq_;
  stats->hot_log_bytes = log_->size();
  stats->hot_bytes = hot_bytes_;
  WarmStats w = warm_->Stats();
  stats->warm_slots = w.slots;
  stats->warm_block_file_bytes = w.block_file_bytes;
  stats->warm_var_file_bytes = w.var_file_bytes;
  stats->warm_var_live_bytes = w.var_live_bytes;
  ColdStats c = cold_->Stats();
  stats->cold_segments = c.segments;
  stats->cold_file_bytes = c.file_bytes;
  stats->cold_deleted_rows = c.deleted_rows;
  {
    std::lock_guard<std::mutex> g(iter_mu_);
    stats->open_iterators = iterators_.size();
  }
  stats->recovered_duplicates = recovered_duplicates_;
  stats->torn_warm_copies = torn_warm_copies_;
  stats->torn_log_bytes = torn_log_bytes_;
  stats->read_only = read_only_;
  return Status::OK();
}

// Reads up to `max` records from st's position on, advancing it. With an
// iterator, records it already yielded elsewhere are skipped.
Status StoreImpl::ScanLocked(ScanState* st, size_t max, bool emb, RecordBatch* out, IteratorImpl* iter,
                             const RecordFilter* filter) {
  auto skip = [&](uint64_t seq) {
    return iter != nullptr && (seq > iter->max_seq_ || iter->skip_.erase(seq) > 0);
  };
  auto admit = [&](const RecordView& v) { return filter == nullptr || filter->Matches(v); };
  while (out->size() < max && st->phase < 3) {
    if (st->phase == 0) {
      auto it = hot_.UpperBound(st->after);
      for (; it != hot_.end() && out->size() < max; ++it) {
        st->after = it.key();
        const HotRecord& r = *it.value();
        if (!skip(r.seq)) {
          const RecordView v = r.View();
          if (admit(v)) out->Append(Tier::kHot, v, emb, dims_);
        }
      }
      if (it == hot_.end()) st->NextPhase();
    } else if (st->phase == 1) {
      const uint32_t limit = warm_->SlotLimit();
      uint64_t slot = st->after;  // position key = slot + 1, so the next slot is `after`
      for (; slot < limit && out->size() < max; ++slot) {
        st->after = slot + 1;
        if (!warm_->IsLive(static_cast<uint32_t>(slot)) || Masked(Tier::kWarm, slot)) continue;
        RecordView v;
        TS_RETURN_IF_ERROR(warm_->Read(static_cast<uint32_t>(slot), emb, &v));
        if (!skip(v.seq) && admit(v)) out->Append(Tier::kWarm, v, emb, dims_);
      }
      if (slot >= limit) st->NextPhase();
    } else {
      const size_t want = max - out->size();
      size_t visited = 0;
      TS_RETURN_IF_ERROR(cold_->ScanFrom(
          st->after, want, emb,
          [&](ColdLoc loc, uint64_t key, const RecordView& v) -> Status {
            st->after = key;
            if (skip(v.seq) || Masked(Tier::kCold, ColdKey(loc)) || !admit(v)) return Status::OK();
            out->Append(Tier::kCold, v, emb, dims_);
            return Status::OK();
          },
          &visited));
      if (visited < want) st->NextPhase();
    }
  }
  return Status::OK();
}

Status StoreImpl::AppendCurrent(std::string_view id, uint64_t seq, bool emb, RecordBatch* out,
                                const RecordFilter* filter) {
  const Loc* loc = index_.Find(id);
  if (loc == nullptr) return Status::OK();
  RecordView v;
  TS_RETURN_IF_ERROR(ReadAt(*loc, emb, &v));
  if (v.seq == seq && (filter == nullptr || filter->Matches(v))) out->Append(loc->tier, v, emb, dims_);
  return Status::OK();
}

Status StoreImpl::NewIterator(TierSelector tier, std::shared_ptr<const RecordFilter> filter,
                              std::unique_ptr<StoreIterator>* out) {
  std::shared_lock<std::shared_mutex> lock(mu_);
  TS_RETURN_IF_ERROR(CheckOpen());
  auto self = std::static_pointer_cast<StoreImpl>(shared_from_this());
  if (filter != nullptr && filter->empty()) filter = nullptr;
  auto it = std::make_unique<IteratorImpl>(self, tier, seq_, std::move(filter));
  {
    std::lock_guard<std::mutex> g(iter_mu_);
    iterators_.push_back(it.get());
  }
  *out = std::move(it);
  return Status::OK();
}

Status StoreImpl::SeekOffset(ScanState* st, uint64_t offset, const RecordFilter* filter) {
  if (filter != nullptr) {
    // Only matching records count: read past `offset` of them.
    RecordBatch skipped;
    while (offset > 0 && st->phase < 3) {
      skipped.Clear();
      TS_RETURN_IF_ERROR(ScanLocked(st, static_cast<size_t>(std::min<uint64_t>(offset, 1024)), false, &skipped,
                                    nullptr, filter));
      offset -= skipped.size();
    }
    return Status::OK();
  }
  const TierCounts counts = CountsLocked();
  const uint64_t per_tier[3] = {counts.hot, counts.warm, counts.cold};
  while (st->phase < 3) {
    if (offset >= per_tier[st->phase]) {
      offset -= per_tier[st->phase];
      st->NextPhase();
      continue;
    }
    if (st->phase == 0) {
      st->after = hot_.Nth(offset).key() - 1;
    } else if (st->phase == 1) {
      const uint32_t limit = warm_->SlotLimit();
      for (uint32_t slot = 0; slot < limit; ++slot) {
        if (!warm_->IsLive(slot) || Masked(Tier::kWarm, slot)) continue;
        if (offset-- == 0) {
          st->after = slot;  // next slot to read
          break;
        }
      }
    } else {
      uint64_t key = 0;
      if (!cold_->NthLiveKey(offset, &key)) {
        st->phase = 3;
      } else {
        st->after = key - 1;
      }
    }
    return Status::OK();
  }
  return Status::OK();
}

namespace {
// Cursors are opaque to users: "ts1:<selector>:<phase>:<after>".
std::string EncodeCursor(const ScanState& st) {
  return "ts1:" + std::string(SelectorName(st.selector)) + ":" + std::to_string(st.phase) + ":" + std::to_string(st.after);
}

Status DecodeCursor(const std::string& cursor, TierSelector expected, ScanState* st) {
  auto bad = [&] { return Status::InvalidArgument("cursor is not one returned by list() (got '" + cursor.substr(0, 64) + "')"); };
  if (cursor.rfind("ts1:", 0) != 0) return bad();
  size_t a = cursor.find(':', 4);
  if (a == std::string::npos) return bad();
  size_t b = cursor.find(':', a + 1);
  if (b == std::string::npos) return bad();
  std::string sel = cursor.substr(4, a - 4);
  if (sel != SelectorName(expected)) {
    return Status::InvalidArgument("cursor belongs to a listing of tier '" + sel + "', not '" + SelectorName(expected) +
                                   "'; pass the cursor only with the tier it came from");
  }
  std::string phase = cursor.substr(a + 1, b - a - 1), after = cursor.substr(b + 1);
  if (phase.size() != 1 || phase[0] < '0' || phase[0] > '3' || after.empty() || after.size() > 20 ||
      after.find_first_not_of("0123456789") != std::string::npos) {
    return bad();
  }
  *st = ScanState::Start(expected);
  int p = phase[0] - '0';
  if (p < st->phase || (expected != TierSelector::kAll && p != st->phase && p != 3)) return bad();
  errno = 0;
  unsigned long long v = std::strtoull(after.c_str(), nullptr, 10);
  if (errno != 0) return bad();
  st->phase = p;
  st->after = v;
  return Status::OK();
}
}  // namespace

Status StoreImpl::List(const ListRequest& request, ListResult* result) {
  if (request.limit == 0) return Status::InvalidArgument("limit must be an integer >= 1");
  if (!request.cursor.empty() && request.offset != 0) {
    return Status::InvalidArgument("pass either cursor or offset, not both");
  }
  const RecordFilter* filter = request.filter != nullptr && !request.filter->empty() ? request.filter.get() : nullptr;
  std::shared_lock<std::shared_mutex> lock(mu_);
  TS_RETURN_IF_ERROR(CheckOpen());
  result->counts = CountsLocked();
  ScanState st = ScanState::Start(request.tier);
  if (!request.cursor.empty()) {
    TS_RETURN_IF_ERROR(DecodeCursor(request.cursor, request.tier, &st));
  } else {
    TS_RETURN_IF_ERROR(SeekOffset(&st, request.offset, filter));
  }
  TS_RETURN_IF_ERROR(ScanLocked(&st, request.limit, request.include_embeddings, &result->records, nullptr, filter));
  result->next_cursor.clear();
  if (st.phase < 3) {
    ScanState probe = st;
    RecordBatch one;
    TS_RETURN_IF_ERROR(ScanLocked(&probe, 1, false, &one, nullptr, filter));
    if (one.size() > 0) result->next_cursor = EncodeCursor(st);
  }
  return Status::OK();
}

// ---------------------------------------------------------------------------
// Recall

namespace {

// One candidate of a recall: its float score from the scan, then its exact
// score; `row` is its embedding (valid while the store lock is held), `loc`
// finds it again (the id only on an exact-score tie).
struct Scored {
  float score;
  double exact;
  const float* row;
  Loc loc;
};

// The dot product of a and b and the squared norm of b, in double, with
// four partial sums in a fixed order. Recall's exact scores come from these:
// dot(q, x) / sqrt(dot(q, q) * dot(x, x)), each term summed the same way, so
// a record whose embedding equals the query scores exactly 1 (sqrt(s * s) is
// s in IEEE arithmetic), and any two computations of one cosine agree.
struct DotAndNorm {
  double dot;
  double nn;
};
DotAndNorm ExactTerms(const float* a, const float* b, uint32_t dims) {
  double d[4] = {0, 0, 0, 0}, n[4] = {0, 0, 0, 0};
  uint32_t j = 0;
  for (; j + 4 <= dims; j += 4) {
    for (uint32_t t = 0; t < 4; ++t) {
      d[t] += static_cast<double>(a[j + t]) * b[j + t];
      n[t] += static_cast<double>(b[j + t]) * b[j + t];
    }
  }
  double dot = (d[0] + d[1]) + (d[2] + d[3]), nn = (n[0] + n[1]) + (n[2] + n[3]);
  for (; j < dims; ++j) {
    dot += static_cast<double>(a[j]) * b[j];
    nn += static_cast<double>(b[j]) * b[j];
  }
  return {dot, nn};
}

// Rows to score, `count` of them, in one of three shapes:
// - cold: a contiguous matrix (stride = dims) with norms, confidence and a
//   deletion bitmap per row;
// - hot: one arena chunk (stride = dims) with an info entry per row;
// - warm: slots [first_slot, first_slot + count), read through the tier.
struct ScanRange {
  enum class Kind { kCold, kHot, kWarm } kind = Kind::kCold;
  const float* matrix = nullptr;
  const float* norms = nullptr;                        // cold
  const float* confidence = nullptr;                   // cold
  const uint64_t* deleted = nullptr;                   // cold: bitmap, one bit per row
  const EmbeddingArena::RowInfo* info = nullptr;       // hot
  size_t count = 0;
  uint32_t segment = 0;                                // cold
  WarmRun warm;                                        // warm

  const uint8_t* WarmBlock(size_t i) const { return warm.base + i * warm.block_size; }
  const float* Row(size_t i, uint32_t dims) const {
    return kind == Kind::kWarm ? reinterpret_cast<const float*>(WarmBlock(i) + warm.embedding_offset)
                               : matrix + i * dims;
  }
  float Norm(size_t i) const {
    switch (kind) {
      case Kind::kCold: return norms[i];
      case Kind::kHot: return info[i].norm;
      case Kind::kWarm: return warm_block::Norm(WarmBlock(i));
    }
    return 0;
  }
  Loc LocOf(size_t i) const {
    switch (kind) {
      case Kind::kCold: return Loc::Cold(ColdLoc{segment, static_cast<uint32_t>(i)});
      case Kind::kHot: return Loc::Hot(info[i].key);
      case Kind::kWarm: return Loc::Warm(warm.first_slot + static_cast<uint32_t>(i));
    }
    return Loc();
  }
  // out[0..to-from) = dot(unit, row i) for rows [from, to). The warm
  // embeddings sit block_size apart; a free block's stale embedding is
  // scored too when it is in the span (free blocks are rare: they are
  // reused first) and then not offered.
  void Dots(const float* unit, size_t from, size_t to, uint32_t dims, float* out) const {
    if (kind == Kind::kWarm) {
      DotRowsStrided(unit, WarmBlock(from) + warm.embedding_offset, warm.block_size, to - from, dims, out);
    } else {
      DotRows(unit, matrix + from * dims, to - from, dims, out);
    }
  }
};

}  // namespace

Status StoreImpl::Recall(const float* query, const RecallOptions& options, RecallResult* result) {
  result->records.Clear();
  result->scores.clear();
  if (options.k == 0) return Status::InvalidArgument("k must be >= 1");
  const double qnorm_d = NormOf(query, dims_);
  if (!std::isfinite(qnorm_d)) return Status::InvalidArgument("the query vector must have finite values");
  // The query scaled to unit length (in double, then rounded once). An
  // all-zero vector's cosine with anything is 0 (DESIGN), the query's too:
  // every record scores 0 and ties go by id.
  std::vector<float> unit(dims_, 0.0f);
  if (qnorm_d > 0) {
    for (uint32_t j = 0; j < dims_; ++j) unit[j] = static_cast<float>(query[j] / qnorm_d);
  }
  constexpr float kFloatSafeMin = 1e-30f, kFloatSafeMax = 1e30f;
  auto ExactCosine = [&](const float* row) -> float {
    const DotAndNorm t = ExactTerms(query, row, dims_);
    return t.nn > 0 && qnorm_d > 0 ? static_cast<float>(t.dot / (qnorm_d * std::sqrt(t.nn))) : 0.0f;
  };
  std::shared_lock<std::shared_mutex> lock(mu_);
  TS_RETURN_IF_ERROR(CheckOpen());
  auto in_scope = [&](Tier t) {
    return options.tier == TierSelector::kAll || static_cast<int>(options.tier) == static_cast<int>(t);
  };
  // Gather the work while holding the store lock (shared) for the whole call:
  // nothing can move or unmap underneath the pointers collected here.
  std::vector<ScanRange> ranges;
  if (in_scope(Tier::kHot) && !hot_.empty()) {
    for (size_t c = 0; c < hot_embeddings_->chunk_count(); ++c) {
      EmbeddingArena::ChunkView chunk = hot_embeddings_->Chunk(c);
      if (chunk.used == 0) continue;
      ScanRange r;
      r.kind = ScanRange::Kind::kHot;
      r.matrix = chunk.rows;
      r.info = chunk.info;
      r.count = chunk.used;
      ranges.push_back(r);
    }
  }
  if (in_scope(Tier::kWarm) && warm_count_ > 0) {
    std::vector<WarmRun> runs;
    warm_->ScanRuns(&runs);
    for (const WarmRun& run : runs) {
      ScanRange r;
      r.kind = ScanRange::Kind::kWarm;
      r.warm = run;
      r.count = run.count;
      ranges.push_back(r);
    }
  }
  if (in_scope(Tier::kCold) && cold_count_ > 0) {
    TS_RETURN_IF_ERROR(cold_->ScanSegments([&](const ColdSegmentView& seg) {
      ScanRange r;
      r.kind = ScanRange::Kind::kCold;
      r.matrix = seg.embeddings;
      r.norms = seg.norms;
      r.confidence = seg.confidence;
      r.deleted = seg.deleted;
      r.count = seg.rows;
      r.segment = seg.segment;
      ranges.push_back(r);
      return Status::OK();
    }));
  }

  // Two steps, so the hits are those of an exact scan:
  // 1. The scan scores every row in float (SIMD) and keeps each row that
  //    could be in the top k: the k best float scores, and every row within
  //    kSlack of the k-th of them. A float cosine here is within
  //    (dims + 4) * 2^-24 of the exact one (rounding of the unit query, a dot
  //    product of dims terms in any order, the stored norm and the division),
  //    so a row whose exact score reaches the true k-th has a float score at
  //    least the k-th float score minus twice that; kSlack is twice that
  //    again.
  // 2. The rows kept are scored again in double (ExactTerms) and ranked by
  //    that score, ties by id in byte order. Scores near a tie therefore
  //    rank as a double-precision brute-force scan ranks them, not by float
  //    rounding noise, and the score returned is the double one.
  const double kSlack = (static_cast<double>(dims_) + 8) * std::ldexp(1.0, -23);
  struct Kept {
    std::vector<float> best;   // min-heap of the k best float scores
    std::vector<Scored> rows;  // every row at or above best.front() - kSlack (and some below)
    size_t prune_at = 0;
    Status error;              // the first record that could not be read for the filter
  };
  const size_t k = options.k;
  const RecordFilter* filter = options.filter != nullptr && !options.filter->empty() ? options.filter.get() : nullptr;
  const bool filter_reads = filter != nullptr && filter->needs_record();
  auto confidence_passes = [&](float confidence) {
    return (!options.has_min_confidence || confidence >= options.min_confidence) &&
           (filter == nullptr || filter->MatchesConfidence(confidence));
  };
  // Whether the record at loc passes the conditions a column cannot answer.
  auto record_passes = [&](const Loc& loc, Status* error) {
    if (!filter_reads) return true;
    RecordView v;
    Status st = ReadAt(loc, /*verify_embedding=*/false, &v);
    if (!st.ok()) {
      if (error->ok()) *error = std::move(st);
      return false;
    }
    return filter->Matches(v);
  };
  // admitted[i - from] for rows [from, to) of r: live, not masked, passing
  // min_confidence and the filter. Returns how many are.
  auto admit_rows = [&](const ScanRange& r, size_t from, size_t to, Status* error, bool* admitted) {
    size_t n = 0;
    for (size_t i = from; i < to; ++i) {
      bool ok = false;
      switch (r.kind) {
        case ScanRange::Kind::kCold:
          ok = !((r.deleted[i / 64] >> (i % 64)) & 1) &&
               !Masked(Tier::kCold, ColdKey(ColdLoc{r.segment, static_cast<uint32_t>(i)})) &&
               confidence_passes(r.confidence[i]);
          break;
        case ScanRange::Kind::kHot:
          ok = r.info[i].key != 0 && confidence_passes(r.info[i].confidence);  // key 0: a free row
          break;
        case ScanRange::Kind::kWarm: {
          const uint8_t* block = r.WarmBlock(i);
          const uint32_t slot = r.warm.first_slot + static_cast<uint32_t>(i);
          ok = warm_block::IsLive(block) && !r.warm.PendingFree(slot) && !Masked(Tier::kWarm, slot) &&
               confidence_passes(warm_block::Confidence(block));
          break;
        }
      }
      ok = ok && record_passes(r.LocOf(i), error);
      admitted[i - from] = ok;
      n += ok ? 1 : 0;
    }
    return n;
  };
  // Scores rows [begin, end) of the concatenation of all ranges into `kept`.
  auto scan = [&](size_t begin, size_t end, Kept* kept) {
    size_t base = 0;
    // Cosine against the unit query: dot / |row|. A row whose norm is
    // outside float's comfortable range (or zero), or whose dot overflowed,
    // is scored again in double, so huge and tiny values score exactly too.
    auto offer = [&](float dot, float norm, const float* row, const Loc& loc) {
      float score = (norm >= kFloatSafeMin && norm <= kFloatSafeMax && std::isfinite(dot)) ? dot / norm : ExactCosine(row);
      // Only a damaged file can hold a non-finite value; NaN would break the
      // heap's ordering, so such a row ranks last.
      if (std::isnan(score)) score = -std::numeric_limits<float>::infinity();
      std::vector<float>& best = kept->best;
      if (best.size() < k) {
        best.push_back(score);
        std::push_heap(best.begin(), best.end(), std::greater<float>());
      } else if (score > best.front()) {
        std::pop_heap(best.begin(), best.end(), std::greater<float>());
        best.back() = score;
        std::push_heap(best.begin(), best.end(), std::greater<float>());
      } else if (static_cast<double>(score) < static_cast<double>(best.front()) - kSlack) {
        return;
      }
      kept->rows.push_back(Scored{score, 0.0, row, loc});
      if (kept->rows.size() >= kept->prune_at) {
        // Rows that fell below the bar since they were kept leave; if most
        // stay (many rows score alike), the next prune waits for twice as many.
        const double bar = best.size() < k ? -std::numeric_limits<double>::infinity()
                                           : static_cast<double>(best.front()) - kSlack;
        std::erase_if(kept->rows, [&](const Scored& r) { return static_cast<double>(r.score) < bar; });
        kept->prune_at = std::max<size_t>(2 * kept->rows.size(), 2 * k + 1024);
      }
    };
    // A block of rows at a time: first which rows are candidates (live, and
    // passing the filter), then their dot products (the whole block through
    // DotRows, or, when the filter leaves few, each candidate alone), then
    // offer them while their scalars (warm: the block header) are still
    // cached.
    constexpr size_t kScanBlock = 256;
    float dots[kScanBlock];
    bool admitted[kScanBlock];
    for (const ScanRange& r : ranges) {
      size_t lo = std::max(begin, base), hi = std::min(end, base + r.count);
      for (size_t block_lo = lo; block_lo < hi; block_lo += kScanBlock) {
        size_t from = block_lo - base, to = std::min(hi, block_lo + kScanBlock) - base;
        const size_t candidates = admit_rows(r, from, to, &kept->error, admitted);
        if (candidates == 0) continue;
        // Fewer than a quarter of the rows: scoring them one by one reads
        // only their pages.
        const bool each = candidates * 4 < to - from;
        if (each) {
          for (size_t i = from; i < to; ++i) {
            if (admitted[i - from]) r.Dots(unit.data(), i, i + 1, dims_, &dots[i - from]);
          }
        } else {
          r.Dots(unit.data(), from, to, dims_, dots);
        }
        for (size_t i = from; i < to; ++i) {
          if (admitted[i - from]) offer(dots[i - from], r.Norm(i), r.Row(i, dims_), r.LocOf(i));
        }
      }
      base += r.count;
    }
  };
  size_t total = 0;
  for (const ScanRange& r : ranges) total += r.count;
  unsigned threads = std::max(1u, options.threads);
  if (total < 4096) threads = 1;  // not worth a thread
  std::vector<Kept> heaps(threads);
  if (threads == 1) {
    scan(0, total, &heaps[0]);
  } else {
    // Threads take slices from a shared counter rather than one fixed share
    // each: rows cost differently (hot rows on huge pages, warm ones on
    // 4 KiB file pages), and a thread the machine runs slower does less.
    // About 16 slices per thread, none under 1024 rows.
    const size_t slice = std::max<size_t>(1024, total / (size_t{threads} * 16));
    std::atomic<size_t> next{0};
    auto worker = [&](Kept* heap) {
      for (size_t from = next.fetch_add(slice); from < total; from = next.fetch_add(slice)) {
        scan(from, std::min(total, from + slice), heap);
      }
    };
    std::vector<std::thread> workers;
    try {
      for (unsigned t = 1; t < threads; ++t) workers.emplace_back(worker, &heaps[t]);
    } catch (const std::system_error&) {
      // No thread to be had (resource limits): the slices the missing
      // threads would have taken are left on the counter for this one.
    }
    worker(&heaps[0]);
    for (std::thread& w : workers) w.join();
  }
  for (Kept& h : heaps) TS_RETURN_IF_ERROR(h.error);
  std::vector<Scored> all;
  for (Kept& h : heaps) all.insert(all.end(), h.rows.begin(), h.rows.end());
  // Each thread kept rows against its own k-th score; the bar is the k-th
  // float score of them all.
  if (all.size() > k) {
    std::vector<float> scores;
    scores.reserve(all.size());
    for (const Scored& c : all) scores.push_back(c.score);
    std::nth_element(scores.begin(), scores.begin() + static_cast<std::ptrdiff_t>(k - 1), scores.end(),
                     std::greater<float>());
    const double bar = static_cast<double>(scores[k - 1]) - kSlack;
    std::erase_if(all, [&](const Scored& c) { return static_cast<double>(c.score) < bar; });
  }
  // Step 2: exact scores. An all-zero query scores 0 against everything.
  if (qnorm_d > 0) {
    const double qq = ExactTerms(query, query, dims_).nn;
    for (Scored& c : all) {
      const DotAndNorm t = ExactTerms(query, c.row, dims_);
      // A true cosine lies in [-1, 1]; rounding can overshoot by an ulp.
      c.exact = t.nn > 0 ? std::clamp(t.dot / std::sqrt(qq * t.nn), -1.0, 1.0) : 0.0;
      // Only a damaged file holds a non-finite value (see offer): last.
      if (std::isnan(c.exact)) c.exact = -std::numeric_limits<double>::infinity();
    }
  }
  // The k best by exact score, ties by id. The views ReadAt gives stay valid
  // while the lock is held, so each row returned is read once (its id and
  // record together); only rows tied with the k-th, when there are more of
  // them than places left (an all-zero query ties every row), are read for
  // their ids first.
  auto id_of = [&](const Loc& loc) -> std::string_view {
    RecordView v;
    return ReadAt(loc, false, &v).ok() ? v.id : std::string_view();
  };
  const size_t n = std::min(k, all.size());
  if (all.size() > n) {
    std::nth_element(all.begin(), all.begin() + static_cast<std::ptrdiff_t>(n - 1), all.end(),
                     [](const Scored& a, const Scored& b) { return a.exact > b.exact; });
    const double kth = all[n - 1].exact;
    auto tied = std::partition(all.begin(), all.end(), [&](const Scored& c) { return c.exact > kth; });
    auto tied_end = std::partition(tied, all.end(), [&](const Scored& c) { return c.exact == kth; });
    const size_t need = n - static_cast<size_t>(tied - all.begin());
    if (static_cast<size_t>(tied_end - tied) > need) {
      std::vector<std::pair<std::string_view, Scored>> group;
      group.reserve(static_cast<size_t>(tied_end - tied));
      for (auto it = tied; it != tied_end; ++it) group.emplace_back(id_of(it->loc), *it);
      std::partial_sort(group.begin(), group.begin() + static_cast<std::ptrdiff_t>(need), group.end(),
                        [](const auto& a, const auto& b) { return a.first < b.first; });
      for (size_t i = 0; i < need; ++i) tied[static_cast<std::ptrdiff_t>(i)] = group[i].second;
    }
    all.resize(n);
  }
  struct Hit {
    RecordView view;
    double exact;
    Tier tier;
  };
  std::vector<Hit> hits;
  hits.reserve(n);
  for (const Scored& c : all) {
    Hit h{RecordView(), c.exact, c.loc.tier};
    TS_RETURN_IF_ERROR(ReadAt(c.loc, options.include_embeddings, &h.view));
    hits.push_back(h);
  }
  std::sort(hits.begin(), hits.end(), [](const Hit& a, const Hit& b) {
    return a.exact != b.exact ? a.exact > b.exact : a.view.id < b.view.id;
  });
  for (const Hit& h : hits) {
    result->records.Append(h.tier, h.view, options.include_embeddings, dims_);
    result->scores.push_back(h.exact);
  }
  return Status::OK();
}

// ---------------------------------------------------------------------------
// Iterator

Status IteratorImpl::Next(size_t max, bool include_embeddings, RecordBatch* out) {
  out->Clear();
  if (max == 0) return Status::InvalidArgument("batch size must be >= 1");
  std::shared_lock<std::shared_mutex> lock(store_->mutex());
  std::lock_guard<std::mutex> g(mu_);
  if (closed_) return Status::StoreClosed("the iterator's store is closed");
  TS_RETURN_IF_ERROR(store_->CheckOpen());
  TS_RETURN_IF_ERROR(store_->ScanLocked(&state_, max, include_embeddings, out, this, filter_.get()));
  while (state_.phase >= 3 && out->size() < max && !pending_.empty()) {
    auto first = pending_.begin();
    TS_RETURN_IF_ERROR(store_->AppendCurrent(first->second, first->first, include_embeddings, out, filter_.get()));
    pending_.erase(first);
  }
  return Status::OK();
}

void IteratorImpl::Close() {
  // Lock order everywhere: store mutex, then iterator mutex, then the
  // store's iterator-list mutex.
  std::shared_lock<std::shared_mutex> lock(store_->mutex());
  std::lock_guard<std::mutex> g(mu_);
  if (store_ && !closed_) store_->Unregister(this);
  closed_ = true;
  skip_.clear();
  pending_.clear();
}

void IteratorImpl::OnMove(uint64_t seq, std::string_view id, Tier from, uint64_t from_key, Tier to, uint64_t to_key) {
  if (seq > max_seq_) return;  // written after this iterator began: never yielded
  bool yielded;
  if (skip_.count(seq) || left_.count(seq)) {
    yielded = true;
  } else if (pending_.count(seq)) {
    yielded = false;
  } else {
    yielded = state_.Passed(from, from_key);
  }
  const bool will_visit = state_.InScope(to) && !state_.Passed(to, to_key);
  if (yielded && will_visit) {
    skip_.insert(seq);
  } else {
    skip_.erase(seq);
  }
  if (yielded && !state_.InScope(to)) {
    left_.insert(seq);
  } else {
    left_.erase(seq);
  }
  if (!yielded && !will_visit && state_.selector == TierSelector::kAll) {
    pending_.emplace(seq, std::string(id));
  } else {
    pending_.erase(seq);
  }
}

}  // namespace

}  // namespace tierstore
