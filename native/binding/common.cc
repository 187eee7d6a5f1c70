#include "common.h"

#include <chrono>
#include <cmath>
#include <cstring>
#include <vector>

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

namespace tierstore_binding {

AddonData* GetAddonData(Napi::Env env) { return env.GetInstanceData<AddonData>(); }

Napi::Error MakeError(Napi::Env env, const char* code, const std::string& message) {
  AddonData* data = GetAddonData(env);
  if (data != nullptr && !data->error_ctor.IsEmpty()) {
    // new TierStoreError(code, message)
    napi_value args[2] = {Napi::String::New(env, code), Napi::String::New(env, message)};
    napi_value result = nullptr;
    if (napi_new_instance(env, data->error_ctor.Value(), 2, args, &result) == napi_ok) {
      return Napi::Error(env, result);
    }
    // The constructor threw: fall back to a plain Error (clear the pending one).
    bool pending = false;
    if (napi_is_exception_pending(env, &pending) == napi_ok && pending) {
      napi_value ignored;
      napi_get_and_clear_last_exception(env, &ignored);
    }
  }
  Napi::Error error = Napi::Error::New(env, message);
  error.Set("code", Napi::String::New(env, code));
  return error;
}

Napi::Error MakeError(Napi::Env env, const tierstore::Status& status) {
  return MakeError(env, tierstore::StatusCodeName(status.code()), status.message());
}

void ThrowStatus(Napi::Env env, const tierstore::Status& status) { throw MakeError(env, status); }

void ThrowError(Napi::Env env, const char* code, const std::string& message) {
  throw MakeError(env, code, message);
}

void ThrowInvalid(Napi::Env env, const std::string& message) {
  throw MakeError(env, "INVALID_ARGUMENT", message);
}

void ThrowRecordError(Napi::Env env, const char* code, const std::string& message, size_t index) {
  Napi::Error error = MakeError(env, code, message);
  error.Set("recordIndex", Napi::Number::New(env, static_cast<double>(index)));
  throw error;
}

Napi::Value Arg(const Napi::CallbackInfo& info, size_t i) { return info[i]; }

bool ArgBool(const Napi::CallbackInfo& info, size_t i, const char* what) {
  Napi::Value v = info[i];
  if (!v.IsBoolean()) ThrowInvalid(info.Env(), std::string(what) + " must be a boolean");
  return v.As<Napi::Boolean>().Value();
}

double ArgInteger(const Napi::CallbackInfo& info, size_t i, const char* what, double min, double max) {
  Napi::Value v = info[i];
  if (v.IsNumber()) {
    double d = v.As<Napi::Number>().DoubleValue();
    if (d >= min && d <= max && d == static_cast<double>(static_cast<int64_t>(d))) return d;
  }
  ThrowInvalid(info.Env(), std::string(what) + " must be an integer in [" + std::to_string(static_cast<int64_t>(min)) +
                               ", " + std::to_string(static_cast<int64_t>(max)) + "]");
}

std::string ArgString(const Napi::CallbackInfo& info, size_t i, const char* what) {
  Napi::Value v = info[i];
  if (!v.IsString()) ThrowInvalid(info.Env(), std::string(what) + " must be a string");
  return v.As<Napi::String>().Utf8Value();
}

size_t ArgId(const Napi::CallbackInfo& info, size_t i, const char* what, char (&buf)[kIdBufferSize]) {
  Napi::Value v = info[i];
  if (!v.IsString()) ThrowInvalid(info.Env(), std::string(what) + " must be a string");
  size_t len = 0;
  napi_status st = napi_get_value_string_utf8(info.Env(), v, buf, kIdBufferSize, &len);
  if (st != napi_ok) throw Napi::Error::New(info.Env());
  if (len == 0 || len > tierstore::kMaxIdBytes) {
    ThrowInvalid(info.Env(), std::string(what) + " must be 1.." + std::to_string(tierstore::kMaxIdBytes) +
                                 " UTF-8 bytes");
  }
  return len;
}

tierstore::TierSelector ArgTierSelector(const Napi::CallbackInfo& info, size_t i, const char* what,
                                        bool allow_all) {
  double d = ArgInteger(info, i, what, 0, allow_all ? 3 : 2);
  return static_cast<tierstore::TierSelector>(static_cast<uint8_t>(d));
}

std::shared_ptr<const tierstore::RecordFilter> ArgFilter(const Napi::CallbackInfo& info, size_t i, const char* what) {
  Napi::Env env = info.Env();
  Napi::Value scalars = info[i];
  Napi::Value metadata = info[i + 1];
  if (scalars.IsUndefined() && metadata.IsUndefined()) return nullptr;
  tierstore::RecordFilter::Spec spec;
  const std::string w(what);
  if (!scalars.IsUndefined()) {
    auto values = ArgTypedArray<double>(info, i, (w + ": filter scalars").c_str(), napi_float64_array, "Float64Array");
    if (values.ElementLength() != 4) ThrowInvalid(env, w + ": filter scalars must hold 4 values");
    spec.created_after = values.Data()[0];
    spec.created_before = values.Data()[1];
    spec.min_confidence = values.Data()[2];
    spec.min_activation = values.Data()[3];
  }
  if (!metadata.IsUndefined()) spec.metadata_json = ArgString(info, i + 1, (w + ": filter metadata").c_str());
  auto filter = std::make_shared<tierstore::RecordFilter>();
  Check(env, tierstore::RecordFilter::Parse(spec, filter.get()));
  if (filter->empty()) return nullptr;
  return filter;
}

namespace {

template <typename T>
Napi::TypedArrayOf<T> CopyToTypedArray(Napi::Env env, const T* data, size_t n) {
  Napi::TypedArrayOf<T> arr = Napi::TypedArrayOf<T>::New(env, n);
  if (n != 0) std::memcpy(arr.Data(), data, n * sizeof(T));
  return arr;
}

}  // namespace

namespace {

bool IsAscii(std::string_view s) {
  const char* p = s.data();
  size_t n = s.size(), i = 0;
  uint64_t high = 0;
  for (; i + 8 <= n; i += 8) {
    uint64_t w;
    std::memcpy(&w, p + i, 8);
    high |= w;
  }
  for (; i < n; ++i) high |= static_cast<unsigned char>(p[i]);
  return (high & 0x8080808080808080ull) == 0;
}

}  // namespace

// Decodes UTF-8 into UTF-16 in one pass (V8's decoder takes two: it
// measures, then decodes). Stored strings were valid UTF-8 when written and
// are checksummed, but a malformed sequence still decodes safely, to U+FFFD.
// `out` holds at least `n` units (UTF-16 never needs more units than UTF-8
// bytes). Returns the units written; *max_unit is the largest one.
static size_t DecodeUtf8(const unsigned char* p, size_t n, char16_t* out, char16_t* max_unit) {
  size_t i = 0, o = 0;
  char16_t high = 0;
  auto cont = [&](size_t k) { return i + k < n && (p[i + k] & 0xC0) == 0x80; };
  while (i < n) {
#if defined(__SSE2__)
    // Runs of ASCII, 16 bytes at a time. A block with a non-ASCII byte still
    // widens all 16 but keeps only the ASCII prefix before that byte, so
    // mostly-ASCII text decodes scalar only at its multi-byte sequences.
    // (The 16-unit store fits: o <= i always, since no sequence makes more
    // UTF-16 units than UTF-8 bytes, and i + 16 <= n.)
    while (i + 16 <= n) {
      __m128i v = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p + i));
      const __m128i zero = _mm_setzero_si128();
      _mm_storeu_si128(reinterpret_cast<__m128i*>(out + o), _mm_unpacklo_epi8(v, zero));
      _mm_storeu_si128(reinterpret_cast<__m128i*>(out + o + 8), _mm_unpackhi_epi8(v, zero));
      const unsigned mask = static_cast<unsigned>(_mm_movemask_epi8(v));
      if (mask != 0) {
        const unsigned ascii = static_cast<unsigned>(__builtin_ctz(mask));
        i += ascii;
        o += ascii;
        break;
      }
      i += 16;
      o += 16;
    }
    if (i >= n) break;
#endif
    const unsigned c = p[i];
    if (c < 0x80) {
      out[o++] = static_cast<char16_t>(c);
      ++i;
      continue;
    }
    uint32_t cp = 0xFFFD;
    size_t len = 1;
    if (c >= 0xC2 && c <= 0xDF && cont(1)) {
      cp = ((c & 0x1Fu) << 6) | (p[i + 1] & 0x3Fu);
      len = 2;
    } else if (c >= 0xE0 && c <= 0xEF && cont(1) && cont(2)) {
      uint32_t v = ((c & 0x0Fu) << 12) | ((p[i + 1] & 0x3Fu) << 6) | (p[i + 2] & 0x3Fu);
      if (v >= 0x800 && (v < 0xD800 || v > 0xDFFF)) {  // not overlong, not a surrogate
        cp = v;
        len = 3;
      }
    } else if (c >= 0xF0 && c <= 0xF4 && cont(1) && cont(2) && cont(3)) {
      uint32_t v = ((c & 0x07u) << 18) | ((p[i + 1] & 0x3Fu) << 12) | ((p[i + 2] & 0x3Fu) << 6) |
                   (p[i + 3] & 0x3Fu);
      if (v >= 0x10000 && v <= 0x10FFFF) {
        cp = v;
        len = 4;
      }
    }
    i += len;
    if (cp >= 0x10000) {
      cp -= 0x10000;
      out[o++] = static_cast<char16_t>(0xD800 + (cp >> 10));
      out[o++] = static_cast<char16_t>(0xDC00 + (cp & 0x3FF));
      high = 0xDC00;  // anything above 0xFF: the string is two-byte
    } else {
      out[o++] = static_cast<char16_t>(cp);
      if (cp > high) high = static_cast<char16_t>(cp);
    }
  }
  *max_unit = high;
  return o;
}

