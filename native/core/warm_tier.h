// WarmTier: records in memory-mapped fixed-size blocks (warm.blocks: the
// scalars, checksums and embedding of each, one slot per record) plus a
// variable-length file (warm-var-<gen>.dat: the id, content and metadata
// bytes). The bytes of both are in docs/format/warm.md (block format
// version 3); a file of another version is CORRUPTION "unsupported format
// version". Compact writes generation gen+1 of the var file, repoints the
// blocks, then deletes generation gen.
//
// Guarantees:
// - Open has no side effects: it reads and maps the files and reports every
//   inconsistency, but never creates, writes, renames or removes anything,
//   so an open that fails (here or later in the Store) leaves the directory
//   exactly as it was. Mutations that recovery needs (retiring blocks left
//   "writing" by a crash, creating the current var file, removing
//   unreferenced var generations and stale tmp files) are deferred to
//   FinishOpen(). A new store's warm.blocks is written by Create().
// - Growth: files grow in fixed chunks, each mapped by its own MappedRegion;
//   a mapping is never moved or unmapped while the tier is open, so every
//   pointer handed out stays valid until Close()/destruction -- except that
//   var bytes of a slot are invalid after Free(slot) is followed by reuse of
//   the slot, or after Compact() (which also rewrites the location word of
//   every live block in place); callers hold the store's
//   exclusive lock across both, so no reader holds such pointers then.
// - Crash safety: Insert writes the var bytes and the whole block with state
//   "writing", then publishes it by one aligned 4-byte store of state "live",
//   then (for a slot at/above the high-water mark) raises the mark by one
//   aligned 8-byte store into the header page. Free is one aligned store of
//   state "free". Compact repoints a block by one aligned 8-byte store of
//   its location word after the new var file is durable. A SIGKILL at any
//   point leaves every block either free/writing (ignored on open) or live
//   and complete, on the old or the new var file (FreeLater defers the
//   "free" store to PublishFrees: until then a crash leaves the block live,
//   for the Store's recovery to drop); a live block just above the mark
//   (killed between publish and raise) is accepted. Every acknowledged
//   insert is below the mark. Open reads no block past the first
//   never-written one at or above the mark (nothing past it was ever
//   written), so a large, mostly empty file costs no page cache. Against
//   power loss the ordering holds only after Sync() (chunks are msync'd
//   before the header page); a block written since may reach the disk as
//   zeros while the raised mark does, which an open after a crash excuses
//   at or above the covered mark (see CoverAll), and its var extent may be
//   lost, which ForEachLive hands to TornCopyPolicy when the record has
//   another copy; and a block above the mark may reach the disk while the
//   mark does not, which is ignored when a never-written block precedes it
//   (its record has a copy elsewhere: the mark covers a block before the
//   Store drops another copy).
// - Checksums (which bytes each covers: docs/format/warm.md): Open verifies
//   every live block's header and key checksums (the latter in the var
//   file); Read verifies the data checksum always and the embedding's when
//   asked. Any mismatch, any offset outside its file, any file of the wrong
//   size, a zeroed block below the high-water mark, a mark beyond the file's
//   slots, a block file of other dimensions (another store's file) or of an
//   unknown version is CORRUPTION naming the file.
// - Deleted slots are reused (lowest free slot first), so the slots ever
//   used are always a prefix [0, mark).
//
// Synchronization: none inside. The Store serializes mutations (FinishOpen,
// Insert, Free, Compact, UpdateAccess) against each other and against readers
// with its own lock; concurrent Read calls and scans are safe with each
// other. Compact's in-place location stores are atomic so that even a racing
// reader would see the old or the new location, never a mix, but the Store
// does not rely on it (it holds readers off).
#pragma once

#include <cstdint>
#include <cstring>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "record.h"
#include "status.h"
#include "warm_filter_array.h"

