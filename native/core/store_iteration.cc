// Reading the store in order: tier iterators (which follow records that
// move while they run), and list() with its offsets and cursors. Both scan
// with ScanLocked from a ScanState.
#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <string>

#include "store_impl.h"

namespace tierstore {

const char* SelectorName(TierSelector s) {
  return s == TierSelector::kAll ? "all" : TierName(static_cast<Tier>(s));
}

// Reads up to `max` records from st's position on, advancing it. With an
// iterator, records it already yielded elsewhere are skipped.
Status StoreImpl::ScanLocked(ScanState* st, size_t max, bool emb, RecordBatch* out, IteratorImpl* iter,
                             const RecordFilter* filter) {
  // NO_THREAD_SAFETY_ANALYSIS: iter, when given, is the caller's (Next),
  // which holds its mutex; the analysis cannot follow a pointer that may be
  // null.
  auto skip = [&](uint64_t seq) NO_THREAD_SAFETY_ANALYSIS { return iter != nullptr && iter->Skips(seq); };
  auto admit = [&](const RecordView& v) { return filter == nullptr || filter->Matches(v); };
  // The filter decides first from what the tiers keep for it (hot: the
  // record's scalars and signature; warm: the slots' filter entries), so a
  // record it excludes is not read; the others are checked exactly.
  const bool by_entries = filter != nullptr && filter->needs_record();
  while (out->size() < max && !st->Done()) {
    if (st->phase == ScanPhase::kHot) {
      auto it = hot_.UpperBound(st->after);
      for (; it != hot_.end() && out->size() < max; ++it) {
        st->after = it.key();
        const HotRecord& r = *it.value();
        if (by_entries && !(filter->MatchesScalars(r.created_at, r.confidence, r.activation) &&
                            filter->MayMatchSignature(r.signature))) {
          continue;
        }
        if (!skip(r.seq)) {
          const RecordView v = r.View();
          if (admit(v)) out->Append(Tier::kHot, v, emb, dims_);
        }
      }
      if (it == hot_.end()) st->NextPhase();
    } else if (st->phase == ScanPhase::kWarm) {
      const uint32_t limit = warm_->SlotLimit();
      uint64_t slot = st->after;  // position key = slot + 1, so the next slot is `after`
      const WarmFilterArray::View entries = by_entries ? warm_->FilterEntries() : WarmFilterArray::View();
      if (slot < limit && entries.empty()) {
        warm_->WillNeed(static_cast<uint32_t>(slot), static_cast<uint32_t>(std::min<uint64_t>(max, limit - slot)));
      }
      for (; slot < limit && out->size() < max; ++slot) {
        st->after = slot + 1;
        if (!warm_->IsLive(static_cast<uint32_t>(slot)) || Masked(Tier::kWarm, slot)) continue;
        const FilterEntry* e = entries.Find(static_cast<uint32_t>(slot));
        if (e != nullptr && !filter->MayMatch(*e)) continue;
        RecordView v;
        TS_RETURN_IF_ERROR(warm_->Read(static_cast<uint32_t>(slot), emb, &v));
        TS_RETURN_IF_ERROR(CheckSequence(v.seq, Location::Warm(static_cast<uint32_t>(slot))));
        if (!skip(v.seq) && admit(v)) out->Append(Tier::kWarm, v, emb, dims_);
      }
      if (slot >= limit) st->NextPhase();
    } else {
      const size_t want = max - out->size();
      size_t visited = 0;
      TS_RETURN_IF_ERROR(cold_->ScanFrom(
          st->after, want, emb,
          [&](ColdLoc loc, uint64_t key, const RecordView& v) REQUIRES_SHARED(mu_) -> Status {
            st->after = key;
            TS_RETURN_IF_ERROR(CheckSequence(v.seq, Location::Cold(loc)));
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

void StoreImpl::Unregister(IteratorImpl* it) {
  MutexLock g(iter_mu_);
  iterators_.erase(std::remove(iterators_.begin(), iterators_.end(), it), iterators_.end());
}

Status StoreImpl::AppendCurrent(std::string_view id, uint64_t seq, bool emb, RecordBatch* out,
                                const RecordFilter* filter) {
  const Location* loc = index_.Find(id);
  if (loc == nullptr) return Status::OK();
  RecordView v;
  TS_RETURN_IF_ERROR(ReadIndexed(id, *loc, emb, &v));
  if (v.seq == seq && (filter == nullptr || filter->Matches(v))) out->Append(loc->tier(), v, emb, dims_);
  return Status::OK();
}

Status StoreImpl::NewIterator(TierSelector tier, std::shared_ptr<const RecordFilter> filter,
                              std::unique_ptr<StoreIterator>* out) {
  ReaderLock lock(mu_);
  TS_RETURN_IF_ERROR(CheckOpen());
  auto self = std::static_pointer_cast<StoreImpl>(shared_from_this());
  if (filter != nullptr && filter->empty()) filter = nullptr;
  auto it = std::make_unique<IteratorImpl>(self, tier, seq_, std::move(filter));
  {
    MutexLock g(iter_mu_);
    iterators_.push_back(it.get());
  }
  *out = std::move(it);
  return Status::OK();
}

Status StoreImpl::SeekOffset(ScanState* st, uint64_t offset, const RecordFilter* filter) {
  if (filter != nullptr) {
    // Only matching records count: read past `offset` of them.
    RecordBatch skipped;
    while (offset > 0 && !st->Done()) {
      skipped.Clear();
      TS_RETURN_IF_ERROR(ScanLocked(st, static_cast<size_t>(std::min<uint64_t>(offset, 1024)), false, &skipped,
                                    nullptr, filter));
      offset -= skipped.size();
    }
    return Status::OK();
  }
  const TierCounts counts = CountsLocked();
  const uint64_t per_tier[3] = {counts.hot, counts.warm, counts.cold};
  while (!st->Done()) {
    const int tier = static_cast<int>(st->phase);
    if (offset >= per_tier[tier]) {
      offset -= per_tier[tier];
      st->NextPhase();
      continue;
    }
    if (st->phase == ScanPhase::kHot) {
      st->after = hot_.Nth(offset).key() - 1;
    } else if (st->phase == ScanPhase::kWarm) {
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
        st->phase = ScanPhase::kDone;
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
  return "ts1:" + std::string(SelectorName(st.selector)) + ":" + std::to_string(static_cast<int>(st.phase)) + ":" + std::to_string(st.after);
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
  const ScanPhase p = static_cast<ScanPhase>(phase[0] - '0');
  if (p < st->phase || (expected != TierSelector::kAll && p != st->phase && p != ScanPhase::kDone)) return bad();
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
  ReaderLock lock(mu_);
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
  if (!st.Done()) {
    ScanState probe = st;
    RecordBatch one;
    TS_RETURN_IF_ERROR(ScanLocked(&probe, 1, false, &one, nullptr, filter));
    if (one.size() > 0) result->next_cursor = EncodeCursor(st);
  }
  return Status::OK();
}

// ---------------------------------------------------------------------------
// Iterator

Status IteratorImpl::Next(size_t max, bool include_embeddings, RecordBatch* out) {
  out->Clear();
  if (max == 0) return Status::InvalidArgument("batch size must be >= 1");
  ReaderLock lock(store_->mu_);
  MutexLock g(mu_);
  if (closed_) return Status::StoreClosed("the iterator's store is closed");
  TS_RETURN_IF_ERROR(store_->CheckOpen());
  TS_RETURN_IF_ERROR(store_->ScanLocked(&state_, max, include_embeddings, out, this, filter_.get()));
  while (state_.Done() && out->size() < max && !pending_.empty()) {
    auto first = pending_.begin();
    TS_RETURN_IF_ERROR(store_->AppendCurrent(first->second, first->first, include_embeddings, out, filter_.get()));
    pending_.erase(first);
  }
  return Status::OK();
}

void IteratorImpl::Close() {
  // Lock order everywhere: store mutex, then iterator mutex, then the
  // store's iterator-list mutex.
  ReaderLock lock(store_->mu_);
  MutexLock g(mu_);
  if (store_ && !closed_) store_->Unregister(this);
  closed_ = true;
  skip_.clear();
  pending_.clear();
}

// NO_THREAD_SAFETY_ANALYSIS (OnMove, MarkStoreClosed): the iterator's state
// is guarded by mu_ or by the store's mutex held exclusively (the store calls
// these so, which keeps Next and Close out); the analysis knows one guard
// per member. Taking mu_ here would invert the lock order (the store's
// iterator list is locked already).
void IteratorImpl::MarkStoreClosed() NO_THREAD_SAFETY_ANALYSIS { closed_ = true; }

void IteratorImpl::OnMove(uint64_t seq, std::string_view id, Tier from, uint64_t from_key, Tier to, uint64_t to_key)
    NO_THREAD_SAFETY_ANALYSIS {
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

}  // namespace tierstore
