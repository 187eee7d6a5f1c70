// Opening and closing a StoreImpl: the in-process registry (one StoreImpl
// per path, shared by every Open of it), the read-only / writable swap in
// place, the manifest an open store keeps current, and the clean close.
#include <fcntl.h>
#include <stdlib.h>

#include <cerrno>
#include <condition_variable>
#include <random>
#include <string>
#include <unordered_map>

#include "store_impl.h"

namespace tierstore {

namespace {

// ---------------------------------------------------------------------------
// Registry: one StoreImpl per canonical path in this process.

}  // namespace

Mutex g_registry_mu;

namespace {

std::unordered_map<std::string, std::weak_ptr<StoreImpl>>& Registry() REQUIRES(g_registry_mu) {
  static std::unordered_map<std::string, std::weak_ptr<StoreImpl>> reg;
  return reg;
}
// Paths whose last handle is closing its files now (Release, after the
// registry entry went), with how many such closes run. An open of the same
// path waits for them: it would otherwise find the file lock still held by
// this very process and report STORE_LOCKED (worker threads opening and
// closing one path at once).
std::unordered_map<std::string, int>& Closing() REQUIRES(g_registry_mu) {
  static std::unordered_map<std::string, int> closing;
  return closing;
}
std::condition_variable& ClosingDone() {
  static std::condition_variable done;
  return done;
}

uint64_t NewStoreId() {
  std::random_device rd;
  uint64_t id = 0;
  while (id == 0) id = (uint64_t{rd()} << 32) ^ rd();
  return id;
}

}  // namespace

// ---------------------------------------------------------------------------
// Open

StoreImpl::~StoreImpl() {
  WriterLock lock(mu_);
  CloseFiles();
}

Status StoreImpl::OpenFiles(uint32_t dimensions) {
  // No one else holds this store yet: the lock is for the analysis's sake.
  WriterLock lock(mu_);
  return OpenFilesLocked(dimensions);
}

Status StoreImpl::OpenFilesLocked(uint32_t dimensions) {
  TS_RETURN_IF_ERROR(lock_.Acquire(path_, !read_only_));
  Manifest manifest;
  bool created = false;
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
    created = true;
  }
  dims_ = manifest.dimensions;
  store_id_ = manifest.store_id;
  hot_.Init(dims_);

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
  // The persisted index stands in for reading every warm block and cold
  // row when the last writer closed cleanly right after writing it (the
  // clean manifest names its token) and it agrees with the manifest.
  IndexFileInfo index_info;
  // (A store created just now has no index and nothing to build it from.)
  IndexRejection rejection = created ? IndexRejection::kNone : IndexRejection::kUnclean;
  if (manifest.clean) {
    IdIndex<Location> loaded;
    if (manifest.index_token == 0) {
      rejection = PathExists(JoinPath(path_, kIndexFileName)) ? IndexRejection::kStale : IndexRejection::kMissing;
    } else if (LoadIndexFile(path_, dims_, &loaded, &index_info, &index_file_bytes_, &rejection).ok()) {
      const bool agrees = index_info.store_id == store_id_ && index_info.token == manifest.index_token &&
                          index_info.sequence <= manifest.sequence_floor &&
                          index_info.warm_count == manifest.warm_records &&
                          index_info.cold_count == manifest.cold_records && index_info.warm.live == index_info.warm_count;
      if (agrees) {
        index_.Swap(loaded);
      } else {
        rejection = IndexRejection::kStale;
      }
    }
  }
  bool from_index = rejection == IndexRejection::kNone && !created;
  if (from_index) {
    // A state that does not fit the block file is the index's fault until
    // the scan below says otherwise.
    if (!WarmTier::Open(path_, dims_, read_only_, /*after_crash=*/false, &index_info.warm, &warm_).ok()) {
      index_.Clear();
      from_index = false;
      rejection = IndexRejection::kDamaged;
    }
  }
  if (!from_index) TS_RETURN_IF_ERROR(WarmTier::Open(path_, dims_, read_only_, !manifest.clean, &warm_));
  TS_RETURN_IF_ERROR(ColdTier::Open(path_, dims_, read_only_, /*verify_columns=*/!from_index, &cold_));
  TS_RETURN_IF_ERROR(CheckInventory(manifest));
  index_rejection_ = rejection;
  index_rebuilt_ = !from_index && !created;
  if (from_index) {
    warm_count_ = index_info.warm_count;
    cold_count_ = index_info.cold_count;
    seq_ = std::max(seq_, index_info.sequence);
    // The warm slots' filter entries of the same clean close, mapped (its
    // header page read). Best effort: without them the first filtered scan
    // makes them from the blocks.
    (void)warm_->AdoptFilterFile(store_id_, manifest.index_token);
  }
  TS_RETURN_IF_ERROR(Recover(manifest, from_index));
  if (index_rebuilt_ && !read_only_) {
    // Rebuilt: written now too, so the file exists from the first writable
    // open on (it is trusted only once a clean close names it). Best effort:
    // the clean close writes it again, and the next open rebuilds without it.
    uint64_t token = 0;
    (void)WriteIndex(/*durable=*/false, &token);
  }
  if (index_file_bytes_ == 0) {
    File f;
    uint64_t size = 0;
    if (File::Open(JoinPath(path_, kIndexFileName), O_RDONLY, &f).ok() && f.Size(&size).ok()) index_file_bytes_ = size;
  }
  opened_ = true;
  return Status::OK();
}

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

  MutexLock g(g_registry_mu);
  g.Wait(ClosingDone(), [&]() REQUIRES(g_registry_mu) { return Closing().count(canonical) == 0; });
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

