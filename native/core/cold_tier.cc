// ColdTier implementation: see cold_tier.h for the contract. This file is
// the tier: its set of segments, their locking, scans, merges and
// compaction. A segment file's format is docs/format/cold.md and
// cold_format.h; cold_segment.h reads one, cold_segment_writer.h writes one.
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

#include "cold_filter_file.h"
#include "cold_segment.h"
#include "cold_segment_writer.h"
#include "cold_staging.h"
#include "crc32c.h"
#include "file_util.h"
#include "mutex.h"

namespace tierstore {

std::string ColdSegmentFileName(uint32_t id) { return cold::SegmentName(id); }

namespace {

using namespace cold;

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

// The signatures of a segment's rows, loaded on the first call (from its
// filter file, else made from its metadata column: cold_filter_file.h) and
// kept with the segment. rewrite: a writable tier writes a filter file that
// was missing or damaged again.
const MetadataSignature* SignaturesOf(const cold::Segment& s, bool rewrite) {
  MutexLock lock(s.signatures_mu);
  if (s.signatures == nullptr) s.signatures = LoadSignatures(s, rewrite);
  return s.signatures.get();
}

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
  ColdTierImpl(std::string dir, uint32_t dims, bool read_only)
      : dir_(std::move(dir)), dims_(dims), read_only_(read_only), staging_(dims) {}

