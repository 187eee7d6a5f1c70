#include "warm_filter_array.h"

#include <fcntl.h>

#include "warm_filter_file.h"

namespace tierstore {

Status WarmFilterArray::Adopt(const std::string& dir, uint64_t store_id, uint64_t token) {
  MutexLock lock(mu_);
  if (made_) return Status::InvalidArgument("the warm filter entries are already made");
  const std::string path = JoinPath(dir, kWarmFilterFileName);
  File file;
  TS_RETURN_IF_ERROR(File::Open(path, O_RDONLY, &file));
  uint64_t size = 0;
  TS_RETURN_IF_ERROR(file.Size(&size));
  if (size < kWarmFilterHeaderBytes) return Status::Corruption(path + ": shorter than its header");
  MappedRegion map;
  TS_RETURN_IF_ERROR(MappedRegion::MapPrivate(file, 0, static_cast<size_t>(size), &map));
  uint32_t chunk_count = 0;
  TS_RETURN_IF_ERROR(ParseWarmFilterHeader(path, map.data(), map.size(), store_id, token, &chunk_count));
  chunks_.assign(chunk_count, nullptr);
  states_.assign(chunk_count, ChunkState::kUnchecked);
  owned_.resize(chunk_count);
  for (uint32_t c = 0; c < chunk_count; ++c) {
    chunks_[c] = reinterpret_cast<Chunk*>(map.data() + kWarmFilterHeaderBytes + size_t{c} * kWarmFilterChunkBytes);
  }
  file_ = std::move(file);
  map_ = std::move(map);
  made_ = true;
  ready_ = chunk_count == 0;
  return Status::OK();
}

WarmFilterArray::Chunk* WarmFilterArray::NewChunk(size_t c) {
  owned_[c] = std::make_unique<Chunk>();  // value-initialized: nothing known
  chunks_[c] = owned_[c].get();
  return chunks_[c];
}

void WarmFilterArray::CheckChunk(size_t c) {
  if (states_[c] != ChunkState::kUnchecked) return;
  if (WarmFilterChunkValid(map_.data(), static_cast<uint32_t>(c))) {
    states_[c] = ChunkState::kReady;
  } else {
    ++damaged_chunks_;
    NewChunk(c);
    states_[c] = ChunkState::kRefill;
  }
}

void WarmFilterArray::SetLocked(uint32_t slot, const FilterEntry& entry) {
  const size_t c = slot / kSlotsPerChunk;
  if (c >= chunks_.size()) {
    chunks_.resize(c + 1, nullptr);
    states_.resize(c + 1, ChunkState::kReady);
    owned_.resize(c + 1);
  }
  CheckChunk(c);
  Chunk* chunk = chunks_[c] != nullptr ? chunks_[c] : NewChunk(c);
  const uint32_t i = slot % kSlotsPerChunk;
  chunk->entries[i] = entry;
  chunk->known[i / 64] |= uint64_t{1} << (i % 64);
}

void WarmFilterArray::Prepare(uint32_t limit, const EntryFn& fn) {
  MutexLock lock(mu_);
  if (ready_) return;
  if (!made_) {
    for (uint32_t slot = 0; slot < limit; ++slot) {
      FilterEntry e;
      if (fn(slot, &e)) SetLocked(slot, e);
    }
    made_ = ready_ = true;
    return;
  }
  for (size_t c = 0; c < chunks_.size(); ++c) {
    CheckChunk(c);
    if (states_[c] != ChunkState::kRefill) continue;
    // A damaged chunk: its slots from their blocks (Set may have given
    // some their entry since).
    const uint64_t first = uint64_t{c} * kSlotsPerChunk;
    for (uint64_t slot = first; slot < first + kSlotsPerChunk && slot < limit; ++slot) {
      const uint32_t i = static_cast<uint32_t>(slot - first);
      if ((chunks_[c]->known[i / 64] >> (i % 64)) & 1) continue;
      FilterEntry e;
      if (fn(static_cast<uint32_t>(slot), &e)) SetLocked(static_cast<uint32_t>(slot), e);
    }
    states_[c] = ChunkState::kReady;
  }
  ready_ = true;
}

void WarmFilterArray::Set(uint32_t slot, const FilterEntry& entry) {
  MutexLock lock(mu_);
  if (!made_) return;
  SetLocked(slot, entry);
}

WarmFilterArray::View WarmFilterArray::Snapshot() const {
  MutexLock lock(mu_);
  View v;
  if (!ready_) return v;
  v.chunks_.assign(chunks_.begin(), chunks_.end());
  return v;
}

Status WarmFilterArray::WriteFile(const std::string& dir, uint64_t store_id, uint64_t token, bool durable) {
  MutexLock lock(mu_);
  const std::string path = JoinPath(dir, kWarmFilterFileName);
  if (!made_) return PathExists(path) ? RemoveFile(path) : Status::OK();
  std::vector<const Chunk*> chunks(chunks_.size(), nullptr);
  for (size_t c = 0; c < chunks_.size(); ++c) {
    CheckChunk(c);  // never write an unchecked chunk under a fresh checksum
    chunks[c] = chunks_[c];
  }
  // A chunk still to refill is written with what it knows: Set's entries.
  return WriteWarmFilterFile(dir, store_id, token, chunks, durable);
}

bool WarmFilterArray::made() const {
  MutexLock lock(mu_);
  return made_;
}

uint64_t WarmFilterArray::damaged_chunks() const {
  MutexLock lock(mu_);
  return damaged_chunks_;
}

}  // namespace tierstore
