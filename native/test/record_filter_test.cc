// Tests of RecordFilter: each condition at its boundary, metadata matching
// on JSON text of every shape JSON.stringify writes (escapes, arrays, nested
// values, repeated and absent keys), malformed specs refused, and malformed
// metadata never matching. Conditions and metadata are both JSON.stringify's
// text in the store, so the texts here are written as it writes them.
#include "../core/record_filter.h"

#include <cmath>
#include <string>

#include "testing.h"

using namespace tierstore;

namespace {

RecordFilter Make(const std::string& metadata_json, double after = RecordFilter::kAbsent,
                  double before = RecordFilter::kAbsent, double min_conf = RecordFilter::kAbsent,
                  double min_act = RecordFilter::kAbsent) {
  RecordFilter::Spec spec;
  spec.created_after = after;
  spec.created_before = before;
  spec.min_confidence = min_conf;
  spec.min_activation = min_act;
  spec.metadata_json = metadata_json;
  RecordFilter f;
  Status s = RecordFilter::Parse(spec, &f);
  CHECK_OK(s);
  return f;
}

bool Refused(const std::string& metadata_json) {
  RecordFilter::Spec spec;
  spec.metadata_json = metadata_json;
  RecordFilter f;
  Status s = RecordFilter::Parse(spec, &f);
  return !s.ok() && s.code() == StatusCode::kInvalidArgument;
}

}  // namespace

TEST(EmptySpecMatchesEverything) {
  RecordFilter f = Make("");
  CHECK(f.empty());
  CHECK(!f.needs_record());
  CHECK(f.MatchesScalars(-1e300, 0, 0));
  CHECK(f.MatchesMetadata("not json"));
  CHECK(Make("{}").empty());
}

TEST(ScalarBoundaries) {
  RecordFilter f = Make("", 100, 200);
  CHECK(!f.MatchesScalars(99, 1, 1));
  CHECK(f.MatchesScalars(100, 1, 1));   // createdAfter is inclusive
  CHECK(f.MatchesScalars(199, 1, 1));
  CHECK(!f.MatchesScalars(200, 1, 1));  // createdBefore is exclusive
  CHECK(f.needs_record());

  // Compared at float32: 0.1 as a float passes a minimum of 0.1 given as a double.
  RecordFilter c = Make("", RecordFilter::kAbsent, RecordFilter::kAbsent, 0.1);
  CHECK(c.has_min_confidence());
  CHECK(!c.needs_record());
  CHECK(c.MatchesConfidence(0.1f));
  CHECK(!c.MatchesConfidence(std::nextafter(0.1f, 0.0f)));
  RecordFilter a = Make("", RecordFilter::kAbsent, RecordFilter::kAbsent, RecordFilter::kAbsent, 0.7);
  CHECK(a.MatchesScalars(0, 0, 0.7f));
  CHECK(!a.MatchesScalars(0, 1, std::nextafter(0.7f, 0.0f)));
}

TEST(NonFiniteScalarsAreRefused) {
  RecordFilter::Spec spec;
  spec.created_after = INFINITY;
  RecordFilter f;
  CHECK(!RecordFilter::Parse(spec, &f).ok());
}

