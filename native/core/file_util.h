// Thin POSIX file helpers shared by the tiers. Each turns errno into a Status
// (IO_ERROR naming the file and the failing call); none throws.
//
// File: owns one file descriptor; closes it on destruction. Not synchronized:
//   callers serialize writes to one File (pread from several threads is fine).
// MappedRegion: owns one mmap() of a byte range of a file; unmaps on
//   destruction. The pointer it hands out stays valid exactly as long as the
//   MappedRegion object lives; regions are never remapped or moved, which is
//   what lets tiers grow by adding regions while readers hold older ones.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "status.h"

namespace tierstore {

// "IO_ERROR: <what> <path>: <strerror(errno)>"
Status ErrnoStatus(std::string_view what, const std::string& path, int err);

class File {
 public:
  File() = default;
  ~File();
  File(File&& other) noexcept;
  File& operator=(File&& other) noexcept;
  File(const File&) = delete;
  File& operator=(const File&) = delete;

  // flags as for open(2), e.g. O_RDWR | O_CREAT.
  static Status Open(const std::string& path, int flags, File* out);

  bool is_open() const { return fd_ >= 0; }
  int fd() const { return fd_; }
  const std::string& path() const { return path_; }

  Status Size(uint64_t* size) const;
  Status Truncate(uint64_t size);
  // Reads exactly n bytes at offset; a short file is CORRUPTION (names the file).
  Status ReadAt(uint64_t offset, void* buf, size_t n) const;
  // Writes all n bytes at offset (loops over short writes).
  Status WriteAt(uint64_t offset, const void* buf, size_t n);
  // Appends at the current end (O_APPEND files) or at the fd's position.
  Status Write(const void* buf, size_t n);
  Status Sync();  // fdatasync
  void Close();

 private:
  int fd_ = -1;
  std::string path_;
};

class MappedRegion {
 public:
  MappedRegion() = default;
  ~MappedRegion();
  MappedRegion(MappedRegion&& other) noexcept;
  MappedRegion& operator=(MappedRegion&& other) noexcept;
  MappedRegion(const MappedRegion&) = delete;
  MappedRegion& operator=(const MappedRegion&) = delete;

  // Maps [offset, offset+length) of file. offset must be page aligned.
  // writable=false maps PROT_READ; writable=true maps read-write MAP_SHARED.
  static Status Map(const File& file, uint64_t offset, size_t length, bool writable, MappedRegion* out);
  // Maps it read-write MAP_PRIVATE (the fd may be read-only): stores land in
  // copy-on-write pages of this process, never in the file.
  static Status MapPrivate(const File& file, uint64_t offset, size_t length, MappedRegion* out);

  uint8_t* data() const { return data_; }
  size_t size() const { return size_; }
  uint64_t file_offset() const { return offset_; }
  // msync(MS_SYNC) of the whole region.
  Status Sync(const std::string& path) const;
  void Unmap();

 private:
  uint8_t* data_ = nullptr;
  size_t size_ = 0;
  uint64_t offset_ = 0;
};

// Writes bytes to path+".tmp", fsyncs it, renames it over path and fsyncs the
// directory: readers see the old or the new content, never a mix. Without
// `durable` it skips both fsyncs: still atomic for readers and across a
// process crash, not across power loss. On failure the tmp file is removed.
Status AtomicWriteFile(const std::string& path, std::string_view bytes, bool durable = true);
Status ReadWholeFile(const std::string& path, std::string* out);
Status SyncDirectory(const std::string& dir);
Status CreateDirectories(const std::string& dir);
bool PathExists(const std::string& path);
Status RemoveFile(const std::string& path);
Status RenameFile(const std::string& from, const std::string& to);
// Names (not paths) of the entries of dir, unsorted.
Status ListDirectory(const std::string& dir, std::vector<std::string>* names);
std::string JoinPath(const std::string& dir, std::string_view name);
size_t PageSize();

// Access advice for mapped record data (ignored when the kernel refuses).
// Random: a page fault reads that page alone, not the read-around window
// (which the device's read_ahead_kb sets, up to megabytes), so a point read
// of a store whose pages are not cached reads a page, not megabytes.
// WillNeed: start reading [p, p + n) now, for a scan about to walk it (the
// readahead a random mapping does not do; cheap when it is cached).
void AdviseRandom(const void* p, size_t n);
void AdviseWillNeed(const void* p, size_t n);

// An flock(2) on dir/LOCK: exclusive for writers, shared for readers. The
// kernel drops it when the process dies, so a stale lock never blocks.
class DirectoryLock {
 public:
  DirectoryLock() = default;
  ~DirectoryLock();
  DirectoryLock(const DirectoryLock&) = delete;
  DirectoryLock& operator=(const DirectoryLock&) = delete;
  // STORE_LOCKED when another process holds a conflicting lock.
  Status Acquire(const std::string& dir, bool exclusive);
  void Release();
  // Exchanges the locks two objects hold.
  void Swap(DirectoryLock& other) noexcept { std::swap(fd_, other.fd_); }

 private:
  int fd_ = -1;
};

}  // namespace tierstore
