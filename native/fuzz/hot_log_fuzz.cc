// libFuzzer target: the hot tier's write-ahead log (hot.log). The input
// (flags byte + bytes, see fuzz_support.h) replaces the seed store's log; with
// kFlagCleanManifest the manifest says the store was closed cleanly with a log
// of exactly this size (so damage must be CORRUPTION, not a dropped tail),
// otherwise replay treats a torn tail as a crash's. Must never crash, leak or
// trip a sanitizer.
#include <cstddef>
#include <cstdint>

#include "fuzz_support.h"

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  tsfuzz::Init();
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  tsfuzz::RunSingleFileInput(data, size, "hot.log");
  return 0;
}
