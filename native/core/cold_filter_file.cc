#include "cold_filter_file.h"

#include <fcntl.h>

#include <algorithm>
#include <cstddef>
#include <cstdio>
#include <cstring>
#include <new>
#include <type_traits>

#include "cold_format.h"
#include "cold_segment.h"
#include "cold_segment_writer.h"
#include "crc32c.h"
#include "file_util.h"

namespace tierstore::cold {

namespace {

// The header's fields (docs/format/cold-filter.md).
constexpr char kFilterMagic[8] = {'T', 'S', 'C', 'F', 'I', 'L', 'T', 'R'};
constexpr size_t kOffVersion = 8, kOffSegment = 12, kOffRows = 16, kOffSegmentSize = 24, kOffMinKey = 32,
                 kOffMaxKey = 40, kOffSegmentHeaderCrc = 48, kOffRowsPerChunk = 52, kOffSignatureBytes = 56,
                 kOffHeaderCrc = 60;
static_assert(kOffHeaderCrc + 4 == kFilterHeaderBytes);

// Signatures are stored as the host lays out the struct (little-endian, as
// every file of the store: cold_format.h asserts it): bits[0], then bits[1].
static_assert(std::is_trivially_copyable_v<MetadataSignature> && sizeof(MetadataSignature) == 16 &&
              offsetof(MetadataSignature, bits) == 0);
constexpr uint64_t kSignatureBytes = sizeof(MetadataSignature);

constexpr const char* kFilterSuffix = ".filter";

// Rows of chunk c of a file of `rows` rows.
uint64_t ChunkRows(uint64_t rows, uint64_t c) {
  const uint64_t begin = c * kFilterRowsPerChunk;
  return std::min(kFilterRowsPerChunk, rows - begin);
}

// Where the checksums of the chunks start (after the signatures).
uint64_t CrcTableOffset(uint64_t rows) { return kFilterHeaderBytes + rows * kSignatureBytes; }

// Checks a header against `expect` and the file's size.
Status CheckHeader(const std::string& path, const uint8_t* h, uint64_t file_size, const FilterIdentity& expect) {
  auto bad = [&](const std::string& why) { return Status::Corruption(path + ": " + why); };
  if (file_size < kFilterHeaderBytes) return bad("shorter than its header");
  if (std::memcmp(h, kFilterMagic, sizeof kFilterMagic) != 0) return bad("bad magic");
  if (Load<uint32_t>(h + kOffHeaderCrc) != Crc32c(h, kOffHeaderCrc)) return bad("header checksum mismatch");
  if (Load<uint32_t>(h + kOffVersion) != kFilterFormatVersion) {
    return bad("unsupported format version " + std::to_string(Load<uint32_t>(h + kOffVersion)));
  }
  if (Load<uint32_t>(h + kOffRowsPerChunk) != kFilterRowsPerChunk || Load<uint32_t>(h + kOffSignatureBytes) != kSignatureBytes) {
    return bad("chunk shape differs from this build's");
  }
  FilterIdentity got;
  got.segment = Load<uint32_t>(h + kOffSegment);
  got.rows = Load<uint64_t>(h + kOffRows);
  got.segment_size = Load<uint64_t>(h + kOffSegmentSize);
  got.min_key = Load<uint64_t>(h + kOffMinKey);
  got.max_key = Load<uint64_t>(h + kOffMaxKey);
  got.header_crc = Load<uint32_t>(h + kOffSegmentHeaderCrc);
  if (!(got == expect)) return bad("made for another segment than " + SegmentName(expect.segment) + " as it is now");
  if (file_size != FilterFileSize(expect.rows)) {
    return bad("size " + std::to_string(file_size) + " does not fit its " + std::to_string(expect.rows) + " rows");
  }
  return Status::OK();
}

bool ChunkValid(const uint8_t* sigs, uint64_t rows, uint64_t c, const uint8_t* crc_table) {
  const uint8_t* p = sigs + c * kFilterRowsPerChunk * kSignatureBytes;
  return Crc32c(p, ChunkRows(rows, c) * kSignatureBytes) == Load<uint32_t>(crc_table + c * 4);
}

// Reads the file at path for `expect` straight into out (no second copy of
// the signatures): the header and the checksums first, so nothing the size
// does not vouch for is allocated or read.
Status ReadFilterFile(const std::string& path, const FilterIdentity& expect, MetadataSignature* out,
                      std::vector<bool>* chunk_valid) {
  File f;
  TS_RETURN_IF_ERROR(File::Open(path, O_RDONLY, &f));
  uint64_t size = 0;
  TS_RETURN_IF_ERROR(f.Size(&size));
  uint8_t h[kFilterHeaderBytes] = {};
  if (size >= kFilterHeaderBytes) TS_RETURN_IF_ERROR(f.ReadAt(0, h, sizeof h));
  TS_RETURN_IF_ERROR(CheckHeader(path, h, size, expect));
  const uint64_t chunks = FilterChunks(expect.rows);
  std::vector<uint8_t> crcs(static_cast<size_t>(chunks * 4));
  TS_RETURN_IF_ERROR(f.ReadAt(CrcTableOffset(expect.rows), crcs.data(), crcs.size()));
  auto* bytes = reinterpret_cast<uint8_t*>(out);  // trivially copyable: its bytes may be read into
  TS_RETURN_IF_ERROR(f.ReadAt(kFilterHeaderBytes, bytes, static_cast<size_t>(expect.rows * kSignatureBytes)));
  chunk_valid->assign(static_cast<size_t>(chunks), false);
  for (uint64_t c = 0; c < chunks; ++c) (*chunk_valid)[c] = ChunkValid(bytes, expect.rows, c, crcs.data());
  return Status::OK();
}

// tmp, (fdatasync), rename; on failure nothing of either name remains.
Status WriteFile(const std::string& path, const std::string& bytes, bool durable) {
  const std::string tmp = path + ".tmp";
  Status st;
  {
    File f;
    st = File::Open(tmp, O_WRONLY | O_CREAT | O_TRUNC, &f);
    if (st.ok()) st = f.Write(bytes.data(), bytes.size());
    if (st.ok() && durable) st = f.Sync();
  }
  if (st.ok()) st = RenameFile(tmp, path);
  if (!st.ok()) {
    (void)RemoveFile(tmp);
    (void)RemoveFile(path);  // an older file is of no use either: the segment is new
  }
  return st;
}

std::string DirOf(const std::string& path) {
  const auto slash = path.find_last_of('/');
  return slash == std::string::npos ? std::string(".") : path.substr(0, slash);
}

}  // namespace

std::string FilterName(uint32_t id) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "cold-%08x%s", id, kFilterSuffix);
  return buf;
}

