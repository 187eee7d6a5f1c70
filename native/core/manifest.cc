#include "manifest.h"

#include <cstring>

#include "crc32c.h"
#include "file_util.h"
#include "record.h"

namespace tierstore {
namespace {
constexpr char kMagic[8] = {'T', 'S', 'M', 'A', 'N', 'I', 'F', '1'};
// magic 8, version 4, dims 4, clean 4, segment count 4, log size 8, seq 8,
// warm records 8, cold records 8, store id 8, (version 3:) index token 8,
// segment ids 4 each, crc 4
constexpr size_t kFixedSizeV2 = 64;
constexpr size_t kFixedSize = 72;
}  // namespace

Status Manifest::Read(const std::string& dir, Manifest* out) {
  std::string path = JoinPath(dir, kFileName);
  std::string bytes;
  TS_RETURN_IF_ERROR(ReadWholeFile(path, &bytes));
  if (bytes.size() < kFixedSizeV2 + 4 || std::memcmp(bytes.data(), kMagic, 8) != 0) {
    return Status::Corruption(path + ": not a tierstore manifest (wrong size or magic)");
  }
  uint32_t version;
  std::memcpy(&version, bytes.data() + 8, 4);
  const size_t fixed = version == 2 ? kFixedSizeV2 : kFixedSize;
  uint32_t nsegs;
  std::memcpy(&nsegs, bytes.data() + 20, 4);
  const size_t size = fixed + size_t{nsegs} * 4 + 4;
  if (bytes.size() != size) return Status::Corruption(path + ": size does not match its segment list");
  uint32_t crc;
  std::memcpy(&crc, bytes.data() + size - 4, 4);
  if (crc != Crc32c(bytes.data(), size - 4)) return Status::Corruption(path + ": checksum mismatch");
  uint32_t clean;
  if (version != kFormatVersion && version != 2) {
    return Status::Corruption(path + ": format version " + std::to_string(version) + " is not supported (expected " +
                              std::to_string(kFormatVersion) + ")");
  }
  std::memcpy(&out->dimensions, bytes.data() + 12, 4);
  std::memcpy(&clean, bytes.data() + 16, 4);
  std::memcpy(&out->hot_log_size, bytes.data() + 24, 8);
  std::memcpy(&out->sequence_floor, bytes.data() + 32, 8);
  std::memcpy(&out->warm_records, bytes.data() + 40, 8);
  std::memcpy(&out->cold_records, bytes.data() + 48, 8);
  std::memcpy(&out->store_id, bytes.data() + 56, 8);
  out->index_token = 0;
  if (version >= 3) std::memcpy(&out->index_token, bytes.data() + 64, 8);
  out->cold_segments.resize(nsegs);
  if (nsegs > 0) std::memcpy(out->cold_segments.data(), bytes.data() + fixed, size_t{nsegs} * 4);
  out->clean = clean != 0;
  if (out->dimensions == 0 || out->dimensions > kMaxDimensions) {
    return Status::Corruption(path + ": " + std::to_string(out->dimensions) + " dimensions (allowed: 1.." +
                              std::to_string(kMaxDimensions) + ")");
  }
  return Status::OK();
}

Status Manifest::Write(const std::string& dir, bool durable) const {
  const uint32_t nsegs = static_cast<uint32_t>(cold_segments.size());
  const size_t size = kFixedSize + size_t{nsegs} * 4 + 4;
  std::string bytes(size, '\0');
  std::memcpy(bytes.data(), kMagic, 8);
  uint32_t version = kFormatVersion, clean_flag = clean ? 1 : 0;
  std::memcpy(bytes.data() + 8, &version, 4);
  std::memcpy(bytes.data() + 12, &dimensions, 4);
  std::memcpy(bytes.data() + 16, &clean_flag, 4);
  std::memcpy(bytes.data() + 24, &hot_log_size, 8);
  std::memcpy(bytes.data() + 20, &nsegs, 4);
  std::memcpy(bytes.data() + 32, &sequence_floor, 8);
  std::memcpy(bytes.data() + 40, &warm_records, 8);
  std::memcpy(bytes.data() + 48, &cold_records, 8);
  std::memcpy(bytes.data() + 56, &store_id, 8);
  std::memcpy(bytes.data() + 64, &index_token, 8);
  if (nsegs > 0) std::memcpy(bytes.data() + kFixedSize, cold_segments.data(), size_t{nsegs} * 4);
  uint32_t crc = Crc32c(bytes.data(), size - 4);
  std::memcpy(bytes.data() + size - 4, &crc, 4);
  return AtomicWriteFile(JoinPath(dir, kFileName), bytes, durable);
}

}  // namespace tierstore
