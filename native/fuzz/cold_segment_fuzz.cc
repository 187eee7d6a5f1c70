// libFuzzer target: one cold segment file (cold-<id>.seg: header, column
// directory, columns, deletion bitmap). The input (flags byte + bytes, see
// fuzz_support.h) replaces the seed store's segment number flags >> 3
// (modulo the seed's segment count); with kFlagRepairChecksums the header,
// column and per-row checksums, file size, id and key range are recomputed
// first. Must never crash, leak or trip a sanitizer.
#include <cstddef>
#include <cstdint>

#include "fuzz_support.h"

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  tsfuzz::Init();
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  tsfuzz::RunSingleFileInput(data, size, tsfuzz::SeedColdSegmentName(data[0] >> 3));
  return 0;
}
