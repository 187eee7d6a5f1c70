#include "warm_var_file.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <limits>

namespace tierstore {
namespace warm {
namespace {

// Var files double from kMinVarChunkBytes up to kMaxVarChunkBytes per
// growth, so a store with little warm data takes little disk.
constexpr uint64_t kMinVarChunkBytes = uint64_t{1} << 20;
constexpr uint64_t kMaxVarChunkBytes = uint64_t{64} << 20;
// Prefaulted past an append, in bytes (see PopulateForWrite).
constexpr uint64_t kVarPopulateAhead = uint64_t{512} << 10;
#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23  // Linux 5.14
#endif

std::atomic<bool> g_populate_unsupported{false};

}  // namespace

// Extends file from old_size to new_size with allocated blocks (so a full disk
// is an error here, not a SIGBUS on first touch). Restores the size on failure.
Status GrowFile(File* f, uint64_t old_size, uint64_t new_size) {
  int rc;
  do {
    rc = ::posix_fallocate(f->fd(), static_cast<off_t>(old_size), static_cast<off_t>(new_size - old_size));
  } while (rc == EINTR);
  if (rc != 0) {
    if (::ftruncate(f->fd(), static_cast<off_t>(old_size)) != 0) {
      // Nothing more to do: the caller reports the allocation failure.
    }
    return ErrnoStatus("posix_fallocate", f->path(), rc);
  }
  return Status::OK();
}

// Maps [off, off+len) of f; off need only be 4096-aligned (the mapping starts
// at the page boundary below it, so any page size works).
Status MapRange(const File& f, uint64_t off, uint64_t len, MapMode mode, Region* r) {
  uint64_t page = PageSize();
  uint64_t aligned = off / page * page;
  uint64_t delta = off - aligned;
  if (len + delta > std::numeric_limits<size_t>::max()) return Status::IoError("mapping too large in " + f.path());
  MappedRegion m;
  const size_t n = static_cast<size_t>(len + delta);
  bool writable = mode != MapMode::kReadOnly;
  if (mode == MapMode::kPrivate && !MappedRegion::MapPrivate(f, aligned, n, &m).ok()) writable = false;
  if (m.data() == nullptr) TS_RETURN_IF_ERROR(MappedRegion::Map(f, aligned, n, mode == MapMode::kShared, &m));
  AdviseRandom(m.data(), m.size());  // scans ask for what they read (WarmTier::WillNeed)
  r->base = m.data() + delta;
  r->map = std::move(m);
  r->file_off = off;
  r->len = len;
  r->dirty = false;
  r->writable = writable;
  return Status::OK();
}

void PopulateForWrite(uint8_t* from, uint8_t* to) {
  if (to <= from || g_populate_unsupported.load(std::memory_order_relaxed)) return;
  const uintptr_t page = PageSize();
  const uintptr_t a = reinterpret_cast<uintptr_t>(from) / page * page;
  const uintptr_t b = (reinterpret_cast<uintptr_t>(to) + page - 1) / page * page;
  if (::madvise(reinterpret_cast<void*>(a), b - a, MADV_POPULATE_WRITE) != 0 && errno == EINVAL) {
    g_populate_unsupported.store(true, std::memory_order_relaxed);
  }
}


Status VarFile::Reserve(uint64_t n, uint64_t* off, uint8_t** ptr) {
  if (!regions.empty()) {
    const Region& last = regions.back();
    uint64_t end = last.file_off + last.len;
    if (tail >= last.file_off && tail <= end && n <= end - tail) {
      if (tail > kMaxOffset) return Full();
      *off = tail;
      *ptr = last.base + (tail - last.file_off);
      Prefault(last, n);
      return Status::OK();
    }
  }
  uint64_t page = std::max<uint64_t>(PageSize(), kHeaderPage);
  uint64_t chunk = warm_testing::g_var_chunk_bytes.load();
  if (chunk == 0) chunk = std::clamp<uint64_t>(size - kHeaderPage, kMinVarChunkBytes, kMaxVarChunkBytes);
  chunk = std::max(RoundUp(chunk, page), RoundUp(std::max<uint64_t>(n, 1), page));
  uint64_t start = RoundUp(size, page);
  // Refuse rather than let a location wrap.
  if (start + chunk - 1 > kMaxOffset) return Full();
  TS_RETURN_IF_ERROR(GrowFile(&file, size, start + chunk));
  Region r;
  Status s = MapRange(file, start, chunk, MapMode::kShared, &r);
  if (!s.ok()) {
    if (::ftruncate(file.fd(), static_cast<off_t>(size)) != 0) {
      // The failure to map is what gets reported.
    }
    return s;
  }
  regions.push_back(std::move(r));
  size = start + chunk;
  tail = start;
  *off = start;
  *ptr = regions.back().base;
  Prefault(regions.back(), n);
  return Status::OK();
}

void VarFile::Prefault(const Region& r, uint64_t n) {
  if (tail + n <= populated_end) return;
  const uint64_t from = std::max(populated_end, tail);
  const uint64_t to = std::min(r.file_off + r.len, tail + n + kVarPopulateAhead);
  PopulateForWrite(r.base + (from - r.file_off), r.base + (to - r.file_off));
  populated_end = to;
}

Status VarFile::Full() const {
  return Status::IoError(path + ": the warm var file would grow past 2^40 bytes, the most a block's location "
                         "can address; compact() the store to reclaim freed space");
}

Status VarFile::Create(const std::string& dir, uint32_t gen, VarFile* vf) {
  std::string path = JoinPath(dir, VarFileName(gen));
  TS_RETURN_IF_ERROR(AtomicWriteFile(path, VarHeaderPage(gen)));
  TS_RETURN_IF_ERROR(File::Open(path, O_RDWR, &vf->file));
  vf->gen = gen;
  vf->path = path;
  vf->size = kHeaderPage;
  vf->tail = kHeaderPage;
  vf->regions.clear();
  return Status::OK();
}

Status VarFile::Open(const std::string& dir, uint32_t gen, bool read_only, VarFile* vf) {
  vf->gen = gen;
  vf->path = JoinPath(dir, VarFileName(gen));
  TS_RETURN_IF_ERROR(File::Open(vf->path, read_only ? O_RDONLY : O_RDWR, &vf->file));
  TS_RETURN_IF_ERROR(vf->file.Size(&vf->size));
  if (vf->size < kHeaderPage) {
    return Status::Corruption(vf->path + ": file is " + std::to_string(vf->size) +
                              " bytes, shorter than its 4096-byte header page");
  }
  uint8_t h[32];
  TS_RETURN_IF_ERROR(vf->file.ReadAt(0, h, sizeof h));
  if (std::memcmp(h, kVarMagic, 8) != 0) return Status::Corruption(vf->path + ": bad magic (not a warm var file)");
  if (Load<uint32_t>(h + 20) != Crc32c(h, 20)) return Status::Corruption(vf->path + ": header checksum mismatch");
  if (Load<uint32_t>(h + 8) != kVarFormatVersion) {
    return Status::Corruption(vf->path + ": unsupported format version " + std::to_string(Load<uint32_t>(h + 8)));
  }
  if (Load<uint32_t>(h + 12) != gen) return Status::Corruption(vf->path + ": header names another generation");
  vf->tail = kHeaderPage;
  if (vf->size > kHeaderPage) {
    Region r;
    TS_RETURN_IF_ERROR(MapRange(vf->file, kHeaderPage, vf->size - kHeaderPage, ModeFor(read_only), &r));
    vf->regions.push_back(std::move(r));
  }
  return Status::OK();
}

}  // namespace warm
}  // namespace tierstore
