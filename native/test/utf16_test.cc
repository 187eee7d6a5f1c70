// Tests of Utf16LeToUtf8: known answers, every lone-surrogate shape, and
// random text (ASCII runs, 2- and 3-byte characters, pairs, lone
// surrogates) at every length and at odd addresses against a reference
// written from the code points.
#include "../core/utf16.h"

#include <random>
#include <string>
#include <vector>

#include "testing.h"
#include "utf16_reference.h"

using namespace tierstore;

namespace {

std::string LittleEndianBytes(const std::u16string& s) {
  std::string out;
  for (char16_t u : s) {
    out.push_back(static_cast<char>(u & 0xFF));
    out.push_back(static_cast<char>(u >> 8));
  }
  return out;
}

// The reference: decode to code points, then encode each; false on a lone surrogate.
bool Reference(const std::u16string& s, std::string* out) {
  return tierstore_test::ReferenceUtf16ToUtf8(s.data(), s.size(), out);
}

// Converts s from an address `shift` bytes past an aligned one; the output
// buffer is exactly MaxUtf8BytesOfUtf16 long (ASan sees any overrun).
size_t Convert(const std::u16string& s, size_t shift, std::string* out) {
  const std::string bytes = LittleEndianBytes(s);
  std::vector<char> src(bytes.size() + shift);
  std::copy(bytes.begin(), bytes.end(), src.begin() + static_cast<std::ptrdiff_t>(shift));
  std::vector<char> dst(MaxUtf8BytesOfUtf16(s.size()));
  const size_t n = Utf16LeToUtf8(src.data() + shift, s.size(), dst.data());
  if (n != kLoneSurrogate) out->assign(dst.data(), n);
  return n;
}

}  // namespace

TEST(KnownAnswers) {
  std::string out;
  CHECK_EQ(Convert(u"", 0, &out), 0u);
  CHECK_EQ(Convert(u"plain ascii text", 0, &out), 16u);
  CHECK_EQ(out, "plain ascii text");
  CHECK_EQ(Convert(std::u16string(u"a\0b", 3), 0, &out), 3u);  // NUL is a character like any other
  CHECK_EQ(out, std::string("a\0b", 3));
  CHECK_EQ(Convert(u"\u00e9", 0, &out), 2u);
  CHECK_EQ(out, "\xC3\xA9");
  CHECK_EQ(Convert(u"\u20ac", 0, &out), 3u);
  CHECK_EQ(out, "\xE2\x82\xAC");
  CHECK_EQ(Convert(u"\uFFFF\uFFFD", 0, &out), 6u);
  CHECK_EQ(out, "\xEF\xBF\xBF\xEF\xBF\xBD");
  CHECK_EQ(Convert(u"\U0001F680", 0, &out), 4u);  // D83D DE80
  CHECK_EQ(out, "\xF0\x9F\x9A\x80");
  CHECK_EQ(Convert(u"\U0010FFFF", 0, &out), 4u);
  CHECK_EQ(out, "\xF4\x8F\xBF\xBF");
  CHECK_EQ(Convert(u"\u007f\u0080\u07ff\u0800", 0, &out), 1u + 2 + 2 + 3);
  CHECK_EQ(out, "\x7F\xC2\x80\xDF\xBF\xE0\xA0\x80");
}

TEST(EveryLoneSurrogateShapeIsReported) {
  const char16_t high = 0xD83D, low = 0xDE80;
  const std::u16string pad = u"0123456789abcdef";  // puts the surrogate inside and after a SIMD block
  for (const std::u16string& prefix : {std::u16string(), std::u16string(u"x"), pad}) {
    std::string out;
    CHECK_EQ(Convert(prefix + high, 0, &out), kLoneSurrogate);                       // high at the end
    CHECK_EQ(Convert(prefix + low, 0, &out), kLoneSurrogate);                        // low alone
    CHECK_EQ(Convert(prefix + low + high, 0, &out), kLoneSurrogate);                 // reversed pair
    CHECK_EQ(Convert(prefix + high + u"a" + low, 0, &out), kLoneSurrogate);          // split pair
    CHECK_EQ(Convert(prefix + high + high + low, 0, &out), kLoneSurrogate);          // two highs
    CHECK_EQ(Convert(prefix + high + low + low + pad, 0, &out), kLoneSurrogate);     // two lows
    CHECK(Convert(prefix + high + low + pad, 0, &out) != kLoneSurrogate);             // the pair itself is fine
  }
}

TEST(RandomTextMatchesTheReferenceAtEveryLengthAndAlignment) {
  std::mt19937 rng(7);
  const char16_t kinds[][2] = {{0x20, 0x7E}, {0x00, 0x7F}, {0x80, 0x7FF}, {0x800, 0xD7FF}, {0xE000, 0xFFFF}};
  size_t lone = 0, whole = 0;
  for (int round = 0; round < 4000; ++round) {
    const size_t len = round < 300 ? static_cast<size_t>(round) : rng() % 3000;
    const int mostly_ascii = static_cast<int>(rng() % 3);  // 0: mixed, 1: rare non-ASCII, 2: ASCII only
    const bool allow_lone = rng() % 4 == 0;
    std::u16string s;
    while (s.size() < len) {
      const uint32_t pick = rng() % 100;
      if (mostly_ascii == 2 || (mostly_ascii == 1 && pick < 97) || (mostly_ascii == 0 && pick < 40)) {
        s.push_back(static_cast<char16_t>(0x20 + rng() % 95));
      } else if (pick < 90) {
        const auto& k = kinds[rng() % 5];
        s.push_back(static_cast<char16_t>(k[0] + rng() % (k[1] - k[0] + 1)));
      } else if (pick < 98 || !allow_lone) {
        s.push_back(static_cast<char16_t>(0xD800 + rng() % 0x400));
        s.push_back(static_cast<char16_t>(0xDC00 + rng() % 0x400));
      } else {
        s.push_back(static_cast<char16_t>(0xD800 + rng() % 0x800));  // a lone surrogate of either kind
      }
    }
    std::string want;
    const bool ok = Reference(s, &want);
    for (size_t shift : {0u, 1u, 3u}) {
      std::string got;
      const size_t n = Convert(s, shift, &got);
      if (!ok) {
        CHECK_EQ(n, kLoneSurrogate);
      } else {
        CHECK_EQ(n, want.size());
        CHECK(got == want);
      }
    }
    (ok ? whole : lone)++;
  }
  CHECK(lone > 100);  // both outcomes were exercised
  CHECK(whole > 1000);
}
