// libFuzzer target: the warm tier's block file (warm.blocks: header page,
// fixed-size blocks with states, checksums and var-file locations). The input
// (flags byte + bytes, see fuzz_support.h) replaces the seed store's file;
// with kFlagRepairChecksums every live block's checksums are recomputed
// against the seed's var file first. Must never crash, leak or trip a
// sanitizer.
#include <cstddef>
#include <cstdint>

#include "fuzz_support.h"

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  tsfuzz::Init();
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  tsfuzz::RunSingleFileInput(data, size, "warm.blocks");
  return 0;
}
