// State shared by one open handle (NativeStore) and the iterators created
// from it. Lives on the JS thread that owns the handle; only IteratorState::it
// is touched from a worker thread (by NativeIterator.nextAsync), and only
// while IteratorState::busy is set.
//
// Release(): HandleState calls Store::Release(writable) exactly once — at
// NativeStore.close(), or from the destructor when the handle and all its
// iterators were garbage collected without close(). A close() while
// recallAsync calls of this handle are in flight defers the release until
// the last of them settles, so each of them completes (resolves) whatever
// the thread pool's timing: before, one not yet started when close() came
// found the store closed (found by a probe: 11 resolved, 19 rejected of 30).
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
  // The batch each next()/nextAsync() fills (one call at a time: `busy`),
  // kept between calls so its buffers are not grown from empty every batch.
  tierstore::RecordBatch scratch;

  // After a batch was converted: drops buffers grown past what a typical
  // batch needs, so one batch of huge contents does not stay allocated.
  void TrimScratch() {
    constexpr size_t kKeptBytes = size_t{64} << 20;
    if (scratch.bytes.capacity() > kKeptBytes || scratch.embeddings.capacity() * sizeof(float) > kKeptBytes) {
      scratch = tierstore::RecordBatch();
    } else {
      scratch.Clear();
    }
  }

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
  int async_in_flight = 0;        // JS thread: recallAsync calls not yet settled
  bool release_deferred = false;  // JS thread: close() came while some were in flight
  std::vector<std::weak_ptr<IteratorState>> iterators;

  // JS thread, around each recallAsync (its worker's construction and destruction).
  void AsyncStarted() { ++async_in_flight; }
  void AsyncSettled() {
    if (--async_in_flight == 0 && release_deferred) ReleaseStore();
  }

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
    if (async_in_flight > 0) {
      release_deferred = true;
      return;
    }
    ReleaseStore();
  }

  void ReleaseStore() {
    release_deferred = false;
    if (store) store->Release(/*writable=*/!read_only);
    store.reset();
  }

  // Workers hold the state, so none is in flight here.
  ~HandleState() { Close(); }
};

}  // namespace tierstore_binding
