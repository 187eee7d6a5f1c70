#include "native_iterator.h"

#include <string>

#include "common.h"
#include "native_store.h"

namespace tierstore_binding {

namespace {

constexpr double kMaxBatchSize = 65536;
// String bytes (id, content, metadata) of one columnar chunk: int32 offsets
// never overflow, and a consumer's batch stays a bounded size.
constexpr uint64_t kMaxColumnStringBytes = uint64_t{256} << 20;

// A batch as next() returns it: records, or columns (ColumnsToJs).
Napi::Object ToJs(Napi::Env env, tierstore::RecordBatch& batch, uint32_t dimensions, bool include_embeddings,
                  bool columns) {
  return columns ? ColumnsToJs(env, batch, dimensions, include_embeddings, kMaxColumnStringBytes)
                 : BatchToJs(env, batch, dimensions, include_embeddings);
}

// Runs StoreIterator::Next on a libuv worker thread; converts in OnOK on the
// JS thread. Execute touches only core objects, never JS.
class NextWorker : public Napi::AsyncWorker {
 public:
  NextWorker(Napi::Env env, std::shared_ptr<IteratorState> state, size_t max, bool include_embeddings, bool columns)
      : Napi::AsyncWorker(env, "tierstore.iterator.next"),
        deferred_(Napi::Promise::Deferred::New(env)),
        state_(std::move(state)),
        max_(max),
        include_embeddings_(include_embeddings),
        columns_(columns) {}

  Napi::Promise Promise() const { return deferred_.Promise(); }

  void Execute() override { status_ = state_->it->Next(max_, include_embeddings_, &state_->scratch); }

  void OnOK() override {
    Napi::Env env = Env();
    state_->busy = false;
    if (state_->closed) {
      state_->it.reset();  // Close() deferred the destruction to us
      deferred_.Reject(MakeError(env, "STORE_CLOSED", "next(): the iterator or its store was closed").Value());
      return;
    }
    if (!status_.ok()) {
      deferred_.Reject(MakeError(env, status_).Value());
      return;
    }
    try {
      Napi::Object out = ToJs(env, state_->scratch, state_->dimensions, include_embeddings_, columns_);
      state_->TrimScratch();
      deferred_.Resolve(out);
    } catch (const Napi::Error& e) {
      state_->TrimScratch();
      deferred_.Reject(e.Value());
    }
  }

  void OnError(const Napi::Error& e) override {
    state_->busy = false;
    deferred_.Reject(e.Value());
  }

 private:
  Napi::Promise::Deferred deferred_;
  std::shared_ptr<IteratorState> state_;
  size_t max_;
  bool include_embeddings_;
  bool columns_;
  tierstore::Status status_;
};

}  // namespace

Napi::Function NativeIterator::Init(Napi::Env env) {
  return DefineClass(env, "NativeIterator",
                     {
                         InstanceMethod<&NativeIterator::Next>("next"),
                         InstanceMethod<&NativeIterator::NextAsync>("nextAsync"),
                         InstanceMethod<&NativeIterator::Close>("close"),
                     });
}

NativeIterator::NativeIterator(const Napi::CallbackInfo& info) : Napi::ObjectWrap<NativeIterator>(info) {
  Napi::Env env = info.Env();
  Napi::Value owner = info[0];
  AddonData* data = GetAddonData(env);
  if (!owner.IsObject() || !owner.As<Napi::Object>().InstanceOf(data->store_ctor.Value())) {
    ThrowInvalid(env, "NativeIterator(): store must be a NativeStore");
  }
  NativeStore* store = NativeStore::Unwrap(owner.As<Napi::Object>());
  auto tier = ArgTierSelector(info, 1, "NativeIterator(): tier", true);
  const std::shared_ptr<HandleState>& handle = store->state();
  if (!handle || handle->closed) ThrowError(env, "STORE_CLOSED", "iterate(): the store is closed");

  auto filter = ArgFilter(info, 2, "iterate()");
  auto state = std::make_shared<IteratorState>();
  state->store = handle->store;
  state->dimensions = handle->dimensions;
  Check(env, handle->store->NewIterator(tier, std::move(filter), &state->it));
  handle->Track(state);
  handle_ = handle;
  state_ = std::move(state);
}

size_t NativeIterator::CheckNext(const Napi::CallbackInfo& info, const char* method, bool* include_embeddings,
                                 bool* columns) {
  Napi::Env env = info.Env();
  size_t max = static_cast<size_t>(ArgInteger(info, 0, (std::string(method) + ": batchSize").c_str(), 1, kMaxBatchSize));
  *include_embeddings = ArgBool(info, 1, (std::string(method) + ": includeEmbeddings").c_str());
  *columns = info[2].IsUndefined() ? false : ArgBool(info, 2, (std::string(method) + ": columns").c_str());
  if (!state_ || state_->closed || !state_->it) {
    ThrowError(env, "STORE_CLOSED", std::string(method) + ": the iterator or its store was closed");
  }
  if (state_->busy) {
    ThrowInvalid(env, std::string(method) + ": an asynchronous next() of this iterator is still in progress");
  }
  return max;
}

Napi::Value NativeIterator::Next(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  bool include_embeddings = false, columns = false;
  size_t max = CheckNext(info, "next()", &include_embeddings, &columns);
  tierstore::RecordBatch& batch = state_->scratch;
  Check(env, state_->it->Next(max, include_embeddings, &batch));
  Napi::Object out = ToJs(env, batch, state_->dimensions, include_embeddings, columns);
  state_->TrimScratch();
  return out;
}

Napi::Value NativeIterator::NextAsync(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  size_t max = 0;
  bool include_embeddings = false, columns = false;
  try {
    max = CheckNext(info, "nextAsync()", &include_embeddings, &columns);
  } catch (const Napi::Error& e) {
    auto deferred = Napi::Promise::Deferred::New(env);
    deferred.Reject(e.Value());
    return deferred.Promise();
  }
  auto* worker = new NextWorker(env, state_, max, include_embeddings, columns);
  Napi::Promise promise = worker->Promise();
  state_->busy = true;
  worker->Queue();
  return promise;
}

Napi::Value NativeIterator::Close(const Napi::CallbackInfo& info) {
  if (state_) state_->Close();
  return info.Env().Undefined();
}

}  // namespace tierstore_binding