// A JS string of UTF-8 bytes. ASCII (ids, most metadata) skips decoding:
// as Latin-1 the same bytes make the same string, copied as is. Other text
// is decoded here in one pass and handed to V8 as Latin-1 or UTF-16.
// Returns a napi_value, not a Napi::String: Object::Set(key, Napi::String)
// goes through String::From, which converts the string to std::string and
// back (two more passes over every byte).
napi_value StringFromUtf8(Napi::Env env, std::string_view s) {
  napi_value out;
  napi_status st;
  if (IsAscii(s)) {
    st = napi_create_string_latin1(env, s.data(), s.size(), &out);
  } else {
    // Reused between calls on this thread unless a string was very large.
    thread_local std::vector<char16_t> units;
    constexpr size_t kKeepUnits = size_t{1} << 20;
    if (units.size() < s.size()) units.resize(s.size());
    char16_t high = 0;
    const size_t n = DecodeUtf8(reinterpret_cast<const unsigned char*>(s.data()), s.size(), units.data(), &high);
    if (high <= 0xFF) {
      // Latin-1 text (accents and the like): V8 would store it one byte per
      // character anyway.
      auto* bytes = reinterpret_cast<char*>(units.data());  // narrowing in place, front to back
      for (size_t k = 0; k < n; ++k) bytes[k] = static_cast<char>(units[k]);
      st = napi_create_string_latin1(env, bytes, n, &out);
    } else {
      st = napi_create_string_utf16(env, units.data(), n, &out);
    }
    if (units.size() > kKeepUnits) std::vector<char16_t>().swap(units);
  }
  NAPI_THROW_IF_FAILED(env, st, nullptr);
  return out;
}

