// Recovery at open: checking the files against the manifest, then
// rebuilding the id index from the hot log and the lower tiers, keeping one
// copy per id (the highest sequence number; the colder copy on a tie).
#include <algorithm>
#include <functional>
#include <new>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "store_impl.h"

namespace tierstore {

namespace {

struct StringHash {
  using is_transparent = void;
  size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
};

// A file's sequence number above kMaxSequence: damage (see record.h).
}  // namespace

Status ImpossibleSequence(uint64_t seq, const std::string& file) {
  return Status::Corruption(file + ": sequence number " + std::to_string(seq) + " is beyond any a store reaches");
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

Status StoreImpl::Recover(const Manifest& manifest, bool from_index) {
  // Room for the lower tiers' records and a quarter more (the hot ones,
  // later puts): the index then does not rehash every id as it fills, and
  // stays about as full as growth leaves it. The counts come from the tiers'
  // own opens (blocks and segments that exist), not from the manifest, whose
  // numbers a damaged file could make huge (manifest_fuzz: a 30 GB table).
  const uint64_t lower = warm_->Stats().live_records + cold_->Stats().live_records;
  if (!from_index && lower > 0 && lower < (uint64_t{1} << 30)) {
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
  // The highest sequence number the log commits (its entries and sequence
  // marks). A version 4 log commits every sequence number a record in any
  // tier may carry, except those of a put that wrote warm blocks and was
  // killed before its commit (see StoreImpl::WriteDirect): a warm block above
  // it is such a write, and is dropped.
  uint64_t committed = 0;
  bool marks_commit = false;  // the log's version is known once Replay has read its header
  handler.on_put = [&](const RecordView& rec) REQUIRES(mu_) -> Status {
    if (rec.seq > kMaxSequence) return ImpossibleSequence(rec.seq, log_->path());
    seq_ = std::max(seq_, rec.seq);
    committed = std::max(committed, rec.seq);
    if (!manifest.clean) log_seqs.insert(rec.seq);
    if (killed(rec.id, rec.seq)) return Status::OK();
    if (const Location* found = index_.Find(rec.id)) {
      // A warm or cold entry here came from the persisted index, which a
      // clean close wrote with every id in one place: the log's copy is
      // one that has moved down since (or an older version).
      if (found->tier() != Tier::kHot) return Status::OK();
      if (HotAt(*found)->seq > rec.seq) return Status::OK();
      TakeHot(*found);
      index_.Erase(rec.id);
    }
    InsertHot(hot_.Copy(rec));
    return Status::OK();
  };
  handler.on_delete = [&](std::string_view id, uint64_t seq) REQUIRES(mu_) -> Status {
    if (seq > kMaxSequence) return ImpossibleSequence(seq, log_->path());
    seq_ = std::max(seq_, seq);
    committed = std::max(committed, seq);
    const Location* found = index_.Find(id);
    if (found != nullptr && found->tier() == Tier::kHot && HotAt(*found)->seq < seq) {
      TakeHot(*found);
      index_.Erase(id);
    }
    auto [t, inserted] = tombstones.try_emplace(std::string(id), seq);
    if (!inserted) t->second = std::max(t->second, seq);
    return Status::OK();
  };
  handler.on_access = [&](const LogAccessUpdate& u) REQUIRES(mu_) -> Status {
    if (const Location* found = index_.Find(u.id); found != nullptr && found->tier() == Tier::kHot) {
      HotRecord* r = HotAt(*found);
      if (r->seq == u.seq) {
        r->last_access_at = u.last_access_at;
        r->access_count = u.access_count;
      }
    }
    return Status::OK();
  };
  handler.on_mark = [&](uint64_t seq) REQUIRES(mu_) -> Status {
    if (seq > kMaxSequence) return ImpossibleSequence(seq, log_->path());
    seq_ = std::max(seq_, seq);
    committed = std::max(committed, seq);
    return Status::OK();
  };
  // A record staged in the cold tier (a single move to cold): back into the
  // staging, unless sealed since; the cold scan below offers it like any
  // cold row, and a later tombstone or version in the log outranks it. A
  // clean close sealed every staged row (or it was deleted, and never
  // sealed): with the index from id.index the entry only counts its
  // sequence number.
  handler.on_stage = [&](const RecordView& rec, uint64_t cold_key) REQUIRES(mu_) -> Status {
    if (rec.seq > kMaxSequence) return ImpossibleSequence(rec.seq, log_->path());
    seq_ = std::max(seq_, rec.seq);
    committed = std::max(committed, rec.seq);
    if (from_index) return Status::OK();
    bool staged = false;
    return cold_->Restage(rec, cold_key, &staged);
  };
  TS_RETURN_IF_ERROR(log_->Replay(handler, !manifest.clean, &torn_log_bytes_));
  marks_commit = log_->version() >= 4;

  // Lower tiers: keep one copy per id, the highest seq, the colder on a tie.
  // Losers are collected and removed after each scan (never mid-scan).
  std::vector<Location> losers;
  auto offer = [&](std::string_view id, uint64_t seq, const Location& loc) REQUIRES(mu_) -> Status {
    if (seq > kMaxSequence) {
      return ImpossibleSequence(seq, FileOf(loc));
    }
    if (marks_commit && loc.tier() == Tier::kWarm && seq > committed) {
      losers.push_back(loc);  // never acknowledged: its batch's commit is not in the log
      ++uncommitted_warm_blocks_;
      return Status::OK();
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
      LowerCount(loc.tier())++;
      return Status::OK();
    }
    ++recovered_duplicates_;
    // One of two copies is about to be dropped: both must read back whole
    // and as this id first. Ids are not checksummed on their own in every
    // format (a cold segment's id column), so a damaged id can name another
    // record; dropping a copy on that claim would lose the damaged record
    // silently.
    uint64_t existing_seq = 0;
    TS_RETURN_IF_ERROR(VerifiedSeqOf(id, *existing, &existing_seq));
    if (Status whole = VerifiedSeqOf(id, loc, &checked_seq); !whole.ok()) {
      // After a crash, a damaged copy of the very write the log holds (same
      // sequence number: the log's copy of a record that moved down) may be
      // one a power loss tore: the log's copy stays and the damaged one goes.
      // After a clean close every tier was synced, so it is damage, and is
      // reported (dropping it moved the record to hot without a word).
      if (manifest.clean || existing->tier() != Tier::kHot || existing_seq != seq) return whole;
      if (loc.tier() == Tier::kWarm) ++torn_warm_copies_;
      losers.push_back(loc);
      return Status::OK();
    }
    if (existing_seq > seq) {
      losers.push_back(loc);
      return Status::OK();
    }
    Location old = *existing;
    if (old.tier() == Tier::kHot) {
      TakeHot(old);
    } else {
      losers.push_back(old);
      LowerCount(old.tier())--;
    }
    *existing = loc;  // TakeHot above leaves the index alone: the pointer holds
    LowerCount(loc.tier())++;
    return Status::OK();
  };
  WarmTier::TornCopyPolicy torn{
      [&](uint64_t seq) { return log_seqs.count(seq) > 0; },
      [&](uint32_t slot) REQUIRES(mu_) {
        losers.push_back(Location::Warm(slot));
        ++torn_warm_copies_;
      }};
  if (!from_index) TS_RETURN_IF_ERROR(warm_->ForEachLiveKey(
      [&](uint32_t slot, std::string_view id, uint64_t seq) REQUIRES(mu_) { return offer(id, seq, Location::Warm(slot)); },
      manifest.clean ? nullptr : &torn));
  if (!from_index) {
    TS_RETURN_IF_ERROR(cold_->ForEachLive([&](ColdLoc loc, uint64_t, const RecordView& rec) REQUIRES(mu_) {
      return offer(rec.id, rec.seq, Location::Cold(loc));
    }));
  }
  if (read_only_) {
    // Nothing may be written: hide the losing copies from scans instead.
    for (const Location& loc : losers) {
      if (loc.tier() == Tier::kWarm) masked_warm_.insert(loc.warm_slot());
      if (loc.tier() == Tier::kCold) masked_cold_.insert(ColdKey(loc.cold()));
    }
  } else {
    // Every read succeeded: now the writes the tiers deferred (a torn log
    // tail cut off, unpublished warm blocks freed, stale temporary files
    // removed), then the manifest, dirty from now until a clean close (a
    // torn log tail means a crash), listing the segments found.
    TS_RETURN_IF_ERROR(log_->FinishOpen());
    TS_RETURN_IF_ERROR(warm_->FinishOpen());
    TS_RETURN_IF_ERROR(cold_->FinishOpen());
    // An index write a crash interrupted (the file itself is replaced whole).
    const std::string index_tmp = JoinPath(path_, std::string(kIndexFileName) + ".tmp");
    if (PathExists(index_tmp)) TS_RETURN_IF_ERROR(RemoveFile(index_tmp));
    TS_RETURN_IF_ERROR(WriteDirtyManifest(/*durable=*/true));
    for (const Location& loc : losers) TS_RETURN_IF_ERROR(RemoveFromTier(loc));
    // An uncommitted block freed must stay free on disk before a later
    // commit's sequence numbers reach its own: it would count as committed.
    if (uncommitted_warm_blocks_ > 0) TS_RETURN_IF_ERROR(warm_->Sync());
    // An older log is rewritten in the current version (which the writes
    // that skip the log, and single moves to cold, need).
    if (log_->version() < HotLog::kCurrentVersion) {
      TS_RETURN_IF_ERROR(CheckpointLog(true));
    } else {
      TS_RETURN_IF_ERROR(MaybeCheckpointLog(true));
    }
  }
  return Status::OK();
}


Status StoreImpl::VerifiedSeqOf(std::string_view id, const Location& loc, uint64_t* seq) const {
  if (loc.tier() == Tier::kHot) {
    *seq = HotAt(loc)->seq;
    return Status::OK();
  }
  RecordView v;
  TS_RETURN_IF_ERROR(ReadAt(loc, /*verify_embedding=*/false, &v));
  if (v.id != id) return Status::Corruption(FileOf(loc) + ": a copy read as one id at open reads back as another");
  *seq = v.seq;
  return Status::OK();
}

}  // namespace tierstore
