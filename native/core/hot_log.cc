#include "hot_log.h"

#include <fcntl.h>

#include <algorithm>
#include <cstring>
#include <system_error>

#include "crc32c.h"

namespace tierstore {
namespace {

constexpr char kMagic[8] = {'T', 'S', 'H', 'O', 'T', 'L', 'G', '1'};
constexpr uint32_t kFormatVersion = 2;
// magic 8, version 4, dimensions 4, store id 8, crc 4 (of the 24 bytes before it), pad 4
constexpr size_t kFileHeaderSize = HotLog::kHeaderBytes;
constexpr size_t kEntryHeaderSize = 16;  // crc, type, pad[3], length
constexpr size_t kRecordFixedSize = 64;
constexpr size_t kFlushThreshold = 8u << 20;  // write(2) in pieces of about 8 MiB

enum EntryType : uint8_t { kPut = 1, kBatchPut = 2, kCommit = 3, kDelete = 4, kAccess = 5 };

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

// Sequential reader with a read-ahead window, so replay costs one pread per
// few MiB rather than two per entry.
class LogReader {
 public:
  LogReader(const File& file, uint64_t size) : file_(file), size_(size) {}
  // Points *out at n bytes at offset `pos` (valid until the next call).
  Status Read(uint64_t pos, size_t n, const char** out) {
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
  if (Get<uint32_t>(p + 8) != kFormatVersion) return Status::Corruption(path + ": unsupported log format version");
  if (Get<uint32_t>(p + 24) != Crc32c(p, 24)) return Status::Corruption(path + ": header checksum mismatch");
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

  uint64_t pos = kFileHeaderSize;
  uint64_t good_end = pos;          // end of the last entry that took effect
  std::vector<std::string> batch;   // payloads of an uncommitted batch
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
    if (type != kBatchPut && type != kCommit && !batch.empty()) batch.clear();  // an aborted batch
    switch (type) {
      case kPut: {
        RecordView rec;
        TS_RETURN_IF_ERROR(decode_record(p, len, entry_at, &rec));
        TS_RETURN_IF_ERROR(handler.on_put(rec));
        good_end = pos;
        break;
      }
      case kBatchPut:
        if (batch.empty()) batch_start = entry_at;
        batch.emplace_back(p, static_cast<size_t>(len));
        break;
      case kCommit: {
        if (len != 8 || Get<uint64_t>(p) != batch.size()) {
          return Status::Corruption(path + ": batch commit does not match its batch at offset " +
                                    std::to_string(entry_at));
        }
        for (const std::string& payload : batch) {
          RecordView rec;
          TS_RETURN_IF_ERROR(decode_record(payload.data(), payload.size(), batch_start, &rec));
          TS_RETURN_IF_ERROR(handler.on_put(rec));
        }
        batch.clear();
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
  if (read_only_ || !file_.is_open() || replayed_end_ == 0 || replayed_end_ == size_) return Status::OK();
  TS_RETURN_IF_ERROR(file_.Truncate(replayed_end_));
  size_ = replayed_end_;
  return Status::OK();
}

void HotLog::EncodeRecord(uint8_t type, const RecordView& rec, std::string* buf) const {
  size_t start = BeginEntry(buf, type);
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
  FinishEntry(buf, start);
}

Status HotLog::WriteBuffered(std::string* buf, bool final_flush) {
  if (buf->empty() || (!final_flush && buf->size() < kFlushThreshold)) return Status::OK();
  TS_RETURN_IF_ERROR(file_.WriteAt(size_, buf->data(), buf->size()));
  size_ += buf->size();
  buf->clear();
  return Status::OK();
}

Status HotLog::AppendAtomically(const std::function<Status(std::string*)>& fill) {
  if (read_only_ || !file_.is_open()) return Status::ReadOnly("the store is open read-only");
  const uint64_t start = size_;
  std::string& buf = scratch_;
  buf.clear();
  if (buf.capacity() < kFlushThreshold + (1u << 20)) buf.reserve(kFlushThreshold + (1u << 20));
  Status s = fill(&buf);
  if (s.ok()) s = WriteBuffered(&buf, true);
  if (buf.capacity() > 4 * kFlushThreshold) std::string().swap(buf);  // after a huge record
  if (!s.ok()) {
    // Take back whatever part reached the file, so the log never keeps half
    // an entry or a batch that was reported as failed.
    if (file_.Truncate(start).ok()) size_ = start;
    else file_.Close();  // unusable: later appends fail rather than write after garbage
  }
  return s;
}

Status HotLog::AppendPuts(const RecordView* const* recs, size_t n) {
  return AppendAtomically([&](std::string* buf) -> Status {
    if (n == 1) {
      EncodeRecord(kPut, *recs[0], buf);
      return Status::OK();
    }
    for (size_t i = 0; i < n; ++i) {
      EncodeRecord(kBatchPut, *recs[i], buf);
      TS_RETURN_IF_ERROR(WriteBuffered(buf, false));
    }
    size_t start = BeginEntry(buf, kCommit);
    Put<uint64_t>(buf, n);
    FinishEntry(buf, start);
    return Status::OK();
  });
}

Status HotLog::AppendDelete(std::string_view id, uint64_t seq) {
  return AppendAtomically([&](std::string* buf) -> Status {
    size_t start = BeginEntry(buf, kDelete);
    Put<uint64_t>(buf, seq);
    buf->append(id);
    FinishEntry(buf, start);
    return Status::OK();
  });
}

Status HotLog::AppendAccess(const std::vector<LogAccessUpdate>& updates) {
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
  });
}

Status HotLog::Sync() {
  if (!file_.is_open() || read_only_) return Status::OK();
  return file_.Sync();
}

Status HotLog::Rewrite(const std::vector<const RecordView*>& recs) {
  if (read_only_) return Status::ReadOnly("the store is open read-only");
  std::string path = JoinPath(dir_, kFileName);
  std::string tmp = path + ".tmp";
  File out;
  TS_RETURN_IF_ERROR(File::Open(tmp, O_RDWR | O_CREAT | O_TRUNC, &out));
  std::string buf;
  EncodeHeaderInto(&buf, dimensions_, store_id_);
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
  File replaced = std::move(file_);
  file_ = std::move(out);  // the renamed file, already open
  size_ = written;
  CloseInBackground(std::move(replaced));
  return Status::OK();
}

void HotLog::CloseInBackground(File replaced) {
  if (closer_.joinable()) closer_.join();
  try {
    closer_ = std::thread([f = std::move(replaced)]() mutable { f.Close(); });
  } catch (const std::system_error&) {
    // No thread to be had: the lambda holding the fd is destroyed here,
    // which closes it on this thread instead.
  }
}

HotLog::~HotLog() {
  if (closer_.joinable()) closer_.join();
}

}  // namespace tierstore
