// cold-<id>.filter: the metadata signatures (metadata_signature.h) of every
// row of one cold segment, kept beside it, so that the first filtered scan
// of a segment after an open reads 16 bytes a row from here instead of
// parsing every row of the segment's metadata column. Its bytes:
// docs/format/cold-filter.md (format version 1). Private to native/core.
//
// Guarantees:
// - Derived data, never a different answer: LoadSignatures uses the file only
//   when its header checks out against the segment it is loaded for (segment
//   id, row count, segment file size, key range and the checksum of the
//   segment's header, which covers its per-row checksums: a segment
//   rewritten under the same id has another), and only the chunks whose
//   checksum holds. Every other row's signature is made from the segment's
//   metadata column, as without the file. A missing or damaged file is never
//   an error by itself.
// - Written whole: WriteFilterFile writes <name>.tmp (fdatasync when
//   durable) and renames it over <name>, so the name holds an old file or a
//   complete new one. A crash leaves at most a stale cold-*.tmp, which the
//   tier's FinishOpen removes with those of segments.
// - Opening a store reads no filter file: LoadSignatures runs at the first
//   filtered scan of a segment.
// - The memory LoadSignatures returns is the caller's; nothing here keeps a
//   pointer into it or into the segment.
//
// Synchronization: none; functions over files and bytes. Callers serialize
// the writers of one segment's file (the cold tier's seal lock for a seal,
// the segment's signatures mutex for a rewrite by LoadSignatures) and keep
// the segment alive and its file in place meanwhile (the tier's lock).
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <unordered_set>
#include <vector>

#include "metadata_signature.h"
#include "status.h"

namespace tierstore::cold {

struct Segment;
class RowSource;

constexpr uint32_t kFilterFormatVersion = 1;
constexpr uint64_t kFilterHeaderBytes = 64;
// Rows per checksummed chunk: a damaged chunk costs its rows only.
constexpr uint64_t kFilterRowsPerChunk = 4096;

// "cold-<id, 8 lowercase hex digits>.filter", and its parse (exactly that form).
std::string FilterName(uint32_t id);
bool ParseFilterName(const std::string& name, uint32_t* id);
// The filter file's path for a segment file's path (…/cold-<id>.seg).
std::string FilterPathOf(const std::string& segment_path);

// What a filter file is made for: fields of the segment's header.
struct FilterIdentity {
  uint32_t segment = 0;
  uint64_t rows = 0;
  uint64_t segment_size = 0;
  uint64_t min_key = 0, max_key = 0;
  uint32_t header_crc = 0;  // the segment header's CRC-32C, as stored in it
  bool operator==(const FilterIdentity& o) const {
    return segment == o.segment && rows == o.rows && segment_size == o.segment_size && min_key == o.min_key &&
           max_key == o.max_key && header_crc == o.header_crc;
  }
};
// From the kHeaderSize bytes of a segment's header (cold_format.h).
FilterIdentity FilterIdentityOf(const uint8_t* segment_header);

// Bytes of the file for `rows` rows, and its chunk count.
uint64_t FilterChunks(uint64_t rows);
uint64_t FilterFileSize(uint64_t rows);

// The file's bytes for sigs[0 .. id.rows).
std::string EncodeFilterFile(const FilterIdentity& id, const MetadataSignature* sigs);

// Writes EncodeFilterFile(id, sigs) to path (see Guarantees). The directory
// is not synced: the caller does, when durable. On failure neither path nor
// path.tmp remains (an older file at path is removed too).
Status WriteFilterFile(const std::string& path, const FilterIdentity& id, const MetadataSignature* sigs,
                       bool durable);

// Parses a filter file's bytes for the segment `expect`: CORRUPTION naming
// path and the reason when the header is not trusted (bad magic, version,
// checksum, identity or size), and nothing is copied. Otherwise OK, the
// signatures of each chunk whose checksum holds are copied into
// out[c * kFilterRowsPerChunk ..] and (*chunk_valid)[c] says which did
// (FilterChunks(expect.rows) entries). out holds expect.rows entries.
Status ParseFilterFile(const std::string& path, const uint8_t* data, size_t size, const FilterIdentity& expect,
                       MetadataSignature* out, std::vector<bool>* chunk_valid);

// What LoadSignatures did (for tests and the fuzz target).
struct FilterLoad {
  uint64_t rows_from_file = 0;  // rows whose signature came from the file
  bool rewrote = false;         // the file was written again
};

// The signature of every row of `seg` (see Guarantees): the file's where it
// is trusted, the others made from the metadata column (a row whose offsets
// are out of range gets every bit: the exact check reports it). When any
// row had to be made and `rewrite`, the file is written again, durably
// (file and directory synced); a failure to write is ignored and leaves no
// file, so the next open makes them again.
std::unique_ptr<MetadataSignature[]> LoadSignatures(const Segment& seg, bool rewrite, FilterLoad* report = nullptr);

// For a seal: writes the filter file of the segment just renamed into
// place at segment_path, from its rows `src` (their metadata), fdatasynced
// when durable; the caller's directory sync covers its rename with the
// segment's. Best effort, like every write of derived data: on failure no
// filter file of that segment remains, and its first filtered scan makes
// the signatures from the segment.
void WriteFilterForSeal(const std::string& segment_path, const RowSource& src, bool durable);

// Removes the filter file of the segment at segment_path, before the
// segment's own file goes; a failure is ignored (FinishOpen removes it).
void RemoveFilterOf(const std::string& segment_path);

// Whether `name`, listed in a directory whose entries are `names`, is a
// filter file without its segment (a crash between unlinking a segment and
// its filter file, or a filter rename that reached the disk before its
// segment's did): FinishOpen removes those.
bool IsOrphanFilter(const std::string& name, const std::unordered_set<std::string>& names);

}  // namespace tierstore::cold
