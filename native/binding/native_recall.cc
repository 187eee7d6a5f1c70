// recall / recallAsync: exact cosine top-k (Store::Recall). The async form
// runs the scan on a libuv worker thread, split across the machine's cores
// by the core; the worker touches only core objects, never JS.
#include <thread>

#include "common.h"
#include "native_store.h"

namespace tierstore_binding {

namespace {

Napi::Object ResultToJs(Napi::Env env, tierstore::RecallResult& result, uint32_t dimensions, bool include_embeddings) {
  Napi::Object out = BatchToJs(env, result.records, dimensions, include_embeddings);
  Napi::Float64Array scores = Napi::Float64Array::New(env, result.scores.size());
  for (size_t i = 0; i < result.scores.size(); ++i) scores[i] = result.scores[i];
  out.Set("scores", scores);
  return out;
}

class RecallWorker : public Napi::AsyncWorker {
 public:
  RecallWorker(Napi::Env env, std::shared_ptr<HandleState> handle, std::vector<float> query,
               tierstore::RecallOptions options, uint32_t dimensions)
      : Napi::AsyncWorker(env, "tierstore.recall"),
        deferred_(Napi::Promise::Deferred::New(env)),
        handle_(std::move(handle)),
        store_(handle_->store),
        query_(std::move(query)),
        options_(options),
        dimensions_(dimensions) {
    handle_->AsyncStarted();
  }
  // JS thread, after OnOK/OnError: a close() of the handle meanwhile
  // released the store only now (see HandleState).
  ~RecallWorker() override { handle_->AsyncSettled(); }

  Napi::Promise Promise() const { return deferred_.Promise(); }

  // Worker thread: core only. A close() of this handle meanwhile defers
  // the store's release until this worker settles; another handle closing
  // the store (its last) waits for this scan, which holds the shared lock.
  void Execute() override { status_ = store_->Recall(query_.data(), options_, &result_); }

  void OnOK() override {
    Napi::Env env = Env();
    if (!status_.ok()) {
      deferred_.Reject(MakeError(env, status_).Value());
      return;
    }
    try {
      deferred_.Resolve(ResultToJs(env, result_, dimensions_, options_.include_embeddings));
    } catch (const Napi::Error& e) {
      deferred_.Reject(e.Value());
    }
  }

  void OnError(const Napi::Error& e) override { deferred_.Reject(e.Value()); }

 private:
  Napi::Promise::Deferred deferred_;
  std::shared_ptr<HandleState> handle_;
  std::shared_ptr<tierstore::Store> store_;
  std::vector<float> query_;
  tierstore::RecallOptions options_;
  uint32_t dimensions_;
  tierstore::Status status_;
  tierstore::RecallResult result_;
};

}  // namespace

// Arguments of both forms: (query: Float32Array (dims), k: 1..2^32-1,
// tier: 0..3, minConfidence: number | null, includeEmbeddings: boolean,
// filterScalars?, filterMetadata? (as ArgFilter reads them)).
tierstore::RecallOptions NativeStore::RecallArgs(const Napi::CallbackInfo& info, const char* method,
                                                std::vector<float>* query) {
  Napi::Env env = info.Env();
  const std::string m(method);
  auto q = ArgTypedArray<float>(info, 0, (m + ": query").c_str(), napi_float32_array, "Float32Array");
  if (q.ElementLength() != state_->dimensions) {
    ThrowError(env, "DIMENSION_MISMATCH",
               m + ": the query has " + std::to_string(q.ElementLength()) + " values; the store has " +
                   std::to_string(state_->dimensions) + " dimensions");
  }
  query->assign(q.Data(), q.Data() + q.ElementLength());  // a copy: the scan may outlive this call
  tierstore::RecallOptions o;
  o.k = static_cast<uint32_t>(ArgInteger(info, 1, (m + ": k").c_str(), 1, 4294967295.0));
  o.tier = ArgTierSelector(info, 2, (m + ": tier").c_str(), true);
  Napi::Value min_conf = Arg(info, 3);
  if (!min_conf.IsNull() && !min_conf.IsUndefined()) {
    if (!min_conf.IsNumber()) ThrowInvalid(env, m + ": minConfidence must be a number");
    o.has_min_confidence = true;
    o.min_confidence = static_cast<float>(min_conf.As<Napi::Number>().DoubleValue());
  }
  o.include_embeddings = ArgBool(info, 4, (m + ": includeEmbeddings").c_str());
  o.filter = ArgFilter(info, 5, method);
  return o;
}

Napi::Value NativeStore::Recall(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  tierstore::Store& store = Open(env, "recall()");
  std::vector<float> query;
  tierstore::RecallOptions options = RecallArgs(info, "recall()", &query);
  tierstore::RecallResult result;
  Check(env, store.Recall(query.data(), options, &result));
  return ResultToJs(env, result, state_->dimensions, options.include_embeddings);
}

// Every failure rejects the promise; nothing throws.
Napi::Value NativeStore::RecallAsync(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  try {
    Open(env, "recallAsync()");
    std::vector<float> query;
    tierstore::RecallOptions options = RecallArgs(info, "recallAsync()", &query);
    options.threads = std::max(1u, std::thread::hardware_concurrency());
    auto* worker = new RecallWorker(env, state_, std::move(query), options, state_->dimensions);
    Napi::Promise promise = worker->Promise();
    try {
      worker->Queue();
    } catch (...) {
      delete worker;  // never queued: it must not hold off a close() (HandleState)
      throw;
    }
    return promise;
  } catch (const Napi::Error& e) {
    Napi::Promise::Deferred d = Napi::Promise::Deferred::New(env);
    d.Reject(e.Value());
    return d.Promise();
  }
}

}  // namespace tierstore_binding