TEST(MetadataScalarsAndArrays) {
  RecordFilter f = Make(R"({"user":["ann"]})");
  CHECK(f.MatchesMetadata(R"({"user":"ann"})"));
  CHECK(f.MatchesMetadata(R"({"a":1,"user":"ann","b":[1,2,{"c":"ann"}]})"));
  CHECK(f.MatchesMetadata(R"({"user":["bob","ann"]})"));  // an array holding it
  CHECK(!f.MatchesMetadata(R"({"user":"bob"})"));
  CHECK(!f.MatchesMetadata(R"({"users":"ann"})"));          // absent key
  CHECK(!f.MatchesMetadata(R"({"user":{"name":"ann"}})"));  // nested object
  CHECK(!f.MatchesMetadata(R"({"user":[["ann"]]})"));       // nested array
  CHECK(!f.MatchesMetadata(R"({"x":{"user":"ann"}})"));     // not top level
  CHECK(!f.MatchesMetadata("{}"));
  CHECK(!f.MatchesMetadata(R"({"user":"ann")"));  // cut short: no match, no crash
  CHECK(!f.MatchesMetadata("[]"));
  CHECK(!f.MatchesMetadata(""));

  // Any of several values; several keys must all match.
  RecordFilter g = Make(R"({"n":[1,2.5],"ok":[true],"z":[null]})");
  CHECK(g.MatchesMetadata(R"({"z":null,"ok":true,"n":2.5})"));
  CHECK(g.MatchesMetadata(R"({"z":[0,null],"ok":[false,true],"n":1})"));  // in arrays too
  CHECK(!g.MatchesMetadata(R"({"z":null,"ok":true,"n":"1"})"));             // a string is no number
  CHECK(!g.MatchesMetadata(R"({"z":"null","ok":true,"n":1})"));             // nor null
  CHECK(!g.MatchesMetadata(R"({"ok":true,"n":1})"));                        // absent: not even null
  CHECK(!g.MatchesMetadata(R"({"z":null,"ok":1,"n":1})"));                  // true is not 1
  RecordFilter zero = Make(R"({"n":[0]})");
  CHECK(zero.MatchesMetadata(R"({"n":0})"));
  CHECK(!zero.MatchesMetadata(R"({"n":10})"));  // its text holds "0", its value is not 0
  CHECK(!zero.MatchesMetadata(R"({"m":0,"x":{"n":0}})"));
}

TEST(ManyValuesAreMatchedByTheParse) {
  std::string spec = R"({"turn":[)";
  for (int i = 0; i < 40; ++i) spec += (i ? "," : "") + std::to_string(i * 3);
  spec += "]}";
  RecordFilter f = Make(spec);
  CHECK(f.MatchesMetadata(R"({"turn":39})"));
  CHECK(!f.MatchesMetadata(R"({"turn":40})"));
  CHECK(f.MatchesMetadata(R"({"turn":[1,2,117]})"));
}

TEST(MetadataEscapesAreDecoded) {
  // JSON.stringify escapes quotes, backslashes and control characters and
  // writes everything else as UTF-8.
  const std::string value = "\"a\\\"b\\\\c\\nd\xc3\xa9\xf0\x9f\x9a\x80\"";
  RecordFilter f = Make("{\"k\xc3\xa9y\":[" + value + "]}");
  CHECK(f.MatchesMetadata("{\"k\xc3\xa9y\":" + value + "}"));
  CHECK(f.MatchesMetadata("{\"a\":1,\"k\xc3\xa9y\":[\"x\"," + value + "]}"));
  CHECK(!f.MatchesMetadata("{\"key\":" + value + "}"));
  CHECK(!f.MatchesMetadata("{\"k\xc3\xa9y\":\"a\"}"));
  // Control characters are written as \u escapes; a surrogate pair escaped
  // decodes to its code point, and equals the same text escaped alike.
  RecordFilter c = Make(R"({"c":["a\u0001b","\ud83d\ude80"]})");
  CHECK(c.MatchesMetadata(R"({"c":"a\u0001b"})"));
  CHECK(c.MatchesMetadata(R"({"c":["x","\ud83d\ude80"]})"));
  CHECK(!c.MatchesMetadata(R"({"c":"a\u0002b"})"));
  CHECK(!c.MatchesMetadata(R"({"c":"\ud83d\ude80\ud800"})"));  // a lone surrogate is no text
  // Skipped values with quotes and brackets inside strings do not confuse the reader.
  RecordFilter g = Make(R"({"t":["x"]})");
  CHECK(g.MatchesMetadata(R"({"a":"}]\"{[","b":{"c":["}",{"d":"\""}]},"t":"x"})"));
}

TEST(RepeatedRecordKeyTheLastCounts) {
  RecordFilter f = Make(R"({"k":["b"]})");
  CHECK(f.MatchesMetadata(R"({"k":"a","k":"b"})"));
  CHECK(!f.MatchesMetadata(R"({"k":"b","k":"a"})"));
}

TEST(MalformedSpecsAreRefused) {
  CHECK(Refused("x"));
  CHECK(Refused(R"({"k":"a"})"));        // values must be arrays
  CHECK(Refused(R"({"k":[]})"));         // of at least one value
  CHECK(Refused(R"({"k":[{"a":1}]})"));  // of scalars
  CHECK(Refused(R"({"k":[1],"k":[2]})"));
  CHECK(Refused(R"({"k":[1]} extra)"));
  CHECK(Refused(R"({"k":[1])"));
  CHECK(Refused(R"({"k":[+1]})"));
}
