// warm.filter: the warm slots' filter entries (WarmFilterArray) as a clean
// close leaves them, so that an open from the persisted index has them
// without reading a block. Its bytes: docs/format/warm-filter.md (format
// version 1).
//
// Guarantees:
// - WriteWarmFilterFile writes the file whole (warm.filter.tmp, renamed
//   over warm.filter; fsynced first when durable), so it is the old file or
//   the new one, never a mix.
// - ParseWarmFilterHeader checks only the header page (magic, version,
//   checksum, the file's size against its chunk count, the store id and the
//   token of the clean close that wrote it), so an open maps the file
//   without reading it. Each chunk carries its own checksum, which
//   WarmFilterChunkValid checks before the chunk's entries are trusted.
//   A file that fails either is never a wrong answer: its slots are read
//   from their blocks instead.
//
// Synchronization: none; plain functions over bytes the caller owns.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "status.h"
#include "warm_filter_array.h"

namespace tierstore {

constexpr const char* kWarmFilterFileName = "warm.filter";
constexpr uint32_t kWarmFilterFormatVersion = 1;
constexpr size_t kWarmFilterHeaderBytes = 4096;
// A chunk on disk: WarmFilterArray::Chunk's bytes, then its CRC-32C, padded
// to a multiple of 64.
constexpr size_t kWarmFilterChunkBytes = sizeof(WarmFilterArray::Chunk) + 64;

// chunks[c] (null: a chunk of unknown entries) as dir/warm.filter.
Status WriteWarmFilterFile(const std::string& dir, uint64_t store_id, uint64_t token,
                           const std::vector<const WarmFilterArray::Chunk*>& chunks, bool durable);

// Checks the header of a file of `size` bytes at `data` (see Guarantees);
// CORRUPTION naming `path` when it fails. *chunk_count: the chunks that follow.
Status ParseWarmFilterHeader(const std::string& path, const uint8_t* data, size_t size, uint64_t store_id,
                             uint64_t token, uint32_t* chunk_count);

// Chunk c of a file whose header parsed: its bytes, and whether its
// checksum holds.
inline const uint8_t* WarmFilterChunkBytes(const uint8_t* data, uint32_t c) {
  return data + kWarmFilterHeaderBytes + size_t{c} * kWarmFilterChunkBytes;
}
bool WarmFilterChunkValid(const uint8_t* data, uint32_t c);

}  // namespace tierstore
