// The record operations of StoreImpl (put, get, has, delete, move, counts,
// stats) and the plumbing between the id index and the tiers; the rest of
// the store is in the files store_impl.h lists.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <string>
#include <unordered_map>

#include "store_impl.h"

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

namespace {

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

}  // namespace

// ---------------------------------------------------------------------------
// Tier plumbing

void StoreImpl::InsertHot(std::unique_ptr<HotRecord> rec) {
  const uint64_t key = hot_.AssignKey(rec.get());
  auto [loc, inserted] = index_.TryEmplace(rec->id(), Location::Hot(key));
  if (!inserted) *loc = Location::Hot(key);
  hot_.Append(std::move(rec));
}

void StoreImpl::PlaceNewVersion(std::string_view id, const Location& to) {
  // One lookup: the older version's place is read and replaced in its slot.
  auto [loc, inserted] = index_.TryEmplace(id, to);
  if (inserted) return;
  const Location old = *loc;
  *loc = to;
  DropSuperseded(old);  // touches the tiers, not the index
}

void StoreImpl::PutHot(const RecordView& v) {
  std::unique_ptr<HotRecord> rec = hot_.Copy(v);
  const uint64_t key = hot_.AssignKey(rec.get());
  HotRecord* const r = rec.get();
  hot_.Append(std::move(rec));
  PlaceNewVersion(r->id(), Location::Hot(key));
}

std::unique_ptr<HotRecord> StoreImpl::TakeHot(const Location& loc) { return hot_.Take(loc.hot_key()); }

Status StoreImpl::ReadAt(const Location& loc, bool verify_embedding, RecordView* out) const {
  Status st;
  switch (loc.tier()) {
    case Tier::kHot: *out = HotAt(loc)->View(); return Status::OK();
    case Tier::kWarm: st = warm_->Read(loc.warm_slot(), verify_embedding, out); break;
    case Tier::kCold: st = cold_->Read(loc.cold(), verify_embedding, out); break;
  }
  // The locations come from the index: one the tier does not have came
  // from a persisted index that lies.
  if (st.code() == StatusCode::kInvalidArgument) {
    return Status::Corruption(JoinPath(path_, kIndexFileName) + ": the id index names a place that does not exist (" +
                              st.message() + ")");
  }
  return st;
}

Status StoreImpl::ReadIndexed(std::string_view id, const Location& loc, bool verify_embedding, RecordView* out) const {
  TS_RETURN_IF_ERROR(ReadAt(loc, verify_embedding, out));
  // The checksum covers the id: a copy that reads back whole as another
  // id was reached through a wrong index entry.
  if (out->id != id) {
    return Status::Corruption(JoinPath(path_, kIndexFileName) + ": the id index places a record where " + FileOf(loc) +
                              " holds another");
  }
  return Status::OK();
}

std::string StoreImpl::FileOf(const Location& loc) const {
  return loc.tier() == Tier::kWarm ? JoinPath(path_, WarmTier::kBlockFileName)
                                   : JoinPath(path_, ColdSegmentFileName(loc.cold().segment));
}

Status StoreImpl::RemoveFromTier(const Location& loc, bool superseded_in_log) {
  switch (loc.tier()) {
    case Tier::kHot: TakeHot(loc); return Status::OK();
    case Tier::kWarm: return superseded_in_log ? warm_->FreeLater(loc.warm_slot()) : warm_->Free(loc.warm_slot());
    case Tier::kCold: return cold_->Delete(loc.cold());
  }
  return Status::OK();
}

void StoreImpl::DropSuperseded(Location loc) {
  (void)RemoveFromTier(loc, /*superseded_in_log=*/true);
  if (loc.tier() != Tier::kHot) --LowerCount(loc.tier());
}

void StoreImpl::NotifyMove(uint64_t seq, std::string_view id, const Location& from, const Location& to) {
  MutexLock g(iter_mu_);
  if (iterators_.empty()) return;
  uint64_t from_key = PositionKey(from), to_key = PositionKey(to);
  for (IteratorImpl* it : iterators_) it->OnMove(seq, id, from.tier(), from_key, to.tier(), to_key);
}

// ---------------------------------------------------------------------------
// Writes

