// State shared by one open handle (NativeStore) and the iterators created
// from it. Lives on the JS thread that owns the handle; only IteratorState::it
// is touched from a worker thread (by NativeIterator.nextAsync), and only
// while IteratorState::busy is set.
//
// Release(): HandleState::Close() calls Store::Release(writable) exactly once — from
// NativeStore.close(), or from the destructor when the handle and all its
// iterators were garbage collected without close().
#pragma once

#include <memory>
#include <vector>

#include "store.h"

namespace tierstore_binding {

struct IteratorState {
  std::shared_ptr<tierstore::Store> store;        // keeps the Store object alive
  std::unique_ptr<tierstore::StoreIterator> it;   // destroyed before `store`
  uint32_t dimensions = 0;
  bool closed = false;  // JS thread only
  bool busy = false;    // JS thread only: a nextAsync is in flight

  // JS thread. Idempotent. While a nextAsync is in flight the core iterator
  // is closed (thread-safe per StoreIterator's contract) but destroyed only
  // when the worker has finished.
  void Close() {
    if (closed) return;
    closed = true;
    if (it) {
      it->Close();
      if (!busy) it.reset();
    }
  }
};

struct HandleState {
  std::shared_ptr<tierstore::Store> store;
  tierstore::WriteOptions write_options;
  uint32_t dimensions = 0;
  bool read_only = false;
  bool closed = false;
  std::vector<std::weak_ptr<IteratorState>> iterators;

  void Track(const std::shared_ptr<IteratorState>& it) {
    // Drop entries of iterators already gone so the list stays small.
    std::erase_if(iterators, [](const std::weak_ptr<IteratorState>& w) { return w.expired(); });
    iterators.push_back(it);
  }

  void Close() {
    if (closed) return;
    closed = true;
    for (auto& w : iterators) {
      if (auto it = w.lock()) it->Close();
    }
    iterators.clear();
    if (store) store->Release(/*writable=*/!read_only);
    store.reset();
  }

  ~HandleState() { Close(); }
};

}  // namespace tierstore_binding
