#include "hot_log.h"

#include <fcntl.h>
#include <sys/mman.h>

#include <algorithm>
#include <cstring>
#include <limits>
#include <system_error>

#include "crc32c.h"

namespace tierstore {
namespace {

constexpr char kMagic[8] = {'T', 'S', 'H', 'O', 'T', 'L', 'G', '1'};
// The layout of the file: docs/format/hot-log.md.
constexpr uint32_t kFormatVersion = HotLog::kCurrentVersion;
// Version 3 has no sequence marks and version 4 no stage entries; both are
// still read, and the Store rewrites them in the current version at its
// first writable open.
constexpr uint32_t kOldestReadableVersion = 3;
// magic 8, version 4, dimensions 4, store id 8, crc 4 (of the 24 bytes before
// it), pad 4, the end mark u64
constexpr size_t kFileHeaderSize = HotLog::kHeaderBytes;
constexpr size_t kOffEndMark = 32;
constexpr uint64_t kMapWindow = 8u << 20;       // the file is mapped in pieces of this size
constexpr uint64_t kPopulateAhead = 2u << 20;   // prefaulted past the append point
constexpr uint64_t kMaxMappedPiece = 1u << 20;  // larger pieces go by pwrite (no gain mapped)
#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23  // Linux 5.14
#endif
constexpr size_t kEntryHeaderSize = 16;  // crc, type, pad[3], length
constexpr size_t kRecordFixedSize = 64;
constexpr size_t kFlushThreshold = 8u << 20;  // write(2) in pieces of about 8 MiB

enum EntryType : uint8_t { kPut = 1, kBatchPut = 2, kCommit = 3, kDelete = 4, kAccess = 5, kMark = 6, kStage = 7 };

// The first version whose files may hold each type.
uint32_t FirstVersionOf(uint8_t type) { return type == kMark ? 4 : type == kStage ? 5 : 3; }

template <typename T>
void Put(std::string* buf, T v) {
  buf->append(reinterpret_cast<const char*>(&v), sizeof(T));
}

template <typename T>
T Get(const char* p) {
  T v;
  std::memcpy(&v, p, sizeof(T));
  return v;
}

// Reserves an entry header at the end of buf; FinishEntry fills it in.
size_t BeginEntry(std::string* buf, uint8_t type) {
  size_t start = buf->size();
  buf->append(kEntryHeaderSize, '\0');
  (*buf)[start + 4] = static_cast<char>(type);
  return start;
}

// The end mark word: the end in the low 48 bits, 16 bits of CRC-32C of
// them above, so one aligned 8-byte store replaces both at once.
uint64_t PackEndMark(uint64_t end) {
  uint8_t b[6];
  std::memcpy(b, &end, 6);
  return (end & ((uint64_t{1} << 48) - 1)) | (uint64_t{Crc32c(b, 6) & 0xFFFFu} << 48);
}

bool UnpackEndMark(uint64_t word, uint64_t* end) {
  const uint64_t e = word & ((uint64_t{1} << 48) - 1);
  if (PackEndMark(e) != word) return false;
  *end = e;
  return true;
}

// 24 bits of CRC-32C over an entry's type and length, kept in the header's
// pad bytes. An intact header makes its length trustworthy, so an entry that
// claims to run past the end of the file is a torn tail (a crash cut the
// write short), while a damaged header anywhere is CORRUPTION — without it a
// flipped length bit would look like a torn tail and silently drop every
// entry after it.
uint32_t HeaderCheck(uint8_t type, uint64_t len) {
  char b[9];
  b[0] = static_cast<char>(type);
  std::memcpy(b + 1, &len, 8);
  return Crc32c(b, 9) & 0xFFFFFFu;
}

void FinishEntry(std::string* buf, size_t start) {
  uint64_t len = buf->size() - start - kEntryHeaderSize;
  std::memcpy(buf->data() + start + 8, &len, 8);
  const uint32_t check = HeaderCheck(static_cast<uint8_t>((*buf)[start + 4]), len);
  std::memcpy(buf->data() + start + 5, &check, 3);  // little-endian: the low 24 bits
  uint32_t crc = Crc32c(buf->data() + start + 4, buf->size() - start - 4);
  std::memcpy(buf->data() + start, &crc, 4);
}

// An entry whose payload is one u64 (a commit, a sequence mark).
void EncodeU64Entry(uint8_t type, uint64_t value, std::string* buf) {
  const size_t start = BeginEntry(buf, type);
  Put<uint64_t>(buf, value);
  FinishEntry(buf, start);
}

// Replay's view of the log. The file is mapped read-only when the kernel
// allows it: its pages come straight from the page cache, with no copy into
// a buffer, and every byte stays addressable until replay ends, so a batch's
// entries are applied from where they lie rather than from copies held
// until their commit. Otherwise it reads through a window of a few MiB
// (stable() false: a view lasts only until the next Read). Replay holds the
// store's lock (flock) for the whole time, so no other tierstore process
// truncates the file under the mapping.
class LogReader {
 public:
  LogReader(const File& file, uint64_t size) : file_(file), size_(size) {
    if (size_ == 0 || size_ > std::numeric_limits<size_t>::max()) return;
    if (!MappedRegion::Map(file_, 0, static_cast<size_t>(size_), /*writable=*/false, &map_).ok()) return;
    // Advice only: read ahead, and the pages behind the replay may go first.
    (void)::madvise(map_.data(), map_.size(), MADV_SEQUENTIAL);
  }
  bool stable() const { return map_.data() != nullptr; }
  // Points *out at n bytes at offset `pos`, which the caller keeps within
  // the size given; valid until the next call unless stable().
  Status Read(uint64_t pos, size_t n, const char** out) {
    if (map_.data() != nullptr) {
      *out = reinterpret_cast<const char*>(map_.data()) + pos;
      return Status::OK();
    }
    if (pos < window_start_ || pos + n > window_start_ + window_.size()) {
      size_t want = std::max<size_t>(n, 4u << 20);
      want = static_cast<size_t>(std::min<uint64_t>(want, size_ - pos));
      window_.resize(want);
      TS_RETURN_IF_ERROR(file_.ReadAt(pos, window_.data(), want));
      window_start_ = pos;
    }
    *out = window_.data() + (pos - window_start_);
    return Status::OK();
  }

