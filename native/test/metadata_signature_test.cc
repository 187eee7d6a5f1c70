// Tests of MetadataSignature: no false negatives against RecordFilter's
// exact metadata match, over random JSON objects whose values are written
// in every way JSON allows for one value (numbers in other notations,
// strings with escapes), with arrays, nested values and repeated keys; and
// the signature excluding what it can.
#include "../core/metadata_signature.h"

#include <cstdio>
#include <random>
#include <string>
#include <vector>

#include "../core/record_filter.h"
#include "testing.h"

using namespace tierstore;

namespace {

RecordFilter Make(const std::string& metadata_json) {
  RecordFilter::Spec spec;
  spec.metadata_json = metadata_json;
  RecordFilter f;
  Status s = RecordFilter::Parse(spec, &f);
  CHECK_MSG(s.ok(), metadata_json + " -> " + s.ToString());
  return f;
}

// One scalar as a few texts JSON allows for it.
struct Value {
  std::vector<std::string> texts;
};

Value RandomScalar(std::mt19937_64& rng) {
  Value v;
  switch (rng() % 6) {
    case 0: v.texts = {"null"}; break;
    case 1: v.texts = {"true"}; break;
    case 2: v.texts = {"false"}; break;
    case 3: {
      const int n = static_cast<int>(rng() % 7) - 3;
      if (n == 0) {
        v.texts = {"0", "-0", "0.0", "0e5", "-0.0"};
      } else {
        const std::string s = std::to_string(n);
        v.texts = {s, s + ".0", s + "e0", s + "0e-1", s + ".000E+0"};
      }
      break;
    }
    case 4: {
      const double d = static_cast<double>(rng() % 100) / 100;
      char a[64], b[64];
      std::snprintf(a, sizeof a, "%.17g", d);
      std::snprintf(b, sizeof b, "%.17e", d);
      v.texts = {a, b};
      break;
    }
    default: {
      static const char* const kWords[] = {"a", "b", "src", "A", "é", "x y", "q\"", ""};
      const std::string w = kWords[rng() % 8];
      std::string plain = "\"", escaped = "\"";
      for (unsigned char c : w) {
        if (c == '"') {
          plain += "\\\"";
          escaped += "\\u0022";
        } else if (c == 'a') {
          plain += "a";
          escaped += "\\u0061";
        } else {
          plain.push_back(static_cast<char>(c));
          escaped.push_back(static_cast<char>(c));
        }
      }
      v.texts = {plain + "\"", escaped + "\""};
    }
  }
  return v;
}

const char* const kKeys[] = {"k", "src", "tag", "a\\u0062", "ab", "n"};
const char* const kKeysDecodedSame[] = {"k", "src", "tag", "ab", "ab", "n"};

}  // namespace

