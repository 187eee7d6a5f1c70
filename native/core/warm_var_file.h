// The mapped pieces of the warm files, and VarFile: one warm-var-<gen>.dat
// (docs/format/warm.md), the variable-length bytes (id, content, metadata)
// of warm records. A var file is a header page then extents; it grows in
// chunks, each mapped by its own Region, appended to at its tail (the
// current generation only) and read through Resolve. Private to
// native/core.
//
// Synchronization: none inside (the Store's lock, as for the whole tier).
// Lifetimes: a Region's mapping lives as long as the VarFile; pointers from
// Resolve and Reserve stay valid until it is destroyed.
#pragma once

#include <atomic>
#include <cstdint>
#include <string>
#include <vector>

#include "file_util.h"
#include "status.h"
#include "warm_format.h"

namespace tierstore {
namespace warm_testing {
extern std::atomic<uint64_t> g_var_chunk_bytes;  // 0: the default growth (see VarFile::Reserve)
}  // namespace warm_testing

namespace warm {

struct Region {
  MappedRegion map;
  uint8_t* base = nullptr;   // byte at file_off
  uint64_t file_off = 0;
  uint64_t len = 0;
  bool dirty = false;
  bool writable = false;  // stores allowed (into the file, or private copies)
};

// How MapRange maps: read-only, read-write shared (stores reach the file),
// or read-write private (stores stay in this process's copy-on-write pages;
// falls back to read-only when the kernel will not commit the memory).
enum class MapMode { kReadOnly, kShared, kPrivate };

// Maps [off, off+len) of f; off need only be 4096-aligned (the mapping starts
// at the page boundary below it, so any page size works).
Status MapRange(const File& f, uint64_t off, uint64_t len, MapMode mode, Region* r);

// Extends file from old_size to new_size with allocated blocks (so a full disk
// is an error here, not a SIGBUS on first touch). Restores the size on failure.
Status GrowFile(File* f, uint64_t old_size, uint64_t new_size);

// A first store to a page of a freshly allocated chunk costs two faults (the
// kernel reads the unwritten extent as zeros, then makes the page writable),
// and a demotion into warm writes many fresh pages. MADV_POPULATE_WRITE
// (Linux 5.14) does that for a whole range in one call. Only for bytes
// about to be written for the first time: populating a page dirties it. A
// hint: when it fails (an older kernel, no memory) the stores fault one
// page at a time.
void PopulateForWrite(uint8_t* from, uint8_t* to);

inline MapMode ModeFor(bool read_only) { return read_only ? MapMode::kReadOnly : MapMode::kShared; }

inline // The region of `regions` (sorted by file_off) that starts at or before
// file offset `off`, or nullptr; the caller checks how far it reaches.
const Region* RegionFrom(const std::vector<Region>& regions, uint64_t off) {
  auto r = std::upper_bound(regions.begin(), regions.end(), off,
                            [](uint64_t o, const Region& reg) { return o < reg.file_off; });
  return r == regions.begin() ? nullptr : &*(r - 1);
}

// One var file generation, open.
struct VarFile {
  uint32_t gen = 0;
  std::string path;
  File file;
  uint64_t size = 0;            // file size
  std::vector<Region> regions;  // sorted by file_off, non-overlapping
  uint64_t tail = kHeaderPage;  // next free byte (current generation only)
  uint64_t populated_end = 0;   // appends below it were prefaulted (PopulateForWrite)

  // Writes a new, empty generation gen in dir (atomically) and opens it.
  static Status Create(const std::string& dir, uint32_t gen, VarFile* vf);
  // Opens generation gen in dir, checks its header page and maps it whole.
  static Status Open(const std::string& dir, uint32_t gen, bool read_only, VarFile* vf);
  // Pointer to [off, off+n), or CORRUPTION when it is not inside one mapped
  // region of the file. Inline: every warm read resolves its extent.
  Status Resolve(uint64_t off, uint64_t n, const uint8_t** out) const {
    if (off > size || n > size - off) {
      return Status::Corruption(path + ": extent [" + std::to_string(off) + ", +" + std::to_string(n) +
                                ") lies beyond the end of the file (" + std::to_string(size) +
                                " bytes; truncated?)");
    }
    const Region* r = RegionFrom(regions, off);
    if (r == nullptr) return Status::Corruption(path + ": extent outside any mapped chunk");
    if (off - r->file_off > r->len || n > r->len - (off - r->file_off)) {
      return Status::Corruption(path + ": extent crosses a chunk boundary");
    }
    *out = r->base + (off - r->file_off);
    return Status::OK();
  }
  // Reserves n contiguous bytes at the tail (growing the file by a new
  // chunk when needed: doubling from 1 MiB up to 64 MiB per growth). Does
  // not advance the tail.
  Status Reserve(uint64_t n, uint64_t* off, uint8_t** ptr);

 private:
  // Prefaults the n bytes about to be appended at the tail in region r,
  // and a little past them, unless done already.
  void Prefault(const Region& r, uint64_t n);
  Status Full() const;
};

}  // namespace warm
}  // namespace tierstore
