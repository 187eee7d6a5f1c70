// libFuzzer target: Utf16LeToUtf8 (native/core/utf16.h), the conversion of
// every string a put carries. Differential: the result must equal the
// reference conversion written from the code points (native/test/
// utf16_reference.h), byte for byte, and a lone surrogate must be reported
// exactly when the reference finds one. The output buffer is exactly
// MaxUtf8BytesOfUtf16 long and the input sits at an odd or even address, so
// AddressSanitizer sees any read or write past either end.
//
// Input: byte 0 is the misalignment of the source (low 3 bits, 0..7 bytes);
// the rest is the UTF-16LE units (an odd last byte is ignored). Unlike the
// store targets, no files are involved.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "../core/utf16.h"
#include "../test/utf16_reference.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const size_t shift = data[0] & 7;
  const size_t units = (size - 1) / 2;
  // Exactly sized heap copies: the source at `shift` past malloc's alignment.
  std::vector<uint8_t> src(shift + 2 * units);
  if (units > 0) std::memcpy(src.data() + shift, data + 1, 2 * units);
  std::vector<char> dst(tierstore::MaxUtf8BytesOfUtf16(units));

  const size_t written = tierstore::Utf16LeToUtf8(src.data() + shift, units, dst.data());

  std::vector<uint16_t> unit_values(units);
  for (size_t i = 0; i < units; ++i) unit_values[i] = static_cast<uint16_t>(data[1 + 2 * i] | (data[2 + 2 * i] << 8));
  std::string want;
  const bool well_formed = tierstore_test::ReferenceUtf16ToUtf8(unit_values.data(), units, &want);

  if (!well_formed) {
    if (written != tierstore::kLoneSurrogate) {
      std::fprintf(stderr, "utf16_fuzz: a lone surrogate was not reported (%zu bytes written)\n", written);
      std::abort();
    }
    return 0;
  }
  if (written == tierstore::kLoneSurrogate) {
    std::fprintf(stderr, "utf16_fuzz: well-formed input reported as a lone surrogate\n");
    std::abort();
  }
  if (written != want.size() || (written > 0 && std::memcmp(dst.data(), want.data(), written) != 0)) {
    std::fprintf(stderr, "utf16_fuzz: %zu bytes written, the reference has %zu, or they differ\n", written, want.size());
    std::abort();
  }
  return 0;
}
