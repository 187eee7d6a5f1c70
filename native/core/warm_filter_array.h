// WarmFilterArray: the FilterEntry of every warm slot (filter_entry.h), in
// memory apart from the blocks, so that a filtered scan decides on an
// excluded record without reading its block or its var bytes.
//
// Guarantees:
// - An entry is known for a slot only once Build or Set gave it one; Build
//   asks for every slot below a limit once, and the caller's function may
//   leave a slot unknown (a damaged or free block). Readers treat an unknown
//   slot as "read the block" -- the array is never a reason to exclude a
//   record it knows nothing of.
// - The entry of a live slot is the record's as long as every Insert into
//   the slot Sets it (WarmTier does); a freed slot's stale entry is never
//   read as the slot is skipped by its free bit first.
// - Memory: entries live in fixed chunks that never move or shrink; a View
//   stays valid until the next Set or Build (which the owner's callers
//   serialize with readers: the Store's exclusive lock).
//
// Synchronization: mu_ serializes Build with Set and with taking a View (the
// first filtered scans may race to build it under the Store's shared lock;
// one builds, the others wait). Entries are written only under mu_ and with
// the Store's lock keeping readers off (Set) or before built_ is released
// to them (Build); a View reads them without mu_.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <vector>

#include "filter_entry.h"
#include "mutex.h"

namespace tierstore {

class WarmFilterArray {
 public:
  static constexpr uint32_t kSlotsPerChunk = 16384;

  struct Chunk {
    FilterEntry entries[kSlotsPerChunk];
    uint64_t known[kSlotsPerChunk / 64] = {};
  };

  // What a scan reads: the chunks as they were when it was taken.
  class View {
   public:
    // The entry of `slot`, or null when the array does not know it.
    const FilterEntry* Find(uint32_t slot) const {
      const size_t c = slot / kSlotsPerChunk;
      if (c >= chunks_.size() || chunks_[c] == nullptr) return nullptr;
      const uint32_t i = slot % kSlotsPerChunk;
      return ((chunks_[c]->known[i / 64] >> (i % 64)) & 1) != 0 ? &chunks_[c]->entries[i] : nullptr;
    }
    bool empty() const { return chunks_.empty(); }

   private:
    friend class WarmFilterArray;
    std::vector<const Chunk*> chunks_;
  };

  // Fills the array once: fn(slot, &entry) for every slot below limit,
  // returning whether the entry is known. Later calls do nothing.
  void Build(uint32_t limit, const std::function<bool(uint32_t slot, FilterEntry* entry)>& fn) EXCLUDES(mu_);
  bool built() const { return built_.load(std::memory_order_acquire); }
  // Gives a slot its entry; a no-op until built (Build will read it then).
  void Set(uint32_t slot, const FilterEntry& entry) EXCLUDES(mu_);
  // Empty until built.
  View Snapshot() const EXCLUDES(mu_);

 private:
  void SetLocked(uint32_t slot, const FilterEntry& entry) REQUIRES(mu_);

  mutable Mutex mu_;
  std::atomic<bool> built_{false};
  std::vector<std::unique_ptr<Chunk>> chunks_ GUARDED_BY(mu_);
};

}  // namespace tierstore