bool ParseFilterName(const std::string& name, uint32_t* id) {
  // cold-XXXXXXXX.filter, lowercase hex, exactly: the segment's name with another suffix.
  const size_t suffix = std::strlen(kFilterSuffix);
  if (name.size() != 13 + suffix || name.compare(13, suffix, kFilterSuffix) != 0) return false;
  return ParseSegmentName(name.substr(0, 13) + ".seg", id);
}

std::string FilterPathOf(const std::string& segment_path) {
  const std::string seg = ".seg";
  if (segment_path.size() >= seg.size() && segment_path.compare(segment_path.size() - seg.size(), seg.size(), seg) == 0) {
    return segment_path.substr(0, segment_path.size() - seg.size()) + kFilterSuffix;
  }
  return segment_path + kFilterSuffix;
}

FilterIdentity FilterIdentityOf(const uint8_t* h) {
  FilterIdentity id;
  id.segment = Load<uint32_t>(h + 32);
  id.rows = Load<uint64_t>(h + 16);
  id.segment_size = Load<uint64_t>(h + 24);
  id.min_key = Load<uint64_t>(h + 40);
  id.max_key = Load<uint64_t>(h + 48);
  id.header_crc = Load<uint32_t>(h + kHeaderCrcOffset);
  return id;
}

uint64_t FilterChunks(uint64_t rows) { return (rows + kFilterRowsPerChunk - 1) / kFilterRowsPerChunk; }

uint64_t FilterFileSize(uint64_t rows) { return CrcTableOffset(rows) + FilterChunks(rows) * 4; }

std::string EncodeFilterFile(const FilterIdentity& id, const MetadataSignature* sigs) {
  std::string bytes(static_cast<size_t>(FilterFileSize(id.rows)), '\0');
  auto* p = reinterpret_cast<uint8_t*>(bytes.data());
  std::memcpy(p, kFilterMagic, sizeof kFilterMagic);
  StoreAt<uint32_t>(p + kOffVersion, kFilterFormatVersion);
  StoreAt<uint32_t>(p + kOffSegment, id.segment);
  StoreAt<uint64_t>(p + kOffRows, id.rows);
  StoreAt<uint64_t>(p + kOffSegmentSize, id.segment_size);
  StoreAt<uint64_t>(p + kOffMinKey, id.min_key);
  StoreAt<uint64_t>(p + kOffMaxKey, id.max_key);
  StoreAt<uint32_t>(p + kOffSegmentHeaderCrc, id.header_crc);
  StoreAt<uint32_t>(p + kOffRowsPerChunk, static_cast<uint32_t>(kFilterRowsPerChunk));
  StoreAt<uint32_t>(p + kOffSignatureBytes, static_cast<uint32_t>(kSignatureBytes));
  StoreAt<uint32_t>(p + kOffHeaderCrc, Crc32c(p, kOffHeaderCrc));
  uint8_t* sig_bytes = p + kFilterHeaderBytes;
  if (id.rows > 0) std::memcpy(sig_bytes, sigs, static_cast<size_t>(id.rows * kSignatureBytes));
  uint8_t* crcs = p + CrcTableOffset(id.rows);
  for (uint64_t c = 0; c < FilterChunks(id.rows); ++c) {
    const uint8_t* chunk = sig_bytes + c * kFilterRowsPerChunk * kSignatureBytes;
    StoreAt<uint32_t>(crcs + c * 4, Crc32c(chunk, ChunkRows(id.rows, c) * kSignatureBytes));
  }
  return bytes;
}

