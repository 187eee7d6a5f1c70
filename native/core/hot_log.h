// HotLog: the hot tier's write-ahead log (hot.log), an append-only sequence
// of checksummed entries.
//
// File: a 32-byte header (magic, version, dimensions, the store id of its
// MANIFEST, checksum), then entries.
// Entry: u32 crc | u8 type | u24 header check | u64 payload length | payload.
// The crc (CRC-32C) covers type, header check, length and payload; the
// header check (24 bits of CRC-32C of type and length) makes the length
// trustworthy on its own.
// Types: kPut (one committed record), kBatchPut (a record of a batch, applied
// only once the batch's kCommit follows), kCommit, kDelete (a tombstone with
// its own sequence number), kAccess (access statistics of hot records).
//
// Guarantees:
// - Append* return only after write(2) has handed every byte to the kernel
//   (so the entry survives SIGKILL); Sync() adds fdatasync.
// - A failed append truncates the file back to where the call began, so the
//   log never holds half an entry it acknowledged or a batch without commit.
// - Replay applies complete entries in order. A torn tail (an entry with an
//   intact header cut short by a crash, a batch without its commit at the
//   end, or zeros) is dropped and reported; a damaged entry header, a
//   complete entry whose checksum fails, or an unknown type, is CORRUPTION
//   naming hot.log and the offset.
//
// Synchronization: none; the Store serializes all calls.
#pragma once

#include <cstdint>
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
};

class HotLog {
 public:
  static constexpr const char* kFileName = "hot.log";
  static constexpr uint64_t kHeaderBytes = 32;  // the size of an empty log

  // Writes an empty log (just its header) for a new store, atomically.
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
  // the torn tail Replay found, so new entries follow the last good one.
  Status FinishOpen();

  // One record (batch=false) or a batch committed atomically.
  Status AppendPuts(const RecordView* const* recs, size_t n);
  Status AppendDelete(std::string_view id, uint64_t seq);
  Status AppendAccess(const std::vector<LogAccessUpdate>& updates);
  Status Sync();

  // Replaces the log with one holding just `recs` (write-then-rename; the
  // caller has made every lower tier durable first, since tombstones go).
  Status Rewrite(const std::vector<const RecordView*>& recs);

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
  Status WriteBuffered(std::string* buf, bool final_flush);
  Status AppendAtomically(const std::function<Status(std::string*)>& fill);
  void CloseInBackground(File replaced);

  std::string dir_;
  uint32_t dimensions_;
  uint64_t store_id_;
  bool read_only_;
  File file_;
  uint64_t size_ = 0;
  uint64_t replayed_end_ = 0;  // end of the last good entry, once replayed
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
