// IdIndex<Value>: a map from id (a byte string) to a small trivially copyable
// Value, built to cost little RAM per entry at millions of entries.
//
// The store used std::unordered_map<std::string, Loc>: a heap node per id
// (next pointer, std::string, the value, the cached hash), rounded up by
// malloc, plus the bucket array — about 125 bytes per record at 17-byte ids.
// Here an entry is one 8-byte id reference next to its Value in a flat array
// (open addressing, linear probing, 53-80% full), and the id bytes are packed
// back to back in 1 MiB chunks: 30-45 bytes per entry plus the id's own
// bytes (47-62 bytes in all for 17-byte ids).
//
// Guarantees:
// - Find/TryEmplace/Erase behave as on a map keyed by the id's bytes.
// - Erase leaves no tombstone (backward-shift deletion), so lookups never
//   slow down under churn; the id bytes of erased entries are reclaimed by
//   repacking the chunks once they are more garbage than live.
// - A Value* handed out stays valid until the next TryEmplace, Erase or
//   Clear (any of them may move entries), like an iterator into a vector.
// - The slot array grows by half when 80% full and never shrinks (except to
//   nothing when the last entry goes), like std::unordered_map's buckets.
// - Allocation failure throws std::bad_alloc and leaves the index as it was.
// - Adopt() takes over a slot array and id chunks that live elsewhere (the
//   private mapping of a persisted index file: see index_file.h) without
//   copying them; changes then land in that memory (copy-on-write pages of
//   a private mapping), and growth moves the slots to the heap. The bytes of
//   both are ExportedSlots()/ExportedChunks(), so an index written out and
//   adopted back finds the same ids, as long as Hash() is the same function
//   (HashCheck() tells).
//
// Synchronization: none inside. Const members (Find, ForEach reading, size)
// may run concurrently with each other; anything else needs exclusive access
// (the Store holds its shared_mutex exclusively to write).
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

namespace tierstore {

template <class Value>
class IdIndex {
  static_assert(std::is_trivially_copyable_v<Value>, "IdIndex values are moved with memcpy");

 public:
  IdIndex() = default;
  IdIndex(const IdIndex&) = delete;
  IdIndex& operator=(const IdIndex&) = delete;

  // Exchanges the contents of two indexes (pointers into either stay valid
  // and now belong to the other).
  void Swap(IdIndex& other) noexcept {
    std::swap(slots_, other.slots_);
    std::swap(owned_slots_, other.owned_slots_);
    std::swap(keepalive_, other.keepalive_);
    std::swap(repack_, other.repack_);
    std::swap(capacity_, other.capacity_);
    std::swap(size_, other.size_);
    std::swap(chunks_, other.chunks_);
    std::swap(chunk_used_, other.chunk_used_);
    std::swap(live_bytes_, other.live_bytes_);
    std::swap(garbage_bytes_, other.garbage_bytes_);
  }

  size_t size() const { return size_; }
  size_t capacity() const { return capacity_; }  // slots
  bool empty() const { return size_ == 0; }

  // The value stored for id, or nullptr.
  const Value* Find(std::string_view id) const {
    const size_t i = FindSlot(id, Hash(id));
    return i == kNone ? nullptr : &slots_[i].value;
  }
  Value* Find(std::string_view id) {
    const size_t i = FindSlot(id, Hash(id));
    return i == kNone ? nullptr : &slots_[i].value;
  }

  // Starts loading the slot where a lookup of id begins: for loops that
  // look up many ids, a few ahead, so the cache misses overlap.
  void Prefetch(std::string_view id) const {
    if (capacity_ != 0) __builtin_prefetch(&slots_[Home(Hash(id), capacity_)]);
  }

  // Inserts (id, value) unless id is present. Returns the entry's value and
  // whether it was inserted; an existing value is left unchanged.
  std::pair<Value*, bool> TryEmplace(std::string_view id, const Value& value) {
    const uint64_t h = Hash(id);
    if (size_t found = FindSlot(id, h); found != kNone) return {&slots_[found].value, false};
    // Both may throw; neither changes what the index holds.
    if ((size_ + 1) * 5 > capacity_ * 4) Rehash(capacity_ < 16 ? 16 : capacity_ + capacity_ / 2);
    const uint64_t ref = StoreId(id) | TagOf(h) | kOccupied;
    size_t i = Home(h, capacity_);
    while (slots_[i].ref != 0) i = Next(i);
    slots_[i].ref = ref;
    slots_[i].value = value;
    ++size_;
    live_bytes_ += StoredBytes(id.size());
    return {&slots_[i].value, true};
  }