Napi::Object BatchToJs(Napi::Env env, tierstore::RecordBatch& batch, uint32_t dimensions,
                       bool include_embeddings) {
  const size_t n = batch.size();
  Napi::Object out = Napi::Object::New(env);

  Napi::Uint8Array tiers = Napi::Uint8Array::New(env, n);
  for (size_t i = 0; i < n; ++i) tiers[i] = static_cast<uint8_t>(batch.tiers[i]);

  Napi::Array ids = Napi::Array::New(env, n);
  Napi::Array contents = Napi::Array::New(env, n);
  Napi::Array metadata = Napi::Array::New(env, n);
  for (size_t i = 0; i < n; ++i) {
    const uint32_t idx = static_cast<uint32_t>(i);
    std::string_view id = batch.Id(i), content = batch.Content(i), meta = batch.Metadata(i);
    ids.Set(idx, StringFromUtf8(env, id));
    contents.Set(idx, StringFromUtf8(env, content));
    metadata.Set(idx, StringFromUtf8(env, meta));
  }

  out.Set("tiers", tiers);
  out.Set("ids", ids);
  out.Set("contents", contents);
  out.Set("metadata", metadata);
  out.Set("confidence", CopyToTypedArray(env, batch.confidence.data(), n));
  out.Set("activation", CopyToTypedArray(env, batch.activation.data(), n));
  out.Set("createdAt", CopyToTypedArray(env, batch.created_at.data(), n));
  out.Set("lastAccessAt", CopyToTypedArray(env, batch.last_access_at.data(), n));
  out.Set("accessCount", CopyToTypedArray(env, batch.access_count.data(), n));
  if (include_embeddings) {
    const size_t want = n * static_cast<size_t>(dimensions);
    if (batch.embeddings.size() != want) {
      ThrowError(env, "CORRUPTION",
                 "native batch holds " + std::to_string(batch.embeddings.size()) + " embedding values, expected " +
                     std::to_string(want));
    }
    out.Set("embeddings", CopyToTypedArray(env, batch.embeddings.data(), want));
  }
  return out;
}

