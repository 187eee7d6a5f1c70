// HotLog: the hot tier's write-ahead log (hot.log), an append-only sequence
// of checksummed entries.
//
// File (the bytes: docs/format/hot-log.md, format version 5; versions 3
// and 4 are read too, another is CORRUPTION "unsupported format version"): a 40-byte header
// (magic, version, dimensions, the store id of its MANIFEST, checksum, end
// mark), then entries. The end mark: 0 means the entries end where the file
// ends; otherwise it is the end of the last acknowledged entry, and the file
// may run on past it (zeros, or an append that never returned), which
// replay ignores. Each entry is checksummed whole, and its header (type,
// length) on its own, so a trustworthy length tells a torn tail from damage.
// Types: put (one committed record), batch put (a record of a batch,
// applied only once the batch's commit follows), commit, delete (a
// tombstone with its own sequence number), access (access statistics of hot
// records), sequence mark (every sequence number up to it is committed;
// alone, or a member of a batch), stage (a record moved to the cold tier's
// staging, with its cold key: see cold_tier.h, "Staging"). Version 3 files
// (no marks) and version 4 files (no stage entries) are still read; every
// file this code writes afresh is version 5.
//
// Appends: a durable append (durability 'sync') is a pwrite. Other appends
// of up to 1 MiB are copied into a shared mapping of the file, ahead of
// which the file is extended and its pages prefaulted: a 5 KB put costs a
// memcpy instead of a pwrite into fresh page-cache pages. The
// first such append turns the end mark on; a clean close (Trim), a Rewrite
// and FinishOpen turn it off again, leaving a file that ends at its entries.
//
// Guarantees:
// - Append* return only once every byte is in the page cache (by write(2),
//   or copied into the mapping and the end mark stored after it), so the
//   entry survives SIGKILL; durable appends and Sync() add fdatasync. With
//   the end mark on, a durable append syncs its bytes before the mark
//   covers them.
// - A failed append truncates the file back to where the call began (with
//   the end mark on it leaves the mark where it was, so its bytes do not
//   count), so the log never holds half an entry it acknowledged or a batch
//   without commit.
// - Replay applies complete entries in order, up to the end mark when it is
//   on. A torn tail (an entry with an intact header cut short by a crash, a
//   batch without its commit at the end, zeros, or a file shorter than its
//   end mark) is dropped and reported; a damaged entry header, a complete
//   entry whose checksum fails, an unknown type, or an end mark still on
//   after a clean close, is CORRUPTION naming hot.log.
//
// Synchronization: none; the Store serializes all calls. No pointer into the
// mapping is handed out; a Rewrite hands the old file and its mappings to a
// thread that only unmaps and closes them.
#pragma once

#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "file_util.h"
#include "record.h"
#include "status.h"

namespace tierstore {

struct LogAccessUpdate {
  std::string_view id;
  uint64_t seq = 0;
  double last_access_at = 0;
  double access_count = 0;
};

// What replay hands to the Store, in log order.
struct LogReplayHandler {
  std::function<Status(const RecordView&)> on_put;                     // committed record
  std::function<Status(std::string_view id, uint64_t seq)> on_delete;  // tombstone
  std::function<Status(const LogAccessUpdate&)> on_access;
  // A sequence mark: every sequence number up to seq was committed when it
  // was written (optional).
  std::function<Status(uint64_t seq)> on_mark;
  // A record staged in the cold tier under cold_key. A log holding one is
  // CORRUPTION when this is not set.
  std::function<Status(const RecordView&, uint64_t cold_key)> on_stage;
};

class HotLog {
 public:
  static constexpr const char* kFileName = "hot.log";
  static constexpr uint64_t kHeaderBytes = 40;  // the size of an empty log

  // Writes an empty log (just its header, end mark off) for a new store, atomically.
  // store_id ties the log to its store's manifest: a log copied from
  // another store is CORRUPTION on replay, not someone else's records.
  static Status Create(const std::string& dir, uint32_t dimensions, uint64_t store_id);

  // Opens dir/hot.log of an existing store without changing it. A missing
  // log is CORRUPTION: every store has one from its creation on.
  static Status Open(const std::string& dir, uint32_t dimensions, uint64_t store_id, bool read_only,
                     std::unique_ptr<HotLog>* out);

  // Replays every committed entry. When tail_may_be_torn (the store was not
  // closed cleanly) a torn tail is dropped and *torn_bytes receives its
  // size; otherwise a torn tail is damage: CORRUPTION naming the file.
  // Changes no file: FinishOpen cuts the torn tail off.
  Status Replay(const LogReplayHandler& handler, bool tail_may_be_torn, uint64_t* torn_bytes);

  // After the whole store opened and recovered (read-write only): truncates
  // the torn tail Replay found (and whatever ran past the end mark), so new
  // entries follow the last good one, and turns the end mark off.
  Status FinishOpen();

