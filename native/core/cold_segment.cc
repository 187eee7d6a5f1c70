#include "cold_segment.h"

#include <fcntl.h>

#include <cerrno>
#include <limits>

namespace tierstore::cold {

Status OpenSegment(const std::string& path, uint32_t id, uint32_t dims, bool read_only, bool verify_crcs,
                   std::unique_ptr<Segment>* out) {
  auto seg = std::make_unique<Segment>();
  seg->id = id;
  seg->path = path;
  TS_RETURN_IF_ERROR(File::Open(path, read_only ? O_RDONLY : O_RDWR, &seg->file));
  uint64_t actual = 0;
  TS_RETURN_IF_ERROR(seg->file.Size(&actual));
  if (actual < kHeaderSize) return seg->Corrupt("truncated: " + std::to_string(actual) + " bytes, smaller than the header");

  // Header: read with pread first, so nothing is mapped before it checks out.
  uint8_t h[kHeaderSize];
  TS_RETURN_IF_ERROR(seg->file.ReadAt(0, h, kHeaderSize));
  if (std::memcmp(h, kMagic, sizeof kMagic) != 0) return seg->Corrupt("bad magic (not a cold segment)");
  if (Crc32c(h, kHeaderCrcOffset) != Load<uint32_t>(h + kHeaderCrcOffset)) return seg->Corrupt("header checksum mismatch");
  uint32_t version = Load<uint32_t>(h + 8);
  if (version != kFormatVersion) return seg->Corrupt("unsupported format version " + std::to_string(version));
  uint32_t file_dims = Load<uint32_t>(h + 12);
  uint64_t n = Load<uint64_t>(h + 16);
  uint64_t file_size = Load<uint64_t>(h + 24);
  uint32_t file_id = Load<uint32_t>(h + 32);
  uint32_t ncols = Load<uint32_t>(h + 36);
  uint64_t min_key = Load<uint64_t>(h + 40), max_key = Load<uint64_t>(h + 48);
  if (file_dims != dims)
    return seg->Corrupt("holds " + std::to_string(file_dims) + "-dimensional embeddings, the store has " +
                        std::to_string(dims));
  if (file_id != id) return seg->Corrupt("header names segment " + std::to_string(file_id));
  if (ncols != kNumCols) return seg->Corrupt("unexpected column count " + std::to_string(ncols));
  if (n == 0 || n > std::numeric_limits<uint32_t>::max()) return seg->Corrupt("bad row count " + std::to_string(n));
  // Strictly ascending keys need a range of at least n: a header that says
  // otherwise would misplace the segment among the others (scans find
  // segments by their key ranges) before any column is read.
  if (min_key == 0 || min_key > max_key || max_key - min_key < n - 1)
    return seg->Corrupt("key range " + std::to_string(min_key) + ".." + std::to_string(max_key) + " in the header cannot hold " +
                        std::to_string(n) + " ascending keys");
  if (file_size != actual)
    return seg->Corrupt(std::string(actual < file_size ? "truncated" : "trailing bytes") + ": header says " +
                        std::to_string(file_size) + " bytes, file has " + std::to_string(actual));
  uint32_t* col_crc = seg->col_crc;
  uint64_t prev_end = kHeaderSize;
  for (int c = 0; c < kNumCols; ++c) {
    const uint8_t* e = h + kDirOffset + c * kDirEntrySize;
    uint64_t o = Load<uint64_t>(e), s = Load<uint64_t>(e + 8);
    col_crc[c] = Load<uint32_t>(e + 16);
    std::string name = kColNames[c];
    if (o % kAlign != 0) return seg->Corrupt("column " + name + " is not 64-byte aligned");
    if (o < prev_end) return seg->Corrupt("column " + name + " overlaps the previous one (offsets not monotone)");
    if (o > file_size || s > file_size - o) return seg->Corrupt("column " + name + " lies outside the file");
    if (!ColIsBytes(c) && s != FixedColSize(c, n, dims))
      return seg->Corrupt("column " + name + " has size " + std::to_string(s) + ", expected " +
                          std::to_string(FixedColSize(c, n, dims)));
    seg->off[c] = o;
    seg->size[c] = s;
    prev_end = o + s;
  }
  if (prev_end != file_size) return seg->Corrupt("columns do not end at the end of the file");

  // Everything checks out against the real size: map it.
  // A read-only tier maps segments privately (copy-on-write), so get() keeps
  // access statistics in memory as it does for hot records, never in the
  // file; read-only when the kernel will not commit the private pages.
  seg->access_writable = true;
  if (!read_only) {
    TS_RETURN_IF_ERROR(MappedRegion::Map(seg->file, 0, static_cast<size_t>(file_size), true, &seg->map));
  } else if (!MappedRegion::MapPrivate(seg->file, 0, static_cast<size_t>(file_size), &seg->map).ok()) {
    seg->access_writable = false;
    TS_RETURN_IF_ERROR(MappedRegion::Map(seg->file, 0, static_cast<size_t>(file_size), false, &seg->map));
  }
  AdviseRandom(seg->map.data(), seg->map.size());  // scans ask for what they read (WillNeedRows)
  seg->base = seg->map.data();
  seg->rows = n;
  seg->dims = dims;
  seg->file_size = file_size;
  seg->min_key = min_key;
  seg->max_key = max_key;
  TS_RETURN_IF_ERROR(seg->LoadBitmap());

  if (verify_crcs) {
    TS_RETURN_IF_ERROR(seg->CheckColumns());
    seg->columns_checked.store(true, std::memory_order_relaxed);
  }
  if (seg->Key(0) != min_key || seg->Key(n - 1) != max_key) return seg->Corrupt("key range does not match the header");
  *out = std::move(seg);
  return Status::OK();
}

Status Segment::CheckColumns(bool structure_only) const {
  const uint64_t n = rows;
  if (!structure_only) AdviseWillNeed(base, static_cast<size_t>(file_size));  // read whole, in order
  for (int c = 0; c < kNumCols; ++c) {
    if (!ColHasCrc(c)) continue;
    const bool structural = c == kKey || c == kSeq || c == kIdOffsets || c == kContentOffsets || c == kMetaOffsets;
    if (structure_only && !structural) continue;
    if (Crc32c(base + off[c], size[c]) != col_crc[c]) return Corrupt(std::string("column ") + kColNames[c] + " checksum mismatch");
  }
  const int offcols[3] = {kIdOffsets, kContentOffsets, kMetaOffsets};
  const int bytecols[3] = {kIdBytes, kContentBytes, kMetaBytes};
  const uint64_t limits[3] = {kMaxIdBytes, kMaxContentBytes, kMaxMetadataBytes};
  for (int k = 0; k < 3; ++k) {
    const uint8_t* p = base + off[offcols[k]];
    uint64_t prev = Load<uint64_t>(p);
    if (prev != 0) return Corrupt(std::string("column ") + kColNames[offcols[k]] + " does not start at 0");
    for (uint64_t r = 1; r <= n; ++r) {
      uint64_t cur = Load<uint64_t>(p + r * 8);
      if (cur < prev || cur - prev > limits[k])
        return Corrupt(std::string("column ") + kColNames[offcols[k]] + " has a bad entry at row " + std::to_string(r - 1));
      prev = cur;
    }
    if (prev != size[bytecols[k]])
      return Corrupt(std::string("column ") + kColNames[offcols[k]] + " does not match the size of " + kColNames[bytecols[k]]);
  }
  uint64_t prev_key = 0;
  for (uint64_t r = 0; r < n; ++r) {
    uint64_t k = Key(r);
    if (k == 0 || k <= prev_key) return Corrupt("cold keys are not strictly ascending at row " + std::to_string(r));
    prev_key = k;
  }
  if (Key(0) != min_key || Key(n - 1) != max_key) return Corrupt("key range does not match the header");
  return Status::OK();
}

}  // namespace tierstore::cold