namespace {

// Strings k (0 id, 1 content, 2 metadata) of records [from, to) as one UTF-8
// buffer and int32 offsets.
Napi::Object StringColumn(Napi::Env env, const tierstore::RecordBatch& batch, size_t from, size_t to, int k) {
  const size_t n = to - from;
  Napi::Int32Array offsets = Napi::Int32Array::New(env, n + 1);
  size_t total = 0;
  offsets[0] = 0;
  for (size_t i = from; i < to; ++i) {
    total += batch.lengths[3 * i + k];
    offsets[i - from + 1] = static_cast<int32_t>(total);
  }
  Napi::Buffer<char> data = Napi::Buffer<char>::New(env, total);
  size_t at = 0;
  for (size_t i = from; i < to; ++i) {
    const size_t len = batch.lengths[3 * i + k];
    if (len != 0) std::memcpy(data.Data() + at, batch.bytes.data() + batch.offsets[3 * i + k], len);
    at += len;
  }
  Napi::Object column = Napi::Object::New(env);
  column.Set("data", data);
  column.Set("offsets", offsets);
  return column;
}

Napi::Object TierColumn(Napi::Env env, const tierstore::RecordBatch& batch, size_t from, size_t to) {
  const size_t n = to - from;
  Napi::Int32Array offsets = Napi::Int32Array::New(env, n + 1);
  std::string text;
  offsets[0] = 0;
  for (size_t i = from; i < to; ++i) {
    text += tierstore::TierName(batch.tiers[i]);
    offsets[i - from + 1] = static_cast<int32_t>(text.size());
  }
  Napi::Object column = Napi::Object::New(env);
  column.Set("data", Napi::Buffer<char>::Copy(env, text.data(), text.size()));
  column.Set("offsets", offsets);
  return column;
}

Napi::Value Int64Column(Napi::Env env, const std::vector<double>& values, size_t from, size_t to) {
  Napi::TypedArrayOf<int64_t> out = Napi::TypedArrayOf<int64_t>::New(env, to - from, napi_bigint64_array);
  // Times and counts are stored as integral doubles: the conversion is exact.
  for (size_t i = from; i < to; ++i) out[i - from] = static_cast<int64_t>(std::llround(values[i]));
  return out;
}

}  // namespace

