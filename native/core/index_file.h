// IndexFile: the persisted id index, the file id.index (its bytes:
// docs/format/index.md). A clean close writes the index of the warm and
// cold records (id -> Location) with the warm tier's open state and a
// random token, then the clean manifest naming that token; an open whose
// manifest is clean and names the file's token maps the file privately and
// adopts its slots (IdIndex::Adopt) instead of reading every warm block and
// cold row. Hot records are not in it: the hot log holds them.
//
// Guarantees:
// - Written whole to id.index.tmp and renamed over id.index (fsynced first
//   when durable), so the file is the old one or the new one, never a mix.
// - ParseIndexFile checks everything before anything is used: sizes and
//   offsets, both checksums (the header's and the body's), every occupied
//   slot's id reference and location shape, the entry counts. A file that
//   fails is reported, never adopted; the caller rebuilds the index from the
//   data. Whether the entries agree with the tiers is for the caller to
//   check (the manifest's token, the counts).
// - The adopted memory stays valid as long as the IdIndex that adopted it
//   (it holds the mapping).
//
// Synchronization: none; the Store calls these with its mutex held
// exclusively.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "id_index.h"
#include "location.h"
#include "status.h"
#include "warm_tier.h"

namespace tierstore {

constexpr const char* kIndexFileName = "id.index";

struct IndexFileInfo {
  uint64_t store_id = 0;
  uint64_t token = 0;       // the clean manifest written after it names it
  uint64_t sequence = 0;    // the store's sequence number at the close
  uint64_t warm_count = 0;  // entries with a warm location
  uint64_t cold_count = 0;  // entries with a cold location
  WarmOpenState warm;
};

// Why an index could not be used (the stats' indexRebuildReason).
enum class IndexRejection { kNone, kMissing, kUnclean, kDamaged, kStale, kFormat };
const char* IndexRejectionName(IndexRejection r);

// Views into a file's bytes (which must outlive them).
struct ParsedIndexFile {
  IndexFileInfo info;
  uint8_t* slots = nullptr;  // capacity slots of IdIndex<Location>::kSlotBytes
  uint64_t capacity = 0;
  uint64_t entries = 0;
  std::vector<std::pair<char*, size_t>> chunks;  // the id chunks
};

// Checks and parses a whole file (see Guarantees). On failure *rejection
// says why (kDamaged, kFormat for another format version, kStale for one
// written by a build whose id hash differs) and the status names the file.
Status ParseIndexFile(const std::string& path, uint8_t* data, size_t size, uint32_t dimensions, ParsedIndexFile* out,
                      IndexRejection* rejection);

// Writes `lower` (every entry warm or cold) and info as dir/id.index.
// *file_bytes receives the file's size.
Status WriteIndexFile(const std::string& dir, uint32_t dimensions, const IdIndex<Location>& lower,
                      const IndexFileInfo& info, bool durable, uint64_t* file_bytes);

// Maps dir/id.index privately, parses it and makes *index adopt it.
// kMissing when there is no file. Reads the whole file once (its checksum).
Status LoadIndexFile(const std::string& dir, uint32_t dimensions, IdIndex<Location>* index, IndexFileInfo* info,
                     uint64_t* file_bytes, IndexRejection* rejection);

}  // namespace tierstore
