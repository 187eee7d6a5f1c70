// HotLog: the hot tier's write-ahead log (hot.log), an append-only sequence
// of checksummed entries.
//
// Entry: u32 crc | u8 type | 3 pad bytes | u64 payload length | payload.
// The crc (CRC-32C) covers type, padding, length and payload.
// Types: kPut (one committed record), kBatchPut (a record of a batch, applied
// only once the batch's kCommit follows), kCommit, kDelete (a tombstone with
// its own sequence number), kAccess (access statistics of hot records).
//
// Guarantees:
// - Append* return only after write(2) has handed every byte to the kernel
//   (so the entry survives SIGKILL); Sync() adds fdatasync.
// - A failed append truncates the file back to where the call began, so the
//   log never holds half an entry it acknowledged or a batch without commit.
// - Replay applies complete entries in order. A torn tail (an entry cut short
//   by a crash, or a batch without its commit at the end) is dropped and
//   reported; a complete entry whose checksum fails, or an unknown type, is
//   CORRUPTION naming hot.log and the offset.
//
// Synchronization: none; the Store serializes all calls.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
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

  // Opens dir/hot.log. may_create (a new store, or one a crash may have
  // left before its log was written): a missing or empty log is created
  // (read-write) or read as empty (read-only). Otherwise a missing or empty
  // log is CORRUPTION.
  static Status Open(const std::string& dir, uint32_t dimensions, bool read_only, bool may_create,
                     std::unique_ptr<HotLog>* out);

  // Replays every committed entry. When tail_may_be_torn (the store was not
  // closed cleanly) a torn tail is dropped — truncated away in read-write
  // mode — and *torn_bytes receives its size; otherwise a torn tail is
  // damage: CORRUPTION naming the file.
  Status Replay(const LogReplayHandler& handler, bool tail_may_be_torn, uint64_t* torn_bytes);

  // One record (batch=false) or a batch committed atomically.
  Status AppendPuts(const RecordView* const* recs, size_t n);
  Status AppendDelete(std::string_view id, uint64_t seq);
  Status AppendAccess(const std::vector<LogAccessUpdate>& updates);
  Status Sync();

  // Replaces the log with one holding just `recs` (write-then-rename; the
  // caller has made every lower tier durable first, since tombstones go).
  Status Rewrite(const std::vector<const RecordView*>& recs);

  uint64_t size() const { return size_; }
  const std::string& path() const { return file_.path(); }

 private:
  HotLog(std::string dir, uint32_t dimensions, bool read_only)
      : dir_(std::move(dir)), dimensions_(dimensions), read_only_(read_only) {}
  static void EncodeHeaderInto(std::string* buf);
  void EncodeRecord(uint8_t type, const RecordView& rec, std::string* buf) const;
  Status WriteBuffered(std::string* buf, bool final_flush);
  Status AppendAtomically(const std::function<Status(std::string*)>& fill);

  std::string dir_;
  uint32_t dimensions_;
  bool read_only_;
  File file_;
  uint64_t size_ = 0;
  // Reused encode buffer: a fresh one per append cost a reallocation chain
  // and fresh page faults for every batch.
  std::string scratch_;
};

}  // namespace tierstore
