// NativeIterator: one tier iterator of a NativeStore handle.
//   new NativeIterator(store: NativeStore, tier: 0..3)   (hot, warm, cold, all)
//   next(batchSize, includeEmbeddings, columns?) -> NativeBatch (0 records:
//     the end), or with columns = true the batch column by column
//     (ColumnsToJs: UTF-8 buffers with int32 offsets, as Arrow lays them out)
//   nextAsync(batchSize, includeEmbeddings, columns?) -> a Promise of the
//     same; the core call runs on a libuv worker thread; every error rejects
//     the promise.
//   close() -> undefined (idempotent)
// After close() of the iterator or of its handle, next/nextAsync report
// STORE_CLOSED. One nextAsync at a time per iterator (another call while one
// is in flight is INVALID_ARGUMENT), so batches never arrive out of order.
#pragma once

#include <napi.h>

#include <memory>

#include "handle.h"

namespace tierstore_binding {

class NativeIterator : public Napi::ObjectWrap<NativeIterator> {
 public:
  static Napi::Function Init(Napi::Env env);
  explicit NativeIterator(const Napi::CallbackInfo& info);

 private:
  // Checks shared by next and nextAsync; returns the batch size.
  size_t CheckNext(const Napi::CallbackInfo& info, const char* method, bool* include_embeddings, bool* columns);

  Napi::Value Next(const Napi::CallbackInfo& info);
  Napi::Value NextAsync(const Napi::CallbackInfo& info);
  Napi::Value Close(const Napi::CallbackInfo& info);

  std::shared_ptr<HandleState> handle_;  // keeps the handle open while iterating
  std::shared_ptr<IteratorState> state_;
};

}  // namespace tierstore_binding
