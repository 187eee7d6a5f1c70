// The in-core shape of one memory record, shared by the tiers.
//
// RecordView holds views, not copies: who hands one out says how long the
// viewed bytes stay valid (see each tier's comments).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>

namespace tierstore {

enum class Tier : uint8_t { kHot = 0, kWarm = 1, kCold = 2 };
constexpr int kTierCount = 3;

inline const char* TierName(Tier t) {
  switch (t) {
    case Tier::kHot: return "hot";
    case Tier::kWarm: return "warm";
    case Tier::kCold: return "cold";
  }
  return "?";
}

// Hard limits of the on-disk formats (the TS layer applies the public,
// configurable limits, which are never larger than these).
constexpr size_t kMaxIdBytes = 1024;
constexpr uint64_t kMaxContentBytes = (uint64_t{1} << 31) - 1;  // 2 GiB - 1
constexpr uint64_t kMaxMetadataBytes = (uint64_t{1} << 31) - 1;
constexpr uint32_t kMaxDimensions = 65536;
// Sequence numbers stay below this: a billion writes a second would take 146
// years to reach it. A file claiming more is damaged: left in, the next
// writes would wrap around to small numbers, and recovery (highest seq
// wins) and iterators (which skip versions newer than they are) would go
// wrong.
constexpr uint64_t kMaxSequence = uint64_t{1} << 62;

// One record. `embedding` points at `dimensions` floats; `norm` is its
// Euclidean norm (stored so cosine needs no second pass).
// `seq` is the store-wide sequence number of this version of the record:
// assigned when the record is put, kept unchanged when it moves between tiers.
struct RecordView {
  std::string_view id;
  std::string_view content;
  std::string_view metadata;  // JSON text, opaque to the core
  const float* embedding = nullptr;
  float norm = 0.0f;
  float confidence = 0.0f;
  float activation = 0.0f;
  double created_at = 0.0;      // ms since epoch, an integer
  double last_access_at = 0.0;  // ms since epoch
  double access_count = 0.0;    // an integer count, double so JS gets it exactly
  uint64_t seq = 0;
};

}  // namespace tierstore
