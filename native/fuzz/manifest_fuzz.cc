// libFuzzer target: the MANIFEST file. The input (flags byte + bytes, see
// fuzz_support.h) replaces the seed store's manifest; the store is opened and
// exercised. Must never crash, leak or trip a sanitizer.
#include <cstddef>
#include <cstdint>

#include "fuzz_support.h"

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  tsfuzz::Init();
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  tsfuzz::RunSingleFileInput(data, size, "MANIFEST");
  return 0;
}
