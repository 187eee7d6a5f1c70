#include "metadata_signature.h"

#include <cstring>
#include <string>

#include "json_reader.h"
#include "record_filter.h"

namespace tierstore {

namespace {

// Bytes absorbed a little-endian 64-bit word at a time (a short tail
// zero-extended, its length in the top byte), each word mixed by a multiply
// and a shift; then splitmix64's finalizer, so that the low bits the
// signature takes are well mixed. The exact steps are in
// docs/format/warm-filter.md.
constexpr uint64_t kSeed = 0x9e3779b97f4a7c15ull, kMul = 0xbf58476d1ce4e5b9ull;

uint64_t Step(uint64_t h, uint64_t w) {
  h = (h ^ w) * kMul;
  return h ^ (h >> 31);
}

uint64_t Absorb(uint64_t h, const void* data, size_t n) {
  const auto* p = static_cast<const unsigned char*>(data);
  for (; n >= 8; p += 8, n -= 8) {
    uint64_t w;
    std::memcpy(&w, p, 8);
    h = Step(h, w);
  }
  if (n > 0) {
    uint64_t w = 0;
    std::memcpy(&w, p, n);
    h = Step(h, w | (uint64_t{n} << 56));
  }
  return h;
}

uint64_t Mix(uint64_t z) {
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

}  // namespace

uint64_t PairHash(std::string_view key, const JsonScalar& value) {
  // The key's length first, so that no key/value split of the same bytes
  // collides by construction.
  const uint64_t key_len = key.size();
  uint64_t h = Step(kSeed, key_len);
  h = Absorb(h, key.data(), key.size());
  const auto kind = static_cast<uint8_t>(value.kind);
  h = Absorb(h, &kind, 1);
  switch (value.kind) {
    case JsonScalar::Kind::kNumber: {
      // By value: -0 == 0 (the only two doubles that are equal with other
      // bits; numbers are finite, so no NaN).
      const double d = value.number == 0 ? 0.0 : value.number;
      uint64_t bits;
      std::memcpy(&bits, &d, sizeof bits);
      h = Step(h, bits);
      break;
    }
    case JsonScalar::Kind::kString: h = Absorb(h, value.string.data(), value.string.size()); break;
    default: break;
  }
  return Mix(h);
}

MetadataSignature MetadataSignature::OfPair(uint64_t pair_hash) {
  // Three of the 128 bits, from three 7-bit fields of the hash.
  MetadataSignature s;
  for (int i = 0; i < 3; ++i) {
    const unsigned bit = static_cast<unsigned>((pair_hash >> (7 * i)) & 127u);
    s.bits[bit >> 6] |= uint64_t{1} << (bit & 63u);
  }
  return s;
}

MetadataSignature MetadataSignature::Of(std::string_view metadata_json) {
  MetadataSignature sig;
  JsonReader r(metadata_json);
  r.SkipSpace();
  if (!r.Consume('{')) return All();
  r.SkipSpace();
  if (r.Consume('}')) return sig;  // no keys: no condition can match
  std::string key;
  JsonScalar v;
  for (;;) {
    r.SkipSpace();
    if (!r.String(&key)) return All();
    r.SkipSpace();
    if (!r.Consume(':')) return All();
    r.SkipSpace();
    const char c = r.Peek();
    if (c == '{') {
      if (!r.SkipValue()) return All();
    } else if (c == '[') {
      r.Consume('[');
      r.SkipSpace();
      if (!r.Consume(']')) {
        for (;;) {
          r.SkipSpace();
          const char d = r.Peek();
          if (d == '{' || d == '[') {
            if (!r.SkipValue()) return All();
          } else {
            if (!r.Scalar(&v)) return All();
            sig.Add(PairHash(key, v));
          }
          r.SkipSpace();
          if (r.Consume(',')) continue;
          if (r.Consume(']')) break;
          return All();
        }
      }
    } else {
      if (!r.Scalar(&v)) return All();
      sig.Add(PairHash(key, v));
    }
    r.SkipSpace();
    if (r.Consume(',')) continue;
    if (r.Consume('}')) break;
    return All();
  }
  r.SkipSpace();
  return r.AtEnd() ? sig : All();
}

}  // namespace tierstore
