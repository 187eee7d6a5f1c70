// The reference UTF-16 -> UTF-8 conversion that utf16_test and utf16_fuzz
// compare Utf16LeToUtf8 with: written from the code points, one at a time,
// for clarity rather than speed. Test code only.
#pragma once

#include <cstdint>
#include <string>

namespace tierstore_test {

// Decodes `units` UTF-16 code units to code points and encodes each as
// UTF-8 into *out; false on a lone surrogate.
template <typename Unit>
bool ReferenceUtf16ToUtf8(const Unit* s, size_t units, std::string* out) {
  out->clear();
  for (size_t i = 0; i < units; ++i) {
    uint32_t cp = static_cast<uint16_t>(s[i]);
    if (cp >= 0xD800 && cp <= 0xDFFF) {
      if (cp >= 0xDC00 || i + 1 == units) return false;
      const uint32_t low = static_cast<uint16_t>(s[i + 1]);
      if (low < 0xDC00 || low > 0xDFFF) return false;
      cp = 0x10000 + ((cp - 0xD800) << 10) + (low - 0xDC00);
      ++i;
    }
    if (cp < 0x80) {
      out->push_back(static_cast<char>(cp));
    } else if (cp < 0x800) {
      out->push_back(static_cast<char>(0xC0 | (cp >> 6)));
      out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
    } else if (cp < 0x10000) {
      out->push_back(static_cast<char>(0xE0 | (cp >> 12)));
      out->push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
      out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
    } else {
      out->push_back(static_cast<char>(0xF0 | (cp >> 18)));
      out->push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
      out->push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
      out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
    }
  }
  return true;
}

}  // namespace tierstore_test
