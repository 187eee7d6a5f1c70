// Location: where a record lives, as the id index keeps it.
#pragma once

#include <cstdint>

#include "cold_tier.h"
#include "record.h"

namespace tierstore {

// Where a record lives: its tier and its place there (a hot key, a warm
// slot, or a cold segment and row). Kept in the id index, so small and
// trivially copyable.
class Location {
 public:
  Location() = default;
  static Location Hot(uint64_t key) { return Location(Tier::kHot, 0, key); }
  static Location Warm(uint32_t slot) { return Location(Tier::kWarm, 0, slot); }
  static Location Cold(ColdLoc c) { return Location(Tier::kCold, c.segment, c.row); }

  Tier tier() const { return tier_; }
  uint64_t hot_key() const { return place_; }
  uint32_t warm_slot() const { return static_cast<uint32_t>(place_); }
  ColdLoc cold() const { return ColdLoc{segment_, static_cast<uint32_t>(place_)}; }

  // Whether these bytes (read from a persisted index) can be a warm or cold
  // location at all; whether the slot or row exists is for the tier to say.
  bool IsLowerTierShape() const {
    if (zero_[0] != 0 || zero_[1] != 0 || zero_[2] != 0 || place_ > UINT32_MAX) return false;
    if (tier_ == Tier::kWarm) return segment_ == 0;
    return tier_ == Tier::kCold;
  }

 private:
  Location(Tier tier, uint32_t segment, uint64_t place) : tier_(tier), segment_(segment), place_(place) {}
  Tier tier_ = Tier::kHot;
  uint8_t zero_[3] = {0, 0, 0};  // so a persisted index's bytes depend only on the fields
  uint32_t segment_ = 0;  // cold only
  uint64_t place_ = 0;    // hot key, warm slot or cold row
};

static_assert(sizeof(Location) == 16, "the persisted index stores Location's bytes (docs/format/index.md)");

}  // namespace tierstore
