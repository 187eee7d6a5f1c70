#include "cold_segment_writer.h"

#include <fcntl.h>

#include <vector>

namespace tierstore::cold {
namespace {

// Sequential buffered writer with a running crc and position.
class BufWriter {
 public:
  explicit BufWriter(File* f) : f_(f) { buf_.reserve(kWriteBuffer); }

  Status Put(const void* p, size_t n) {
    if (crc_on_) crc_ = Crc32cExtend(crc_, p, n);
    pos_ += n;
    if (n >= kWriteBuffer / 2) {
      TS_RETURN_IF_ERROR(Flush());
      return f_->Write(p, n);
    }
    if (buf_.size() + n > kWriteBuffer) TS_RETURN_IF_ERROR(Flush());
    const auto* b = static_cast<const uint8_t*>(p);
    buf_.insert(buf_.end(), b, b + n);
    return Status::OK();
  }
  template <class T>
  Status PutValue(T v) {
    uint8_t b[sizeof(T)];
    std::memcpy(b, &v, sizeof v);
    if (crc_on_) crc_ = Crc32cExtend(crc_, b, sizeof b);
    pos_ += sizeof b;
    if (buf_.size() + sizeof b > kWriteBuffer) TS_RETURN_IF_ERROR(Flush());
    buf_.insert(buf_.end(), b, b + sizeof b);
    return Status::OK();
  }
  Status PadTo(uint64_t offset) {
    static const uint8_t zeros[kAlign] = {};
    while (pos_ < offset) TS_RETURN_IF_ERROR(Put(zeros, static_cast<size_t>(std::min<uint64_t>(kAlign, offset - pos_))));
    return Status::OK();
  }
  Status Zeros(uint64_t n) {
    static const uint8_t zeros[4096] = {};
    while (n > 0) {
      size_t k = static_cast<size_t>(std::min<uint64_t>(n, sizeof zeros));
      TS_RETURN_IF_ERROR(Put(zeros, k));
      n -= k;
    }
    return Status::OK();
  }
  Status Flush() {
    if (buf_.empty()) return Status::OK();
    Status s = f_->Write(buf_.data(), buf_.size());
    buf_.clear();
    return s;
  }
  void BeginCrc() { crc_on_ = true; crc_ = 0; }
  uint32_t EndCrc() { crc_on_ = false; return crc_; }
  uint64_t pos() const { return pos_; }

