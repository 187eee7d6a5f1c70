// libFuzzer target: RecordFilter (native/core/record_filter.h), which reads
// metadata JSON text from every tier's records, including damaged ones, and
// the condition text the binding passes. Any text must be parsed or refused
// without reading past its end, and matching must not depend on anything but
// the text (the same answer twice). The record's metadata signature
// (metadata_signature.h) must never exclude a record the matcher matches.
//
// Input: byte 0 is the length of the condition text (0..255 bytes, cut to
// what is there); the rest is a record's metadata text. A condition text
// that does not parse is replaced by a fixed one, so the matcher runs on
// every input.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>

#include "../core/record_filter.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const size_t spec_len = data[0] < size - 1 ? data[0] : size - 1;
  // Exactly sized heap copies, so AddressSanitizer sees a read past either end.
  std::string spec_text(reinterpret_cast<const char*>(data + 1), spec_len);
  std::string metadata(reinterpret_cast<const char*>(data + 1 + spec_len), size - 1 - spec_len);

  tierstore::RecordFilter::Spec spec;
  spec.metadata_json = spec_text;
  tierstore::RecordFilter filter;
  if (!tierstore::RecordFilter::Parse(spec, &filter).ok()) {
    spec.metadata_json = R"({"user":["ann",1,true,null],"tags":["x\u00e9"]})";
    if (!tierstore::RecordFilter::Parse(spec, &filter).ok()) abort();
  }
  const bool first = filter.MatchesMetadata(metadata);
  if (filter.MatchesMetadata(metadata) != first) abort();
  if (first && !filter.MayMatchSignature(tierstore::MetadataSignature::Of(metadata))) abort();
  return 0;
}