  // One record (n == 1) or a batch committed atomically. `durable`: the
  // caller syncs next (durability 'sync'), so the bytes go by pwrite.
  Status AppendPuts(const RecordView* const* recs, size_t n, bool durable);
  // recs (n >= 0) and a sequence mark committed atomically: the commit of
  // a batch whose other records the Store wrote straight to a lower tier,
  // each with a sequence number up to `mark`. INVALID_ARGUMENT on a
  // version 3 log (see version()).
  Status AppendBatch(const RecordView* const* recs, size_t n, uint64_t mark, bool durable);
  // A record the Store stages in the cold tier under cold_key (a single
  // move to cold). INVALID_ARGUMENT on a log older than version 5.
  Status AppendStage(const RecordView& rec, uint64_t cold_key, bool durable);
  Status AppendDelete(std::string_view id, uint64_t seq, bool durable);
  Status AppendAccess(const std::vector<LogAccessUpdate>& updates, bool durable);
  Status Sync();

  // Before a clean close: cuts the file to its entries and turns the end
  // mark off, so the file's size is the size a clean MANIFEST records.
  Status Trim();

  // Replaces the log with one holding a sequence mark `mark` (the store's
  // highest sequence number) and then just `recs` (write-then-rename; the
  // caller has made every lower tier durable first, since tombstones go).
  // The new file is of the current version.
  Status Rewrite(const std::vector<const RecordView*>& recs, uint64_t mark);

  // The file's format version: 3, 4 or 5 (kCurrentVersion); sequence
  // marks from 4 on, stage entries from 5 on.
  static constexpr uint32_t kCurrentVersion = 5;
  uint32_t version() const { return version_; }

  uint64_t size() const { return size_; }
  ~HotLog();
  HotLog(const HotLog&) = delete;
  HotLog& operator=(const HotLog&) = delete;
  const std::string& path() const { return file_.path(); }

 private:
  HotLog(std::string dir, uint32_t dimensions, uint64_t store_id, bool read_only)
      : dir_(std::move(dir)), dimensions_(dimensions), store_id_(store_id), read_only_(read_only) {}
  static void EncodeHeaderInto(std::string* buf, uint32_t dimensions, uint64_t store_id);
  void EncodeRecord(uint8_t type, const RecordView& rec, std::string* buf) const;
  void EncodeRecordBody(const RecordView& rec, std::string* buf) const;
  // recs as batch put entries, written out in pieces as the buffer fills.
  Status EncodeBatchPuts(const RecordView* const* recs, size_t n, std::string* buf);
  Status WriteBuffered(std::string* buf, bool final_flush);
  Status AppendAtomically(const std::function<Status(std::string*)>& fill, bool durable);
  // Maps, extends and prefaults the file so [pos, pos+n) can be copied in.
  Status PrepareMapped(uint64_t pos, uint64_t n);
  void CopyMapped(uint64_t pos, const char* data, uint64_t n);
  Status StoreEndMark(uint64_t end);
  void DropMapping();
  // A file replaced by Rewrite: closing it and unmapping its pages happen on
  // a thread (see closer_).
  struct Retired {
    File file;
    std::deque<MappedRegion> windows;
    MappedRegion header;
  };
  void CloseInBackground(Retired retired);

  std::string dir_;
  uint32_t dimensions_;
  uint64_t store_id_;
  bool read_only_;
  uint32_t version_ = kCurrentVersion;  // of the file (Replay reads it)
  File file_;
  uint64_t size_ = 0;           // end of the entries (the logical size)
  uint64_t file_size_ = 0;      // the file's size (past size_ while mapped)
  uint64_t replayed_end_ = 0;  // end of the last good entry, once replayed
  bool disk_mark_on_ = false;  // the file's end mark is not 0
  // Mapped appends: windows_ map [window_base_, window_end_) of the file in
  // kMapWindow pieces; [.., populated_end_) is prefaulted; header_map_ maps
  // the first page, for end mark stores.
  bool mapped_ok_ = false;      // the current append may use the mapping
  uint64_t append_start_ = 0;   // where the current append began
  bool mapping_broken_ = false; // the kernel refused (e.g. no MADV_POPULATE_WRITE): pwrite only
  MappedRegion header_map_;
  std::deque<MappedRegion> windows_;
  uint64_t window_base_ = 0;
  uint64_t window_end_ = 0;
  uint64_t populated_end_ = 0;
  // Reused encode buffer: a fresh one per append cost a reallocation chain
  // and fresh page faults for every batch.
  std::string scratch_;
  // Closes the log a Rewrite replaced. The rename unlinked it, so its last
  // close frees its page cache: milliseconds for a large log, which the
  // write that triggered the checkpoint need not wait for. Joined before
  // the next Rewrite and by the destructor; it touches nothing but the fd
  // it was given.
  std::thread closer_;
};

}  // namespace tierstore
