// Manifest: the store's identity (format version, dimensions) and its
// clean-shutdown record, in the file MANIFEST, always replaced atomically
// (write-then-rename) so it is never half written.
//
// `clean` with `hot_log_size` lets open tell a log cut short by damage (the
// store was closed cleanly, yet the log is not the size it had then:
// CORRUPTION) from a log whose tail a crash tore (the store was not closed
// cleanly: the torn, unacknowledged tail is dropped).
#pragma once

#include <cstdint>
#include <string>

#include "status.h"

namespace tierstore {

struct Manifest {
  static constexpr const char* kFileName = "MANIFEST";
  static constexpr uint32_t kFormatVersion = 1;

  uint32_t dimensions = 0;
  bool clean = false;         // the last writer closed the store cleanly
  uint64_t hot_log_size = 0;  // size of hot.log at that clean close
  uint64_t sequence_floor = 0;  // every sequence number used so far is <= this

  static Status Read(const std::string& dir, Manifest* out);
  Status Write(const std::string& dir) const;
};

}  // namespace tierstore