namespace tierstore {

struct WarmStats {
  uint64_t live_records = 0;
  uint64_t slots = 0;             // allocated slots (live + free)
  uint64_t block_file_bytes = 0;
  uint64_t var_file_bytes = 0;
  uint64_t var_live_bytes = 0;    // bytes of var section referenced by live blocks
                                  // (each extent's 20-byte prefix included)
  uint64_t high_water_mark = 0;   // slots ever used (persisted in the header page)
};

// What an open learns by scanning every block and var extent, as a clean
// close leaves it: with it, Open reads only the header page (see
// WarmTier::Open). Kept in the persisted index (docs/format/index.md).
struct WarmOpenState {
  uint64_t live = 0;            // live blocks
  uint32_t scan_limit = 0;      // every live slot is below it
  std::vector<uint32_t> free_slots;  // ascending: the slots below scan_limit that are not live
  struct VarTail {
    uint32_t gen = 0;           // a var generation live blocks reference
    uint64_t tail = 0;          // one past its last referenced byte
  };
  std::vector<VarTail> var_tails;  // ascending by gen
  uint64_t var_live_bytes = 0;
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

// The block fields a similarity scan reads in place (the full layout is in
// docs/format/warm.md; warm_tier.cc takes these constants from here). The
// embedding's offset is WarmRun::embedding_offset. Accessors take a pointer
// to the start of a block inside a WarmRun.
namespace warm_block {
constexpr size_t kStateOffset = 0;
constexpr size_t kCreatedAtOffset = 16;
constexpr size_t kConfidenceOffset = 52;
constexpr size_t kActivationOffset = 56;
constexpr size_t kNormOffset = 60;
constexpr uint32_t kStateLive = 0x41564C4Cu;  // "LLVA"

inline bool IsLive(const uint8_t* block) {
  return __atomic_load_n(reinterpret_cast<const uint32_t*>(block + kStateOffset), __ATOMIC_ACQUIRE) == kStateLive;
}
inline float LoadFloat(const uint8_t* p) {
  float v;
  std::memcpy(&v, p, sizeof v);
  return v;
}
inline float Norm(const uint8_t* block) { return LoadFloat(block + kNormOffset); }
inline float Confidence(const uint8_t* block) { return LoadFloat(block + kConfidenceOffset); }
inline float Activation(const uint8_t* block) { return LoadFloat(block + kActivationOffset); }
inline double CreatedAt(const uint8_t* block) {
  double v;
  std::memcpy(&v, block + kCreatedAtOffset, sizeof v);
  return v;
}
}  // namespace warm_block

// Consecutive slots [first_slot, first_slot + count) of one mapped chunk:
// block i of the run starts at base + i * block_size. For scans; valid while
// the tier is open and the caller holds off mutations (the Store's lock).
struct WarmRun {
  const uint8_t* base = nullptr;
  uint32_t first_slot = 0;
  uint32_t count = 0;
  uint32_t block_size = 0;
  uint32_t embedding_offset = 0;  // of the embedding within a block (64-byte aligned)
  // Slots freed by FreeLater whose blocks still read as live: a bit per
  // slot, `pending_words` words (null when there are none). Scans skip them.
  const uint64_t* pending = nullptr;
  size_t pending_words = 0;

  bool PendingFree(uint32_t slot) const {
    return pending != nullptr && slot / 64 < pending_words && ((pending[slot / 64] >> (slot % 64)) & 1) != 0;
  }
  // The tier's own record of which slots are free (a bit per slot; pending
  // frees included). A slot it holds live whose block does not read live is
  // damage (an open from the persisted index reads no block).
  const uint64_t* free_bits = nullptr;
  bool Free(uint32_t slot) const { return ((free_bits[slot / 64] >> (slot % 64)) & 1) != 0; }
};

class WarmTier {
 public:
  static constexpr const char* kBlockFileName = "warm.blocks";
  static constexpr const char* kVarFilePrefix = "warm-var-";

  virtual ~WarmTier() = default;

  // Writes a fresh, empty warm.blocks into dir (creating dir when absent)
  // for a NEW store, atomically (write tmp, fsync, rename, fsync dir).
  // INVALID_ARGUMENT when warm.blocks already exists (never overwrites a
  // store's blocks) or for dimensions outside 1..kMaxDimensions.
  static Status Create(const std::string& dir, uint32_t dimensions);

