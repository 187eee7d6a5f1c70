// WarmFilterArray: the FilterEntry of every warm slot (filter_entry.h), kept
// apart from the blocks, so that a filtered scan decides on an excluded
// record without reading its block or its var bytes.
//
// Where the entries come from:
// - Adopt: warm.filter (warm_filter_file.h), as the last clean close wrote
//   it, mapped privately; the open reads its header page only. Each chunk's
//   checksum is checked before its entries are first used (Prepare, Set, or
//   a write), and a chunk that fails is made again from the blocks.
// - Prepare without an adopted file: made from the blocks on the first
//   filtered scan (fn, once per slot).
// - Set: every Insert into a slot, once the array is made.
//
// Guarantees:
// - An entry is known for a slot only once it came from one of those; the
//   caller's fn may leave a slot unknown (a damaged or free block). Readers
//   treat an unknown slot as "read the block": the array never excludes a
//   record it knows nothing of.
// - The entry of a live slot is its record's as long as every Insert into
//   the slot Sets it (WarmTier does), and an adopted file is only adopted
//   for the blocks of the same clean close (the caller checks the token).
//   A freed slot's stale entry is never read: scans skip it by its free bit.
// - Memory: chunks never move or shrink while the array lives; a View stays
//   valid until the next Set, Prepare or destruction (which the owner's
//   callers serialize with readers: the Store's exclusive lock).
//
// Synchronization: mu_ serializes Adopt, Prepare, Set, Snapshot and
// WriteFile (the first filtered scans may race to Prepare under the Store's
// shared lock; one makes the entries, the others wait). Entries are written
// only under mu_, and with the Store's lock keeping readers off (Set) or
// before a View of them exists (Prepare); a View reads them without mu_.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "file_util.h"
#include "filter_entry.h"
#include "mutex.h"
#include "status.h"

namespace tierstore {

class WarmFilterArray {
 public:
  static constexpr uint32_t kSlotsPerChunk = 2048;

  struct Chunk {
    FilterEntry entries[kSlotsPerChunk];
    uint64_t known[kSlotsPerChunk / 64];
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

  // fn(slot, &entry): the entry of a slot from its block; false leaves it
  // unknown.
  using EntryFn = std::function<bool(uint32_t slot, FilterEntry* entry)>;

  // Takes dir/warm.filter when its header names this store and `token` (the
  // persisted index's, which the open trusted); otherwise changes nothing
  // and says why (the entries are then made by Prepare). Before any other
  // call.
  Status Adopt(const std::string& dir, uint64_t store_id, uint64_t token) EXCLUDES(mu_);
  // Makes the entries ready for slots below limit: from the blocks when
  // nothing was adopted, else checking the adopted chunks not yet checked
  // (making a failing one again from the blocks). Cheap once done.
  void Prepare(uint32_t limit, const EntryFn& fn) EXCLUDES(mu_);
  // Gives a slot its entry; a no-op until the array is made (Adopt or
  // Prepare), which reads the slot's block then.
  void Set(uint32_t slot, const FilterEntry& entry) EXCLUDES(mu_);
  // Adopted or prepared: whether Set keeps entries (Insert's cue to make one).
  bool made() const EXCLUDES(mu_);
  // The entries Prepare made ready (empty before).
  View Snapshot() const EXCLUDES(mu_);
  // Writes dir/warm.filter for the token of a clean close, when the array
  // was made; otherwise removes a file an earlier close left (its entries
  // could be stale). Chunks adopted and never checked are checked first,
  // and one that fails is written as unknown.
  Status WriteFile(const std::string& dir, uint64_t store_id, uint64_t token, bool durable) EXCLUDES(mu_);
  // Adopted chunks whose checksum failed (counted once each).
  uint64_t damaged_chunks() const EXCLUDES(mu_);

 private:
  enum class ChunkState : uint8_t { kReady, kUnchecked, kRefill };
  // Chunk c, ready for entries: checks an adopted one, replacing it by an
  // empty chunk to refill from the blocks when it fails.
  void CheckChunk(size_t c) REQUIRES(mu_);
  Chunk* NewChunk(size_t c) REQUIRES(mu_);
  void SetLocked(uint32_t slot, const FilterEntry& entry) REQUIRES(mu_);

  mutable Mutex mu_;
  bool made_ GUARDED_BY(mu_) = false;    // adopted or prepared: Set keeps it current
  bool ready_ GUARDED_BY(mu_) = false;   // every chunk kReady
  std::vector<Chunk*> chunks_ GUARDED_BY(mu_);
  std::vector<ChunkState> states_ GUARDED_BY(mu_);
  std::vector<std::unique_ptr<Chunk>> owned_ GUARDED_BY(mu_);
  File file_ GUARDED_BY(mu_);
  MappedRegion map_ GUARDED_BY(mu_);  // the adopted file, privately: Set's stores stay in this process
  uint64_t damaged_chunks_ GUARDED_BY(mu_) = 0;
};

}  // namespace tierstore