  // Makes room for n entries in all without growing (a hint: an open knows
  // how many records its files hold; growing there rehashed every id about
  // three times over). Throws std::bad_alloc like an insert; then nothing
  // changed.
  void Reserve(size_t n) {
    if (n <= size_) return;
    const size_t needed = n + n / 4 + 1;  // at most 80% full, as inserts keep it
    if (needed > capacity_) Rehash(needed < 16 ? 16 : needed);
  }

  // Removes id; returns whether it was there.
  bool Erase(std::string_view id) {
    size_t i = FindSlot(id, Hash(id));
    if (i == kNone) return false;
    const size_t freed = StoredBytes(id.size());
    live_bytes_ -= freed;
    garbage_bytes_ += freed;
    // Backward-shift deletion: pull later members of the probe run into the
    // hole when their home bucket is not after it, so no run has a gap.
    for (size_t j = Next(i); slots_[j].ref != 0; j = Next(j)) {
      const size_t home = Home(Hash(IdOf(slots_[j].ref)), capacity_);
      // Slot j may move to i only if its home is cyclically outside (i, j].
      const bool movable = i <= j ? (home <= i || home > j) : (home <= i && home > j);
      if (movable) {
        slots_[i] = slots_[j];
        i = j;
      }
    }
    slots_[i].ref = 0;
    --size_;
    if (size_ == 0) {
      Clear();
    } else if (repack_ && garbage_bytes_ > live_bytes_ && garbage_bytes_ > kChunkBytes) {
      RepackIds();
    }
    return true;
  }

  void Clear() {
    slots_ = nullptr;
    owned_slots_.reset();
    keepalive_.reset();
    capacity_ = 0;
    size_ = 0;
    chunks_.clear();
    chunk_used_ = 0;
    live_bytes_ = 0;
    garbage_bytes_ = 0;
  }

  // f(std::string_view id, Value& value) for every entry, in no set order.
  // f must not insert or erase.
  template <class F>
  void ForEach(F&& f) {
    for (size_t i = 0; i < capacity_; ++i) {
      if (slots_[i].ref != 0) f(IdOf(slots_[i].ref), slots_[i].value);
    }
  }

  // Heap bytes held: the slot array and the id chunks allocated here (not
  // those adopted; see MappedBytes).
  size_t MemoryBytes() const {
    size_t bytes = owned_slots_ ? capacity_ * sizeof(Slot) : 0;
    for (const Chunk& c : chunks_) bytes += c.owned ? c.size : 0;
    return bytes;
  }
  // Bytes adopted from elsewhere and still in use (see Adopt).
  size_t MappedBytes() const {
    size_t bytes = (slots_ != nullptr && !owned_slots_) ? capacity_ * sizeof(Slot) : 0;
    for (const Chunk& c : chunks_) bytes += c.owned ? 0 : c.size;
    return bytes;
  }

  // --- Persisting (index_file.cc)
  static constexpr size_t kSlotBytes = sizeof(uint64_t) + sizeof(Value);
  static uint64_t HashOf(std::string_view id) { return Hash(id); }
  // The hash of a fixed string: an index written by a build whose Hash()
  // differs (another standard library) must be rebuilt, not adopted.
  static uint64_t HashCheck() { return Hash("tierstore id index"); }

  // A copy of other's entries in memory of its own (same slots, same
  // capacity, ids packed afresh), whose Erase never repacks ids: a snapshot
  // to trim and write out. The values of empty slots are zeroed, so the
  // exported bytes depend only on the entries. Throws std::bad_alloc.
  void CopyFrom(const IdIndex& other) {
    Clear();
    repack_ = false;
    if (other.capacity_ == 0) return;
    owned_slots_.reset(new Slot[other.capacity_]);
    slots_ = owned_slots_.get();
    capacity_ = other.capacity_;
    for (size_t i = 0; i < capacity_; ++i) {
      const uint64_t ref = other.slots_[i].ref;
      if (ref == 0) {
        std::memset(static_cast<void*>(&slots_[i]), 0, sizeof(Slot));
        continue;
      }
      slots_[i].ref = StoreId(other.IdOf(ref)) | (ref & (kOccupied | kTagMask));
      slots_[i].value = other.slots_[i].value;
      ++size_;
    }
    live_bytes_ = other.live_bytes_;
  }