  // Opens the warm files in dir without changing any file (see Guarantees).
  // A missing warm.blocks is CORRUPTION (Create makes it for new stores);
  // one with other dimensions is CORRUPTION too (it belongs to another
  // store). read_only never writes a file: the blocks are mapped privately
  // (copy-on-write), so UpdateAccess keeps the statistics in this process's
  // memory only (or, when the kernel will not commit private pages, not at
  // all). A writable tier accepts no mutation until FinishOpen().
  static Status Open(const std::string& dir, uint32_t dimensions, bool read_only,
                     std::unique_ptr<WarmTier>* out);
  // after_crash: the store was not closed cleanly, so a zeroed block at or
  // above the covered mark (see CoverAll) is one a power cut kept from the
  // disk, and reads as never written instead of CORRUPTION.
  static Status Open(const std::string& dir, uint32_t dimensions, bool read_only, bool after_crash,
                     std::unique_ptr<WarmTier>* out);
  // known: the state a clean close exported (OpenState), trusted instead of
  // scanning the blocks and var extents, so the open reads the header page
  // and maps the files without reading a block; blocks are then checked as
  // they are read (Read, Peek). CORRUPTION when the state does not fit the
  // files (more slots than the file holds, a var file missing or shorter
  // than its tail): the caller then opens without it.
  static Status Open(const std::string& dir, uint32_t dimensions, bool read_only, bool after_crash,
                     const WarmOpenState* known, std::unique_ptr<WarmTier>* out);

  // The state an open without scanning needs (see WarmOpenState). Exact only
  // after Sync() with no write since (a clean close).
  virtual WarmOpenState OpenState() const = 0;

  // Performs the mutations Open deferred: publishes "free" for blocks left
  // "writing" by a crash, raises the high-water mark over slots written
  // just above it, creates the current var file when none is usable,
  // removes unreferenced var generations and stale warm*.tmp files, and
  // fsyncs the directory when it removed something. Call it once the whole
  // store has opened and recovery's reads succeeded, before any Insert, Free,
  // Compact or UpdateAccess (before it, those return INVALID_ARGUMENT or, for
  // UpdateAccess, keep nothing). Idempotent; safe to retry after a failure;
  // a no-op for read-only tiers (which never need it).
  virtual Status FinishOpen() = 0;

  // Recovery after a crash that may have been a power loss: blocks written
  // since the last Sync() may be torn (their pages reach the disk in any
  // order). A live block whose header verifies and whose seq
  // source_survives() vouches for (another durable copy of that exact
  // version exists, e.g. in the hot log) is verified in full -- var extent,
  // data and embedding checksums -- and when that fails it goes to on_torn
  // instead of fn, for the caller to drop, rather than failing the scan.
  struct TornCopyPolicy {
    std::function<bool(uint64_t seq)> source_survives;
    std::function<void(uint32_t slot)> on_torn;
  };

  // Calls fn for every live block in slot order (used once, at open, to build
  // the store's index). Verifies each live block's header_crc (and, for
  // blocks `torn` vouches for, everything; see TornCopyPolicy).
  // The view's string_views and embedding point into the mapping.
  virtual Status ForEachLive(const std::function<Status(uint32_t slot, const RecordView&)>& fn,
                             const TornCopyPolicy* torn = nullptr) = 0;

  // What the store's index needs of every live block, in slot order: as
  // ForEachLive(fn on the view's id and seq, torn), and fn's id likewise
  // points into the mapping. After a clean open, and before any write, it
  // hands over what the open already read and verified instead of reading
  // every block and extent again.
  virtual Status ForEachLiveKey(const std::function<Status(uint32_t slot, std::string_view id, uint64_t seq)>& fn,
                                const TornCopyPolicy* torn = nullptr) = 0;

  // Stores a copy of rec (including its seq and access statistics) in a free
  // or new slot. rec.norm is stored as given.
  virtual Status Insert(const RecordView& rec, uint32_t* slot) = 0;

  // Fills *out with views into the mapping for a live slot. Verifies
  // data_crc, and embedding_crc when verify_embedding.
  virtual Status Read(uint32_t slot, bool verify_embedding, RecordView* out) const = 0;
  // Read without the data and embedding checksums (the block's header and
  // the extent's bounds are still checked, so damage cannot send it outside
  // the mappings): for scans that only look at a record to decide whether
  // to read it, such as a filter. What a caller returns is read with Read.
  virtual Status Peek(uint32_t slot, RecordView* out) const = 0;

  // Cheap: the embedding pointer, norm and scalars of a live slot, no checks
  // (for similarity scans and migration choice).
  virtual const float* Embedding(uint32_t slot) const = 0;
  virtual WarmScalars Scalars(uint32_t slot) const = 0;

