#include "file_util.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace tierstore {

Status ErrnoStatus(std::string_view what, const std::string& path, int err) {
  return Status::IoError(std::string(what) + " " + path + ": " + std::strerror(err));
}

File::~File() { Close(); }

File::File(File&& other) noexcept : fd_(other.fd_), path_(std::move(other.path_)) { other.fd_ = -1; }

File& File::operator=(File&& other) noexcept {
  if (this != &other) {
    Close();
    fd_ = other.fd_;
    path_ = std::move(other.path_);
    other.fd_ = -1;
  }
  return *this;
}

Status File::Open(const std::string& path, int flags, File* out) {
  int fd = ::open(path.c_str(), flags | O_CLOEXEC, 0644);
  if (fd < 0) return ErrnoStatus("open", path, errno);
  *out = File();
  out->fd_ = fd;
  out->path_ = path;
  return Status::OK();
}

Status File::Size(uint64_t* size) const {
  struct stat st;
  if (::fstat(fd_, &st) != 0) return ErrnoStatus("fstat", path_, errno);
  *size = static_cast<uint64_t>(st.st_size);
  return Status::OK();
}

Status File::Truncate(uint64_t size) {
  if (::ftruncate(fd_, static_cast<off_t>(size)) != 0) return ErrnoStatus("ftruncate", path_, errno);
  return Status::OK();
}

Status File::ReadAt(uint64_t offset, void* buf, size_t n) const {
  auto* p = static_cast<uint8_t*>(buf);
  while (n > 0) {
    ssize_t r = ::pread(fd_, p, n, static_cast<off_t>(offset));
    if (r < 0) {
      if (errno == EINTR) continue;
      return ErrnoStatus("read", path_, errno);
    }
    if (r == 0) return Status::Corruption("unexpected end of file in " + path_);
    p += r;
    n -= static_cast<size_t>(r);
    offset += static_cast<uint64_t>(r);
  }
  return Status::OK();
}

Status File::WriteAt(uint64_t offset, const void* buf, size_t n) {
  auto* p = static_cast<const uint8_t*>(buf);
  while (n > 0) {
    ssize_t w = ::pwrite(fd_, p, n, static_cast<off_t>(offset));
    if (w < 0) {
      if (errno == EINTR) continue;
      return ErrnoStatus("write", path_, errno);
    }
    p += w;
    n -= static_cast<size_t>(w);
    offset += static_cast<uint64_t>(w);
  }
  return Status::OK();
}

Status File::Write(const void* buf, size_t n) {
  auto* p = static_cast<const uint8_t*>(buf);
  while (n > 0) {
    ssize_t w = ::write(fd_, p, n);
    if (w < 0) {
      if (errno == EINTR) continue;
      return ErrnoStatus("write", path_, errno);
    }
    p += w;
    n -= static_cast<size_t>(w);
  }
  return Status::OK();
}

Status File::Sync() {
  if (::fdatasync(fd_) != 0) return ErrnoStatus("fdatasync", path_, errno);
  return Status::OK();
}

void File::Close() {
  if (fd_ >= 0) {
    ::close(fd_);
    fd_ = -1;
  }
}

MappedRegion::~MappedRegion() { Unmap(); }

MappedRegion::MappedRegion(MappedRegion&& other) noexcept
    : data_(other.data_), size_(other.size_), offset_(other.offset_) {
  other.data_ = nullptr;
  other.size_ = 0;
}

MappedRegion& MappedRegion::operator=(MappedRegion&& other) noexcept {
  if (this != &other) {
    Unmap();
    data_ = other.data_;
    size_ = other.size_;
    offset_ = other.offset_;
    other.data_ = nullptr;
    other.size_ = 0;
  }
  return *this;
}

Status MappedRegion::MapPrivate(const File& file, uint64_t offset, size_t length, MappedRegion* out) {
  if (length == 0) return Status::InvalidArgument("cannot map an empty range of " + file.path());
  void* p = ::mmap(nullptr, length, PROT_READ | PROT_WRITE, MAP_PRIVATE, file.fd(), static_cast<off_t>(offset));
  if (p == MAP_FAILED) return ErrnoStatus("mmap", file.path(), errno);
  *out = MappedRegion();
  out->data_ = static_cast<uint8_t*>(p);
  out->size_ = length;
  out->offset_ = offset;
  return Status::OK();
}

Status MappedRegion::Map(const File& file, uint64_t offset, size_t length, bool writable, MappedRegion* out) {
  if (length == 0) return Status::InvalidArgument("cannot map an empty range of " + file.path());
  int prot = writable ? (PROT_READ | PROT_WRITE) : PROT_READ;
  void* p = ::mmap(nullptr, length, prot, MAP_SHARED, file.fd(), static_cast<off_t>(offset));
  if (p == MAP_FAILED) return ErrnoStatus("mmap", file.path(), errno);
  *out = MappedRegion();
  out->data_ = static_cast<uint8_t*>(p);
  out->size_ = length;
  out->offset_ = offset;
  return Status::OK();
}

Status MappedRegion::Sync(const std::string& path) const {
  if (data_ != nullptr && ::msync(data_, size_, MS_SYNC) != 0) return ErrnoStatus("msync", path, errno);
  return Status::OK();
}

