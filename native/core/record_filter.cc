#include "record_filter.h"

#include <cmath>

#include "json_reader.h"

namespace tierstore {

bool JsonScalar::operator==(const JsonScalar& other) const {
  if (kind != other.kind) return false;
  switch (kind) {
    case Kind::kNumber: return number == other.number;
    case Kind::kString: return string == other.string;
    default: return true;
  }
}

namespace {

bool Contains(const std::vector<JsonScalar>& values, const JsonScalar& v) {
  for (const JsonScalar& w : values) {
    if (w == v) return true;
  }
  return false;
}

// Reads one value and says whether it matches `values`: 1 yes, 0 no, -1 the
// text is not JSON.
int MatchValue(JsonReader* r, const std::vector<JsonScalar>& values) {
  const char c = r->Peek();
  if (c == '{') return r->SkipValue() ? 0 : -1;
  if (c != '[') {
    JsonScalar v;
    if (!r->Scalar(&v)) return -1;
    return Contains(values, v) ? 1 : 0;
  }
  r->Consume('[');
  r->SkipSpace();
  bool found = false;
  if (r->Consume(']')) return 0;
  JsonScalar v;
  for (;;) {
    r->SkipSpace();
    const char d = r->Peek();
    if (d == '{' || d == '[') {
      if (!r->SkipValue()) return -1;
    } else {
      if (!r->Scalar(&v)) return -1;
      if (!found && Contains(values, v)) found = true;
    }
    r->SkipSpace();
    if (r->Consume(',')) continue;
    if (r->Consume(']')) return found ? 1 : 0;
    return -1;
  }
}

}  // namespace

Status RecordFilter::Parse(const Spec& spec, RecordFilter* out) {
  *out = RecordFilter();
  auto bad = [](const std::string& what) { return Status::InvalidArgument("filter: " + what); };
  if (!std::isnan(spec.created_after)) {
    if (!std::isfinite(spec.created_after)) return bad("createdAfter must be a finite number");
    out->has_created_after_ = true;
    out->created_after_ = spec.created_after;
  }
  if (!std::isnan(spec.created_before)) {
    if (!std::isfinite(spec.created_before)) return bad("createdBefore must be a finite number");
    out->has_created_before_ = true;
    out->created_before_ = spec.created_before;
  }
  if (!std::isnan(spec.min_confidence)) {
    if (!std::isfinite(spec.min_confidence)) return bad("minConfidence must be a finite number");
    out->has_min_confidence_ = true;
    out->min_confidence_ = static_cast<float>(spec.min_confidence);
  }
  if (!std::isnan(spec.min_activation)) {
    if (!std::isfinite(spec.min_activation)) return bad("minActivation must be a finite number");
    out->has_min_activation_ = true;
    out->min_activation_ = static_cast<float>(spec.min_activation);
  }
  if (spec.metadata_json.empty()) return Status::OK();
  JsonReader r(spec.metadata_json);
  const Status malformed = bad("metadata conditions must be a JSON object of non-empty arrays of scalars");
  r.SkipSpace();
  if (!r.Consume('{')) return malformed;
  r.SkipSpace();
  if (r.Consume('}')) {
    r.SkipSpace();
    return r.AtEnd() ? Status::OK() : malformed;
  }
  for (;;) {
    MetadataCondition cond;
    r.SkipSpace();
    const char* key_start = r.position();
    if (!r.String(&cond.key)) return malformed;
    cond.key_text.assign(key_start, r.position());
    cond.key_text.push_back(':');
    r.SkipSpace();
    if (!r.Consume(':')) return malformed;
    r.SkipSpace();
    if (!r.Consume('[')) return malformed;
    for (;;) {
      r.SkipSpace();
      JsonScalar v;
      const char* value_start = r.position();
      if (!r.Scalar(&v)) return malformed;
      v.text.assign(value_start, r.position());
      cond.value_signatures.push_back(MetadataSignature::OfPair(PairHash(cond.key, v)));
      cond.values.push_back(std::move(v));
      r.SkipSpace();
      if (r.Consume(',')) continue;
      if (r.Consume(']')) break;
      return malformed;
    }
    for (const MetadataCondition& other : out->metadata_) {
      if (other.key == cond.key) return bad("metadata key '" + cond.key + "' is given twice");
    }
    out->metadata_.push_back(std::move(cond));
    r.SkipSpace();
    if (r.Consume(',')) continue;
    if (r.Consume('}')) break;
    return malformed;
  }
  r.SkipSpace();
  return r.AtEnd() ? Status::OK() : malformed;
}

bool RecordFilter::MatchesScalars(double created_at, float confidence, float activation) const {
  if (has_created_after_ && !(created_at >= created_after_)) return false;
  if (has_created_before_ && !(created_at < created_before_)) return false;
  if (has_min_confidence_ && !(confidence >= min_confidence_)) return false;
  if (has_min_activation_ && !(activation >= min_activation_)) return false;
  return true;
}

bool RecordFilter::MatchesMetadata(std::string_view metadata_json) const {
  if (metadata_.empty()) return true;
  // The text must hold each key, and one of its values, as written here
  // (a condition of many values is left to the parse: looking for each
  // would cost more than parsing once).
  constexpr size_t kMaxValuesLookedFor = 8;
  for (const MetadataCondition& cond : metadata_) {
    if (metadata_json.find(cond.key_text) == std::string_view::npos) return false;
    if (cond.values.size() > kMaxValuesLookedFor) continue;
    bool any = false;
    for (const JsonScalar& v : cond.values) {
      if (metadata_json.find(v.text) != std::string_view::npos) {
        any = true;
        break;
      }
    }
    if (!any) return false;
  }
  // One result per condition; a key repeated in the text: the last occurrence
  // counts, as JSON.parse keeps the last.
  std::vector<int8_t> matched(metadata_.size(), 0);
  JsonReader r(metadata_json);
  r.SkipSpace();
  if (!r.Consume('{')) return false;
  r.SkipSpace();
  if (r.Consume('}')) return false;  // no keys: every condition fails
  std::string key;
  for (;;) {
    r.SkipSpace();
    if (!r.String(&key)) return false;
    r.SkipSpace();
    if (!r.Consume(':')) return false;
    r.SkipSpace();
    size_t c = 0;
    while (c < metadata_.size() && metadata_[c].key != key) ++c;
    if (c == metadata_.size()) {
      if (!r.SkipValue()) return false;
    } else {
      const int m = MatchValue(&r, metadata_[c].values);
      if (m < 0) return false;
      matched[c] = static_cast<int8_t>(m);
    }
    r.SkipSpace();
    if (r.Consume(',')) continue;
    if (r.Consume('}')) break;
    return false;
  }
  for (int8_t m : matched) {
    if (m != 1) return false;
  }
  return true;
}

}  // namespace tierstore
