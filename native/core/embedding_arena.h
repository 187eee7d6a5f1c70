// EmbeddingArena: the embeddings of hot records, back to back in large chunks.
//
// A similarity scan reads rows contiguously here, rather than chasing a
// pointer per record to rows scattered across the heap. The arena keeps
// them in chunks of a few MiB (row-major, stride =
// dimensions, 64-byte aligned chunk start, transparent huge pages advised),
// with a small info entry per row (owner key, norm, what a filter reads) so
// a scan never touches the records themselves.
//
// Guarantees:
// - A row's address never changes while it is allocated; chunks are freed
//   only when the arena is destroyed.
// - Released rows are reused (last released first); a chunk's `used` count
//   is its high-water mark, and rows below it that are free have key 0.
//
// Synchronization: none inside. The Store serializes Allocate/Release and
// info updates against scans with its own lock (exclusive for mutation,
// shared for scans).
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "filter_entry.h"

namespace tierstore {

class EmbeddingArena {
 public:
  // What a scan needs of a row without touching its record. key 0: free.
  struct RowInfo {
    uint64_t key = 0;
    float norm = 0.0f;
    float confidence = 0.0f;
    FilterEntry filter;  // the record's scalars and metadata signature
  };
  // One chunk as a scan sees it: rows [0, used) of `rows` (stride = dims).
  struct ChunkView {
    const float* rows;
    const RowInfo* info;
    uint32_t used;
  };

  explicit EmbeddingArena(uint32_t dims);
  ~EmbeddingArena();
  EmbeddingArena(const EmbeddingArena&) = delete;
  EmbeddingArena& operator=(const EmbeddingArena&) = delete;

  // A row for a new record (its info zeroed). Throws std::bad_alloc when
  // memory runs out, like the rest of the hot tier's allocations.
  uint32_t Allocate();
  // Never throws: destructors call it.
  void Release(uint32_t row) noexcept;

  float* Row(uint32_t row) { return chunks_[row / rows_per_chunk_].rows + size_t{row % rows_per_chunk_} * dims_; }
  const float* Row(uint32_t row) const {
    return chunks_[row / rows_per_chunk_].rows + size_t{row % rows_per_chunk_} * dims_;
  }
  RowInfo& Info(uint32_t row) { return chunks_[row / rows_per_chunk_].info[row % rows_per_chunk_]; }

  size_t chunk_count() const { return chunks_.size(); }
  ChunkView Chunk(size_t i) const {
    return ChunkView{chunks_[i].rows, chunks_[i].info.data(), chunks_[i].used};
  }
  uint32_t rows_per_chunk() const { return rows_per_chunk_; }

 private:
  struct ChunkData {
    float* rows = nullptr;
    std::vector<RowInfo> info;  // rows_per_chunk_ entries
    uint32_t used = 0;          // high-water mark
  };
  const uint32_t dims_;
  uint32_t rows_per_chunk_;
  size_t chunk_bytes_;
  std::vector<ChunkData> chunks_;
  std::vector<uint32_t> free_;
};

}  // namespace tierstore