Status StoreImpl::UpgradeToWritable(uint32_t dimensions) {
  WriterLock lock(mu_);
  TS_RETURN_IF_ERROR(CheckOpen());
  if (!read_only_) return Status::OK();
  {
    MutexLock g(iter_mu_);
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
  WriterLock lock(mu_);
  if (closed_ || read_only_) return;
  {
    MutexLock g(iter_mu_);
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
  WriterLock other_lock(other.mu_);
  swap(store_id_, other.store_id_);
  swap(opened_, other.opened_);
  lock_.Swap(other.lock_);
  swap(log_, other.log_);
  swap(warm_, other.warm_);
  swap(cold_, other.cold_);
  hot_.Swap(other.hot_);
  index_.Swap(other.index_);
  swap(seq_, other.seq_);
  swap(warm_count_, other.warm_count_);
  swap(cold_count_, other.cold_count_);
  swap(recovered_duplicates_, other.recovered_duplicates_);
  swap(torn_warm_copies_, other.torn_warm_copies_);
  swap(uncommitted_warm_blocks_, other.uncommitted_warm_blocks_);
  swap(torn_log_bytes_, other.torn_log_bytes_);
  swap(index_rejection_, other.index_rejection_);
  swap(index_rebuilt_, other.index_rebuilt_);
  swap(index_file_bytes_, other.index_file_bytes_);
  swap(masked_warm_, other.masked_warm_);
  swap(masked_cold_, other.masked_cold_);
}

void StoreImpl::Release(bool writable) {
  {
    MutexLock g(g_registry_mu);
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
        MutexLock g(g_registry_mu);
        auto c = Closing().find(path);
        if (c != Closing().end() && --c->second == 0) Closing().erase(c);
      }
      ClosingDone().notify_all();
    }
  } notice{path_};
  WriterLock lock(mu_);
  CloseFiles();
}

Status StoreImpl::WriteDirtyManifest(bool durable) { return WriteDirtyManifest(cold_->Stats().segment_ids, durable); }