  // The slot array: capacity() slots of kSlotBytes each (a u64 reference,
  // then the Value's bytes).
  const void* ExportedSlots() const { return slots_; }
  // The id chunks, in order: (bytes, size). A reference names a chunk by its
  // position here.
  std::vector<std::pair<const char*, size_t>> ExportedChunks() const {
    std::vector<std::pair<const char*, size_t>> out;
    out.reserve(chunks_.size());
    for (const Chunk& c : chunks_) out.emplace_back(c.bytes, c.size);
    if (!out.empty()) out.back().second = chunk_used_;  // the rest of the last chunk is unused
    return out;
  }

  // Checks exported slots and chunks from an untrusted source: every
  // occupied slot's id must lie inside its chunk, the count must be
  // `entries`, and at least one slot must be empty (lookups stop at an
  // empty slot). value_ok(const Value&) vets each value. False with *why
  // on the first failure; nothing is adopted either way.
  template <class ValueOk>
  static bool CheckExported(const void* slots, size_t capacity, size_t entries,
                            const std::vector<std::pair<char*, size_t>>& chunks, const ValueOk& value_ok,
                            std::string* why) {
    if (capacity == 0 && entries == 0) return true;  // an empty index
    if (capacity > kMaxCapacity || entries >= capacity || chunks.size() > kMaxChunks) {
      *why = "slot count out of range";
      return false;
    }
    const Slot* s = static_cast<const Slot*>(slots);
    size_t seen = 0;
    for (size_t i = 0; i < capacity; ++i) {
      const uint64_t ref = s[i].ref;
      if (ref == 0) continue;
      if ((ref & kOccupied) == 0) {
        *why = "slot " + std::to_string(i) + " has a bad reference";
        return false;
      }
      const uint64_t pos = ref & ((uint64_t{1} << kLenShift) - 1);
      const size_t chunk = static_cast<size_t>(pos >> 20), off = static_cast<size_t>(pos & (kChunkBytes - 1));
      const uint64_t len_bits = (ref >> kLenShift) & 0xFFF;
      if (chunk >= chunks.size() || off > chunks[chunk].second) {
        *why = "slot " + std::to_string(i) + " names an id outside the id chunks";
        return false;
      }
      size_t len = static_cast<size_t>(len_bits);
      size_t need = len;
      if (len_bits == kLongId) {
        if (chunks[chunk].second - off < 4) {
          *why = "slot " + std::to_string(i) + " names an id outside the id chunks";
          return false;
        }
        uint32_t long_len;
        std::memcpy(&long_len, chunks[chunk].first + off, 4);
        if (long_len < kLongId) {
          *why = "slot " + std::to_string(i) + " has a bad id length";
          return false;
        }
        need = size_t{long_len} + 4;
      }
      if (need > chunks[chunk].second - off) {
        *why = "slot " + std::to_string(i) + " names an id outside the id chunks";
        return false;
      }
      if (!value_ok(s[i].value)) {
        *why = "slot " + std::to_string(i) + " has a bad location";
        return false;
      }
      // The id must be found where it lies: a changed id byte would
      // otherwise hide its record from every lookup (the record answers as
      // absent, which no later read could tell from a deleted one).
      const char* at = chunks[chunk].first + off + (len_bits == kLongId ? 4 : 0);
      const uint64_t h = Hash(std::string_view(at, need - (len_bits == kLongId ? 4 : 0)));
      if (TagOf(h) != (ref & kTagMask)) {
        *why = "slot " + std::to_string(i) + " holds an id that does not hash to its tag";
        return false;
      }
      for (size_t j = Home(h, capacity); j != i; j = j + 1 == capacity ? 0 : j + 1) {
        if (s[j].ref == 0) {
          *why = "slot " + std::to_string(i) + " cannot be reached from its id's home slot";
          return false;
        }
      }
      ++seen;
    }
    if (seen != entries) {
      *why = "holds " + std::to_string(seen) + " entries, its header says " + std::to_string(entries);
      return false;
    }
    return true;
  }

