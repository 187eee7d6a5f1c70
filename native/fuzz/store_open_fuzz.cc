// libFuzzer target: a whole store directory. The payload is a file set
// (fuzz_support.h: name index, length, bytes — any mix of store files,
// missing ones, leftover .tmp files, stray names). Flags byte:
//   kFlagRepairChecksums  recompute the checksums of every file in the set
//   kFlagReadOnly         open read-only
//   8                     start from the seed store (kFlagCleanManifest picks
//                         its clean or crashed manifest), then apply the set
//   16                    pass dimensions to open (may create a new store)
// Must never crash, leak or trip a sanitizer.
#include <cstddef>
#include <cstdint>

#include "fuzz_support.h"

namespace {
constexpr uint8_t kFlagStartFromSeed = 8;
constexpr uint8_t kFlagPassDimensions = 16;
}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  tsfuzz::Init();
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  tsfuzz::Input in;
  if (!tsfuzz::Input::Parse(data, size, &in)) return 0;
  tsfuzz::StoreFiles files;
  if (in.flags & kFlagStartFromSeed) files = tsfuzz::SeedFiles(in.clean());
  for (auto& [name, bytes] : tsfuzz::DecodeFileSet(in.payload)) files[name] = std::move(bytes);
  if (in.repair()) tsfuzz::RepairAll(&files);
  tsfuzz::ScratchStore scratch;
  scratch.WriteFiles(files);
  tsfuzz::ExerciseStore(scratch.dir(), in.read_only(),
                        (in.flags & kFlagPassDimensions) ? tsfuzz::kSeedDimensions : 0);
  return 0;
}
