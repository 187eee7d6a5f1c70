// KeyOrderedTable<T>: owns T objects under increasing uint64 keys and keeps
// them in key order. The hot tier's records by arrival key: iteration order
// is key order, and an iterator resumes after the last key it yielded.
//
// Not a std::map: its every lookup chases one pointer per tree level
// through nodes scattered among the records. Here the keys are one sorted
// contiguous array (binary search touches a few cache lines), the objects a
// parallel array of owning pointers; a taken entry leaves a null until the
// next compaction.
//
// Guarantees:
// - Append requires a key above every key appended before (arrival order);
//   a key is never reused, so a position remembered as a key stays
//   meaningful after that entry is taken (UpperBound).
// - Find, Take: O(log n). Append: amortised O(1). Iteration skips taken
//   entries; compaction keeps them under half the array (plus a constant),
//   so iterating costs O(live entries).
// - Objects never move (each is its own allocation): a T* stays valid until
//   its entry is taken or the table is cleared.
// - Iterators are invalidated by Append, Take and Clear (any of them may
//   compact), like a vector's: look up again by key after a change.
//
// Synchronization: none inside. Const members may run concurrently with
// each other; anything else needs exclusive access (the Store holds its
// shared_mutex exclusively to write).
#pragma once

#include <algorithm>
#include <cassert>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <utility>
#include <vector>

namespace tierstore {

template <class T>
class KeyOrderedTable {
 public:
  KeyOrderedTable() = default;
  KeyOrderedTable(const KeyOrderedTable&) = delete;
  KeyOrderedTable& operator=(const KeyOrderedTable&) = delete;

  size_t size() const { return live_; }
  bool empty() const { return live_ == 0; }

  void Clear() {
    keys_.clear();
    values_.clear();
    live_ = 0;
  }

  void Swap(KeyOrderedTable& other) noexcept {
    keys_.swap(other.keys_);
    values_.swap(other.values_);
    std::swap(live_, other.live_);
  }

  // Adds value under key, which must exceed every key appended before.
  // May throw std::bad_alloc, leaving the table as it was.
  void Append(uint64_t key, std::unique_ptr<T> value) {
    assert(value != nullptr);
    assert(keys_.empty() || key > keys_.back());
    MaybeCompact();
    if (keys_.size() == keys_.capacity() || values_.size() == values_.capacity()) {
      // Both reserved before either grows, so a failure leaves them alike.
      const size_t capacity = std::max<size_t>(16, 2 * keys_.size());
      keys_.reserve(capacity);
      values_.reserve(capacity);
    }
    keys_.push_back(key);
    values_.push_back(std::move(value));
    ++live_;
  }

  // The object under key, or nullptr.
  T* Find(uint64_t key) const {
    const size_t i = IndexOf(key);
    return i == kNone ? nullptr : values_[i].get();
  }

  // Removes the entry under key and hands its object over; nullptr if absent.
  std::unique_ptr<T> Take(uint64_t key) {
    const size_t i = IndexOf(key);
    if (i == kNone) return nullptr;
    std::unique_ptr<T> out = std::move(values_[i]);
    --live_;
    if (live_ == 0) {
      Clear();
    } else if (i + 1 == keys_.size()) {
      // The newest entry (an upsert of what was just put): no hole left.
      keys_.pop_back();
      values_.pop_back();
    } else {
      MaybeCompact();
    }
    return out;
  }

  class Iterator {
   public:
    uint64_t key() const { return (*keys_)[i_]; }
    T* value() const { return (*values_)[i_].get(); }
    Iterator& operator++() {
      ++i_;
      SkipTaken();
      return *this;
    }
    bool operator==(const Iterator& o) const { return i_ == o.i_; }
    bool operator!=(const Iterator& o) const { return i_ != o.i_; }
    // For range-for: the iterator itself (key() and value()).
    const Iterator& operator*() const { return *this; }

   private:
    friend class KeyOrderedTable;
    Iterator(const std::vector<uint64_t>* keys, const std::vector<std::unique_ptr<T>>* values, size_t i)
        : keys_(keys), values_(values), i_(i) {
      SkipTaken();
    }
    void SkipTaken() {
      while (i_ < values_->size() && (*values_)[i_] == nullptr) ++i_;
    }
    const std::vector<uint64_t>* keys_;
    const std::vector<std::unique_ptr<T>>* values_;
    size_t i_;
  };

  Iterator begin() const { return Iterator(&keys_, &values_, 0); }
  Iterator end() const { return Iterator(&keys_, &values_, keys_.size()); }
  // The first entry with a key above `key` (which need not be present).
  Iterator UpperBound(uint64_t key) const {
    auto it = std::upper_bound(keys_.begin(), keys_.end(), key);
    return Iterator(&keys_, &values_, static_cast<size_t>(it - keys_.begin()));
  }
  // The n-th entry in key order (0-based), or end() when n >= size().
  Iterator Nth(size_t n) const {
    if (n >= live_) return end();
    if (live_ == keys_.size()) return Iterator(&keys_, &values_, n);
    Iterator it = begin();
    for (; n > 0; --n) ++it;
    return it;
  }

 private:
  static constexpr size_t kNone = ~size_t{0};
  // Taken entries are squeezed out once they outnumber the live ones (and
  // are not a handful): amortised O(1) per Take.
  static constexpr size_t kMinTakenToCompact = 1024;

  size_t IndexOf(uint64_t key) const {
    auto it = std::lower_bound(keys_.begin(), keys_.end(), key);
    if (it == keys_.end() || *it != key) return kNone;
    const size_t i = static_cast<size_t>(it - keys_.begin());
    return values_[i] == nullptr ? kNone : i;
  }

  void MaybeCompact() {
    const size_t taken = keys_.size() - live_;
    if (taken < kMinTakenToCompact || taken <= live_) return;
    size_t out = 0;
    for (size_t i = 0; i < keys_.size(); ++i) {
      if (values_[i] == nullptr) continue;
      keys_[out] = keys_[i];
      values_[out] = std::move(values_[i]);
      ++out;
    }
    keys_.resize(out);
    values_.resize(out);
  }

  std::vector<uint64_t> keys_;                // ascending
  std::vector<std::unique_ptr<T>> values_;    // parallel to keys_; null = taken
  size_t live_ = 0;
};

}  // namespace tierstore
