// Shared machinery of the libFuzzer targets in native/fuzz (*_fuzz.cc) and
// of the seed-corpus generator (seed_corpus.cc).
//
// Every target turns one fuzzer input into the files of a store directory,
// opens that store through the public core API (Store::Open) and reads and
// writes everything it can reach. The engine may refuse the files with any
// error; what it must never do is crash, leak memory or file descriptors,
// or trip AddressSanitizer / UBSan. That is what each target checks.
//
// Input layout (the store targets): byte 0 holds flags (kFlag* below), the
// rest is the payload — the bytes of one store file, or for store_open_fuzz
// a list of named files (see store_open_fuzz.cc). utf16_fuzz, which tests
// the string converter and opens no store, reads its own layout.
//
// Guarantees:
// - The "other" files of a store (those the input does not replace) come
//   from a small seed store that the engine itself writes once per process,
//   deterministically, with records in all three tiers, batches, deletes,
//   access updates, moves, a warm compaction and several cold segments.
// - Each input runs in a fresh directory under /dev/shm (else $TMPDIR, else
//   /tmp) that is removed before the next input; directories left by a
//   crashed fuzzer process are removed when the next one starts.
// - A file descriptor still open after an input (the store was released) is
//   reported as a leak and aborts, so libFuzzer records the input.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace tsfuzz {

// Dimensions of the seed store.
constexpr uint32_t kSeedDimensions = 16;

// Flags in byte 0 of every input.
constexpr uint8_t kFlagRepairChecksums = 1;  // recompute checksums, so mutations get past them
constexpr uint8_t kFlagReadOnly = 2;         // open the store read-only
constexpr uint8_t kFlagCleanManifest = 4;    // keep the seed's clean-shutdown manifest (else: crashed store)

// File name -> content, one store directory.
using StoreFiles = std::map<std::string, std::string>;

// Called once per process (LLVMFuzzerInitialize): removes leftovers of dead
// fuzzer processes, makes this process's scratch base, builds the seed store.
void Init();

// The seed store's files. clean: the manifest as the engine left it after a
// clean close; otherwise a manifest marked not clean (a crash), so that open
// runs crash recovery and does not insist on the closed-time inventory.
const StoreFiles& SeedFiles(bool clean);

// Writes the seed store into dir (which must not exist or be empty) and
// reads every file back into *out. Deterministic: same bytes every run.
// Returns false (after printing why) if the engine failed.
bool BuildSeedStore(const std::string& dir, StoreFiles* out);

// One input's store directory: created fresh by the constructor, removed
// with everything in it by the destructor, which also checks that no file
// descriptor opened meanwhile is still open.
class ScratchStore {
 public:
  ScratchStore();
  ~ScratchStore();
  ScratchStore(const ScratchStore&) = delete;
  ScratchStore& operator=(const ScratchStore&) = delete;

  const std::string& dir() const { return dir_; }
  void WriteFiles(const StoreFiles& files) const;

 private:
  std::string dir_;
  int fds_before_ = 0;
};

// Opens the store in dir and exercises the public API: counts, stats, a full
// iteration, list pages by cursor and offset in every tier, get/has of what
// was seen, recall; when writable also put, delete, move, migrate, flush,
// compact, then a clean close and a second open that must succeed (a store
// the engine opened and closed cleanly must open again). Any error status is
// accepted; broken invariants (an iteration that ends without error but
// yields a different number of records than counts() reports, a failed
// reopen) abort with a message.
// dimensions: passed to Store::Open (0: read them from the manifest).
void ExerciseStore(const std::string& dir, bool read_only, uint32_t dimensions = 0);

// Checksum repair: recompute what the engine verifies so a mutated file gets
// past the checksums to the parsing behind them. Each works on whatever
// bytes it is given (never reads or writes outside them).
void RepairManifest(std::string* manifest);
void RepairHotLog(std::string* log);
// var_files: generation -> content of warm-var-<gen>.dat, used to recompute
// each live block's data checksum (blocks whose extent is not there keep
// theirs). Version 3 keeps key_crc and data_crc in each extent's prefix:
// those are recomputed in *var_files.
void RepairWarmBlocks(std::string* blocks, std::map<uint32_t, std::string>* var_files);
void RepairWarmVar(std::string* var, uint32_t generation);
void RepairColdSegment(std::string* segment, uint32_t segment_id);
// A cold filter file: its header and chunk checksums and, when its
// segment's bytes are given, the identity of that segment.
void RepairColdFilter(std::string* filter, const std::string* segment);
void RepairIndexFile(std::string* index);

// What kind of store file a name is, and its number (var generation or
// segment id) where it has one.
enum class FileKind { kManifest, kHotLog, kWarmBlocks, kWarmVar, kColdSegment, kColdFilter, kIndex, kOther };
FileKind KindOf(const std::string& name, uint32_t* number);

// Applies the right Repair* to every file of the set (warm blocks against
// the set's var files).
void RepairAll(StoreFiles* files);

// The flags byte and payload of an input.
struct Input {
  uint8_t flags = 0;
  std::string payload;
  static bool Parse(const uint8_t* data, size_t size, Input* out);
  bool repair() const { return flags & kFlagRepairChecksums; }
  bool read_only() const { return flags & kFlagReadOnly; }
  bool clean() const { return flags & kFlagCleanManifest; }
};

// The shared body of the single-file targets: the seed store with file
// `name` replaced by the payload (repaired when asked), opened and exercised.
void RunSingleFileInput(const uint8_t* data, size_t size, const std::string& name);

// A set of named files in one fuzzer payload (store_open_fuzz): repeated
// { u8 name index into FileSetNames(), u24 little-endian length, bytes }; a
// last entry cut short keeps what is there; a repeated name: the last wins.
const std::vector<std::string>& FileSetNames();
StoreFiles DecodeFileSet(const std::string& payload);
// Files whose name is not in FileSetNames() are left out (and reported).
std::string EncodeFileSet(const StoreFiles& files);

// The name of the seed store's only warm var file and of its i-th cold
// segment (modulo the segment count).
std::string SeedVarFileName();
std::string SeedColdSegmentName(size_t i);
size_t SeedColdSegmentCount();

}  // namespace tsfuzz
