// MetadataSignature: a 128-bit Bloom-style summary of the top-level
// (key, value) pairs of a record's metadata JSON, so that a filter can pass
// over a record whose metadata cannot match without reading that metadata.
//
// Guarantees:
// - No false negatives: for every top-level key k and every scalar v that
//   RecordFilter's equality would find there (the value itself, or each
//   scalar element of an array value; any occurrence of a repeated key),
//   the bits of PairHash(k, v) are set in Of(text). PairHash follows that
//   equality exactly: the key by its decoded characters, strings by their
//   decoded characters, numbers by value (1, 1.0 and 1e0 alike; -0 and 0
//   alike), null, true and false each their own. Text that is not a JSON
//   object with a complete parse gets every bit set (it can exclude
//   nothing; the exact check decides).
// - A signature only excludes: a record whose signature holds the bits of a
//   condition's value may still not match, and is confirmed exactly by
//   RecordFilter::MatchesMetadata.
// - The hash and the bit choice are part of the store's files (warm.filter,
//   cold segment signature columns: docs/format/): changing them needs a new
//   format version of those files.
//
// Synchronization: plain values and pure functions; any thread.
#pragma once

#include <cstdint>
#include <string_view>

namespace tierstore {

struct JsonScalar;

struct MetadataSignature {
  uint64_t bits[2] = {0, 0};

  // Every bit set: matches every condition (unknown or unreadable metadata).
  static MetadataSignature All() {
    MetadataSignature s;
    s.bits[0] = s.bits[1] = ~uint64_t{0};
    return s;
  }
  // The signature of a metadata JSON text (see Guarantees).
  static MetadataSignature Of(std::string_view metadata_json);

  // The bits of one (key, value) pair.
  static MetadataSignature OfPair(uint64_t pair_hash);
  void Add(uint64_t pair_hash) {
    const MetadataSignature p = OfPair(pair_hash);
    bits[0] |= p.bits[0];
    bits[1] |= p.bits[1];
  }
  // Whether every bit of `need` is set here.
  bool Holds(const MetadataSignature& need) const {
    return (bits[0] & need.bits[0]) == need.bits[0] && (bits[1] & need.bits[1]) == need.bits[1];
  }
  bool operator==(const MetadataSignature& o) const { return bits[0] == o.bits[0] && bits[1] == o.bits[1]; }
};

// The 64-bit hash of a top-level key (decoded UTF-8) with a scalar value.
uint64_t PairHash(std::string_view key, const JsonScalar& value);

}  // namespace tierstore
