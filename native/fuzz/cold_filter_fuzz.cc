// libFuzzer target: a cold segment's filter file (cold-<id>.filter,
// cold_filter_file.h). The input (flags byte + bytes, see fuzz_support.h)
// replaces the filter file of the seed store's segment number flags >> 3
// (modulo the seed's segment count); with kFlagRepairChecksums its header
// and chunk checksums and its segment's identity are recomputed first, so
// mutations reach what the checks guard.
//
// Two checks per input:
// 1. The loader against the parser: the signatures LoadSignatures gives
//    for each row are the file's (ParseFilterFile of the same bytes) where
//    that row's chunk checks out, else exactly the ones made from the
//    segment's metadata, and it reports as many rows from the file; a
//    rewrite (writable) leaves a file that parses whole and gives those
//    same signatures. Any other outcome aborts with INVARIANT BROKEN.
// 2. The seed store with this file, opened and exercised (ExerciseStore,
//    which runs a metadata-filtered recall): never a crash, a leak or a
//    sanitizer report.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>
#include <vector>

#include "../core/cold_filter_file.h"
#include "../core/cold_format.h"
#include "../core/cold_segment.h"
#include "../core/file_util.h"
#include "fuzz_support.h"

namespace {

namespace cold = tierstore::cold;
using tierstore::MetadataSignature;

[[noreturn]] void Broken(const std::string& what) {
  std::fprintf(stderr, "INVARIANT BROKEN: cold filter file: %s\n", what.c_str());
  std::abort();
}

void CheckLoader(const std::string& dir, const std::string& seg_name, uint32_t id, const std::string& bytes,
                 bool rewrite) {
  std::unique_ptr<cold::Segment> seg;
  if (!cold::OpenSegment(tierstore::JoinPath(dir, seg_name), id, tsfuzz::kSeedDimensions, /*read_only=*/!rewrite,
                         /*verify_crcs=*/true, &seg)
           .ok()) {
    Broken("the seed segment " + seg_name + " does not open");
  }
  const cold::FilterIdentity identity = cold::FilterIdentityOf(seg->base);
  const uint64_t rows = seg->rows;
  std::vector<MetadataSignature> made(rows), parsed(rows);
  for (uint64_t r = 0; r < rows; ++r) {
    bool ok = true;
    const std::string_view m = seg->Bytes(cold::kMetaOffsets, cold::kMetaBytes, r, &ok);
    made[r] = ok ? MetadataSignature::Of(m) : MetadataSignature::All();
  }
  std::vector<bool> valid;
  const bool trusted = cold::ParseFilterFile("fuzz", reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size(),
                                             identity, parsed.data(), &valid)
                           .ok();
  cold::FilterLoad report;
  const auto loaded = cold::LoadSignatures(*seg, rewrite, &report);
  uint64_t from_file = 0;
  for (uint64_t r = 0; r < rows; ++r) {
    const bool from = trusted && valid[r / cold::kFilterRowsPerChunk];
    from_file += from;
    if (!(loaded[r] == (from ? parsed[r] : made[r]))) Broken("row " + std::to_string(r) + " has another signature");
  }
  if (report.rows_from_file != from_file) Broken("rows from the file miscounted");
  if (rewrite && from_file < rows) {
    if (!report.rewrote) Broken("a writable load did not write the file again");
    std::string again;
    if (!tierstore::ReadWholeFile(cold::FilterPathOf(seg->path), &again).ok()) Broken("the rewritten file is gone");
    std::vector<MetadataSignature> reread(rows);
    if (!cold::ParseFilterFile("fuzz", reinterpret_cast<const uint8_t*>(again.data()), again.size(), identity,
                               reread.data(), &valid)
             .ok()) {
      Broken("the rewritten file does not parse");
    }
    for (uint64_t r = 0; r < rows; ++r) {
      if (!valid[r / cold::kFilterRowsPerChunk] || !(reread[r] == loaded[r])) Broken("the rewritten file differs");
    }
  }
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  tsfuzz::Init();
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  tsfuzz::Input in;
  if (!tsfuzz::Input::Parse(data, size, &in)) return 0;
  const std::string seg_name = tsfuzz::SeedColdSegmentName(in.flags >> 3);
  uint32_t id = 0;
  if (tsfuzz::KindOf(seg_name, &id) != tsfuzz::FileKind::kColdSegment) return 0;
  const std::string filter_name = cold::FilterName(id);
  tsfuzz::StoreFiles files = tsfuzz::SeedFiles(in.clean());
  std::string bytes = in.payload;
  if (in.repair()) tsfuzz::RepairColdFilter(&bytes, &files[seg_name]);
  files[filter_name] = bytes;
  {
    tsfuzz::ScratchStore scratch;
    scratch.WriteFiles(files);
    CheckLoader(scratch.dir(), seg_name, id, bytes, /*rewrite=*/!in.read_only());
  }
  tsfuzz::ScratchStore scratch;
  scratch.WriteFiles(files);
  tsfuzz::ExerciseStore(scratch.dir(), in.read_only());
  return 0;
}
