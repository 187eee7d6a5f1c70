// WarmTier: records in memory-mapped fixed-size blocks plus a variable-length
// section holding id, content and metadata bytes.
//
// Files (in the store directory):
//   warm.blocks      a 4096-byte header page, then fixed-size blocks, one per
//                    record slot. A block holds the scalars, the sequence
//                    number, the (var file generation, offset) of the record's
//                    id/content/metadata bytes, their lengths, checksums, and
//                    the embedding (float32, 64-byte aligned within the block).
//   warm-var-<gen>.dat  the variable-length section (a header page, then
//                    record extents back to back). compact() writes generation
//                    gen+1, repoints the blocks, then deletes generation gen.
//
// Guarantees:
// - Growth: files grow in fixed chunks, each mapped by its own MappedRegion;
//   a mapping is never moved or unmapped while the tier is open, so every
//   pointer handed out stays valid until Close()/destruction — except that
//   var bytes of a slot are invalid after Free(slot) is followed by reuse of
//   the slot, or after Compact() (callers hold the store's exclusive lock
//   across both, so no reader holds such pointers then).
// - Crash safety: Insert writes the var bytes and the whole block with state
//   "writing", then publishes it by one aligned 4-byte store of state "live";
//   Free is one aligned store of state "free". A SIGKILL at any point leaves
//   every block either free/writing (ignored on open) or live and complete.
// - Checksums: header_crc covers the block's fixed fields (not the access
//   statistics, which change in place); data_crc covers id, content,
//   metadata, scalars and seq; embedding_crc covers the embedding. Open
//   verifies header_crc of live blocks; Read verifies data_crc always and
//   embedding_crc when asked. Any mismatch, any offset outside its file, any
//   file of the wrong size is CORRUPTION naming the file.
// - Deleted slots are reused (lowest free slot first).
//
// Synchronization: none inside. The Store serializes mutations (Insert, Free,
// Compact, UpdateAccess) against each other and against readers with its own
// lock; concurrent Read calls are safe with each other.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "record.h"
#include "status.h"

namespace tierstore {

struct WarmStats {
  uint64_t live_records = 0;
  uint64_t slots = 0;             // allocated slots (live + free)
  uint64_t block_file_bytes = 0;
  uint64_t var_file_bytes = 0;
  uint64_t var_live_bytes = 0;    // bytes of var section referenced by live blocks
};

// The scalars of one warm slot, read without checks (see WarmTier::Scalars).
struct WarmScalars {
  float norm = 0.0f;
  float confidence = 0.0f;
  float activation = 0.0f;
  double created_at = 0.0;
  double last_access_at = 0.0;
  double access_count = 0.0;
  uint64_t seq = 0;
};

class WarmTier {
 public:
  static constexpr const char* kBlockFileName = "warm.blocks";
  static constexpr const char* kVarFilePrefix = "warm-var-";

  virtual ~WarmTier() = default;

  // Opens (creating when absent and !read_only) the warm files in dir.
  // read_only maps the files read-only; UpdateAccess then keeps nothing.
  static Status Open(const std::string& dir, uint32_t dimensions, bool read_only,
                     std::unique_ptr<WarmTier>* out);

  // Calls fn for every live block in slot order (used once, at open, to build
  // the store's index). Verifies each live block's header_crc.
  // The view's string_views and embedding point into the mapping.
  virtual Status ForEachLive(const std::function<Status(uint32_t slot, const RecordView&)>& fn) = 0;

  // Stores a copy of rec (including its seq and access statistics) in a free
  // or new slot. rec.norm is stored as given.
  virtual Status Insert(const RecordView& rec, uint32_t* slot) = 0;

  // Fills *out with views into the mapping for a live slot. Verifies
  // data_crc, and embedding_crc when verify_embedding.
  virtual Status Read(uint32_t slot, bool verify_embedding, RecordView* out) const = 0;

  // Cheap: the embedding pointer, norm and scalars of a live slot, no checks
  // (for similarity scans and migration choice).
  virtual const float* Embedding(uint32_t slot) const = 0;
  virtual WarmScalars Scalars(uint32_t slot) const = 0;

  virtual bool IsLive(uint32_t slot) const = 0;
  virtual uint32_t SlotLimit() const = 0;  // every live slot is < SlotLimit()

  // Marks a live slot free (reusable).
  virtual Status Free(uint32_t slot) = 0;

  virtual void UpdateAccess(uint32_t slot, double last_access_at, double access_count) = 0;

  // msync of every dirty mapping and fdatasync of the files.
  virtual Status Sync() = 0;

  // Rewrites the var section without the bytes of freed records. Returns the
  // bytes reclaimed.
  virtual Status Compact(uint64_t* bytes_reclaimed) = 0;

  virtual WarmStats Stats() const = 0;
};

}  // namespace tierstore
