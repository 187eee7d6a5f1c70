// Moving records between tiers and keeping the files in shape: migration
// (capacity demotion and Migrate), the cold segment merges and the manifest
// list of segments they need, log checkpoints, Flush and Compact.
#include <algorithm>
#include <functional>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "store_impl.h"

namespace tierstore {

Status StoreImpl::RelocateCold(const std::function<Status(const std::function<void(ColdLoc, ColdLoc)>&)>& op) {
  // Merges change (segment, row) but not cold keys; only the index follows.
  std::unordered_map<uint64_t, ColdLoc> moved;
  TS_RETURN_IF_ERROR(op([&](ColdLoc from, ColdLoc to) {
    moved.emplace(ColdKey(from), to);
  }));
  if (moved.empty()) return Status::OK();
  index_.ForEach([&](std::string_view, Location& loc) {
    if (loc.tier() != Tier::kCold) return;
    auto m = moved.find(ColdKey(loc.cold()));
    if (m != moved.end()) loc = Location::Cold(m->second);
  });
  return Status::OK();
}

Status StoreImpl::SealColdStaging(const WriteOptions& opts) {
  if (!cold_->HasStaged()) return Status::OK();
  TS_RETURN_IF_ERROR(RelocateCold([&](const auto& relocate) REQUIRES(mu_) {
    return cold_->SealStaging(opts.sync, relocate);
  }));
  return ListNewSegments(opts);
}

Status StoreImpl::AppendCold(const RecordView* recs, size_t n, const WriteOptions& opts, std::vector<ColdLoc>* locs) {
  TS_RETURN_IF_ERROR(SealColdStaging(opts));
  return cold_->Append(recs, n, opts.sync, locs);
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
  return [this, sync = opts.sync](const std::vector<uint32_t>& after) REQUIRES(mu_) { return WriteDirtyManifest(after, sync); };
}

Status StoreImpl::MergeColdIfNeeded(const WriteOptions& opts, bool* listed) {
  return RelocateCold([&](const auto& relocate) REQUIRES(mu_) {
    auto list = ListSegmentsBeforeUnlink(opts);
    return cold_->MergeIfNeeded(kMaxColdSegments, opts.sync, relocate, [&](const std::vector<uint32_t>& after) REQUIRES(mu_) {
      Status s = list(after);
      if (s.ok() && listed != nullptr) *listed = true;
      return s;
    });
  });
}

Status StoreImpl::Migrate(const WriteOptions& opts, MigrationReport* report) {
  WriterLock lock(mu_);
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
  std::vector<HotRecord*> records;
  records.reserve(cand.size());
  for (const Candidate& c : cand) records.push_back(c.record);
  return DemoteHotRecords(records, dest, opts, report);
}

void StoreImpl::PlanDirectPut(const std::vector<RecordView>& views, const WriteOptions& opts, DirectPlan* plan) {
  plan->direct.assign(views.size(), 0);
  plan->direct_count = 0;
  plan->demote_hot.clear();
  // Straight to warm only: a cold destination (skipWarm) seals segments,
  // which the log's sequence marks do not cover. A version 3 log holds no
  // marks (the first writable open rewrites it).
  if (opts.skip_warm || log_->version() < 4) return;
  if (hot_.size() + views.size() <= opts.hot_capacity) return;  // room for all: no lookup needed
  std::unordered_set<uint64_t> superseded;  // hot keys of records the batch replaces
  for (size_t k = 0; k < views.size(); ++k) {
    if (k + kIndexPrefetch < views.size()) index_.Prefetch(views[k + kIndexPrefetch].id);
    const Location* at = index_.Find(views[k].id);
    if (at != nullptr && at->tier() == Tier::kHot) superseded.insert(at->hot_key());
  }
  const uint64_t after = hot_.size() - superseded.size() + views.size();
  if (after <= opts.hot_capacity) return;
  // What MigrateLocked would demote once the batch were in hot: the same
  // count (down to the capacity less its slack) and the same order, the
  // batch's records after every hot one in arrival order.
  const uint64_t slack = std::min<uint64_t>(opts.hot_capacity / 8, 4096);
  const size_t count = static_cast<size_t>(after - (opts.hot_capacity - slack));
  std::vector<Candidate> cand;
  cand.reserve(static_cast<size_t>(after));
  for (const auto& e : hot_) {
    if (superseded.count(e.key()) == 0) cand.push_back({e.value()->activation, e.value()->last_access_at, e.key(), e.value()});
  }
  constexpr uint64_t kBatchPosition = uint64_t{1} << 63;  // past every hot key
  for (size_t k = 0; k < views.size(); ++k) {
    cand.push_back({views[k].activation, views[k].last_access_at, kBatchPosition + k, nullptr});
  }
  KeepLowest(&cand, count);
  for (const Candidate& c : cand) {
    if (c.record != nullptr) {
      plan->demote_hot.push_back(c.record);
    } else {
      plan->direct[static_cast<size_t>(c.position - kBatchPosition)] = 1;
      ++plan->direct_count;
    }
  }
}

Status StoreImpl::DemoteHotRecords(const std::vector<HotRecord*>& records, Tier dest, const WriteOptions& opts,
                                   MigrationReport* report) {
  for (size_t start = 0; start < records.size(); start += kMigrationBatch) {
    size_t end = std::min(records.size(), start + kMigrationBatch);
    ++report->batches;
    if (dest == Tier::kWarm) {
      for (size_t i = start; i < end; ++i) {
        // Candidates are in activation order, their records anywhere in
        // memory: fetch a few ahead (a cache miss per record otherwise).
        if (i + 8 < end) __builtin_prefetch(records[i + 8]);
        if (i + 4 < end) {
          __builtin_prefetch(records[i + 4]->bytes());
          __builtin_prefetch(records[i + 4]->embedding());
        }
        HotRecord* rec = records[i];
        Location from = Location::Hot(rec->key);
        uint32_t slot = 0;
        TS_RETURN_IF_ERROR(warm_->Insert(rec->View(), &slot));  // destination first
        Location to = Location::Warm(slot);
        *index_.Find(rec->id()) = to;
        ++warm_count_;
        ++report->hot_to_warm;
        NotifyMove(rec->seq, rec->id(), from, to);
        TakeHot(from);  // the log still holds it; recovery prefers the colder copy on a tie
      }
    } else {
      std::vector<RecordView> views;
      views.reserve(end - start);
      for (size_t i = start; i < end; ++i) views.push_back(records[i]->View());
      std::vector<ColdLoc> locs;
      TS_RETURN_IF_ERROR(AppendCold(views.data(), views.size(), opts, &locs));
      for (size_t i = start; i < end; ++i) {
        HotRecord* rec = records[i];
        Location from = Location::Hot(rec->key);
        Location to = Location::Cold(locs[i - start]);
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
      const uint32_t slot = static_cast<uint32_t>(cand[i].position);
      TS_RETURN_IF_ERROR(warm_->Read(slot, true, &views[i - start]));
      // The slot was chosen from the tier, not the index (which an open may
      // have taken from id.index): the record must be the one the index
      // places there, or nothing is copied.
      const Location* at = index_.Find(views[i - start].id);
      if (at == nullptr || at->tier() != Tier::kWarm || at->warm_slot() != slot) {
        return Status::Corruption(FileOf(Location::Warm(slot)) + ": slot " + std::to_string(slot) +
                                  " holds a record the id index does not place there");
      }
    }
    std::vector<ColdLoc> locs;
    TS_RETURN_IF_ERROR(AppendCold(views.data(), views.size(), opts, &locs));
    for (size_t i = start; i < end; ++i) {
      Location from = Location::Warm(static_cast<uint32_t>(cand[i].position));
      Location to = Location::Cold(locs[i - start]);
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
  // Staged cold rows have no copy but their stage entries: they are sealed
  // into a segment before the log forgets those.
  WriteOptions seal_opts;
  seal_opts.sync = durable;
  TS_RETURN_IF_ERROR(SealColdStaging(seal_opts));
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
  TS_RETURN_IF_ERROR(log_->Rewrite(ptrs, seq_));
  hot_.ClearAccessDirty();
  return Status::OK();
}

Status StoreImpl::MaybeCheckpointLog(bool durable) {
  uint64_t size = log_->size();
  if (size < kLogCheckpointMinBytes || size < 4 * hot_.bytes() + (16ull << 20)) return Status::OK();
  return CheckpointLog(durable);
}

Status StoreImpl::LogDirtyAccess() {
  TS_RETURN_IF_ERROR(log_->AppendAccess(hot_.DirtyAccess(), /*durable=*/true));  // flush and close sync next
  hot_.ClearAccessDirty();
  return Status::OK();
}

Status StoreImpl::Flush() {
  WriterLock lock(mu_);
  TS_RETURN_IF_ERROR(CheckOpen());
  if (read_only_) return Status::OK();
  TS_RETURN_IF_ERROR(LogDirtyAccess());
  TS_RETURN_IF_ERROR(log_->Sync());
  // Staged cold rows keep their access statistics in memory only: a
  // segment holds them from the seal on.
  WriteOptions durable;
  durable.sync = true;
  TS_RETURN_IF_ERROR(SealColdStaging(durable));
  return SyncLowerTiers();
}

Status StoreImpl::Compact(const WriteOptions& opts, CompactionReport* report) {
  WriterLock lock(mu_);
  TS_RETURN_IF_ERROR(CheckWritable());
  report->hot_log_bytes_before = log_->size();
  TS_RETURN_IF_ERROR(CheckpointLog(true));
  report->hot_log_bytes_after = log_->size();
  TS_RETURN_IF_ERROR(warm_->Compact(&report->warm_bytes_reclaimed));
  report->cold_segments_before = cold_->Stats().segments;
  TS_RETURN_IF_ERROR(RelocateCold([&](const auto& relocate) REQUIRES(mu_) {
    return cold_->Compact(opts.sync, relocate, &report->cold_bytes_reclaimed, ListSegmentsBeforeUnlink(opts));
  }));
  report->cold_segments_after = cold_->Stats().segments;
  return Status::OK();
}

}  // namespace tierstore
