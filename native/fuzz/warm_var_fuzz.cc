// libFuzzer target: the warm tier's variable-length section
// (warm-var-<gen>.dat: header page, then id/content/metadata extents). The
// input (flags byte + bytes, see fuzz_support.h) replaces the seed store's
// var file; with kFlagRepairChecksums the header and the blocks' data
// checksums are recomputed against it, so reads accept the fuzzed bytes.
// Must never crash, leak or trip a sanitizer.
#include <cstddef>
#include <cstdint>
#include <string>

#include "fuzz_support.h"

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  tsfuzz::Init();
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const std::string name = tsfuzz::SeedVarFileName();
  tsfuzz::RunSingleFileInput(data, size, name);
  return 0;
}