void MappedRegion::Unmap() {
  if (data_ != nullptr) {
    ::munmap(data_, size_);
    data_ = nullptr;
    size_ = 0;
  }
}

Status AtomicWriteFile(const std::string& path, std::string_view bytes, bool durable) {
  std::string tmp = path + ".tmp";
  Status s;
  {
    File f;
    s = File::Open(tmp, O_WRONLY | O_CREAT | O_TRUNC, &f);
    if (s.ok()) s = f.Write(bytes.data(), bytes.size());
    if (s.ok() && durable && ::fsync(f.fd()) != 0) s = ErrnoStatus("fsync", tmp, errno);
  }
  if (s.ok()) s = RenameFile(tmp, path);
  if (!s.ok()) {
    (void)RemoveFile(tmp);  // a full disk must not keep a half-written copy around
    return s;
  }
  if (!durable) return Status::OK();
  auto slash = path.find_last_of('/');
  return SyncDirectory(slash == std::string::npos ? std::string(".") : path.substr(0, slash));
}

Status ReadWholeFile(const std::string& path, std::string* out) {
  File f;
  TS_RETURN_IF_ERROR(File::Open(path, O_RDONLY, &f));
  uint64_t size = 0;
  TS_RETURN_IF_ERROR(f.Size(&size));
  out->assign(size, '\0');
  if (size == 0) return Status::OK();
  return f.ReadAt(0, out->data(), size);
}

Status SyncDirectory(const std::string& dir) {
  int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return ErrnoStatus("open directory", dir, errno);
  int rc = ::fsync(fd);
  int err = errno;
  ::close(fd);
  if (rc != 0) return ErrnoStatus("fsync directory", dir, err);
  return Status::OK();
}

Status CreateDirectories(const std::string& dir) {
  if (dir.empty()) return Status::OK();
  std::string partial;
  size_t pos = 0;
  while (pos != std::string::npos) {
    pos = dir.find('/', pos + 1);
    partial = dir.substr(0, pos);
    if (partial.empty()) continue;
    if (::mkdir(partial.c_str(), 0755) != 0 && errno != EEXIST) return ErrnoStatus("mkdir", partial, errno);
  }
  struct stat st;
  if (::stat(dir.c_str(), &st) != 0) return ErrnoStatus("stat", dir, errno);
  if (!S_ISDIR(st.st_mode)) return Status::InvalidArgument("path exists and is not a directory: " + dir);
  return Status::OK();
}

bool PathExists(const std::string& path) {
  struct stat st;
  return ::stat(path.c_str(), &st) == 0;
}

Status RemoveFile(const std::string& path) {
  if (::unlink(path.c_str()) != 0 && errno != ENOENT) return ErrnoStatus("unlink", path, errno);
  return Status::OK();
}

Status RenameFile(const std::string& from, const std::string& to) {
  if (::rename(from.c_str(), to.c_str()) != 0) return ErrnoStatus("rename", from, errno);
  return Status::OK();
}

Status ListDirectory(const std::string& dir, std::vector<std::string>* names) {
  names->clear();
  DIR* d = ::opendir(dir.c_str());
  if (d == nullptr) return ErrnoStatus("opendir", dir, errno);
  while (struct dirent* e = ::readdir(d)) {
    std::string name = e->d_name;
    if (name != "." && name != "..") names->push_back(std::move(name));
  }
  ::closedir(d);
  return Status::OK();
}

std::string JoinPath(const std::string& dir, std::string_view name) {
  std::string out = dir;
  if (!out.empty() && out.back() != '/') out.push_back('/');
  out.append(name);
  return out;
}

namespace {
void Advise(const void* p, size_t n, int advice) {
  if (p == nullptr || n == 0) return;
  const uintptr_t page = PageSize();
  const uintptr_t a = reinterpret_cast<uintptr_t>(p) / page * page;
  const uintptr_t b = reinterpret_cast<uintptr_t>(p) + n;
  (void)::madvise(reinterpret_cast<void*>(a), b - a, advice);  // advice only
}
}  // namespace

void AdviseRandom(const void* p, size_t n) { Advise(p, n, MADV_RANDOM); }
void AdviseWillNeed(const void* p, size_t n) { Advise(p, n, MADV_WILLNEED); }

size_t PageSize() {
  static const size_t page = static_cast<size_t>(::sysconf(_SC_PAGESIZE));
  return page;
}

DirectoryLock::~DirectoryLock() { Release(); }

Status DirectoryLock::Acquire(const std::string& dir, bool exclusive) {
  Release();
  std::string path = JoinPath(dir, "LOCK");
  int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (fd < 0 && !exclusive && errno == EACCES) fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return ErrnoStatus("open", path, errno);
  if (::flock(fd, (exclusive ? LOCK_EX : LOCK_SH) | LOCK_NB) != 0) {
    int err = errno;
    ::close(fd);
    if (err == EWOULDBLOCK) {
      return Status::StoreLocked("the store at " + dir + " is open in another process" +
                                 (exclusive ? "" : " for writing") +
                                 "; one process at a time may write to a store (read-only opens may share it)");
    }
    return ErrnoStatus("flock", path, err);
  }
  fd_ = fd;
  return Status::OK();
}

void DirectoryLock::Release() {
  if (fd_ >= 0) {
    ::flock(fd_, LOCK_UN);
    ::close(fd_);
    fd_ = -1;
  }
}

}  // namespace tierstore
