// Manifest: the store's identity (format version, dimensions) and its
// clean-shutdown record, in the file MANIFEST, always replaced atomically
// (write-then-rename) so it is never half written. Its bytes (format
// version 3): docs/format/manifest.md.
//
// `clean` with `hot_log_size` lets open tell a log cut short by damage (the
// store was closed cleanly, yet the log is not the size it had then:
// CORRUPTION) from a log whose tail a crash tore (the store was not closed
// cleanly: the torn, unacknowledged tail is dropped).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "status.h"

namespace tierstore {

struct Manifest {
  static constexpr const char* kFileName = "MANIFEST";
  static constexpr uint32_t kFormatVersion = 3;  // version 2 (no index token) is read too

  uint32_t dimensions = 0;
  uint64_t store_id = 0;      // random, chosen at creation; hot.log carries it too
  bool clean = false;         // the last writer closed the store cleanly
  uint64_t hot_log_size = 0;  // size of hot.log at that clean close
  uint64_t sequence_floor = 0;  // every sequence number used so far is <= this
  // The inventory at the last clean close, so that a file deleted or cut
  // short while the store was closed is CORRUPTION, not silent loss.
  uint64_t warm_records = 0;
  uint64_t cold_records = 0;
  // Ascending ids. At a clean close: exactly the store's segments. While the
  // store is open: every segment that must exist (kept current as segments
  // are sealed and merged, so one missing after a crash is CORRUPTION); a
  // segment sealed just before a crash may exist without being listed.
  std::vector<uint32_t> cold_segments;
  // At a clean close: the token of the id index written just before
  // (index_file.h); 0 when none was written or the store is open.
  uint64_t index_token = 0;

  static Status Read(const std::string& dir, Manifest* out);
  // Write-then-rename. durable: fsync the file and the directory too (power
  // loss); without, the rename alone already survives SIGKILL.
  Status Write(const std::string& dir, bool durable = true) const;
};

}  // namespace tierstore