Status StoreImpl::Put(const RecordView* recs, size_t n, const WriteOptions& opts) {
  if (n == 0) {
    ReaderLock lock(mu_);
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
  WriterLock lock(mu_);
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
  DirectPlan plan;
  PlanDirectPut(views, opts, &plan);
  if (plan.direct_count > 0) {
    std::vector<uint32_t> slots;
    if (WriteDirect(views, plan, opts, &slots).ok()) return CommitDirect(views, plan, slots, opts);
    // No room in warm (or its sync failed; what it wrote is freed again):
    // the whole batch goes to the log and hot instead, as a migration that
    // cannot get disk space leaves a write.
  }
  // The log append is the commit point: before it nothing changed; after it
  // the batch survives a crash, and recovery would redo what follows.
  TS_RETURN_IF_ERROR(log_->AppendPuts(ptrs.data(), ptrs.size(), opts.sync));
  if (opts.sync) TS_RETURN_IF_ERROR(log_->Sync());
  seq_ += keep.size();
  for (size_t k = 0; k < keep.size(); ++k) {
    if (k + kIndexPrefetch < keep.size()) index_.Prefetch(views[k + kIndexPrefetch].id);
    PutHot(views[k]);  // an older version is dropped; recovery would drop it anyway
  }
  // Capacity migration inside the write: the records are safe in the log
  // already, so a failure here leaves them in hot for the next attempt.
  MigrationReport ignored;
  (void)MigrateLocked(opts, false, &ignored);
  (void)MaybeCheckpointLog(opts.sync);
  return Status::OK();
}

Status StoreImpl::WriteDirect(const std::vector<RecordView>& views, const DirectPlan& plan, const WriteOptions& opts,
                              std::vector<uint32_t>* slots) {
  // The records the plan sends down are written to warm blocks, whole and
  // live, but reachable from no index yet. Their sequence numbers are above
  // every committed one, so after a crash recovery drops them unless the
  // commit (CommitDirect) is in the log.
  slots->assign(views.size(), 0);
  std::vector<uint32_t> written;
  written.reserve(plan.direct_count);
  Status s;
  for (size_t k = 0; k < views.size() && s.ok(); ++k) {
    if (!plan.direct[k]) continue;
    s = warm_->Insert(views[k], &(*slots)[k]);
    if (s.ok()) written.push_back((*slots)[k]);
  }
  if (s.ok() && opts.sync) s = warm_->Sync();  // on disk before the commit that makes them count
  if (!s.ok()) UndoDirect(written, opts);
  return s;
}

void StoreImpl::UndoDirect(const std::vector<uint32_t>& written, const WriteOptions& opts) {
  for (uint32_t slot : written) (void)warm_->Free(slot);
  // The next commit reuses these sequence numbers: with 'sync' a block a
  // power cut left reading live would then count as committed, so the
  // frees go to disk first (best effort: the store is failing writes).
  if (opts.sync) (void)warm_->Sync();
}

Status StoreImpl::CommitDirect(const std::vector<RecordView>& views, const DirectPlan& plan,
                               const std::vector<uint32_t>& slots, const WriteOptions& opts) {
  // The commit: the records that stay hot and a sequence mark covering the
  // whole batch, in one atomic append.
  std::vector<const RecordView*> hot;
  hot.reserve(views.size() - plan.direct_count);
  for (size_t k = 0; k < views.size(); ++k) {
    if (!plan.direct[k]) hot.push_back(&views[k]);
  }
  const uint64_t last = seq_ + views.size();
  if (Status s = log_->AppendBatch(hot.data(), hot.size(), last, opts.sync); !s.ok()) {
    std::vector<uint32_t> written;
    for (size_t k = 0; k < views.size(); ++k) {
      if (plan.direct[k]) written.push_back(slots[k]);
    }
    UndoDirect(written, opts);
    return s;
  }
  // Committed from here on: a failed sync is reported, but the batch is
  // applied, as the next open would apply it.
  Status synced = opts.sync ? log_->Sync() : Status::OK();
  seq_ = last;
  for (size_t k = 0; k < views.size(); ++k) {
    if (k + kIndexPrefetch < views.size()) index_.Prefetch(views[k + kIndexPrefetch].id);
    if (!plan.direct[k]) {
      PutHot(views[k]);
      continue;
    }
    ++warm_count_;
    PlaceNewVersion(views[k].id, Location::Warm(slots[k]));
  }
  // The hot records the same migration demotes (they are in the log), then
  // whatever else a capacity asks for.
  MigrationReport ignored;
  if (DemoteHotRecords(plan.demote_hot, Tier::kWarm, opts, &ignored).ok()) (void)MigrateLocked(opts, false, &ignored);
  (void)MaybeCheckpointLog(opts.sync);
  return synced;
}

Status StoreImpl::Delete(std::string_view id, const WriteOptions& opts, bool* existed) {
  *existed = false;
  WriterLock lock(mu_);
  TS_RETURN_IF_ERROR(CheckWritable());
  const Location* found = index_.Find(id);
  if (found == nullptr) return Status::OK();
  TS_RETURN_IF_ERROR(log_->AppendDelete(id, seq_ + 1, opts.sync));
  if (opts.sync) TS_RETURN_IF_ERROR(log_->Sync());
  ++seq_;
  const Location loc = *found;
  index_.Erase(id);
  DropSuperseded(loc);  // the tombstone in the log already decides
  *existed = true;
  return Status::OK();
}

Status StoreImpl::Move(std::string_view id, Tier tier, const WriteOptions& opts, bool* found) {
  *found = false;
  WriterLock lock(mu_);
  TS_RETURN_IF_ERROR(CheckWritable());
  const Location* at = index_.Find(id);
  if (at == nullptr) return Status::OK();
  *found = true;
  if (at->tier() == tier) return Status::OK();
  if (at->tier() == Tier::kCold && ColdTier::IsStaged(at->cold())) {
    // A staged row leaves through a segment: its stage entry in the log
    // would otherwise outrank (colder, same sequence number) the copy it
    // moves to, should the process die before the next checkpoint.
    TS_RETURN_IF_ERROR(SealColdStaging(opts));
    at = index_.Find(id);
  }
  const Location from = *at;
  RecordView v;
  TS_RETURN_IF_ERROR(ReadIndexed(id, from, true, &v));  // verified before it is copied anywhere
  Location to;
  std::unique_ptr<HotRecord> copy;
  // 1. Write the destination.
  switch (tier) {
    case Tier::kHot: {
      const RecordView* p = &v;
      TS_RETURN_IF_ERROR(log_->AppendPuts(&p, 1, opts.sync));
      if (opts.sync) TS_RETURN_IF_ERROR(log_->Sync());
      copy = hot_.Copy(v);
      break;
    }
    case Tier::kWarm: {
      uint32_t slot = 0;
      TS_RETURN_IF_ERROR(warm_->Insert(v, &slot));
      to = Location::Warm(slot);
      ++warm_count_;
      if (from.tier() == Tier::kCold) {
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
      // Staged, not sealed alone (a segment a record would cost a file, a
      // rename and a manifest): held by the cold tier in memory and made
      // durable by one stage entry in the log, before the source goes.
      ColdLoc loc;
      uint64_t key = 0;
      TS_RETURN_IF_ERROR(cold_->Stage(v, &loc, &key));
      Status logged = log_->AppendStage(v, key, opts.sync);
      if (logged.ok() && opts.sync) logged = log_->Sync();
      if (!logged.ok()) {
        cold_->Unstage(loc);
        return logged;
      }
      to = Location::Cold(loc);
      ++cold_count_;
      break;
    }
  }
  // 2. Remove the source (views into it are not used past this point).
  const uint64_t seq = v.seq;
  std::string id_copy(id);
  if (from.tier() == Tier::kHot) {
    TakeHot(from);
  } else {
    (void)RemoveFromTier(from);
    LowerCount(from.tier())--;
  }
  if (copy) {
    InsertHot(std::move(copy));
    to = *index_.Find(id_copy);
  } else {
    *index_.Find(id_copy) = to;
  }
  NotifyMove(seq, id_copy, from, to);
  // The move is done and logged; a seal that fails here is retried later.
  if (tier == Tier::kCold && cold_->StagingFull()) (void)SealColdStaging(opts);
  return Status::OK();
}

// ---------------------------------------------------------------------------
// Reads

Status StoreImpl::Get(std::string_view id, bool include_embedding, double now_ms, RecordBatch* out) {
  // Exclusive: get updates the access statistics in place.
  WriterLock lock(mu_);
  TS_RETURN_IF_ERROR(CheckOpen());
  const Location* at = index_.Find(id);
  if (at == nullptr) return Status::OK();
  const Location loc = *at;
  RecordView v;
  TS_RETURN_IF_ERROR(ReadIndexed(id, loc, include_embedding, &v));
  v.last_access_at = now_ms;
  v.access_count += 1;
  switch (loc.tier()) {
    case Tier::kHot: HotTier::RecordAccess(HotAt(loc), v.last_access_at, v.access_count); break;
    case Tier::kWarm: warm_->UpdateAccess(loc.warm_slot(), v.last_access_at, v.access_count); break;
    case Tier::kCold: cold_->UpdateAccess(loc.cold(), v.last_access_at, v.access_count); break;
  }
  out->Append(loc.tier(), v, include_embedding, dims_);
  return Status::OK();
}

Status StoreImpl::Has(std::string_view id, bool* found) {
  ReaderLock lock(mu_);
  TS_RETURN_IF_ERROR(CheckOpen());
  *found = index_.Find(id) != nullptr;
  return Status::OK();
}

Status StoreImpl::Counts(TierCounts* counts) {
  ReaderLock lock(mu_);
  TS_RETURN_IF_ERROR(CheckOpen());
  *counts = CountsLocked();
  return Status::OK();
}

Status StoreImpl::Verify(VerifyReport* report) {
  *report = VerifyReport();
  ReaderLock lock(mu_);
  TS_RETURN_IF_ERROR(CheckOpen());
  Status failed;
  // NO_THREAD_SAFETY_ANALYSIS: the lambda runs inside ForEach, called right
  // here with mu_ held shared; the analysis does not follow a call through
  // the template.
  index_.ForEach([&](std::string_view id, Location& loc) NO_THREAD_SAFETY_ANALYSIS {
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
    d.tier = loc.tier();
    d.file = loc.tier() == Tier::kHot ? JoinPath(path_, HotLog::kFileName) : FileOf(loc);
    // A warm record's strings live in a var file, which its message names first.
    if (loc.tier() == Tier::kWarm && st.message().rfind(path_, 0) == 0) {
      d.file = st.message().substr(0, st.message().find(": "));
    }
    d.id = std::string(id);
    d.reason = st.message();
    report->damaged.push_back(std::move(d));
  });
  // What no single record's read checks (an open from the persisted index
  // reads none of it): the warm blocks' states, and the cold columns'
  // checksums, string offsets and key order.
  if (failed.ok()) {
    auto damage_in = [report](Tier tier) {
      return [report, tier](const std::string& file, const std::string& reason) {
        VerifyReport::Damage d;
        d.tier = tier;
        d.file = file;
        d.reason = reason;
        report->damaged.push_back(std::move(d));
      };
    };
    warm_->VerifyBlocks(damage_in(Tier::kWarm));
    cold_->VerifyColumns(damage_in(Tier::kCold));
  }
  return failed;
}

Status StoreImpl::Stats(StoreStats* stats) {
  ReaderLock lock(mu_);
  TS_RETURN_IF_ERROR(CheckOpen());
  stats->counts = CountsLocked();
  stats->dimensions = dims_;
  stats->sequence = seq_;
  stats->hot_log_bytes = log_->size();
  stats->hot_bytes = hot_.bytes();
  WarmStats w = warm_->Stats();
  stats->warm_slots = w.slots;
  stats->warm_block_file_bytes = w.block_file_bytes;
  stats->warm_var_file_bytes = w.var_file_bytes;
  stats->warm_var_live_bytes = w.var_live_bytes;
  ColdStats c = cold_->Stats();
  stats->cold_segments = c.segments;
  stats->cold_file_bytes = c.file_bytes;
  stats->cold_deleted_rows = c.deleted_rows;
  stats->cold_staged_records = c.staged_records;
  {
    MutexLock g(iter_mu_);
    stats->open_iterators = iterators_.size();
  }
  stats->recovered_duplicates = recovered_duplicates_;
  stats->torn_warm_copies = torn_warm_copies_;
  stats->torn_log_bytes = torn_log_bytes_;
  stats->index_file_bytes = index_file_bytes_;
  stats->index_memory_bytes = index_.MemoryBytes();
  stats->index_mapped_bytes = index_.MappedBytes();
  stats->index_rebuilt = index_rebuilt_;
  stats->index_rebuild_reason = index_rebuilt_ ? IndexRejectionName(index_rejection_) : "";
  stats->read_only = read_only_;
  return Status::OK();
}

}  // namespace tierstore