  // From the tier's free bits, not the block: a live slot whose block is
  // damaged is still live here, and Read reports the damage.
  virtual bool IsLive(uint32_t slot) const = 0;
  // Checks what no record's read does: every block below the high-water
  // mark has a valid state (a zeroed one there is what an open that
  // rebuilds the index refuses), and no block reads live where the tier
  // holds the slot free (a rebuild would bring its record back). fn(file,
  // reason) for each slot that fails.
  virtual void VerifyBlocks(const std::function<void(const std::string& file, const std::string& reason)>& fn) const = 0;
  // Advice for a scan about to read the live slots of [first_slot,
  // first_slot + count): start reading their blocks and the var bytes they
  // reference (the mappings read no ahead by themselves; see AdviseRandom).
  virtual void WillNeed(uint32_t first_slot, uint32_t count) const = 0;
  virtual uint32_t SlotLimit() const = 0;  // every live slot is < SlotLimit()

  // Appends runs covering every slot that may be live, in slot order (the
  // slots ever used; free slots among them are skipped by the caller with
  // warm_block::IsLive and WarmRun::PendingFree). No checks: for similarity
  // scans.
  virtual void ScanRuns(std::vector<WarmRun>* out) const = 0;

  // The filter entries of the slots (warm_filter_array.h), for filtered
  // scans: those AdoptFilterFile took, or else made from every live block
  // and its var bytes on the first call (a block that does not read back is
  // left unknown: the caller reads it), kept current by Insert from then on.
  // The view is valid until the next Insert. Safe to call from concurrent
  // readers.
  virtual WarmFilterArray::View FilterEntries() const = 0;
  // Right after an open from the persisted index whose token the manifest
  // named: takes warm.filter when it was written by that same clean close
  // (mapping it, reading its header page only). Otherwise (no file, another
  // close's, damaged) nothing changes, and the status says why.
  virtual Status AdoptFilterFile(uint64_t store_id, uint64_t token) = 0;
  // At a clean close, after Sync, with the token the clean manifest will
  // name: writes warm.filter when the entries were made, else removes a
  // stale one (see WarmFilterArray::WriteFile).
  virtual Status WriteFilterFile(uint64_t store_id, uint64_t token, bool durable) = 0;

  // Marks a live slot free (reusable).
  virtual Status Free(uint32_t slot) = 0;

  // Marks a live slot free (reusable) in memory at once -- IsLive, scans,
  // counts and Insert see it free -- but leaves its block reading "live" on
  // disk until PublishFrees, so the call touches no page of the file: the
  // first store into a clean mapped page is a write fault, most of an
  // upsert's time here. Only for a slot whose record a later entry in the
  // hot log supersedes (an upsert's new version, a delete's tombstone):
  // recovery then drops the stale block. The caller must PublishFrees
  // before that entry can leave the log (a log checkpoint). Sync and
  // Compact publish first themselves. At most kMaxPendingFrees wait; the
  // call past that publishes them all.
  virtual Status FreeLater(uint32_t slot) = 0;
  static constexpr size_t kMaxPendingFrees = 4096;

  // Stores the "free" state of every slot FreeLater left pending.
  virtual void PublishFrees() = 0;
  virtual size_t PendingFrees() const = 0;

  virtual void UpdateAccess(uint32_t slot, double last_access_at, double access_count) = 0;

  // PublishFrees, msync of every dirty mapping and fdatasync of the files;
  // then raises the covered mark to the high-water mark, durably.
  virtual Status Sync() = 0;

  // Raises the covered mark to the high-water mark without syncing. The
  // Store calls this (or Sync) before it drops the other copy of records
  // it put in warm -- a log checkpoint, the source of a move -- so that a
  // zeroed block after a crash is excused only while its record has a copy
  // elsewhere.
  virtual void CoverAll() = 0;

  // PublishFrees, then rewrites the var section without the bytes of freed
  // records. Returns the bytes reclaimed.
  virtual Status Compact(uint64_t* bytes_reclaimed) = 0;

  virtual WarmStats Stats() const = 0;

  // At a clean close, after Sync, with nothing reading the tier any more:
  // unmaps its files and cuts the current var file back to its last record
  // (page-rounded; to its header page when no record is live), giving back
  // what growth preallocated past it (up to 64 MiB). The tier then only
  // awaits destruction. Best effort: a file left longer reads the same.
  // Nothing is cut while a live record's extent failed its check at open
  // (a torn copy after a crash): the tail does not count its bytes.
  virtual void TrimAtClose() = 0;
};

}  // namespace tierstore
