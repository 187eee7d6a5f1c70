// Utf16LeToUtf8: converts UTF-16 code units, stored as little-endian byte
// pairs (what a JS engine writes for Buffer 'utf16le'), to UTF-8.
//
// Guarantees: well-formed input (each high surrogate followed by a low
// surrogate, no low surrogate on its own) becomes the standard UTF-8 of the
// same code points; a lone surrogate is reported, never replaced, since
// writing U+FFFD instead would alter the text. At most 3 bytes are written
// per unit. `src` need not be aligned.
// Synchronization: none needed; a pure function.
#pragma once

#include <cstddef>
#include <cstdint>

namespace tierstore {

// What Utf16LeToUtf8 returns when src holds a lone surrogate (dst then holds
// an unspecified prefix).
inline constexpr size_t kLoneSurrogate = SIZE_MAX;

// The most UTF-8 bytes `units` UTF-16 units can become.
constexpr size_t MaxUtf8BytesOfUtf16(size_t units) { return 3 * units; }

// Writes the UTF-8 form of the `units` units at `src` (2 * units bytes) to
// dst, which must have room for MaxUtf8BytesOfUtf16(units) bytes. Returns
// the number of bytes written, or kLoneSurrogate.
size_t Utf16LeToUtf8(const void* src, size_t units, char* dst);

}  // namespace tierstore
