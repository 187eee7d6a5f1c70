// RecordFilter: the conditions of a filtered recall, listing or iteration,
// checked against one record.
//
// Guarantees: a record matches when every condition given holds:
// - created_at >= created_after, created_at < created_before (ms);
// - confidence >= min_confidence, activation >= min_activation, compared as
//   float32 (the stored precision);
// - for every metadata condition (key, values): the record's metadata JSON
//   has the top-level key, and its value there equals one of `values` or is
//   an array holding an element equal to one of them. Equality: strings by
//   their decoded characters, numbers by value, booleans, null only null. A
//   key absent from a record matches nothing. Nested objects and arrays
//   never equal a scalar.
// Metadata text that is not a JSON object matches no metadata condition.
// Both the conditions and the stored metadata are JSON.stringify's text, so
// a record can match only if its text holds each condition's key and one of
// its values written the same way: MatchesMetadata looks for those first
// and parses only the texts that have them.
//
// Synchronization: immutable after Parse; any number of threads may call
// Matches at once.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "filter_entry.h"
#include "metadata_signature.h"
#include "record.h"
#include "status.h"

namespace tierstore {

// A JSON scalar of a metadata condition or a record's metadata.
struct JsonScalar {
  enum class Kind : uint8_t { kNull, kFalse, kTrue, kNumber, kString } kind = Kind::kNull;
  double number = 0;
  std::string string;  // decoded UTF-8
  std::string text;    // as the condition's JSON wrote it (conditions only)

  bool operator==(const JsonScalar& other) const;
};

class RecordFilter {
 public:
  struct MetadataCondition {
    std::string key;       // decoded UTF-8
    std::string key_text;  // as the condition's JSON wrote it, with its ':'
    std::vector<JsonScalar> values;
    std::vector<MetadataSignature> value_signatures;  // parallel to values: OfPair(PairHash(key, value))
  };

  // What the caller asks; absent conditions are NaN (numbers) or empty.
  struct Spec {
    double created_after = kAbsent;
    double created_before = kAbsent;
    double min_confidence = kAbsent;
    double min_activation = kAbsent;
    // A JSON object whose every value is a non-empty array of scalars:
    // {"key": [value, ...], ...}. Empty: no metadata condition.
    std::string metadata_json;
  };
  static constexpr double kAbsent = __builtin_nan("");

  // INVALID_ARGUMENT when the spec is malformed (the TS layer validates
  // first, so that names the argument; this is the core's own guard).
  static Status Parse(const Spec& spec, RecordFilter* out);

  // No condition at all: every record matches.
  bool empty() const { return !has_created_after_ && !has_created_before_ && !has_min_confidence_ &&
                              !has_min_activation_ && metadata_.empty(); }
  // Whether Matches needs more than the confidence (recall has confidence
  // in a column; everything else needs the record read).
  bool needs_record() const { return has_created_after_ || has_created_before_ || has_min_activation_ ||
                                     !metadata_.empty(); }
  bool has_min_confidence() const { return has_min_confidence_; }
  bool has_metadata() const { return !metadata_.empty(); }
  float min_confidence() const { return min_confidence_; }

  bool MatchesConfidence(float confidence) const { return !has_min_confidence_ || confidence >= min_confidence_; }
  bool MatchesScalars(double created_at, float confidence, float activation) const;
  bool MatchesMetadata(std::string_view metadata_json) const;
  // False only when no record with this signature can match the metadata
  // conditions (see MetadataSignature): a record that passes is confirmed
  // with MatchesMetadata.
  bool MayMatchSignature(const MetadataSignature& signature) const {
    for (const MetadataCondition& cond : metadata_) {
      bool any = false;
      for (const MetadataSignature& need : cond.value_signatures) {
        if (signature.Holds(need)) {
          any = true;
          break;
        }
      }
      if (!any) return false;
    }
    return true;
  }
  // False only for a record the filter excludes: the scalar conditions
  // exactly, the metadata ones by signature.
  bool MayMatch(const FilterEntry& e) const {
    return MatchesScalars(e.created_at, e.confidence, e.activation) && MayMatchSignature(e.signature);
  }
  bool Matches(const RecordView& v) const {
    return MatchesScalars(v.created_at, v.confidence, v.activation) && (metadata_.empty() || MatchesMetadata(v.metadata));
  }

 private:
  bool has_created_after_ = false, has_created_before_ = false;
  bool has_min_confidence_ = false, has_min_activation_ = false;
  double created_after_ = 0, created_before_ = 0;
  float min_confidence_ = 0, min_activation_ = 0;
  std::vector<MetadataCondition> metadata_;
};

}  // namespace tierstore
