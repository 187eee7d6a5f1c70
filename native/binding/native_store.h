// NativeStore: one open handle on a tierstore::Store (see lib/native.ts for
// the JS-side signatures). Thin: argument checks, marshalling, errors.
#pragma once

#include <napi.h>

#include <memory>
#include <string>
#include <vector>

#include "handle.h"

namespace tierstore_binding {

class NativeStore : public Napi::ObjectWrap<NativeStore> {
 public:
  static Napi::Function Init(Napi::Env env);

  // new NativeStore(path, dimensions (0 = read from the store), readOnly,
  //                 hotCapacity, warmCapacity, skipWarm, sync)
  explicit NativeStore(const Napi::CallbackInfo& info);

  const std::shared_ptr<HandleState>& state() const { return state_; }

 private:
  // Throws STORE_CLOSED after close().
  tierstore::Store& Open(Napi::Env env, const char* method);
  tierstore::Store& Writable(Napi::Env env, const char* method);

  Napi::Value Path(const Napi::CallbackInfo& info);
  Napi::Value Dimensions(const Napi::CallbackInfo& info);
  Napi::Value IsClosed(const Napi::CallbackInfo& info);
  Napi::Value PutMany(const Napi::CallbackInfo& info);
  Napi::Value Get(const Napi::CallbackInfo& info);
  Napi::Value Has(const Napi::CallbackInfo& info);
  Napi::Value Delete(const Napi::CallbackInfo& info);
  Napi::Value Move(const Napi::CallbackInfo& info);
  Napi::Value Migrate(const Napi::CallbackInfo& info);
  Napi::Value Counts(const Napi::CallbackInfo& info);
  Napi::Value Iterator(const Napi::CallbackInfo& info);
  Napi::Value List(const Napi::CallbackInfo& info);
  Napi::Value Flush(const Napi::CallbackInfo& info);
  Napi::Value Compact(const Napi::CallbackInfo& info);
  Napi::Value Stats(const Napi::CallbackInfo& info);
  Napi::Value Verify(const Napi::CallbackInfo& info);
  Napi::Value Close(const Napi::CallbackInfo& info);
  // native_recall.cc
  Napi::Value Recall(const Napi::CallbackInfo& info);
  Napi::Value RecallAsync(const Napi::CallbackInfo& info);
  tierstore::RecallOptions RecallArgs(const Napi::CallbackInfo& info, const char* method, std::vector<float>* query);

  std::shared_ptr<HandleState> state_;
  std::string path_;
  // The UTF-8 of the strings of the putMany in progress, kept between calls
  // (up to kKeptUtf8Scratch bytes) so a single put allocates nothing. Only
  // the thread that owns this object uses it, and PutMany never calls JS.
  static constexpr size_t kKeptUtf8Scratch = size_t{4} << 20;
  std::unique_ptr<char[]> utf8_scratch_;
  size_t utf8_capacity_ = 0;
};

}  // namespace tierstore_binding