Status WriteFilterFile(const std::string& path, const FilterIdentity& id, const MetadataSignature* sigs, bool durable) {
  std::string bytes;
  try {
    bytes = EncodeFilterFile(id, sigs);
  } catch (const std::bad_alloc&) {
    (void)RemoveFile(path);
    return Status::IoError("out of memory writing " + path);
  }
  return WriteFile(path, bytes, durable);
}

Status ParseFilterFile(const std::string& path, const uint8_t* data, size_t size, const FilterIdentity& expect,
                       MetadataSignature* out, std::vector<bool>* chunk_valid) {
  TS_RETURN_IF_ERROR(CheckHeader(path, data, size, expect));
  const uint64_t chunks = FilterChunks(expect.rows);
  const uint8_t* sigs = data + kFilterHeaderBytes;
  const uint8_t* crcs = data + CrcTableOffset(expect.rows);
  chunk_valid->assign(static_cast<size_t>(chunks), false);
  for (uint64_t c = 0; c < chunks; ++c) {
    if (!ChunkValid(sigs, expect.rows, c, crcs)) continue;
    (*chunk_valid)[c] = true;
    std::memcpy(out + c * kFilterRowsPerChunk, sigs + c * kFilterRowsPerChunk * kSignatureBytes,
                static_cast<size_t>(ChunkRows(expect.rows, c) * kSignatureBytes));
  }
  return Status::OK();
}

std::unique_ptr<MetadataSignature[]> LoadSignatures(const Segment& seg, bool rewrite, FilterLoad* report) {
  FilterLoad local;
  FilterLoad& r = report != nullptr ? *report : local;
  r = FilterLoad();
  const uint64_t rows = seg.rows;
  auto sigs = std::make_unique<MetadataSignature[]>(rows);
  const FilterIdentity id = FilterIdentityOf(seg.base);  // the header an open checked
  const std::string path = FilterPathOf(seg.path);
  std::vector<bool> valid;
  if (!ReadFilterFile(path, id, sigs.get(), &valid).ok()) valid.assign(static_cast<size_t>(FilterChunks(rows)), false);
  bool made = false;
  for (uint64_t c = 0; c < valid.size(); ++c) {
    const uint64_t begin = c * kFilterRowsPerChunk, end = begin + ChunkRows(rows, c);
    if (valid[c]) {
      r.rows_from_file += end - begin;
      continue;
    }
    made = true;
    for (uint64_t row = begin; row < end; ++row) {
      bool ok = true;
      const std::string_view metadata = seg.Bytes(kMetaOffsets, kMetaBytes, row, &ok);
      sigs[row] = ok ? MetadataSignature::Of(metadata) : MetadataSignature::All();
    }
  }
  if (made && rewrite) {
    // Durable like a seal in 'sync' (once per segment): a power cut never
    // leaves it half written under its name.
    r.rewrote = WriteFilterFile(path, id, sigs.get(), /*durable=*/true).ok() && SyncDirectory(DirOf(path)).ok();
  }
  return sigs;
}

void WriteFilterForSeal(const std::string& segment_path, const RowSource& src, bool durable) {
  const std::string path = FilterPathOf(segment_path);
  uint8_t header[kHeaderSize];
  File f;
  if (!File::Open(segment_path, O_RDONLY, &f).ok() || !f.ReadAt(0, header, sizeof header).ok()) {
    (void)RemoveFile(path);
    return;
  }
  const FilterIdentity id = FilterIdentityOf(header);
  std::unique_ptr<MetadataSignature[]> sigs;
  if (id.rows == src.size()) sigs.reset(new (std::nothrow) MetadataSignature[id.rows]);
  if (sigs == nullptr) {
    (void)RemoveFile(path);
    return;
  }
  RecordView v;
  for (uint64_t i = 0; i < id.rows; ++i) {
    src.Get(i, &v);  // a merged row with damaged offsets: empty metadata, as the segment now holds
    sigs[i] = MetadataSignature::Of(v.metadata);
  }
  (void)WriteFilterFile(path, id, sigs.get(), durable);
}

void RemoveFilterOf(const std::string& segment_path) { (void)RemoveFile(FilterPathOf(segment_path)); }

bool IsOrphanFilter(const std::string& name, const std::unordered_set<std::string>& names) {
  uint32_t id = 0;
  return ParseFilterName(name, &id) && names.count(SegmentName(id)) == 0;
}

}  // namespace tierstore::cold