 private:
  const File& file_;
  uint64_t size_;
  MappedRegion map_;
  std::string window_;
  uint64_t window_start_ = 0;
};

// Whether bytes [from, to) of the log are all zero.
Status AllZero(LogReader& reader, uint64_t from, uint64_t to, bool* zero) {
  *zero = true;
  for (uint64_t pos = from; pos < to && *zero;) {
    const size_t n = static_cast<size_t>(std::min<uint64_t>(to - pos, 1u << 20));
    const char* p = nullptr;
    TS_RETURN_IF_ERROR(reader.Read(pos, n, &p));
    for (size_t i = 0; i < n; ++i) {
      if (p[i] != 0) {
        *zero = false;
        break;
      }
    }
    pos += n;
  }
  return Status::OK();
}

}  // namespace

Status HotLog::Create(const std::string& dir, uint32_t dimensions, uint64_t store_id) {
  std::string header;
  EncodeHeaderInto(&header, dimensions, store_id);
  return AtomicWriteFile(JoinPath(dir, kFileName), header);
}

Status HotLog::Open(const std::string& dir, uint32_t dimensions, uint64_t store_id, bool read_only,
                    std::unique_ptr<HotLog>* out) {
  std::unique_ptr<HotLog> log(new HotLog(dir, dimensions, store_id, read_only));
  std::string path = JoinPath(dir, kFileName);
  if (!PathExists(path)) return Status::Corruption(path + " is missing (every store has a log from its creation on)");
  TS_RETURN_IF_ERROR(File::Open(path, read_only ? O_RDONLY : O_RDWR, &log->file_));
  TS_RETURN_IF_ERROR(log->file_.Size(&log->size_));
  log->file_size_ = log->size_;
  if (log->size_ < kFileHeaderSize) return Status::Corruption(path + ": file shorter than its header");
  *out = std::move(log);
  return Status::OK();
}

void HotLog::EncodeHeaderInto(std::string* buf, uint32_t dimensions, uint64_t store_id) {
  buf->assign(kFileHeaderSize, '\0');
  std::memcpy(buf->data(), kMagic, 8);
  std::memcpy(buf->data() + 8, &kFormatVersion, 4);
  std::memcpy(buf->data() + 12, &dimensions, 4);
  std::memcpy(buf->data() + 16, &store_id, 8);
  uint32_t crc = Crc32c(buf->data(), 24);
  std::memcpy(buf->data() + 24, &crc, 4);
  const uint64_t mark = PackEndMark(0);
  std::memcpy(buf->data() + kOffEndMark, &mark, 8);
}

Status HotLog::Replay(const LogReplayHandler& handler, bool tail_may_be_torn, uint64_t* torn_bytes) {
  *torn_bytes = 0;
  if (!file_.is_open()) return Status::OK();
  const std::string& path = file_.path();
  if (size_ < kFileHeaderSize) return Status::Corruption(path + ": file shorter than its header");
  LogReader reader(file_, size_);
  const char* p = nullptr;
  TS_RETURN_IF_ERROR(reader.Read(0, kFileHeaderSize, &p));
  if (std::memcmp(p, kMagic, 8) != 0) return Status::Corruption(path + ": not a tierstore hot log (bad magic)");
  const uint32_t version = Get<uint32_t>(p + 8);
  if (version < kOldestReadableVersion || version > kFormatVersion) {
    return Status::Corruption(path + ": unsupported format version " + std::to_string(version));
  }
  version_ = version;
  if (Get<uint32_t>(p + 24) != Crc32c(p, 24)) return Status::Corruption(path + ": header checksum mismatch");
  const uint64_t header_bytes = kFileHeaderSize;
  if (Get<uint64_t>(p + 16) != store_id_) {
    return Status::Corruption(path + ": the log belongs to another store (its store id does not match MANIFEST)");
  }
  if (Get<uint32_t>(p + 12) != dimensions_) {
    return Status::Corruption(path + ": log written for " + std::to_string(Get<uint32_t>(p + 12)) +
                              " dimensions, store has " + std::to_string(dimensions_));
  }

  const uint64_t emb_bytes = uint64_t{dimensions_} * 4;
  auto decode_record = [&](const char* q, uint64_t len, uint64_t at, RecordView* rec) -> Status {
    if (len < kRecordFixedSize) return Status::Corruption(path + ": short record at offset " + std::to_string(at));
    rec->seq = Get<uint64_t>(q);
    rec->confidence = Get<float>(q + 8);
    rec->activation = Get<float>(q + 12);
    rec->norm = Get<float>(q + 16);
    uint32_t id_len = Get<uint32_t>(q + 20);
    rec->created_at = Get<double>(q + 24);
    rec->last_access_at = Get<double>(q + 32);
    rec->access_count = Get<double>(q + 40);
    uint32_t meta_len = Get<uint32_t>(q + 48);
    uint64_t content_len = Get<uint64_t>(q + 56);
    if (id_len > kMaxIdBytes || meta_len > kMaxMetadataBytes || content_len > kMaxContentBytes ||
        kRecordFixedSize + id_len + meta_len + content_len + emb_bytes != len) {
      return Status::Corruption(path + ": record lengths inconsistent at offset " + std::to_string(at));
    }
    const char* v = q + kRecordFixedSize;
    rec->id = std::string_view(v, id_len);
    rec->metadata = std::string_view(v + id_len, meta_len);
    rec->content = std::string_view(v + id_len + meta_len, content_len);
    rec->embedding = reinterpret_cast<const float*>(v + id_len + meta_len + content_len);
    return Status::OK();
  };

  uint64_t end = 0;
  if (!UnpackEndMark(Get<uint64_t>(p + kOffEndMark), &end)) {
    return Status::Corruption(path + ": end mark checksum mismatch in the header");
  }
  disk_mark_on_ = end != 0;
  if (end != 0) {
    if (end < header_bytes) return Status::Corruption(path + ": the end mark points into the header");
    if (!tail_may_be_torn) {
      // A clean close turns the mark off (Trim) before the clean MANIFEST.
      return Status::Corruption(path + ": the end mark is on, yet the store was closed cleanly");
    }
    // Past the mark lies what was never acknowledged: zeros, or an append
    // cut short. A file shorter than the mark was cut short after a crash:
    // what is there is replayed, the rest is a torn tail.
    if (end <= size_) size_ = end;
  }

  uint64_t pos = header_bytes;
  uint64_t good_end = pos;          // end of the last entry that took effect
  // Payloads of an uncommitted batch: views into the mapping, or into
  // batch_copies when the reader's views do not last.
  std::vector<std::string_view> batch;
  std::deque<std::string> batch_copies;
  uint64_t batch_start = 0;
  while (pos < size_) {
    if (size_ - pos < kEntryHeaderSize) break;  // torn entry header
    TS_RETURN_IF_ERROR(reader.Read(pos, kEntryHeaderSize, &p));
    uint32_t crc = Get<uint32_t>(p);
    uint8_t type = static_cast<uint8_t>(p[4]);
    uint64_t len = Get<uint64_t>(p + 8);
    uint32_t check = 0;
    std::memcpy(&check, p + 5, 3);
    if (check != HeaderCheck(type, len)) {
      bool zeros = true;  // blocks never written before a power loss read as zeros: a torn tail too
      TS_RETURN_IF_ERROR(AllZero(reader, pos, size_, &zeros));
      if (zeros) break;
      return Status::Corruption(path + ": damaged entry header at offset " + std::to_string(pos));
    }
    if (len > size_ - pos - kEntryHeaderSize) break;  // torn entry payload (its length is intact)
    char hdr[12];
    std::memcpy(hdr, p + 4, 12);
    TS_RETURN_IF_ERROR(reader.Read(pos + kEntryHeaderSize, static_cast<size_t>(len), &p));
    uint32_t actual = Crc32cExtend(Crc32c(hdr, 12), p, static_cast<size_t>(len));
    if (actual != crc) {
      return Status::Corruption(path + ": checksum mismatch in the entry at offset " + std::to_string(pos));
    }
    const uint64_t entry_at = pos;
    pos += kEntryHeaderSize + len;
    if (version_ < FirstVersionOf(type)) {
      return Status::Corruption(path + ": unknown entry type " + std::to_string(type) + " at offset " +
                                std::to_string(entry_at));
    }
    const bool in_batch = type == kBatchPut || type == kCommit || (type == kMark && !batch.empty());
    if (!in_batch && !batch.empty()) {  // an aborted batch
      batch.clear();
      batch_copies.clear();
    }
    switch (type) {
      case kPut: {
        RecordView rec;
        TS_RETURN_IF_ERROR(decode_record(p, len, entry_at, &rec));
        TS_RETURN_IF_ERROR(handler.on_put(rec));
        good_end = pos;
        break;
      }
      case kMark:
        if (len != 8) return Status::Corruption(path + ": bad sequence mark at offset " + std::to_string(entry_at));
        if (!batch.empty()) {
          // A batch member: applied by its commit. Its payload is kept as an
          // 8-byte view, told from a record by its length.
          if (reader.stable()) {
            batch.emplace_back(p, 8);
          } else {
            batch.emplace_back(batch_copies.emplace_back(p, 8));
          }
          break;
        }
        if (handler.on_mark) TS_RETURN_IF_ERROR(handler.on_mark(Get<uint64_t>(p)));
        good_end = pos;
        break;
      case kBatchPut:
        if (batch.empty()) batch_start = entry_at;
        if (reader.stable()) {
          batch.emplace_back(p, static_cast<size_t>(len));
        } else {
          batch.emplace_back(batch_copies.emplace_back(p, static_cast<size_t>(len)));
        }
        break;
      case kCommit: {
        if (len != 8 || Get<uint64_t>(p) != batch.size()) {
          return Status::Corruption(path + ": batch commit does not match its batch at offset " +
                                    std::to_string(entry_at));
        }
        for (std::string_view payload : batch) {
          if (payload.size() == 8) {  // a sequence mark (a record is at least 64 bytes)
            if (handler.on_mark) TS_RETURN_IF_ERROR(handler.on_mark(Get<uint64_t>(payload.data())));
            continue;
          }
          RecordView rec;
          TS_RETURN_IF_ERROR(decode_record(payload.data(), payload.size(), batch_start, &rec));
          TS_RETURN_IF_ERROR(handler.on_put(rec));
        }
        batch.clear();
        batch_copies.clear();
        good_end = pos;
        break;
      }
      case kStage: {
        if (len < 8) return Status::Corruption(path + ": short stage entry at offset " + std::to_string(entry_at));
        RecordView rec;
        TS_RETURN_IF_ERROR(decode_record(p + 8, len - 8, entry_at, &rec));
        if (!handler.on_stage) {
          return Status::Corruption(path + ": a stage entry at offset " + std::to_string(entry_at) + " where none may be");
        }
        TS_RETURN_IF_ERROR(handler.on_stage(rec, Get<uint64_t>(p)));
        good_end = pos;
        break;
      }
      case kDelete: {
        if (len < 8 || len - 8 > kMaxIdBytes) return Status::Corruption(path + ": bad delete entry at offset " + std::to_string(entry_at));
        TS_RETURN_IF_ERROR(handler.on_delete(std::string_view(p + 8, static_cast<size_t>(len - 8)), Get<uint64_t>(p)));
        good_end = pos;
        break;
      }
      case kAccess: {
        uint64_t off = 0;
        while (off < len) {
          if (len - off < 28) return Status::Corruption(path + ": bad access entry at offset " + std::to_string(entry_at));
          LogAccessUpdate u;
          u.seq = Get<uint64_t>(p + off);
          u.last_access_at = Get<double>(p + off + 8);
          u.access_count = Get<double>(p + off + 16);
          uint32_t id_len = Get<uint32_t>(p + off + 24);
          if (id_len > kMaxIdBytes || len - off - 28 < id_len) {
            return Status::Corruption(path + ": bad access entry at offset " + std::to_string(entry_at));
          }
          u.id = std::string_view(p + off + 28, id_len);
          TS_RETURN_IF_ERROR(handler.on_access(u));
          off += 28 + id_len;
        }
        good_end = pos;
        break;
      }
      default:
        return Status::Corruption(path + ": unknown entry type " + std::to_string(type) + " at offset " +
                                  std::to_string(entry_at));
    }
  }
  *torn_bytes = size_ - good_end;
  if (good_end != size_ && !tail_may_be_torn) {
    return Status::Corruption(path + ": the entry at offset " + std::to_string(good_end) +
                              " is cut short, yet the store was closed cleanly");
  }
  replayed_end_ = good_end;
  return Status::OK();
}

Status HotLog::FinishOpen() {
  if (read_only_ || !file_.is_open() || replayed_end_ == 0) return Status::OK();
  // Cut first: a crash before the mark goes off leaves a mark at or past the
  // file's end, which replay reads as a (torn or exact) end.
  if (file_size_ != replayed_end_) {
    TS_RETURN_IF_ERROR(file_.Truncate(replayed_end_));
    file_size_ = replayed_end_;
  }
  size_ = replayed_end_;
  if (disk_mark_on_) {
    // Durably: a 'sync' append next goes by pwrite with the mark off, and a
    // power cut must not bring back an older mark that would end the log
    // before that append.
    TS_RETURN_IF_ERROR(StoreEndMark(0));
    TS_RETURN_IF_ERROR(file_.Sync());
  }
  return Status::OK();
}

Status HotLog::StoreEndMark(uint64_t end) {
  const uint64_t word = PackEndMark(end);
  if (header_map_.data() != nullptr) {
    // One aligned 8-byte store: after the entries it covers (release), so a
    // process killed at any point leaves the old mark or the new one.
    __atomic_store_n(reinterpret_cast<uint64_t*>(header_map_.data() + kOffEndMark), word, __ATOMIC_RELEASE);
  } else {
    TS_RETURN_IF_ERROR(file_.WriteAt(kOffEndMark, &word, sizeof word));
  }
  disk_mark_on_ = end != 0;
  return Status::OK();
}

void HotLog::DropMapping() {
  windows_.clear();
  window_base_ = window_end_ = populated_end_ = 0;
}

Status HotLog::PrepareMapped(uint64_t pos, uint64_t n) {
  if (mapping_broken_) return Status::IoError("mapped appends are unavailable");
  if (!disk_mark_on_) {
    // The mark goes on before the file grows past the entries.
    if (header_map_.data() == nullptr) {
      TS_RETURN_IF_ERROR(MappedRegion::Map(file_, 0, PageSize(), /*writable=*/true, &header_map_));
    }
    // It covers the appends before this one: pieces of this one that went
    // by pwrite count only once its own mark store covers them.
    TS_RETURN_IF_ERROR(StoreEndMark(append_start_));
  }
  if (windows_.empty() || pos < window_base_ || pos > window_end_) {
    DropMapping();
    window_base_ = window_end_ = pos / kMapWindow * kMapWindow;
    populated_end_ = pos;
  }
  while (window_end_ < pos + n) {
    if (file_size_ < window_end_ + kMapWindow) {
      TS_RETURN_IF_ERROR(file_.Truncate(window_end_ + kMapWindow));  // sparse: nothing is written yet
      file_size_ = window_end_ + kMapWindow;
    }
    MappedRegion r;
    TS_RETURN_IF_ERROR(MappedRegion::Map(file_, window_end_, kMapWindow, /*writable=*/true, &r));
    windows_.push_back(std::move(r));
    window_end_ += kMapWindow;
  }
  // Windows wholly behind the append point are done with.
  while (windows_.size() > 1 && window_base_ + kMapWindow <= pos) {
    windows_.pop_front();
    window_base_ += kMapWindow;
  }
  if (populated_end_ < pos + n) {
    // Prefault (and, on ext4, reserve blocks for) the pages about to be
    // written, so the copy neither faults nor meets a full disk as SIGBUS:
    // a full disk fails here, and the append goes by pwrite instead.
    const uint64_t page = PageSize();
    uint64_t from = std::max(populated_end_, pos) / page * page;
    const uint64_t to = std::min(window_end_, (pos + n + kPopulateAhead + page - 1) / page * page);
    while (from < to) {
      const size_t w = static_cast<size_t>((from - window_base_) / kMapWindow);
      const uint64_t wend = window_base_ + (w + 1) * kMapWindow;
      const uint64_t upto = std::min(to, wend);
      uint8_t* addr = windows_[w].data() + (from - windows_[w].file_offset());
      if (::madvise(addr, upto - from, MADV_POPULATE_WRITE) != 0) {
        const int err = errno;
        if (err == EINVAL) mapping_broken_ = true;  // an older kernel: never again
        populated_end_ = from;
        return ErrnoStatus("madvise", file_.path(), err);
      }
      from = upto;
    }
    populated_end_ = to;
  }
  return Status::OK();
}

void HotLog::CopyMapped(uint64_t pos, const char* data, uint64_t n) {
  while (n > 0) {
    const size_t w = static_cast<size_t>((pos - window_base_) / kMapWindow);
    const uint64_t in_window = pos - windows_[w].file_offset();
    const uint64_t take = std::min<uint64_t>(n, kMapWindow - in_window);
    std::memcpy(windows_[w].data() + in_window, data, take);
    pos += take;
    data += take;
    n -= take;
  }
}

Status HotLog::Trim() {
  if (read_only_ || !file_.is_open()) return Status::OK();
  DropMapping();
  // By the file itself: a failed pwrite may have left part of its bytes.
  TS_RETURN_IF_ERROR(file_.Size(&file_size_));
  if (file_size_ != size_) {
    TS_RETURN_IF_ERROR(file_.Truncate(size_));
    file_size_ = size_;
  }
  if (disk_mark_on_) TS_RETURN_IF_ERROR(StoreEndMark(0));
  return Status::OK();
}

void HotLog::EncodeRecord(uint8_t type, const RecordView& rec, std::string* buf) const {
  size_t start = BeginEntry(buf, type);
  EncodeRecordBody(rec, buf);
  FinishEntry(buf, start);
}

void HotLog::EncodeRecordBody(const RecordView& rec, std::string* buf) const {
  Put<uint64_t>(buf, rec.seq);
  Put<float>(buf, rec.confidence);
  Put<float>(buf, rec.activation);
  Put<float>(buf, rec.norm);
  Put<uint32_t>(buf, static_cast<uint32_t>(rec.id.size()));
  Put<double>(buf, rec.created_at);
  Put<double>(buf, rec.last_access_at);
  Put<double>(buf, rec.access_count);
  Put<uint32_t>(buf, static_cast<uint32_t>(rec.metadata.size()));
  Put<uint32_t>(buf, 0);
  Put<uint64_t>(buf, rec.content.size());
  buf->append(rec.id);
  buf->append(rec.metadata);
  buf->append(rec.content);
  buf->append(reinterpret_cast<const char*>(rec.embedding), size_t{dimensions_} * 4);
}

Status HotLog::WriteBuffered(std::string* buf, bool final_flush) {
  if (buf->empty() || (!final_flush && buf->size() < kFlushThreshold)) return Status::OK();
  const uint64_t n = buf->size();
  if (mapped_ok_ && n <= kMaxMappedPiece && PrepareMapped(size_, n).ok()) {
    CopyMapped(size_, buf->data(), n);
  } else {
    // Also the way out when mapping fails (a full disk, a file size limit):
    // pwrite reports the error itself, or succeeds where the mapping's
    // extension ahead could not.
    TS_RETURN_IF_ERROR(file_.WriteAt(size_, buf->data(), n));
    file_size_ = std::max(file_size_, size_ + n);
  }
  size_ += n;
  buf->clear();
  return Status::OK();
}

Status HotLog::AppendAtomically(const std::function<Status(std::string*)>& fill, bool durable) {
  if (read_only_ || !file_.is_open()) return Status::ReadOnly("the store is open read-only");
  const uint64_t start = size_;
  append_start_ = start;
  std::string& buf = scratch_;
  buf.clear();
  if (buf.capacity() < kFlushThreshold + (1u << 20)) buf.reserve(kFlushThreshold + (1u << 20));
  mapped_ok_ = !durable;
  Status s = fill(&buf);
  if (s.ok()) s = WriteBuffered(&buf, true);
  mapped_ok_ = false;
  if (buf.capacity() > 4 * kFlushThreshold) std::string().swap(buf);  // after a huge record
  // With the end mark on, the entries count once the mark covers them; a
  // durable append syncs them first, so a power cut never leaves the mark
  // past bytes that are not on disk.
  if (s.ok() && disk_mark_on_ && durable) s = file_.Sync();
  if (s.ok() && disk_mark_on_) s = StoreEndMark(size_);
  if (!s.ok()) {
    if (disk_mark_on_) {
      size_ = start;  // bytes past the end mark do not count; the next append overwrites them
      (void)file_.Size(&file_size_);  // a failed pwrite may have extended the file
    } else if (file_.Truncate(start).ok()) {
      // Take back whatever part reached the file, so the log never keeps
      // half an entry or a batch that was reported as failed.
      size_ = start;
      file_size_ = start;
    } else {
      file_.Close();  // unusable: later appends fail rather than write after garbage
    }
  }
  return s;
}

Status HotLog::EncodeBatchPuts(const RecordView* const* recs, size_t n, std::string* buf) {
  for (size_t i = 0; i < n; ++i) {
    EncodeRecord(kBatchPut, *recs[i], buf);
    TS_RETURN_IF_ERROR(WriteBuffered(buf, false));
  }
  return Status::OK();
}

Status HotLog::AppendPuts(const RecordView* const* recs, size_t n, bool durable) {
  return AppendAtomically([&](std::string* buf) -> Status {
    if (n == 1) {
      EncodeRecord(kPut, *recs[0], buf);
      return Status::OK();
    }
    TS_RETURN_IF_ERROR(EncodeBatchPuts(recs, n, buf));
    EncodeU64Entry(kCommit, n, buf);
    return Status::OK();
  }, durable);
}

Status HotLog::AppendBatch(const RecordView* const* recs, size_t n, uint64_t mark, bool durable) {
  if (version_ < FirstVersionOf(kMark)) {
    return Status::InvalidArgument(file_.path() + ": a version 3 log holds no sequence marks");
  }
  return AppendAtomically([&](std::string* buf) -> Status {
    TS_RETURN_IF_ERROR(EncodeBatchPuts(recs, n, buf));
    EncodeU64Entry(kMark, mark, buf);
    if (n == 0) return Status::OK();  // one entry: atomic by itself
    EncodeU64Entry(kCommit, n + 1, buf);
    return Status::OK();
  }, durable);
}

Status HotLog::AppendStage(const RecordView& rec, uint64_t cold_key, bool durable) {
  if (version_ < FirstVersionOf(kStage)) {
    return Status::InvalidArgument(file_.path() + ": a version " + std::to_string(version_) + " log holds no stage entries");
  }
  return AppendAtomically([&](std::string* buf) -> Status {
    size_t start = BeginEntry(buf, kStage);
    Put<uint64_t>(buf, cold_key);
    EncodeRecordBody(rec, buf);
    FinishEntry(buf, start);
    return Status::OK();
  }, durable);
}

Status HotLog::AppendDelete(std::string_view id, uint64_t seq, bool durable) {
  return AppendAtomically([&](std::string* buf) -> Status {
    size_t start = BeginEntry(buf, kDelete);
    Put<uint64_t>(buf, seq);
    buf->append(id);
    FinishEntry(buf, start);
    return Status::OK();
  }, durable);
}

Status HotLog::AppendAccess(const std::vector<LogAccessUpdate>& updates, bool durable) {
  if (updates.empty()) return Status::OK();
  return AppendAtomically([&](std::string* buf) -> Status {
    size_t start = BeginEntry(buf, kAccess);
    for (const LogAccessUpdate& u : updates) {
      Put<uint64_t>(buf, u.seq);
      Put<double>(buf, u.last_access_at);
      Put<double>(buf, u.access_count);
      Put<uint32_t>(buf, static_cast<uint32_t>(u.id.size()));
      buf->append(u.id);
    }
    FinishEntry(buf, start);
    return Status::OK();
  }, durable);
}

Status HotLog::Sync() {
  if (!file_.is_open() || read_only_) return Status::OK();
  return file_.Sync();
}

Status HotLog::Rewrite(const std::vector<const RecordView*>& recs, uint64_t mark) {
  if (read_only_) return Status::ReadOnly("the store is open read-only");
  std::string path = JoinPath(dir_, kFileName);
  std::string tmp = path + ".tmp";
  File out;
  TS_RETURN_IF_ERROR(File::Open(tmp, O_RDWR | O_CREAT | O_TRUNC, &out));
  std::string buf;
  EncodeHeaderInto(&buf, dimensions_, store_id_);
  EncodeU64Entry(kMark, mark, &buf);
  uint64_t written = 0;
  auto flush = [&](bool final_flush) -> Status {
    if (buf.empty() || (!final_flush && buf.size() < kFlushThreshold)) return Status::OK();
    TS_RETURN_IF_ERROR(out.WriteAt(written, buf.data(), buf.size()));
    written += buf.size();
    buf.clear();
    return Status::OK();
  };
  Status s;
  for (const RecordView* rec : recs) {
    EncodeRecord(kPut, *rec, &buf);
    s = flush(false);
    if (!s.ok()) break;
  }
  if (s.ok()) s = flush(true);
  if (s.ok()) s = out.Sync();
  if (s.ok()) s = RenameFile(tmp, path);
  if (!s.ok()) {
    out.Close();
    (void)RemoveFile(tmp);
    return s;
  }
  TS_RETURN_IF_ERROR(SyncDirectory(dir_));
  Retired retired;
  retired.file = std::move(file_);
  retired.windows = std::move(windows_);
  retired.header = std::move(header_map_);
  DropMapping();
  file_ = std::move(out);  // the renamed file, already open; its end mark is off
  size_ = written;
  file_size_ = written;
  disk_mark_on_ = false;
  version_ = kFormatVersion;
  CloseInBackground(std::move(retired));
  return Status::OK();
}

void HotLog::CloseInBackground(Retired retired) {
  if (closer_.joinable()) closer_.join();
  try {
    closer_ = std::thread([r = std::move(retired)]() mutable {
      r.windows.clear();
      r.header.Unmap();
      r.file.Close();
    });
  } catch (const std::system_error&) {
    // No thread to be had: the lambda holding them is destroyed here, which
    // unmaps and closes on this thread instead.
  }
}

HotLog::~HotLog() {
  if (closer_.joinable()) closer_.join();
}

}  // namespace tierstore
