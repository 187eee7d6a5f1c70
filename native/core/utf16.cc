#include "utf16.h"

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

namespace tierstore {
namespace {

inline uint32_t UnitAt(const uint8_t* src, size_t i) {
  return static_cast<uint32_t>(src[2 * i]) | (static_cast<uint32_t>(src[2 * i + 1]) << 8);
}

}  // namespace

size_t Utf16LeToUtf8(const void* src_bytes, size_t units, char* dst) {
  const uint8_t* src = static_cast<const uint8_t*>(src_bytes);
  char* out = dst;
  size_t i = 0;
  while (i < units) {
#if defined(__SSE2__)
    // Runs of ASCII, 8 units at a time: most text is mostly ASCII, and this
    // loop is what makes converting here cheaper than V8's UTF-8 writer.
    const __m128i non_ascii_bits = _mm_set1_epi16(static_cast<short>(0xFF80));
    const __m128i zero = _mm_setzero_si128();
    while (i + 8 <= units) {
      const __m128i v = _mm_loadu_si128(reinterpret_cast<const __m128i*>(src + 2 * i));
      const unsigned ascii = static_cast<unsigned>(_mm_movemask_epi8(_mm_cmpeq_epi16(_mm_and_si128(v, non_ascii_bits), zero)));
      // All 8 bytes are stored (dst has room: 3 bytes per unit left); only
      // the units before the first non-ASCII one count.
      _mm_storel_epi64(reinterpret_cast<__m128i*>(out), _mm_packus_epi16(v, v));
      if (ascii == 0xFFFF) {
        out += 8;
        i += 8;
        continue;
      }
      const unsigned lead = static_cast<unsigned>(__builtin_ctz(~ascii)) / 2;
      out += lead;
      i += lead;
      break;
    }
    if (i == units) break;
#endif
    const uint32_t u = UnitAt(src, i);
    if (u < 0x80) {
      *out++ = static_cast<char>(u);
    } else if (u < 0x800) {
      *out++ = static_cast<char>(0xC0 | (u >> 6));
      *out++ = static_cast<char>(0x80 | (u & 0x3F));
    } else if (u < 0xD800 || u > 0xDFFF) {
      *out++ = static_cast<char>(0xE0 | (u >> 12));
      *out++ = static_cast<char>(0x80 | ((u >> 6) & 0x3F));
      *out++ = static_cast<char>(0x80 | (u & 0x3F));
    } else {
      // A surrogate: only a high one followed by a low one is a character.
      if (u > 0xDBFF || i + 1 == units) return kLoneSurrogate;
      const uint32_t low = UnitAt(src, i + 1);
      if (low < 0xDC00 || low > 0xDFFF) return kLoneSurrogate;
      const uint32_t cp = 0x10000 + ((u - 0xD800) << 10) + (low - 0xDC00);
      *out++ = static_cast<char>(0xF0 | (cp >> 18));
      *out++ = static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
      *out++ = static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
      *out++ = static_cast<char>(0x80 | (cp & 0x3F));
      ++i;
    }
    ++i;
  }
  return static_cast<size_t>(out - dst);
}

}  // namespace tierstore
