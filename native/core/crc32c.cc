#include "crc32c.h"

#include <array>
#include <cstring>

#if defined(__x86_64__) || defined(_M_X64)
#include <nmmintrin.h>
#define TS_HAVE_X86 1
#endif

namespace tierstore {
namespace {

constexpr uint32_t kPoly = 0x82F63B78u;  // reflected Castagnoli polynomial

std::array<uint32_t, 256> MakeTable() {
  std::array<uint32_t, 256> t{};
  for (uint32_t i = 0; i < 256; ++i) {
    uint32_t c = i;
    for (int k = 0; k < 8; ++k) c = (c & 1) ? (c >> 1) ^ kPoly : c >> 1;
    t[i] = c;
  }
  return t;
}

uint32_t ExtendPortable(uint32_t crc, const uint8_t* p, size_t n) {
  static const std::array<uint32_t, 256> table = MakeTable();
  uint32_t c = ~crc;
  for (size_t i = 0; i < n; ++i) c = table[(c ^ p[i]) & 0xFF] ^ (c >> 8);
  return ~c;
}

// The CRC register (no inversions) after `Stripe` more zero bytes, as four
// byte-indexed tables: the CRC is linear over GF(2), so the shift of a
// register is the XOR of the shifts of its bytes. Lets three independent
// crc32 streams over consecutive stripes be joined into one CRC.
struct ShiftTables {
  uint32_t t[4][256];
};

template <size_t Stripe>
const ShiftTables& StripeShift() {
  static const ShiftTables tables = [] {
    static const std::array<uint32_t, 256> table = MakeTable();
    ShiftTables st{};
    for (int b = 0; b < 4; ++b) {
      for (uint32_t v = 0; v < 256; ++v) {
        uint32_t c = v << (8 * b);
        for (size_t k = 0; k < Stripe; ++k) c = table[c & 0xFF] ^ (c >> 8);  // one zero byte
        st.t[b][v] = c;
      }
    }
    return st;
  }();
  return tables;
}

inline uint32_t Shift(const ShiftTables& st, uint32_t c) {
  return st.t[0][c & 0xFF] ^ st.t[1][(c >> 8) & 0xFF] ^ st.t[2][(c >> 16) & 0xFF] ^ st.t[3][c >> 24];
}

#ifdef TS_HAVE_X86
// Consumes whole groups of three Stripe-byte stripes from *p; returns the
// register after them.
template <size_t Stripe>
__attribute__((target("sse4.2"))) uint64_t ExtendStripes(uint64_t c, const uint8_t** pp, size_t* pn) {
  const uint8_t* p = *pp;
  size_t n = *pn;
  if (n < 3 * Stripe) return c;
  const ShiftTables& st = StripeShift<Stripe>();
  do {
    uint64_t a = c, b = 0, d = 0;
    for (size_t k = 0; k < Stripe; k += 8) {
      uint64_t va, vb, vd;
      std::memcpy(&va, p + k, 8);
      std::memcpy(&vb, p + Stripe + k, 8);
      std::memcpy(&vd, p + 2 * Stripe + k, 8);
      a = _mm_crc32_u64(a, va);
      b = _mm_crc32_u64(b, vb);
      d = _mm_crc32_u64(d, vd);
    }
    const uint32_t joined = Shift(st, static_cast<uint32_t>(a)) ^ static_cast<uint32_t>(b);
    c = Shift(st, joined) ^ static_cast<uint32_t>(d);
    p += 3 * Stripe;
    n -= 3 * Stripe;
  } while (n >= 3 * Stripe);
  *pp = p;
  *pn = n;
  return c;
}

__attribute__((target("sse4.2"))) uint32_t ExtendSse42(uint32_t crc, const uint8_t* p, size_t n) {
  uint64_t c = ~crc;
  // Three stripes at a time: the crc32 instruction has a latency of three
  // cycles but a throughput of one, so one dependent stream runs at a third
  // of the speed three independent ones do. Long stripes first, then short
  // ones (a record's text is often a few hundred bytes).
  c = ExtendStripes<256>(c, &p, &n);
  c = ExtendStripes<64>(c, &p, &n);
  while (n >= 8) {
    uint64_t v;
    std::memcpy(&v, p, 8);  // unaligned-safe load
    c = _mm_crc32_u64(c, v);
    p += 8;
    n -= 8;
  }
  uint32_t c32 = static_cast<uint32_t>(c);
  while (n > 0) {
    c32 = _mm_crc32_u8(c32, *p++);
    --n;
  }
  return ~c32;
}

bool CpuHasSse42() {
  __builtin_cpu_init();
  return __builtin_cpu_supports("sse4.2");
}
#endif

using ExtendFn = uint32_t (*)(uint32_t, const uint8_t*, size_t);

ExtendFn ChooseExtend() {
#ifdef TS_HAVE_X86
  if (CpuHasSse42()) return &ExtendSse42;
#endif
  return &ExtendPortable;
}

}  // namespace

uint32_t Crc32cExtend(uint32_t crc, const void* data, size_t n) {
  static const ExtendFn fn = ChooseExtend();
  if (n == 0) return crc;
  return fn(crc, static_cast<const uint8_t*>(data), n);
}

}  // namespace tierstore
