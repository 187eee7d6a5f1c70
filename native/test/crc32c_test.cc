// Tests of CRC-32C: known answers, and the hardware path (three interleaved
// stripes for long inputs) against a bit-by-bit reference for every length
// around the stripe boundaries, from any starting CRC and any alignment.
#include "../core/crc32c.h"

#include <random>
#include <string>
#include <vector>

#include "testing.h"

using namespace tierstore;

namespace {

uint32_t BitwiseExtend(uint32_t crc, const uint8_t* p, size_t n) {
  uint32_t c = ~crc;
  for (size_t i = 0; i < n; ++i) {
    c ^= p[i];
    for (int k = 0; k < 8; ++k) c = (c & 1) ? (c >> 1) ^ 0x82F63B78u : c >> 1;
  }
  return ~c;
}

}  // namespace

TEST(KnownAnswers) {
  CHECK_EQ(Crc32c("123456789", 9), 0xE3069283u);  // the standard check value
  CHECK_EQ(Crc32c("", 0), 0u);
  std::vector<uint8_t> zeros(32, 0), ones(32, 0xFF);
  CHECK_EQ(Crc32c(zeros.data(), zeros.size()), 0x8A9136AAu);  // RFC 3720 B.4
  CHECK_EQ(Crc32c(ones.data(), ones.size()), 0x62A8AB43u);
}

TEST(EveryLengthAndOffsetMatchesTheReference) {
  std::mt19937 rng(3);
  std::vector<uint8_t> buf(4000 + 8);
  for (uint8_t& b : buf) b = static_cast<uint8_t>(rng());
  std::vector<size_t> lengths;
  for (size_t n = 0; n <= 40; ++n) lengths.push_back(n);
  // Around multiples of three 64-byte and three 256-byte stripes, and mixes.
  for (size_t base : {size_t{192}, size_t{384}, size_t{768}, size_t{960}, size_t{1536}, size_t{2304}}) {
    for (size_t d = 0; d <= 17; ++d) {
      lengths.push_back(base - d);
      lengths.push_back(base + d);
    }
  }
  lengths.push_back(3072);
  lengths.push_back(4000);
  for (size_t offset = 0; offset < 8; offset += 3) {
    for (size_t n : lengths) {
      const uint8_t* p = buf.data() + offset;
      for (uint32_t start : {0u, 0xDEADBEEFu}) {
        CHECK_EQ(Crc32cExtend(start, p, n), BitwiseExtend(start, p, n));
      }
    }
  }
}

TEST(ExtendOverPiecesEqualsOneCall) {
  std::mt19937 rng(5);
  std::vector<uint8_t> buf(5000);
  for (uint8_t& b : buf) b = static_cast<uint8_t>(rng());
  const uint32_t whole = Crc32c(buf.data(), buf.size());
  for (size_t cut : {size_t{1}, size_t{767}, size_t{768}, size_t{2500}, size_t{4999}}) {
    CHECK_EQ(Crc32cExtend(Crc32c(buf.data(), cut), buf.data() + cut, buf.size() - cut), whole);
  }
}