  // Replaces the contents with exported slots and chunks that live in
  // memory kept alive by `keepalive` (checked by CheckExported first). The
  // memory must be writable (a private mapping); it is not copied.
  void Adopt(std::shared_ptr<void> keepalive, void* slots, size_t capacity, size_t entries,
             const std::vector<std::pair<char*, size_t>>& chunks) {
    Clear();
    if (capacity == 0) return;
    chunks_.reserve(chunks.size());
    size_t bytes = 0;
    for (const auto& [p, n] : chunks) {
      chunks_.push_back(Chunk{nullptr, p, n});
      bytes += n;
    }
    slots_ = static_cast<Slot*>(slots);
    capacity_ = capacity;
    size_ = entries;
    keepalive_ = std::move(keepalive);
    // New ids go to a chunk of their own; the adopted ones count as live
    // (erased ids in them are garbage that a repack would drop).
    chunk_used_ = chunks_.empty() ? 0 : chunks_.back().size;
    live_bytes_ = bytes;
    if (size_ == 0) Clear();
  }

 private:
  // ref: bit 63 occupied | bits 52..62 hash tag | bits 40..51 id length
  // (4095 = a longer id whose u32 length precedes its bytes) | bits 0..39 the
  // id's position: chunk index << 20 | offset in the chunk.
  static constexpr uint64_t kOccupied = uint64_t{1} << 63;
  static constexpr uint64_t kTagMask = uint64_t{0x7FF} << 52;
  static constexpr unsigned kLenShift = 40;
  static constexpr uint64_t kLongId = 0xFFF;
  static constexpr size_t kChunkBytes = size_t{1} << 20;
  static constexpr size_t kMaxChunks = size_t{1} << 20;
  static constexpr size_t kMaxCapacity = size_t{1} << 32;  // Home() multiplies 32 x 32 bits

  struct Slot {
    uint64_t ref;  // 0: empty
    Value value;
  };
  static_assert(sizeof(Slot) == sizeof(uint64_t) + sizeof(Value), "a slot's bytes are its reference and value");
  struct Chunk {
    std::unique_ptr<char[]> owned;  // null for adopted chunks
    char* bytes;
    size_t size;
  };

  static constexpr size_t kNone = ~size_t{0};

  size_t FindSlot(std::string_view id, uint64_t h) const {
    if (size_ == 0) return kNone;
    const uint64_t tag = TagOf(h);
    for (size_t i = Home(h, capacity_);; i = Next(i)) {
      const uint64_t ref = slots_[i].ref;
      if (ref == 0) return kNone;
      if ((ref & kTagMask) == tag && IdOf(ref) == id) return i;
    }
  }

  static uint64_t Hash(std::string_view id) { return std::hash<std::string_view>{}(id); }
  // The top bits: independent of the low bits that pick the bucket.
  // The home bucket comes from the hash's high bits (multiply-shift, so any
  // capacity works and the table grows by half, not double: 53-80% full);
  // the tag from its low bits, independent of the bucket.
  static size_t Home(uint64_t h, size_t capacity) {
    return static_cast<size_t>(((h >> 32) * capacity) >> 32);  // capacity <= 2^32
  }
  size_t Next(size_t i) const { return i + 1 == capacity_ ? 0 : i + 1; }
  static uint64_t TagOf(uint64_t h) { return (h & 0x7FF) << 52; }
  static size_t StoredBytes(size_t len) { return len < kLongId ? len : len + 4; }

  std::string_view IdOf(uint64_t ref) const { return IdIn(chunks_, ref); }
  static std::string_view IdIn(const std::vector<Chunk>& chunks, uint64_t ref) {
    const uint64_t pos = ref & ((uint64_t{1} << kLenShift) - 1);
    const char* p = chunks[pos >> 20].bytes + (pos & (kChunkBytes - 1));
    uint64_t len = (ref >> kLenShift) & 0xFFF;
    if (len == kLongId) {
      uint32_t long_len;
      std::memcpy(&long_len, p, 4);
      return std::string_view(p + 4, long_len);
    }
    return std::string_view(p, len);
  }