Napi::Object ColumnsToJs(Napi::Env env, const tierstore::RecordBatch& batch, uint32_t dimensions,
                         bool include_embeddings, uint64_t max_string_bytes) {
  const size_t n = batch.size();
  if (include_embeddings && batch.embeddings.size() != n * static_cast<size_t>(dimensions)) {
    ThrowError(env, "CORRUPTION",
               "native batch holds " + std::to_string(batch.embeddings.size()) + " embedding values, expected " +
                   std::to_string(n * static_cast<size_t>(dimensions)));
  }
  Napi::Array chunks = Napi::Array::New(env);
  size_t from = 0;
  while (from < n) {
    size_t to = from;
    uint64_t bytes = 0;
    while (to < n) {
      const uint64_t b = uint64_t{batch.lengths[3 * to]} + batch.lengths[3 * to + 1] + batch.lengths[3 * to + 2];
      if (to > from && bytes + b > max_string_bytes) break;
      bytes += b;
      ++to;
    }
    Napi::Object chunk = Napi::Object::New(env);
    chunk.Set("count", static_cast<double>(to - from));
    chunk.Set("tiers", TierColumn(env, batch, from, to));
    chunk.Set("ids", StringColumn(env, batch, from, to, 0));
    chunk.Set("contents", StringColumn(env, batch, from, to, 1));
    chunk.Set("metadata", StringColumn(env, batch, from, to, 2));
    chunk.Set("confidence", CopyToTypedArray(env, batch.confidence.data() + from, to - from));
    chunk.Set("activation", CopyToTypedArray(env, batch.activation.data() + from, to - from));
    chunk.Set("createdAt", Int64Column(env, batch.created_at, from, to));
    chunk.Set("lastAccessAt", Int64Column(env, batch.last_access_at, from, to));
    chunk.Set("accessCount", Int64Column(env, batch.access_count, from, to));
    if (include_embeddings) {
      const size_t d = dimensions;
      chunk.Set("embeddings", CopyToTypedArray(env, batch.embeddings.data() + from * d, (to - from) * d));
    }
    chunks.Set(chunks.Length(), chunk);
    from = to;
  }
  Napi::Object out = Napi::Object::New(env);
  out.Set("count", static_cast<double>(n));
  out.Set("chunks", chunks);
  return out;
}

Napi::Value EmbeddingToJs(Napi::Env env, const tierstore::RecordBatch& batch, size_t i, uint32_t dimensions) {
  if (batch.embeddings.size() < (i + 1) * size_t{dimensions}) {
    ThrowError(env, "CORRUPTION", "native record holds no embedding");
  }
  return CopyToTypedArray(env, batch.embeddings.data() + i * size_t{dimensions}, dimensions);
}

Napi::Object CountsToJs(Napi::Env env, const tierstore::TierCounts& counts) {
  Napi::Object out = Napi::Object::New(env);
  out.Set("hot", Napi::Number::New(env, static_cast<double>(counts.hot)));
  out.Set("warm", Napi::Number::New(env, static_cast<double>(counts.warm)));
  out.Set("cold", Napi::Number::New(env, static_cast<double>(counts.cold)));
  out.Set("total", Napi::Number::New(env, static_cast<double>(counts.total())));
  return out;
}

double NowMs() {
  using namespace std::chrono;
  return static_cast<double>(duration_cast<milliseconds>(system_clock::now().time_since_epoch()).count());
}

}  // namespace tierstore_binding
