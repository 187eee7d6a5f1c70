#include "warm_filter_array.h"

namespace tierstore {

void WarmFilterArray::SetLocked(uint32_t slot, const FilterEntry& entry) {
  const size_t c = slot / kSlotsPerChunk;
  if (c >= chunks_.size()) chunks_.resize(c + 1);
  if (chunks_[c] == nullptr) chunks_[c] = std::make_unique<Chunk>();
  const uint32_t i = slot % kSlotsPerChunk;
  chunks_[c]->entries[i] = entry;
  chunks_[c]->known[i / 64] |= uint64_t{1} << (i % 64);
}

void WarmFilterArray::Build(uint32_t limit, const std::function<bool(uint32_t slot, FilterEntry* entry)>& fn) {
  MutexLock lock(mu_);
  if (built_.load(std::memory_order_relaxed)) return;
  for (uint32_t slot = 0; slot < limit; ++slot) {
    FilterEntry e;
    if (fn(slot, &e)) SetLocked(slot, e);
  }
  built_.store(true, std::memory_order_release);
}

void WarmFilterArray::Set(uint32_t slot, const FilterEntry& entry) {
  MutexLock lock(mu_);
  if (!built_.load(std::memory_order_relaxed)) return;
  SetLocked(slot, entry);
}

WarmFilterArray::View WarmFilterArray::Snapshot() const {
  MutexLock lock(mu_);
  View v;
  if (!built_.load(std::memory_order_relaxed)) return v;
  v.chunks_.reserve(chunks_.size());
  for (const auto& c : chunks_) v.chunks_.push_back(c.get());
  return v;
}

}  // namespace tierstore