  // Copies id into the chunks; returns its position and length bits.
  uint64_t StoreId(std::string_view id) {
    const size_t need = StoredBytes(id.size());
    if (chunks_.empty() || chunk_used_ + need > chunks_.back().size) {
      if (chunks_.size() >= kMaxChunks) throw std::bad_alloc();
      chunks_.reserve(chunks_.size() + 1);  // so the push below cannot throw after the allocation
      // Small at first (a store of a few records holds a few KiB), then
      // doubling up to 1 MiB.
      const size_t grown = std::min(kChunkBytes, size_t{4096} << std::min<size_t>(chunks_.size(), 8));
      const size_t size = need > grown ? need : grown;
      // Not zeroed: a fresh chunk's untouched pages cost no RAM until ids fill them.
      std::unique_ptr<char[]> bytes(new char[size]);
      char* raw = bytes.get();
      chunks_.push_back(Chunk{std::move(bytes), raw, size});
      chunk_used_ = 0;
    }
    char* p = chunks_.back().bytes + chunk_used_;
    uint64_t len_bits;
    if (id.size() < kLongId) {
      std::memcpy(p, id.data(), id.size());
      len_bits = id.size();
    } else {
      const uint32_t long_len = static_cast<uint32_t>(id.size());
      std::memcpy(p, &long_len, 4);
      std::memcpy(p + 4, id.data(), id.size());
      len_bits = kLongId;
    }
    const uint64_t pos = (uint64_t{chunks_.size() - 1} << 20) | chunk_used_;
    chunk_used_ += need;
    return pos | (len_bits << kLenShift);
  }

  void Rehash(size_t new_capacity) {
    if (new_capacity > kMaxCapacity) throw std::bad_alloc();
    std::unique_ptr<Slot[]> fresh(new Slot[new_capacity]);  // may throw: nothing changed yet
    for (size_t i = 0; i < new_capacity; ++i) fresh[i].ref = 0;
    for (size_t i = 0; i < capacity_; ++i) {
      if (slots_[i].ref == 0) continue;
      size_t j = Home(Hash(IdOf(slots_[i].ref)), new_capacity);
      while (fresh[j].ref != 0) j = j + 1 == new_capacity ? 0 : j + 1;
      fresh[j] = slots_[i];
    }
    owned_slots_ = std::move(fresh);
    slots_ = owned_slots_.get();
    capacity_ = new_capacity;
  }

  // Copies the live ids into fresh chunks and drops the old ones. Best
  // effort: on allocation failure the index keeps its garbage, unchanged.
  void RepackIds() noexcept {
    std::vector<Chunk> old = std::move(chunks_);
    chunks_.clear();
    const size_t old_used = chunk_used_;
    chunk_used_ = 0;
    std::vector<uint64_t> refs;
    try {
      refs.reserve(size_);
      for (size_t i = 0; i < capacity_; ++i) {
        const uint64_t ref = slots_[i].ref;
        if (ref != 0) refs.push_back(StoreId(IdIn(old, ref)) | (ref & (kOccupied | kTagMask)));
      }
    } catch (...) {
      chunks_ = std::move(old);
      chunk_used_ = old_used;
      return;
    }
    size_t k = 0;
    for (size_t i = 0; i < capacity_; ++i) {
      if (slots_[i].ref != 0) slots_[i].ref = refs[k++];
    }
    garbage_bytes_ = 0;
  }

  Slot* slots_ = nullptr;               // owned_slots_, or adopted memory
  std::unique_ptr<Slot[]> owned_slots_;
  std::shared_ptr<void> keepalive_;     // what adopted slots and chunks live in
  bool repack_ = true;                  // false in CopyFrom's snapshots
  size_t capacity_ = 0;  // slots; 0 before the first insert
  size_t size_ = 0;
  std::vector<Chunk> chunks_;
  size_t chunk_used_ = 0;  // bytes used in chunks_.back()
  size_t live_bytes_ = 0;
  size_t garbage_bytes_ = 0;
};

}  // namespace tierstore
