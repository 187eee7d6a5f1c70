// Module entry point. Exports:
//   NativeStore, NativeIterator (classes; see native_store.h, native_iterator.h)
//   setErrorConstructor(ctor): errors are then built as new ctor(code, message)
//   limits: { maxIdBytes, maxContentBytes, maxDimensions } (format limits)
// Context-aware: each Node environment (main thread, worker threads) gets its
// own AddonData; the core shares one Store per path across them.
#include <napi.h>

#include "common.h"
#include "native_iterator.h"
#include "native_store.h"
#include "record.h"

namespace tierstore_binding {
namespace {

Napi::Value SetErrorConstructor(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!info[0].IsFunction()) ThrowInvalid(env, "setErrorConstructor(): ctor must be a function");
  GetAddonData(env)->error_ctor = Napi::Persistent(info[0].As<Napi::Function>());
  return env.Undefined();
}

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  auto* data = new AddonData();
  env.SetInstanceData<AddonData>(data);  // deleted by node-addon-api at env teardown
  Napi::Function store = NativeStore::Init(env);
  Napi::Function iterator = NativeIterator::Init(env);
  data->store_ctor = Napi::Persistent(store);
  data->iterator_ctor = Napi::Persistent(iterator);

  Napi::Object limits = Napi::Object::New(env);
  limits.Set("maxIdBytes", static_cast<double>(tierstore::kMaxIdBytes));
  limits.Set("maxContentBytes", static_cast<double>(tierstore::kMaxContentBytes));
  limits.Set("maxDimensions", static_cast<double>(tierstore::kMaxDimensions));

  exports.Set("NativeStore", store);
  exports.Set("NativeIterator", iterator);
  exports.Set("setErrorConstructor", Napi::Function::New<SetErrorConstructor>(env, "setErrorConstructor"));
  exports.Set("limits", limits);
  return exports;
}

}  // namespace
}  // namespace tierstore_binding

static Napi::Object InitTierstore(Napi::Env env, Napi::Object exports) {
  return tierstore_binding::Init(env, exports);
}

NODE_API_MODULE(tierstore, InitTierstore)