Status StoreImpl::WriteDirtyManifest(const std::vector<uint32_t>& segments, bool durable) {
  Manifest m;
  m.dimensions = dims_;
  m.store_id = store_id_;
  m.clean = false;
  m.sequence_floor = seq_;
  m.cold_segments = segments;
  return m.Write(path_, durable);
}

Status StoreImpl::WriteIndex(bool durable, uint64_t* token) {
  // The warm and cold entries: a copy of the index without the hot ones
  // (the log holds those).
  IdIndex<Location> lower;
  std::vector<std::string> hot_ids;
  IndexFileInfo info;
  try {
    lower.CopyFrom(index_);
    hot_ids.reserve(hot_.size());
    // NO_THREAD_SAFETY_ANALYSIS: ForEach calls the lambda right here, with
    // mu_ held; the analysis does not follow the template.
    index_.ForEach([&](std::string_view id, const Location& loc) NO_THREAD_SAFETY_ANALYSIS {
      if (loc.tier() == Tier::kHot) hot_ids.emplace_back(id);
    });
    info.warm = warm_->OpenState();
  } catch (const std::bad_alloc&) {
    return Status::IoError("out of memory writing " + JoinPath(path_, kIndexFileName));
  }
  for (const std::string& id : hot_ids) lower.Erase(id);
  info.store_id = store_id_;
  info.token = NewStoreId();
  info.sequence = seq_;
  info.warm_count = warm_count_;
  info.cold_count = cold_count_;
  TS_RETURN_IF_ERROR(WriteIndexFile(path_, dims_, lower, info, durable, &index_file_bytes_));
  *token = info.token;
  return Status::OK();
}

Status StoreImpl::WriteCleanManifest(uint64_t index_token) {
  Manifest m;
  m.index_token = index_token;
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
    MutexLock g(iter_mu_);
    for (IteratorImpl* it : iterators_) it->MarkStoreClosed();
    iterators_.clear();
  }
  if (opened_ && !read_only_) {
    // Best effort: a failure here leaves the store marked unclean, which the
    // next open handles as after a crash (nothing acknowledged is lost).
    Status s = LogDirtyAccess();
    // Staged cold rows go into a segment: the persisted index names only
    // rows in files. (Failing, the manifest stays dirty and the next open
    // restages them from the log.)
    if (s.ok()) {
      WriteOptions durable;
      durable.sync = true;
      s = SealColdStaging(durable);
    }
    // At close the log is rewritten as soon as it holds noticeably more than
    // the hot records (copies of records that moved down, tombstones), so
    // the next open replays only what is hot.
    if (s.ok() && log_->size() > 2 * hot_.bytes() + (1u << 20)) s = CheckpointLog(true);
    // Segments merged away but not yet unlinked (their manifest update had
    // failed) go now; a clean manifest must list exactly the segments.
    if (s.ok() && !cold_->Stats().orphan_segment_ids.empty()) s = MergeColdIfNeeded(WriteOptions{});
    if (s.ok()) s = SyncLowerTiers();
    if (s.ok()) s = log_->Trim();  // the clean manifest records the file's size
    if (s.ok()) s = log_->Sync();
    // The index after everything it describes is on disk, the manifest
    // naming it last: a crash in between leaves a dirty manifest (or one
    // naming the old token), and the next open rebuilds.
    uint64_t token = 0;
    if (s.ok() && !WriteIndex(/*durable=*/true, &token).ok()) token = 0;  // the next open rebuilds
    // The warm filter entries under the same token. Best effort: a file
    // that is missing or not this close's is only slower (made again).
    if (s.ok() && token != 0) (void)warm_->WriteFilterFile(store_id_, token, /*durable=*/true);
    if (s.ok()) s = WriteCleanManifest(token);
    if (s.ok()) warm_->TrimAtClose();
  }
  hot_.Clear();
  index_.Clear();
  cold_.reset();
  warm_.reset();
  log_.reset();
  lock_.Release();
}

}  // namespace tierstore
