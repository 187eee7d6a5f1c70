// Shared helpers of the node-addon-api layer: the per-environment addon data,
// uniform argument checks, Status -> JS error, and RecordBatch -> columnar JS
// object. No storage logic lives here: that is native/core's.
//
// Errors: every error the binding raises is a JS error whose `code` is one of
// the public codes (StatusCodeName) and whose message is the Status message.
// When lib/ has registered its TierStoreError class (setErrorConstructor) the
// error is an instance of it; otherwise a plain Error with a `code` property.
// The addon is built with NAPI_CPP_EXCEPTIONS: helpers throw Napi::Error.
#pragma once

#include <napi.h>

#include <cstdint>
#include <string>
#include <string_view>

#include "status.h"
#include "store.h"

namespace tierstore_binding {

// Per-environment (per main thread / worker thread) data of the addon.
struct AddonData {
  Napi::FunctionReference store_ctor;
  Napi::FunctionReference iterator_ctor;
  Napi::FunctionReference error_ctor;  // TierStoreError, once registered
};

AddonData* GetAddonData(Napi::Env env);

// A JS error value for code/message (an instance of the registered class).
Napi::Error MakeError(Napi::Env env, const char* code, const std::string& message);
Napi::Error MakeError(Napi::Env env, const tierstore::Status& status);
[[noreturn]] void ThrowStatus(Napi::Env env, const tierstore::Status& status);
[[noreturn]] void ThrowError(Napi::Env env, const char* code, const std::string& message);
[[noreturn]] void ThrowInvalid(Napi::Env env, const std::string& message);
// An error about record `index` of a batch: a TierStoreError carrying
// `recordIndex`, whose message names the field as `memory.<field>`.
[[noreturn]] void ThrowRecordError(Napi::Env env, const char* code, const std::string& message, size_t index);
inline void Check(Napi::Env env, const tierstore::Status& status) {
  if (!status.ok()) ThrowStatus(env, status);
}

// Uniform argument checks: `what` is "method(): name"; each failure throws
// INVALID_ARGUMENT naming the argument and what is allowed.
Napi::Value Arg(const Napi::CallbackInfo& info, size_t i);
bool ArgBool(const Napi::CallbackInfo& info, size_t i, const char* what);
// An integer number in [min, max].
double ArgInteger(const Napi::CallbackInfo& info, size_t i, const char* what, double min, double max);
std::string ArgString(const Napi::CallbackInfo& info, size_t i, const char* what);
// A record id (1..kMaxIdBytes UTF-8 bytes) read into a caller buffer without
// allocating; returns its length.
constexpr size_t kIdBufferSize = tierstore::kMaxIdBytes + 4;
size_t ArgId(const Napi::CallbackInfo& info, size_t i, const char* what, char (&buf)[kIdBufferSize]);

// A typed array argument's elements, valid while the call runs (nothing
// here calls into JS, so the buffer cannot be detached meanwhile).
template <typename T>
struct TypedArrayArg {
  T* data = nullptr;
  size_t length = 0;  // elements
  T* Data() const { return data; }
  size_t ElementLength() const { return length; }
  size_t ByteLength() const { return length * sizeof(T); }
};

// One napi_get_typedarray_info per argument: Napi::TypedArrayOf asks for
// the same information twice more, a measurable part of a single put.
template <typename T>
TypedArrayArg<T> ArgTypedArray(const Napi::CallbackInfo& info, size_t i, const char* what,
                               napi_typedarray_type type, const char* type_name) {
  Napi::Value v = Arg(info, i);
  napi_typedarray_type found = napi_int8_array;
  size_t length = 0;
  void* data = nullptr;
  // Anything but a typed array is napi_invalid_arg (no exception pending).
  if (napi_get_typedarray_info(info.Env(), v, &found, &length, &data, nullptr, nullptr) != napi_ok ||
      found != type) {
    ThrowInvalid(info.Env(), std::string(what) + " must be a " + type_name);
  }
  return {static_cast<T*>(data), length};
}

// 0..3 (hot, warm, cold, all); allow_all=false rejects 3.
tierstore::TierSelector ArgTierSelector(const Napi::CallbackInfo& info, size_t i, const char* what,
                                        bool allow_all);

// Columnar JS object of a batch (see lib/native.ts NativeBatch):
// { tiers: Uint8Array, ids, contents, metadata: string[], confidence,
//   activation: Float32Array, createdAt, lastAccessAt, accessCount:
//   Float64Array, embeddings?: Float32Array (n x dims) }.
// A filter argument pair at i, i + 1: (scalars: Float64Array of 4 —
// createdAfter, createdBefore, minConfidence, minActivation, NaN where
// absent — or undefined; metadata: the conditions' JSON text, '' for none,
// or undefined). Null when no condition is given.
std::shared_ptr<const tierstore::RecordFilter> ArgFilter(const Napi::CallbackInfo& info, size_t i, const char* what);

// A batch column by column, as Arrow lays columns out: { count, chunks:
// [{ count, tiers, ids, contents, metadata (each { data: Buffer of UTF-8,
// offsets: Int32Array of count + 1 }), confidence, activation (Float32Array),
// createdAt, lastAccessAt, accessCount (BigInt64Array), embeddings?
// (Float32Array) }] }. A chunk holds at most max_string_bytes of id, content
// and metadata bytes together (one larger record makes a chunk of its own),
// so every offset fits an int32.
Napi::Object ColumnsToJs(Napi::Env env, const tierstore::RecordBatch& batch, uint32_t dimensions,
                         bool include_embeddings, uint64_t max_string_bytes);

Napi::Object BatchToJs(Napi::Env env, tierstore::RecordBatch& batch, uint32_t dimensions,
                       bool include_embeddings);
// A JS string of well-formed UTF-8 bytes (one decoding pass; ASCII copied).
napi_value StringFromUtf8(Napi::Env env, std::string_view s);
// Record i's embedding as a Float32Array of its own (CORRUPTION when the
// batch holds none).
Napi::Value EmbeddingToJs(Napi::Env env, const tierstore::RecordBatch& batch, size_t i, uint32_t dimensions);
Napi::Object CountsToJs(Napi::Env env, const tierstore::TierCounts& counts);

double NowMs();

}  // namespace tierstore_binding