TEST(NoFalseNegativesOverRandomJson) {
  std::mt19937_64 rng(42);
  size_t matched = 0, excluded = 0;
  for (int iter = 0; iter < 20000; ++iter) {
    // A random object: 0..5 keys, each a scalar, an array of scalars (some
    // nested values among them) or a nested object; keys may repeat.
    std::string text = "{";
    struct Pair {
      int key;
      Value value;
    };
    std::vector<Pair> pairs;
    const int keys = static_cast<int>(rng() % 6);
    for (int i = 0; i < keys; ++i) {
      if (i > 0) text += rng() % 2 ? "," : " , ";
      const int key = static_cast<int>(rng() % 6);
      text += std::string("\"") + kKeys[key] + "\":";
      const int shape = static_cast<int>(rng() % 4);
      if (shape == 0) {
        text += "{\"k\":1,\"x\":[2]}";
      } else if (shape == 1) {
        text += "[";
        const int n = static_cast<int>(rng() % 4);
        for (int j = 0; j < n; ++j) {
          if (j > 0) text += ",";
          if (rng() % 5 == 0) {
            text += "[1,\"a\"]";
            continue;
          }
          Value v = RandomScalar(rng);
          text += v.texts[rng() % v.texts.size()];
          pairs.push_back({key, v});
        }
        text += "]";
      } else {
        Value v = RandomScalar(rng);
        text += v.texts[rng() % v.texts.size()];
        pairs.push_back({key, v});
      }
    }
    text += "}";
    const MetadataSignature sig = MetadataSignature::Of(text);
    // Conditions: one from a pair of the record (written another way), or
    // a random one.
    for (int c = 0; c < 4; ++c) {
      std::string cond;
      if (!pairs.empty() && c < 2) {
        const Pair& p = pairs[rng() % pairs.size()];
        cond = std::string("{\"") + kKeysDecodedSame[p.key] + "\":[" + p.value.texts[rng() % p.value.texts.size()] + "]}";
      } else {
        Value v = RandomScalar(rng);
        cond = std::string("{\"") + kKeys[rng() % 6] + "\":[" + v.texts[rng() % v.texts.size()] + "]}";
      }
      RecordFilter f = Make(cond);
      const bool exact = f.MatchesMetadata(text);
      const bool may = f.MayMatchSignature(sig);
      CHECK_MSG(!exact || may, "false negative: " + text + " with " + cond);
      matched += exact ? 1 : 0;
      excluded += may ? 0 : 1;
    }
  }
  CHECK(matched > 1000);   // the conditions drawn from the record do match
  CHECK(excluded > 1000);  // and the signature excludes many that do not
}

TEST(EqualValuesHashAlike) {
  JsonScalar one, one_again;
  one.kind = one_again.kind = JsonScalar::Kind::kNumber;
  one.number = 1;
  one_again.number = 1.0;
  CHECK_EQ(PairHash("k", one), PairHash("k", one_again));
  JsonScalar zero, minus_zero;
  zero.kind = minus_zero.kind = JsonScalar::Kind::kNumber;
  zero.number = 0.0;
  minus_zero.number = -0.0;
  CHECK_EQ(PairHash("k", zero), PairHash("k", minus_zero));
  JsonScalar s, t;
  s.kind = t.kind = JsonScalar::Kind::kString;
  s.string = "1";
  CHECK(PairHash("k", s) != PairHash("k", one));  // "1" is not 1
  JsonScalar null, f;
  f.kind = JsonScalar::Kind::kFalse;
  CHECK(PairHash("k", null) != PairHash("k", f));
  CHECK(PairHash("k", t) != PairHash("k", null));  // "" is not null
}

TEST(UnreadableMetadataExcludesNothing) {
  for (const char* text : {"", "null", "[1]", "{\"a\":", "{\"a\":1", "{\"a\":1}x", "{\"a\":[1,}"}) {
    CHECK_MSG(MetadataSignature::Of(text) == MetadataSignature::All(), std::string(text));
  }
  // No keys: nothing can match, and nothing is set.
  CHECK(MetadataSignature::Of("{}") == MetadataSignature());
  CHECK(MetadataSignature::Of(" { } ") == MetadataSignature());
}

TEST(ExcludesAbsentPairs) {
  const MetadataSignature sig = MetadataSignature::Of("{\"source\":\"chat\",\"importance\":0.37,\"tags\":[\"x\",\"y\"]}");
  CHECK(Make("{\"source\":[\"chat\"]}").MayMatchSignature(sig));
  CHECK(Make("{\"importance\":[3.7e-1]}").MayMatchSignature(sig));
  CHECK(Make("{\"tags\":[\"y\"]}").MayMatchSignature(sig));
  CHECK(Make("{\"tags\":[\"z\",\"x\"]}").MayMatchSignature(sig));
  // Each of these differs from every pair of the record; at 3 of 128 bits
  // per pair, none of them shares all its bits with the record's 4 pairs.
  int excluded = 0;
  for (const char* cond : {"{\"source\":[\"mail\"]}", "{\"importance\":[0.38]}", "{\"tags\":[\"chat\"]}",
                           "{\"chat\":[\"source\"]}", "{\"importance\":[\"0.37\"]}"}) {
    excluded += Make(cond).MayMatchSignature(sig) ? 0 : 1;
  }
  CHECK(excluded >= 4);
}
