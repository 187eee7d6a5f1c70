// Writing a cold segment file (docs/format/cold.md) from a RowSource: the
// rows of a new segment, in key order, either records being appended
// (AppendSource), staged rows being sealed (KeyedSource) or rows of
// existing segments being merged (MergeSource).
// Private to native/core.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "cold_segment.h"
#include "record.h"
#include "status.h"

namespace tierstore::cold {

// The rows of a segment to write, in key order.
class RowSource {
 public:
  virtual ~RowSource() = default;
  virtual uint64_t size() const = 0;
  virtual void Get(uint64_t i, RecordView* v) const = 0;
  virtual uint64_t Key(uint64_t i) const = 0;
  // Copies of existing rows keep their stored checksums, so a damaged row
  // stays detectably damaged instead of being re-sealed as valid.
  virtual bool HasCrcs() const { return false; }
  virtual uint32_t DataCrc(uint64_t) const { return 0; }
  virtual uint32_t EmbCrc(uint64_t) const { return 0; }
};

class AppendSource final : public RowSource {
 public:
  AppendSource(const RecordView* recs, uint64_t n, uint64_t first_key) : recs_(recs), n_(n), first_key_(first_key) {}
  uint64_t size() const override { return n_; }
  void Get(uint64_t i, RecordView* v) const override { *v = recs_[i]; }
  uint64_t Key(uint64_t i) const override { return first_key_ + i; }

 private:
  const RecordView* recs_;
  uint64_t n_, first_key_;
};

// Records under keys of their own (ascending): staged rows being sealed.
class KeyedSource final : public RowSource {
 public:
  KeyedSource(const RecordView* recs, const uint64_t* keys, uint64_t n) : recs_(recs), keys_(keys), n_(n) {}
  uint64_t size() const override { return n_; }
  void Get(uint64_t i, RecordView* v) const override { *v = recs_[i]; }
  uint64_t Key(uint64_t i) const override { return keys_[i]; }

 private:
  const RecordView* recs_;
  const uint64_t* keys_;
  uint64_t n_;
};

struct RowRef {
  const Segment* seg;
  uint64_t row;
};

class MergeSource final : public RowSource {
 public:
  explicit MergeSource(const std::vector<RowRef>* rows) : rows_(rows) {}
  uint64_t size() const override { return rows_->size(); }
  // A damaged row (out-of-range offsets) is copied with empty strings and
  // its original checksums, so it still reads as damaged in the new segment.
  void Get(uint64_t i, RecordView* v) const override { (void)(*rows_)[i].seg->Fill((*rows_)[i].row, v); }
  uint64_t Key(uint64_t i) const override { return (*rows_)[i].seg->Key((*rows_)[i].row); }
  bool HasCrcs() const override { return true; }
  uint32_t DataCrc(uint64_t i) const override { return (*rows_)[i].seg->DataCrc((*rows_)[i].row); }
  uint32_t EmbCrc(uint64_t i) const override { return (*rows_)[i].seg->EmbCrc((*rows_)[i].row); }

 private:
  const std::vector<RowRef>* rows_;
};

// Writes src as a complete segment file at tmp_path (fdatasync when
// durable); the caller renames it into place.
Status WriteSegmentFile(const std::string& tmp_path, uint32_t id, uint32_t dims, const RowSource& src, bool durable);

}  // namespace tierstore::cold
