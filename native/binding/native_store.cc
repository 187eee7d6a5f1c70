#include "native_store.h"

#include <algorithm>
#include <cstring>
#include <string>
#include <vector>

#include "common.h"
#include "utf16.h"

namespace tierstore_binding {

using tierstore::RecordView;
using tierstore::Status;

Napi::Function NativeStore::Init(Napi::Env env) {
  return DefineClass(env, "NativeStore",
                     {
                         InstanceMethod<&NativeStore::Path>("path"),
                         InstanceMethod<&NativeStore::Dimensions>("dimensions"),
                         InstanceMethod<&NativeStore::IsClosed>("isClosed"),
                         InstanceMethod<&NativeStore::PutMany>("putMany"),
                         InstanceMethod<&NativeStore::Get>("get"),
                         InstanceMethod<&NativeStore::Has>("has"),
                         InstanceMethod<&NativeStore::Delete>("delete"),
                         InstanceMethod<&NativeStore::Move>("move"),
                         InstanceMethod<&NativeStore::Migrate>("migrate"),
                         InstanceMethod<&NativeStore::Counts>("counts"),
                         InstanceMethod<&NativeStore::Iterator>("iterator"),
                         InstanceMethod<&NativeStore::List>("list"),
                         InstanceMethod<&NativeStore::Flush>("flush"),
                         InstanceMethod<&NativeStore::Compact>("compact"),
                         InstanceMethod<&NativeStore::Stats>("stats"),
                         InstanceMethod<&NativeStore::Verify>("verify"),
                         InstanceMethod<&NativeStore::Close>("close"),
                         InstanceMethod<&NativeStore::Recall>("recall"),
                         InstanceMethod<&NativeStore::RecallAsync>("recallAsync"),
                     });
}

NativeStore::NativeStore(const Napi::CallbackInfo& info) : Napi::ObjectWrap<NativeStore>(info) {
  Napi::Env env = info.Env();
  path_ = ArgString(info, 0, "NativeStore(): path");
  tierstore::StoreOptions options;
  options.dimensions = static_cast<uint32_t>(ArgInteger(info, 1, "NativeStore(): dimensions", 0, tierstore::kMaxDimensions));
  options.read_only = ArgBool(info, 2, "NativeStore(): readOnly");
  tierstore::WriteOptions wopts;
  wopts.hot_capacity = static_cast<uint64_t>(ArgInteger(info, 3, "NativeStore(): hotCapacity", 0, 9007199254740991.0));
  wopts.warm_capacity = static_cast<uint64_t>(ArgInteger(info, 4, "NativeStore(): warmCapacity", 0, 9007199254740991.0));
  wopts.skip_warm = ArgBool(info, 5, "NativeStore(): skipWarm");
  wopts.sync = ArgBool(info, 6, "NativeStore(): sync");

  std::shared_ptr<tierstore::Store> store;
  Check(env, tierstore::Store::Open(path_, options, &store));
  state_ = std::make_shared<HandleState>();
  state_->store = std::move(store);
  state_->write_options = wopts;
  state_->dimensions = state_->store->dimensions();
  state_->read_only = options.read_only || state_->store->read_only();
}

tierstore::Store& NativeStore::Open(Napi::Env env, const char* method) {
  if (!state_ || state_->closed) {
    ThrowError(env, "STORE_CLOSED", std::string(method) + ": the store is closed");
  }
  return *state_->store;
}

tierstore::Store& NativeStore::Writable(Napi::Env env, const char* method) {
  tierstore::Store& store = Open(env, method);
  if (state_->read_only) {
    ThrowError(env, "READ_ONLY", std::string(method) + ": the store was opened with readOnly: true");
  }
  return store;
}

Napi::Value NativeStore::Path(const Napi::CallbackInfo& info) { return Napi::String::New(info.Env(), path_); }

Napi::Value NativeStore::Dimensions(const Napi::CallbackInfo& info) {
  return Napi::Number::New(info.Env(), state_ ? state_->dimensions : 0);
}

Napi::Value NativeStore::IsClosed(const Napi::CallbackInfo& info) {
  return Napi::Boolean::New(info.Env(), !state_ || state_->closed);
}

// putMany(units: Uint8Array (UTF-16LE), lengths: Uint32Array (3 per record:
//   the UTF-16 units of id, content and metadata JSON), embeddings:
//   Float32Array (n x dims), scalars: Float64Array (4 per record: confidence,
//   activation, createdAt, lastAccessAt), maxContentBytes) -> undefined.
// The strings of record i follow those of i-1. They arrive as UTF-16 because
// V8 copies a string out that way several times faster than it encodes
// UTF-8; they are converted here, where a lone surrogate is refused and the
// content's UTF-8 length checked. Those errors name `memory.<field>` and
// carry the record's index as `recordIndex` (the JS layer relabels them for
// putMany). Nothing is written unless every record converts.
Napi::Value NativeStore::PutMany(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  tierstore::Store& store = Writable(env, "putMany()");
  auto units = ArgTypedArray<uint8_t>(info, 0, "putMany(): units", napi_uint8_array, "Uint8Array");
  auto lengths = ArgTypedArray<uint32_t>(info, 1, "putMany(): lengths", napi_uint32_array, "Uint32Array");
  auto embeddings = ArgTypedArray<float>(info, 2, "putMany(): embeddings", napi_float32_array, "Float32Array");
  auto scalars = ArgTypedArray<double>(info, 3, "putMany(): scalars", napi_float64_array, "Float64Array");
  const uint64_t max_content =
      static_cast<uint64_t>(ArgInteger(info, 4, "putMany(): maxContentBytes", 0, tierstore::kMaxContentBytes));

  const size_t nlen = lengths.ElementLength();
  if (nlen % 3 != 0) ThrowInvalid(env, "putMany(): lengths must hold 3 entries per record");
  const size_t n = nlen / 3;
  const size_t dims = state_->dimensions;
  if (embeddings.ElementLength() != n * dims) {
    ThrowInvalid(env, "putMany(): embeddings must hold " + std::to_string(n) + " x " + std::to_string(dims) +
                          " values, got " + std::to_string(embeddings.ElementLength()));
  }
  if (scalars.ElementLength() != 4 * n) {
    ThrowInvalid(env, "putMany(): scalars must hold 4 values per record (" + std::to_string(4 * n) + "), got " +
                          std::to_string(scalars.ElementLength()));
  }
  if (n == 0) return env.Undefined();

  const uint8_t* src = units.Data();
  const uint64_t total_units = units.ByteLength() / 2;
  const uint32_t* len = lengths.Data();
  uint64_t given = 0;
  for (size_t i = 0; i < nlen; ++i) given += len[i];
  if (given > total_units) {
    ThrowInvalid(env, "putMany(): lengths add up to " + std::to_string(given) + " UTF-16 units, more than the " +
                          std::to_string(total_units) + " given");
  }

  // Mostly-ASCII text takes about a byte per unit; room for the worst case
  // of each string is made before it is converted. A huge scratch is let go
  // however the call ends.
  size_t used = 0;
  struct ShrinkAfter {
    NativeStore* self;
    ~ShrinkAfter() {
      if (self->utf8_capacity_ > kKeptUtf8Scratch) {
        self->utf8_scratch_.reset();
        self->utf8_capacity_ = 0;
      }
    }
  } shrink_after{this};
  auto reserve = [&](size_t more) {
    if (utf8_capacity_ - used >= more) return;
    const size_t capacity = std::max({used + more, 2 * utf8_capacity_, static_cast<size_t>(given + given / 8 + 64)});
    std::unique_ptr<char[]> grown(new char[capacity]);
    if (used != 0) std::memcpy(grown.get(), utf8_scratch_.get(), used);
    utf8_scratch_ = std::move(grown);
    utf8_capacity_ = capacity;
  };
  static constexpr const char* kField[3] = {"id", "content", "metadata"};
  // Offsets first (the scratch may grow), views once every string is in.
  std::vector<uint64_t> ends(nlen);
  uint64_t unit = 0;
  for (size_t i = 0; i < n; ++i) {
    for (size_t f = 0; f < 3; ++f) {
      const uint32_t count = len[3 * i + f];
      reserve(tierstore::MaxUtf8BytesOfUtf16(count));
      const size_t bytes = tierstore::Utf16LeToUtf8(src + 2 * unit, count, utf8_scratch_.get() + used);
      unit += count;
      if (bytes == tierstore::kLoneSurrogate) {
        ThrowRecordError(env, "INVALID_ARGUMENT",
                         std::string("memory.") + kField[f] +
                             " contains a lone UTF-16 surrogate, which UTF-8 cannot encode",
                         i);
      }
      if (f == 1 && bytes > max_content) {
        ThrowRecordError(env, "CONTENT_TOO_LARGE",
                         "memory.content is " + std::to_string(bytes) + " UTF-8 bytes; maxContentBytes is " +
                             std::to_string(max_content),
                         i);
      }
      used += bytes;
      ends[3 * i + f] = used;
    }
  }

  RecordView one;
  std::vector<RecordView> many;
  RecordView* recs = &one;
  if (n > 1) {
    many.resize(n);
    recs = many.data();
  }
  const char* base = utf8_scratch_.get();
  const float* emb = embeddings.Data();
  const double* sc = scalars.Data();
  uint64_t off = 0;
  for (size_t i = 0; i < n; ++i) {
    RecordView& r = recs[i];
    r.id = std::string_view(base + off, ends[3 * i] - off);
    r.content = std::string_view(base + ends[3 * i], ends[3 * i + 1] - ends[3 * i]);
    r.metadata = std::string_view(base + ends[3 * i + 1], ends[3 * i + 2] - ends[3 * i + 1]);
    off = ends[3 * i + 2];
    r.embedding = emb + i * dims;
    // float32 like the Float32Array columns before them (round to nearest).
    r.confidence = static_cast<float>(sc[4 * i]);
    r.activation = static_cast<float>(sc[4 * i + 1]);
    r.created_at = sc[4 * i + 2];
    r.last_access_at = sc[4 * i + 3];
    r.access_count = 0;
  }
  Check(env, store.Put(recs, n, state_->write_options));
  return env.Undefined();
}

// get(id, includeEmbedding, scalars: Float64Array(>= 6)) -> undefined or
// [content, metadata JSON(, embedding)]. The scalars go into `scalars`
// (confidence, activation, createdAt, lastAccessAt, accessCount, tier) and
// the caller has the id: a record object with named properties cost a
// fifth of a get in key interning and map transitions.
Napi::Value NativeStore::Get(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  tierstore::Store& store = Open(env, "get()");
  char id[kIdBufferSize];
  size_t id_len = ArgId(info, 0, "get(): id", id);
  bool include_embedding = ArgBool(info, 1, "get(): includeEmbedding");
  auto scalars = ArgTypedArray<double>(info, 2, "get(): scalars", napi_float64_array, "Float64Array");
  if (scalars.ElementLength() < 6) ThrowInvalid(env, "get(): scalars must hold at least 6 values");
  tierstore::RecordBatch batch;
  Check(env, store.Get(std::string_view(id, id_len), include_embedding, NowMs(), &batch));
  if (batch.size() == 0) return env.Undefined();
  double* s = scalars.Data();
  s[0] = batch.confidence[0];
  s[1] = batch.activation[0];
  s[2] = batch.created_at[0];
  s[3] = batch.last_access_at[0];
  s[4] = batch.access_count[0];
  s[5] = static_cast<double>(batch.tiers[0]);
  Napi::Array out = Napi::Array::New(env, include_embedding ? 3 : 2);
  out.Set(uint32_t{0}, Napi::Value(env, StringFromUtf8(env, batch.Content(0))));
  out.Set(uint32_t{1}, Napi::Value(env, StringFromUtf8(env, batch.Metadata(0))));
  if (include_embedding) out.Set(uint32_t{2}, EmbeddingToJs(env, batch, 0, state_->dimensions));
  return out;
}

Napi::Value NativeStore::Has(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  tierstore::Store& store = Open(env, "has()");
  char id[kIdBufferSize];
  size_t id_len = ArgId(info, 0, "has(): id", id);
  bool found = false;
  Check(env, store.Has(std::string_view(id, id_len), &found));
  return Napi::Boolean::New(env, found);
}

Napi::Value NativeStore::Delete(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  tierstore::Store& store = Writable(env, "delete()");
  char id[kIdBufferSize];
  size_t id_len = ArgId(info, 0, "delete(): id", id);
  bool existed = false;
  Check(env, store.Delete(std::string_view(id, id_len), state_->write_options, &existed));
  return Napi::Boolean::New(env, existed);
}

// move(id, tier: 0..2) -> boolean
Napi::Value NativeStore::Move(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  tierstore::Store& store = Writable(env, "move()");
  char id[kIdBufferSize];
  size_t id_len = ArgId(info, 0, "move(): id", id);
  auto tier = static_cast<tierstore::Tier>(ArgTierSelector(info, 1, "move(): tier", false));
  bool found = false;
  Check(env, store.Move(std::string_view(id, id_len), tier, state_->write_options, &found));
  return Napi::Boolean::New(env, found);
}

Napi::Value NativeStore::Migrate(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  tierstore::Store& store = Writable(env, "migrate()");
  tierstore::MigrationReport r;
  Check(env, store.Migrate(state_->write_options, &r));
  Napi::Object out = Napi::Object::New(env);
  out.Set("hotToWarm", static_cast<double>(r.hot_to_warm));
  out.Set("hotToCold", static_cast<double>(r.hot_to_cold));
  out.Set("warmToCold", static_cast<double>(r.warm_to_cold));
  out.Set("batches", static_cast<double>(r.batches));
  return out;
}

Napi::Value NativeStore::Counts(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  tierstore::Store& store = Open(env, "counts()");
  tierstore::TierCounts counts;
  Check(env, store.Counts(&counts));
  return CountsToJs(env, counts);
}

// iterator(tier: 0..3, filterScalars?, filterMetadata?) -> NativeIterator
// (the filter pair as ArgFilter reads it)
Napi::Value NativeStore::Iterator(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Open(env, "iterate()");
  return GetAddonData(env)->iterator_ctor.New({Value(), info[0], info[1], info[2]});
}

// list(tier: 0..3, offset, limit: 1..1000, cursor: string ('' = none),
//      includeEmbeddings, filterScalars?, filterMetadata?) -> NativeBatch &
//      { nextCursor: string ('' on the last page), tierCounts }
Napi::Value NativeStore::List(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  tierstore::Store& store = Open(env, "list()");
  tierstore::ListRequest req;
  req.tier = ArgTierSelector(info, 0, "list(): tier", true);
  req.offset = static_cast<uint64_t>(ArgInteger(info, 1, "list(): offset", 0, 9007199254740991.0));
  req.limit = static_cast<uint32_t>(ArgInteger(info, 2, "list(): limit", 1, 1000));
  req.cursor = ArgString(info, 3, "list(): cursor");
  req.include_embeddings = ArgBool(info, 4, "list(): includeEmbeddings");
  req.filter = ArgFilter(info, 5, "list()");
  tierstore::ListResult result;
  Check(env, store.List(req, &result));
  Napi::Object out = BatchToJs(env, result.records, state_->dimensions, req.include_embeddings);
  out.Set("nextCursor", Napi::String::New(env, result.next_cursor));
  out.Set("tierCounts", CountsToJs(env, result.counts));
  return out;
}

Napi::Value NativeStore::Flush(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Check(env, Open(env, "flush()").Flush());
  return env.Undefined();
}

Napi::Value NativeStore::Compact(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  tierstore::Store& store = Writable(env, "compact()");
  tierstore::CompactionReport r;
  Check(env, store.Compact(state_->write_options, &r));
  Napi::Object out = Napi::Object::New(env);
  out.Set("warmBytesReclaimed", static_cast<double>(r.warm_bytes_reclaimed));
  out.Set("coldBytesReclaimed", static_cast<double>(r.cold_bytes_reclaimed));
  out.Set("coldSegmentsBefore", static_cast<double>(r.cold_segments_before));
  out.Set("coldSegmentsAfter", static_cast<double>(r.cold_segments_after));
  out.Set("hotLogBytesBefore", static_cast<double>(r.hot_log_bytes_before));
  out.Set("hotLogBytesAfter", static_cast<double>(r.hot_log_bytes_after));
  return out;
}

// verify() -> { records, bytes, damaged: [{ tier, file, id, reason }] }
Napi::Value NativeStore::Verify(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  tierstore::VerifyReport report;
  Check(env, Open(env, "verify()").Verify(&report));
  Napi::Object out = Napi::Object::New(env);
  out.Set("records", static_cast<double>(report.records));
  out.Set("bytes", static_cast<double>(report.bytes));
  Napi::Array damaged = Napi::Array::New(env, report.damaged.size());
  for (size_t i = 0; i < report.damaged.size(); ++i) {
    const tierstore::VerifyReport::Damage& d = report.damaged[i];
    Napi::Object o = Napi::Object::New(env);
    o.Set("tier", tierstore::TierName(d.tier));
    o.Set("file", d.file);
    if (!d.id.empty()) o.Set("id", StringFromUtf8(env, d.id));  // absent for damage not of one record
    o.Set("reason", d.reason);
    damaged.Set(static_cast<uint32_t>(i), o);
  }
  out.Set("damaged", damaged);
  return out;
}

Napi::Value NativeStore::Stats(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  tierstore::Store& store = Open(env, "stats()");
  tierstore::StoreStats s;
  Check(env, store.Stats(&s));
  Napi::Object out = Napi::Object::New(env);
  out.Set("counts", CountsToJs(env, s.counts));
  out.Set("dimensions", static_cast<double>(s.dimensions));
  out.Set("sequence", static_cast<double>(s.sequence));
  out.Set("hotLogBytes", static_cast<double>(s.hot_log_bytes));
  out.Set("hotBytes", static_cast<double>(s.hot_bytes));
  out.Set("warmSlots", static_cast<double>(s.warm_slots));
  out.Set("warmBlockFileBytes", static_cast<double>(s.warm_block_file_bytes));
  out.Set("warmVarFileBytes", static_cast<double>(s.warm_var_file_bytes));
  out.Set("warmVarLiveBytes", static_cast<double>(s.warm_var_live_bytes));
  out.Set("coldSegments", static_cast<double>(s.cold_segments));
  out.Set("coldFileBytes", static_cast<double>(s.cold_file_bytes));
  out.Set("coldDeletedRows", static_cast<double>(s.cold_deleted_rows));
  out.Set("coldStagedRecords", static_cast<double>(s.cold_staged_records));
  out.Set("openIterators", static_cast<double>(s.open_iterators));
  out.Set("recoveredDuplicates", static_cast<double>(s.recovered_duplicates));
  out.Set("tornLogBytes", static_cast<double>(s.torn_log_bytes));
  out.Set("tornWarmCopies", static_cast<double>(s.torn_warm_copies));
  out.Set("indexFileBytes", static_cast<double>(s.index_file_bytes));
  out.Set("indexMemoryBytes", static_cast<double>(s.index_memory_bytes));
  out.Set("indexMappedBytes", static_cast<double>(s.index_mapped_bytes));
  out.Set("indexRebuilt", Napi::Boolean::New(env, s.index_rebuilt));
  out.Set("indexRebuildReason", Napi::String::New(env, s.index_rebuild_reason));
  out.Set("readOnly", Napi::Boolean::New(env, state_->read_only));
  return out;
}

Napi::Value NativeStore::Close(const Napi::CallbackInfo& info) {
  if (state_) state_->Close();
  return info.Env().Undefined();
}

}  // namespace tierstore_binding