 private:
  File* f_;
  std::vector<uint8_t> buf_;
  uint64_t pos_ = 0;
  bool crc_on_ = false;
  uint32_t crc_ = 0;
};

// Writes the whole segment to tmp_path (created/truncated). Streams each
// column straight from the source: no copy of the data is held in memory.
}  // namespace

Status WriteSegmentFile(const std::string& tmp_path, uint32_t id, uint32_t dims, const RowSource& src, bool durable) {
  const uint64_t n = src.size();
  RecordView v;
  uint64_t id_bytes = 0, content_bytes = 0, meta_bytes = 0;
  for (uint64_t i = 0; i < n; ++i) {
    src.Get(i, &v);
    id_bytes += v.id.size();
    content_bytes += v.content.size();
    meta_bytes += v.metadata.size();
  }
  const Layout l = ComputeLayout(n, dims, id_bytes, content_bytes, meta_bytes);
  uint32_t crcs[kNumCols] = {};

  File f;
  TS_RETURN_IF_ERROR(File::Open(tmp_path, O_WRONLY | O_CREAT | O_TRUNC, &f));
  BufWriter w(&f);
  TS_RETURN_IF_ERROR(w.Zeros(kHeaderSize));  // the header is written last, in place

  auto column = [&](int c, auto&& per_row) -> Status {
    TS_RETURN_IF_ERROR(w.PadTo(l.off[c]));
    if (ColHasCrc(c)) w.BeginCrc();
    for (uint64_t i = 0; i < n; ++i) TS_RETURN_IF_ERROR(per_row(i));
    if (ColHasCrc(c)) crcs[c] = w.EndCrc();
    if (w.pos() != l.off[c] + l.size[c]) return Status::IoError("internal error: column size mismatch writing " + tmp_path);
    return Status::OK();
  };
  auto offsets = [&](int c, auto field) -> Status {
    TS_RETURN_IF_ERROR(w.PadTo(l.off[c]));
    w.BeginCrc();
    uint64_t acc = 0;
    TS_RETURN_IF_ERROR(w.PutValue<uint64_t>(0));
    for (uint64_t i = 0; i < n; ++i) {
      src.Get(i, &v);
      acc += field(v).size();
      TS_RETURN_IF_ERROR(w.PutValue<uint64_t>(acc));
    }
    crcs[c] = w.EndCrc();
    return Status::OK();
  };

  TS_RETURN_IF_ERROR(column(kKey, [&](uint64_t i) { return w.PutValue<uint64_t>(src.Key(i)); }));
  TS_RETURN_IF_ERROR(column(kSeq, [&](uint64_t i) { src.Get(i, &v); return w.PutValue<uint64_t>(v.seq); }));
  TS_RETURN_IF_ERROR(column(kConfidence, [&](uint64_t i) { src.Get(i, &v); return w.PutValue<float>(v.confidence); }));
  TS_RETURN_IF_ERROR(column(kActivation, [&](uint64_t i) { src.Get(i, &v); return w.PutValue<float>(v.activation); }));
  TS_RETURN_IF_ERROR(column(kCreatedAt, [&](uint64_t i) { src.Get(i, &v); return w.PutValue<double>(v.created_at); }));
  TS_RETURN_IF_ERROR(column(kNorm, [&](uint64_t i) { src.Get(i, &v); return w.PutValue<float>(v.norm); }));
  TS_RETURN_IF_ERROR(column(kDataCrc, [&](uint64_t i) {
    if (src.HasCrcs()) return w.PutValue<uint32_t>(src.DataCrc(i));
    src.Get(i, &v);
    return w.PutValue<uint32_t>(RowDataCrc(v));
  }));
  TS_RETURN_IF_ERROR(column(kEmbCrc, [&](uint64_t i) {
    if (src.HasCrcs()) return w.PutValue<uint32_t>(src.EmbCrc(i));
    src.Get(i, &v);
    return w.PutValue<uint32_t>(RowEmbCrc(v.embedding, dims));
  }));
  TS_RETURN_IF_ERROR(column(kEmbeddings, [&](uint64_t i) { src.Get(i, &v); return w.Put(v.embedding, size_t{dims} * 4); }));
  TS_RETURN_IF_ERROR(offsets(kIdOffsets, [](const RecordView& r) { return r.id; }));
  TS_RETURN_IF_ERROR(column(kIdBytes, [&](uint64_t i) { src.Get(i, &v); return w.Put(v.id.data(), v.id.size()); }));
  TS_RETURN_IF_ERROR(offsets(kContentOffsets, [](const RecordView& r) { return r.content; }));
  TS_RETURN_IF_ERROR(
      column(kContentBytes, [&](uint64_t i) { src.Get(i, &v); return w.Put(v.content.data(), v.content.size()); }));
  TS_RETURN_IF_ERROR(offsets(kMetaOffsets, [](const RecordView& r) { return r.metadata; }));
  TS_RETURN_IF_ERROR(
      column(kMetaBytes, [&](uint64_t i) { src.Get(i, &v); return w.Put(v.metadata.data(), v.metadata.size()); }));
  TS_RETURN_IF_ERROR(column(kLastAccess, [&](uint64_t i) { src.Get(i, &v); return w.PutValue<double>(v.last_access_at); }));
  TS_RETURN_IF_ERROR(column(kAccessCount, [&](uint64_t i) { src.Get(i, &v); return w.PutValue<double>(v.access_count); }));
  // Two empty bitmap copies: copy 0 active at generation 1, copy 1 at 0.
  const uint64_t words = BitmapWords(n);
  for (uint64_t copy = 0; copy < 2; ++copy) {
    const uint64_t gen = copy == 0 ? 1 : 0;
    uint8_t g[8];
    StoreAt<uint64_t>(g, gen);
    uint32_t crc = Crc32cExtend(0, g, sizeof g);
    static const uint8_t zeros[4096] = {};
    for (uint64_t left = words * 8; left > 0;) {
      size_t k = static_cast<size_t>(std::min<uint64_t>(left, sizeof zeros));
      crc = Crc32cExtend(crc, zeros, k);
      left -= k;
    }
    TS_RETURN_IF_ERROR(w.PadTo(l.off[kDeleted] + copy * BitmapCopySize(n)));
    TS_RETURN_IF_ERROR(w.PutValue<uint64_t>(gen));
    TS_RETURN_IF_ERROR(w.PutValue<uint32_t>(crc));
    TS_RETURN_IF_ERROR(w.Zeros(kBitmapHeader - 12 + words * 8));
  }
  TS_RETURN_IF_ERROR(w.PadTo(l.off[kDeleted] + l.size[kDeleted]));
  TS_RETURN_IF_ERROR(w.Flush());
  if (w.pos() != l.file_size) return Status::IoError("internal error: segment size mismatch writing " + tmp_path);

  uint8_t h[kHeaderSize] = {};
  std::memcpy(h, kMagic, sizeof kMagic);
  StoreAt<uint32_t>(h + 8, kFormatVersion);
  StoreAt<uint32_t>(h + 12, dims);
  StoreAt<uint64_t>(h + 16, n);
  StoreAt<uint64_t>(h + 24, l.file_size);
  StoreAt<uint32_t>(h + 32, id);
  StoreAt<uint32_t>(h + 36, kNumCols);
  StoreAt<uint64_t>(h + 40, src.Key(0));
  StoreAt<uint64_t>(h + 48, src.Key(n - 1));
  for (int c = 0; c < kNumCols; ++c) {
    uint8_t* e = h + kDirOffset + c * kDirEntrySize;
    StoreAt<uint64_t>(e, l.off[c]);
    StoreAt<uint64_t>(e + 8, l.size[c]);
    StoreAt<uint32_t>(e + 16, crcs[c]);
  }
  StoreAt<uint32_t>(h + kHeaderCrcOffset, Crc32c(h, kHeaderCrcOffset));
  TS_RETURN_IF_ERROR(f.WriteAt(0, h, sizeof h));
  if (durable) TS_RETURN_IF_ERROR(f.Sync());
  return Status::OK();
}

}  // namespace tierstore::cold
