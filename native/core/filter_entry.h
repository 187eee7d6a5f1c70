// FilterEntry: what a RecordFilter needs of one record, kept by each tier
// apart from the record (hot: beside its embedding; warm: warm.filter;
// cold: the segment's columns and signatures), so that a filtered scan can
// pass over an excluded record without reading its block, embedding or
// metadata.
//
// Guarantees: RecordFilter::MayMatch(entry) is false only for a record the
// filter excludes; the scalars are the record's own (the filter's scalar
// conditions are decided here exactly), the metadata only by signature (a
// record that passes is confirmed with MatchesMetadata).
// Synchronization: a plain value.
#pragma once

#include <cstdint>

#include "metadata_signature.h"
#include "record.h"

namespace tierstore {

struct FilterEntry {
  double created_at = 0;
  float confidence = 0;
  float activation = 0;
  MetadataSignature signature;

  static FilterEntry Of(const RecordView& v) {
    FilterEntry e;
    e.created_at = v.created_at;
    e.confidence = v.confidence;
    e.activation = v.activation;
    e.signature = MetadataSignature::Of(v.metadata);
    return e;
  }
};

}  // namespace tierstore
