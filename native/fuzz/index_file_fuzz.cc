// libFuzzer target: the persisted id index, id.index. The input (flags byte
// + bytes, see fuzz_support.h) replaces the seed store's index; with the
// clean-manifest flag the manifest names the seed index's token, so an
// index that passes its checks is adopted and the store runs on it. Must
// never crash, leak or trip a sanitizer, and (fuzz_support's exercise)
// never answer from an index that does not match the data.
#include <cstddef>
#include <cstdint>

#include "fuzz_support.h"

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  tsfuzz::Init();
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  tsfuzz::RunSingleFileInput(data, size, "id.index");
  return 0;
}