  Status Load(bool verify_columns) {
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
      if (id == kColdStagingSegment) {
        return Status::Corruption(JoinPath(dir_, name) + ": segment id 0 is never written (it names staged rows)");
      }
      std::unique_ptr<Segment> seg;
      TS_RETURN_IF_ERROR(OpenSegment(JoinPath(dir_, name), id, dims_, read_only_, verify_columns, &seg));
      next_id_ = std::max<uint64_t>(next_id_, uint64_t{id} + 1);
      next_key_ = std::max(next_key_, seg->max_key + 1);
      segs_.push_back(std::move(seg));
    }
    Reindex();
    sealed_below_ = next_key_;
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
          if (!prev->Fill(prev_row, &a)) return prev->BadOffsets(prev_row);
          if (!s->Fill(r, &b)) return s->BadOffsets(r);
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
    const std::unordered_set<std::string> listed(names.begin(), names.end());
    for (const auto& name : names)
      if (IsStaleTmp(name) || IsOrphanFilter(name, listed)) TS_RETURN_IF_ERROR(RemoveFile(JoinPath(dir_, name)));
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
        if (!s->Fill(r, &v)) return s->BadOffsets(r);
        TS_RETURN_IF_ERROR(fn(ColdLoc{s->id, static_cast<uint32_t>(r)}, s->Key(r), v));
      }
    }
    for (uint64_t r = staging_.NextLive(0); r < staging_.rows(); r = staging_.NextLive(r + 1)) {
      staging_.Fill(r, &v);
      TS_RETURN_IF_ERROR(fn(StagedLoc(r), staging_.Key(r), v));
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
    for (size_t i = 0; i < n; ++i) TS_RETURN_IF_ERROR(CheckRow(recs[i]));
    MutexLock wlock(write_mu_);
    {
      ReaderLock lock(mu_);
      if (!staging_.empty()) return Status::InvalidArgument("cold append while rows are staged: seal them first");
    }
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

  Status Stage(const RecordView& rec, ColdLoc* loc, uint64_t* key) override {
    if (read_only_) return Status::ReadOnly("the cold tier in " + dir_ + " is open read-only");
    TS_RETURN_IF_ERROR(NotInScan("Stage"));
    TS_RETURN_IF_ERROR(CheckRow(rec));
    MutexLock wlock(write_mu_);
    WriterLock lock(mu_);
    if (next_key_ == std::numeric_limits<uint64_t>::max()) return Status::IoError("cold keys exhausted in " + dir_);
    if (staging_.rows() >= std::numeric_limits<uint32_t>::max()) return Status::IoError("cold staging full in " + dir_);
    uint32_t row = 0;
    try {
      row = staging_.Add(rec, next_key_);
    } catch (const std::bad_alloc&) {
      return Status::IoError("out of memory staging a cold record in " + dir_);
    }
    *key = next_key_++;
    *loc = StagedLoc(row);
    return Status::OK();
  }

  void Unstage(ColdLoc loc) override {
    WriterLock lock(mu_);
    if (IsStaged(loc) && !staging_.empty() && loc.row + uint64_t{1} == staging_.rows()) staging_.PopBack();
  }

  Status Restage(const RecordView& rec, uint64_t key, bool* staged) override {
    *staged = false;
    TS_RETURN_IF_ERROR(CheckRow(rec));
    MutexLock wlock(write_mu_);
    WriterLock lock(mu_);
    if (key < sealed_below_) return Status::OK();  // sealed since (or deleted before its seal)
    if (!staging_.empty() && key <= staging_.LastKey()) {
      return Status::Corruption("the hot log stages cold key " + std::to_string(key) + " after key " +
                                std::to_string(staging_.LastKey()) + " (keys must ascend)");
    }
    if (key == std::numeric_limits<uint64_t>::max()) return Status::Corruption("the hot log stages an impossible cold key");
    try {
      staging_.Add(rec, key);
    } catch (const std::bad_alloc&) {
      return Status::IoError("out of memory staging a cold record in " + dir_);
    }
    next_key_ = std::max(next_key_, key + 1);
    *staged = true;
    return Status::OK();
  }

  Status SealStaging(bool durable, const ColdRelocate& relocate) override {
    if (read_only_) return Status::ReadOnly("the cold tier in " + dir_ + " is open read-only");
    TS_RETURN_IF_ERROR(NotInScan("SealStaging"));
    std::vector<std::pair<ColdLoc, ColdLoc>> moves;
    {
      // Exclusive for the whole seal: no staged row may change between
      // being copied and being dropped (the Store holds its own exclusive
      // lock around this anyway, so no reader waits on it alone).
      MutexLock wlock(write_mu_);
      WriterLock lock(mu_);
      if (staging_.empty()) return Status::OK();
      std::vector<RecordView> views;
      std::vector<uint64_t> keys, rows;
      views.reserve(staging_.live());
      keys.reserve(staging_.live());
      rows.reserve(staging_.live());
      for (uint64_t r = staging_.NextLive(0); r < staging_.rows(); r = staging_.NextLive(r + 1)) {
        RecordView v;
        staging_.Fill(r, &v);
        views.push_back(v);
        keys.push_back(staging_.Key(r));
        rows.push_back(r);
      }
      if (!views.empty()) {
        uint32_t id = 0;
        TS_RETURN_IF_ERROR(NewSegmentId(&id));
        TS_RETURN_IF_ERROR(CreateDirectories(dir_));
        KeyedSource src(views.data(), keys.data(), views.size());
        std::unique_ptr<Segment> seg;
        TS_RETURN_IF_ERROR(Seal(id, src, durable, &seg));
        segs_.push_back(std::move(seg));
        Reindex();
        moves.reserve(rows.size());
        for (size_t i = 0; i < rows.size(); ++i) moves.push_back({StagedLoc(rows[i]), ColdLoc{id, static_cast<uint32_t>(i)}});
      }
      staging_.Clear();  // the views above die here
    }
    if (relocate)
      for (const auto& m : moves) relocate(m.first, m.second);
    return Status::OK();
  }

  bool HasStaged() const override {
    ReentrantReaderLock lock(mu_, this);
    return !staging_.empty();
  }

  bool StagingFull() const override {
    ReentrantReaderLock lock(mu_, this);
    return staging_.rows() >= kColdStagingMaxRows || staging_.bytes() >= kColdStagingMaxBytes;
  }

  Status Read(ColdLoc loc, bool verify_embedding, RecordView* out) const override {
    ReentrantReaderLock lock(mu_, this);
    if (IsStaged(loc)) {
      // Held in memory since it was verified and logged: no checksum here.
      if (loc.row >= staging_.rows()) return BadLoc(loc);
      staging_.Fill(loc.row, out);
      return Status::OK();
    }
    const Segment* s = Find(loc);
    if (s == nullptr) return BadLoc(loc);
    if (!s->Fill(loc.row, out)) return s->BadOffsets(loc.row);
    return s->VerifyRow(loc.row, *out, verify_embedding);
  }

  uint64_t KeyOf(ColdLoc loc) const override {
    ReentrantReaderLock lock(mu_, this);
    if (IsStaged(loc)) return loc.row < staging_.rows() ? staging_.Key(loc.row) : 0;
    const Segment* s = Find(loc);
    return s ? s->Key(loc.row) : 0;
  }

  bool IsLive(ColdLoc loc) const override {
    ReentrantReaderLock lock(mu_, this);
    if (IsStaged(loc)) return loc.row < staging_.rows() && !staging_.Deleted(loc.row);
    const Segment* s = Find(loc);
    return s != nullptr && !s->Deleted(loc.row);
  }

  using ColdTier::Delete;
  Status Delete(ColdLoc loc, bool durable) override {
    if (read_only_) return Status::ReadOnly("the cold tier in " + dir_ + " is open read-only");
    TS_RETURN_IF_ERROR(NotInScan("Delete"));
    WriterLock lock(mu_);
    if (IsStaged(loc)) {
      // Memory only: the Store's log holds the deletion until a seal.
      if (loc.row >= staging_.rows()) return BadLoc(loc);
      (void)staging_.Delete(loc.row);
      return Status::OK();
    }
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
    std::vector<uint64_t> staged;
    for (size_t i = 0; i < n; ++i) {
      if (IsStaged(locs[i])) {
        if (locs[i].row >= staging_.rows()) return BadLoc(locs[i]);
        staged.push_back(locs[i].row);
        continue;
      }
      Segment* s = Find(locs[i]);
      if (s == nullptr) return BadLoc(locs[i]);
      auto [it, inserted] = group_of.emplace(s->id, groups.size());
      if (inserted) groups.push_back({s, {}});
      groups[it->second].second.push_back(locs[i].row);
    }
    for (const auto& [s, rows] : groups)
      if (s->generation == std::numeric_limits<uint64_t>::max())
        return s->Corrupt("deletion bitmap generation exhausted");
    for (uint64_t r : staged) (void)staging_.Delete(r);
    // Only an msync can fail from here on (durable); segments done before
    // it keep their deletions (the Store's log holds them all anyway).
    for (const auto& [s, rows] : groups) TS_RETURN_IF_ERROR(s->CommitDeletes(rows.data(), rows.size(), durable));
    return Status::OK();
  }

  void UpdateAccess(ColdLoc loc, double last_access_at, double access_count) override {
    ReentrantReaderLock lock(mu_, this);
    if (IsStaged(loc)) {
      if (loc.row < staging_.rows()) staging_.UpdateAccess(loc.row, last_access_at, access_count);
      return;
    }
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
      // The walk relies on each segment's key order and string offsets.
      for (size_t i = it->begin; i < it->end && st.ok(); ++i) st = ptrs_[i]->EnsureStructure();
      if (!st.ok()) break;
      Walker walk(ptrs_.data() + it->begin, it->end - it->begin, false, after_key);
      const Segment* s;
      uint64_t r;
      const Segment* advised = nullptr;
      while (walk.Next(&s, &r)) {
        if (s != advised) {  // the rows this call may read of a segment it enters
          s->WillNeedRows(r, r + (max - std::min(max, seen)) + 1, verify_embedding);
          advised = s;
        }
        const uint64_t key = s->Key(r);
        if (seen >= max && !(have_last && key == last_key)) {
          full = true;  // this row (key > last_key) is the next call's first
          break;
        }
        have_last = true;
        last_key = key;
        st = s->Fill(r, &v) ? s->VerifyRow(r, v, verify_embedding) : s->BadOffsets(r);
        if (st.ok()) st = fn(ColdLoc{s->id, static_cast<uint32_t>(r)}, key, v);
        if (!st.ok()) break;
        ++seen;
      }
      if (!st.ok()) break;
      if (seen >= max) full = true;  // groups hold disjoint key ranges: no run crosses them
    }
    // Staged rows: keys above every sealed one, each key once.
    if (st.ok() && !full) {
      for (uint64_t r = staging_.NextLive(staging_.UpperBound(after_key)); r < staging_.rows() && seen < max;
           r = staging_.NextLive(r + 1)) {
        staging_.Fill(r, &v);
        st = fn(StagedLoc(r), staging_.Key(r), v);
        if (!st.ok()) break;
        ++seen;
      }
    }
    if (visited) *visited = seen;
    return st;
  }

  Status ScanSegments(const std::function<Status(const ColdSegmentView&)>& fn, bool with_signatures) const override {
    ScanLock lock(mu_, this);
    for (const Segment* s : ptrs_) {
      ColdSegmentView view;
      view.segment = s->id;
      view.rows = s->rows;
      // Each column starts 64-byte aligned in a page-aligned mapping.
      view.embeddings = reinterpret_cast<const float*>(s->base + s->off[kEmbeddings]);
      view.norms = reinterpret_cast<const float*>(s->base + s->off[kNorm]);
      view.confidence = reinterpret_cast<const float*>(s->base + s->off[kConfidence]);
      view.activation = reinterpret_cast<const float*>(s->base + s->off[kActivation]);
      view.created_at = reinterpret_cast<const double*>(s->base + s->off[kCreatedAt]);
      view.metadata_offsets = reinterpret_cast<const uint64_t*>(s->base + s->off[kMetaOffsets]);
      view.metadata_bytes = reinterpret_cast<const char*>(s->base + s->off[kMetaBytes]);
      view.metadata_size = s->size[kMetaBytes];
      // The active copy: exact under this shared lock (Delete is exclusive).
      view.deleted = reinterpret_cast<const uint64_t*>(s->ActiveWords());
      if (with_signatures) view.signatures = SignaturesOf(*s, !read_only_);
      TS_RETURN_IF_ERROR(fn(view));
    }
    if (staging_.live() > 0) TS_RETURN_IF_ERROR(fn(staging_.View(kColdStagingSegment, with_signatures)));
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
    if (n < staging_.live()) {
      *key = staging_.NthLiveKey(n);
      return true;
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

  void VerifyColumns(const std::function<void(const std::string&, const std::string&)>& fn) const override {
    ReentrantReaderLock lock(mu_, this);
    for (const auto& s : segs_) {
      Status st = s->CheckColumns();
      if (st.ok()) {
        s->columns_checked.store(true, std::memory_order_relaxed);
      } else {
        fn(s->path, st.message());
      }
    }
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
    st.live_records += staging_.live();
    st.staged_records = staging_.live();
    st.deleted_rows += staging_.rows() - staging_.live();
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

  static ColdLoc StagedLoc(uint64_t row) { return ColdLoc{kColdStagingSegment, static_cast<uint32_t>(row)}; }

  // What a row needs to fit a segment (Append, Stage, Restage).
  static Status CheckRow(const RecordView& r) {
    if (r.embedding == nullptr) return Status::InvalidArgument("cold append: record without an embedding");
    if (r.id.size() > kMaxIdBytes) return Status::InvalidArgument("cold append: id longer than 1024 bytes");
    if (r.content.size() > kMaxContentBytes) return Status::ContentTooLarge("cold append: content too large");
    if (r.metadata.size() > kMaxMetadataBytes) return Status::ContentTooLarge("cold append: metadata too large");
    return Status::OK();
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
    WriteFilterForSeal(path, src, durable);  // derived data: best effort, synced with the segment's rename
    if (durable) st = SyncDirectory(dir_);
    if (st.ok()) st = OpenSegment(path, id, dims_, read_only_, /*verify_crcs=*/false, out);
    if (st.ok()) (*out)->columns_checked.store(true, std::memory_order_relaxed);  // written just now
    if (!st.ok()) {
      RemoveFilterOf(path);
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
      // A merge copies whole columns: those an open did not check (see
      // ColdTier::Open) are checked first, so damage is never sealed into
      // a new segment under fresh checksums.
      Status checked;
      for (Segment* s : block) {
        AdviseWillNeed(s->base, static_cast<size_t>(s->file_size));  // read whole, in order
        if (!checked.ok() || s->columns_checked.load(std::memory_order_relaxed)) continue;
        checked = s->CheckColumns();
        if (checked.ok()) s->columns_checked.store(true, std::memory_order_relaxed);
      }
      uint64_t total_live = 0;
      for (const Segment* s : block) total_live += s->live;
      m.rows.reserve(total_live);
      Walker walk(block.data(), block.size(), true, 0);
      const Segment* s;
      uint64_t r;
      while (walk.Next(&s, &r)) m.rows.push_back(RowRef{s, r});
      Status st = checked;
      if (st.ok() && !m.rows.empty()) {
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
          RemoveFilterOf(path);
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
      RemoveFilterOf(u.second);
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
  // Keys below this were sealed when the tier opened: Restage skips them.
  uint64_t sealed_below_ GUARDED_BY(write_mu_) = 1;
  // Rows moved here alone, not sealed yet (see "Staging" in cold_tier.h).
  ColdStaging staging_ GUARDED_BY(mu_);
  uint64_t next_id_ GUARDED_BY(write_mu_) = 1;
  // Merged-away segments whose files are still on disk: (id, path). Written
  // under write_mu_ and mu_ (exclusive), read under either.
  std::vector<std::pair<uint32_t, std::string>> orphans_ GUARDED_BY(mu_);
};

}  // namespace

Status ColdTier::Open(const std::string& dir, uint32_t dimensions, bool read_only, std::unique_ptr<ColdTier>* out) {
  return Open(dir, dimensions, read_only, /*verify_columns=*/true, out);
}

Status ColdTier::Open(const std::string& dir, uint32_t dimensions, bool read_only, bool verify_columns,
                      std::unique_ptr<ColdTier>* out) {
  if (dimensions == 0 || dimensions > kMaxDimensions)
    return Status::InvalidArgument("cold tier: dimensions must be in 1.." + std::to_string(kMaxDimensions));
  auto tier = std::make_unique<ColdTierImpl>(dir, dimensions, read_only);
  TS_RETURN_IF_ERROR(tier->Load(verify_columns));
  *out = std::move(tier);
  return Status::OK();
}

}  // namespace tierstore
