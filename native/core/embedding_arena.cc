#include "embedding_arena.h"

#include <sys/mman.h>

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <new>

namespace tierstore {

namespace {
// About 4 MiB of rows per chunk: large enough for huge pages and long
// sequential scans, small enough that a tiny store wastes little.
constexpr size_t kTargetChunkBytes = size_t{4} << 20;
constexpr size_t kHugePage = size_t{2} << 20;
constexpr uint32_t kMinRowsPerChunk = 64;
constexpr uint32_t kMaxRowsPerChunk = 16384;
}  // namespace

EmbeddingArena::EmbeddingArena(uint32_t dims) : dims_(dims == 0 ? 1 : dims) {
  const size_t row_bytes = size_t{dims_} * sizeof(float);
  rows_per_chunk_ = static_cast<uint32_t>(
      std::clamp<size_t>(kTargetChunkBytes / row_bytes, kMinRowsPerChunk, kMaxRowsPerChunk));
  const size_t bytes = row_bytes * rows_per_chunk_;
  // Whole pages; whole huge pages once a chunk is that large.
  const size_t align = bytes >= kHugePage ? kHugePage : 4096;
  chunk_bytes_ = (bytes + align - 1) / align * align;
}

EmbeddingArena::~EmbeddingArena() {
  for (ChunkData& c : chunks_) ::munmap(c.rows, chunk_bytes_);
}

uint32_t EmbeddingArena::Allocate() {
  uint32_t row;
  if (!free_.empty()) {
    row = free_.back();
    free_.pop_back();
  } else {
    if (chunks_.empty() || chunks_.back().used == rows_per_chunk_) {
      // Mapped directly, not from malloc: closing a store returns its hot
      // embeddings to the system at once (malloc would keep multi-MiB
      // blocks cached in the process), and huge-page chunks can be aligned.
      const size_t align = chunk_bytes_ % kHugePage == 0 ? kHugePage : 0;
      const size_t span = chunk_bytes_ + align;
      void* raw = ::mmap(nullptr, span, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
      if (raw == MAP_FAILED) throw std::bad_alloc();
      auto* base = static_cast<char*>(raw);
      char* p = base;
      if (align != 0) {
        p = reinterpret_cast<char*>((reinterpret_cast<uintptr_t>(base) + align - 1) / align * align);
        if (p > base) ::munmap(base, static_cast<size_t>(p - base));
        char* end = base + span;
        if (end > p + chunk_bytes_) ::munmap(p + chunk_bytes_, static_cast<size_t>(end - (p + chunk_bytes_)));
#ifdef MADV_HUGEPAGE
        (void)madvise(p, chunk_bytes_, MADV_HUGEPAGE);  // advice only
#endif
      }
      ChunkData c;
      c.rows = reinterpret_cast<float*>(p);
      try {
        c.info.resize(rows_per_chunk_);
        // Room for every row to be free at once, so Release never allocates.
        free_.reserve((chunks_.size() + 1) * size_t{rows_per_chunk_});
        chunks_.push_back(std::move(c));
      } catch (...) {
        ::munmap(p, chunk_bytes_);
        throw;
      }
    }
    ChunkData& last = chunks_.back();
    row = static_cast<uint32_t>((chunks_.size() - 1) * rows_per_chunk_ + last.used);
    ++last.used;
  }
  Info(row) = RowInfo{};
  return row;
}

void EmbeddingArena::Release(uint32_t row) noexcept {
  Info(row) = RowInfo{};
  free_.push_back(row);  // never reallocates: capacity reserved in Allocate
}

}  // namespace tierstore
