#include "hot_tier.h"

#include <utility>

namespace tierstore {

std::vector<LogAccessUpdate> HotTier::DirtyAccess() const {
  std::vector<LogAccessUpdate> updates;
  for (const auto& e : records_) {
    const HotRecord* rec = e.value();
    if (rec->access_dirty) updates.push_back({rec->id(), rec->seq, rec->last_access_at, rec->access_count});
  }
  return updates;
}

void HotTier::ClearAccessDirty() {
  for (const auto& e : records_) e.value()->access_dirty = false;
}

void HotTier::Swap(HotTier& other) noexcept {
  using std::swap;
  swap(arena_, other.arena_);
  records_.Swap(other.records_);
  swap(dims_, other.dims_);
  swap(last_key_, other.last_key_);
  swap(bytes_, other.bytes_);
}

}  // namespace tierstore
