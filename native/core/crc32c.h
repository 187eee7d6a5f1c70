// CRC-32C (Castagnoli), used for every on-disk checksum.
//
// Guarantees: Crc32c(data) is the standard CRC-32C; Extend lets a checksum
// cover several discontiguous pieces. Uses the SSE4.2 crc32 instruction when
// the CPU has it (chosen once at run time), a table otherwise.
// Thread-safety: pure functions, safe from any thread.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>

namespace tierstore {

uint32_t Crc32cExtend(uint32_t crc, const void* data, size_t n);
inline uint32_t Crc32c(const void* data, size_t n) { return Crc32cExtend(0, data, n); }
inline uint32_t Crc32c(std::string_view s) { return Crc32cExtend(0, s.data(), s.size()); }

}  // namespace tierstore
