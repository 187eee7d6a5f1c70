#include "cold_staging.h"

#include <algorithm>
#include <atomic>
#include <bit>
#include <cstdlib>
#include <cstring>
#include <new>

#include "cold_tier.h"

namespace tierstore {
namespace {

// Room for n elements, growing geometrically (reserve(n) alone allocates
// exactly n, which one row at a time would make quadratic).
template <typename V>
void Grow(V& v, size_t n) {
  if (v.capacity() < n) v.reserve(std::max<size_t>(n, v.capacity() * 2));
}

}  // namespace

void ColdStaging::AlignedDeleter::operator()(float* p) const { std::free(p); }

void ColdStaging::ReserveEmbeddings(uint64_t rows) {
  if (rows <= embedding_capacity_) return;
  const uint64_t cap = std::max<uint64_t>({rows, embedding_capacity_ * 2, 16});
  const uint64_t bytes = (cap * dims_ * sizeof(float) + 63) / 64 * 64;  // aligned_alloc wants a multiple
  float* p = static_cast<float*>(std::aligned_alloc(64, static_cast<size_t>(bytes)));
  if (p == nullptr) throw std::bad_alloc();
  if (embedding_capacity_ > 0) std::memcpy(p, embeddings_.get(), keys_.size() * dims_ * sizeof(float));
  embeddings_.reset(p);
  embedding_capacity_ = cap;
}

uint32_t ColdStaging::Add(const RecordView& rec, uint64_t key) {
  const uint64_t r = keys_.size();
  // Everything that may allocate first, so a bad_alloc leaves the rows as
  // they were (vectors are only grown here, never shrunk).
  ReserveEmbeddings(r + 1);
  MetadataSignature sig = MetadataSignature::Of(rec.metadata);
  std::string id(rec.id), content(rec.content);
  const uint64_t words = (r + 1 + 63) / 64;
  Grow(keys_, r + 1);
  Grow(seqs_, r + 1);
  Grow(ids_, r + 1);
  Grow(contents_, r + 1);
  Grow(metadata_offsets_, r + 2);
  Grow(norms_, r + 1);
  Grow(confidence_, r + 1);
  Grow(activation_, r + 1);
  Grow(created_at_, r + 1);
  Grow(last_access_, r + 1);
  Grow(access_count_, r + 1);
  Grow(signatures_, r + 1);
  Grow(deleted_, words);
  Grow(metadata_bytes_, metadata_bytes_.size() + rec.metadata.size());
  // No allocation from here on.
  std::memcpy(embeddings_.get() + r * dims_, rec.embedding, size_t{dims_} * sizeof(float));
  keys_.push_back(key);
  seqs_.push_back(rec.seq);
  ids_.push_back(std::move(id));
  contents_.push_back(std::move(content));
  metadata_bytes_.append(rec.metadata);
  metadata_offsets_.push_back(metadata_bytes_.size());
  norms_.push_back(rec.norm);
  confidence_.push_back(rec.confidence);
  activation_.push_back(rec.activation);
  created_at_.push_back(rec.created_at);
  last_access_.push_back(std::bit_cast<uint64_t>(rec.last_access_at));
  access_count_.push_back(std::bit_cast<uint64_t>(rec.access_count));
  signatures_.push_back(sig);
  if (deleted_.size() < words) deleted_.push_back(0);
  ++live_;
  bytes_ += uint64_t{dims_} * sizeof(float) + rec.id.size() + rec.content.size() + rec.metadata.size();
  return static_cast<uint32_t>(r);
}

void ColdStaging::PopBack() {
  if (keys_.empty()) return;
  const uint64_t r = keys_.size() - 1;
  if (!Deleted(r)) --live_;
  deleted_[r >> 6] &= ~(uint64_t{1} << (r & 63));
  if ((r & 63) == 0) deleted_.pop_back();
  bytes_ -= uint64_t{dims_} * sizeof(float) + ids_[r].size() + contents_[r].size() +
            (metadata_offsets_[r + 1] - metadata_offsets_[r]);
  metadata_bytes_.resize(metadata_offsets_[r]);
  metadata_offsets_.pop_back();
  keys_.pop_back();
  seqs_.pop_back();
  ids_.pop_back();
  contents_.pop_back();
  norms_.pop_back();
  confidence_.pop_back();
  activation_.pop_back();
  created_at_.pop_back();
  last_access_.pop_back();
  access_count_.pop_back();
  signatures_.pop_back();
}

void ColdStaging::Clear() {
  keys_.clear();
  seqs_.clear();
  ids_.clear();
  contents_.clear();
  metadata_bytes_.clear();
  metadata_offsets_.assign(1, 0);
  norms_.clear();
  confidence_.clear();
  activation_.clear();
  created_at_.clear();
  last_access_.clear();
  access_count_.clear();
  signatures_.clear();
  deleted_.clear();
  live_ = 0;
  bytes_ = 0;
  // Keep no more than a small buffer between bursts of moves.
  if (embedding_capacity_ > 1024) {
    embeddings_.reset();
    embedding_capacity_ = 0;
  }
}

bool ColdStaging::Delete(uint64_t r) {
  if (Deleted(r)) return false;
  deleted_[r >> 6] |= uint64_t{1} << (r & 63);
  --live_;
  return true;
}

void ColdStaging::Fill(uint64_t r, RecordView* out) const {
  out->id = ids_[r];
  out->content = contents_[r];
  out->metadata = std::string_view(metadata_bytes_.data() + metadata_offsets_[r],
                                   metadata_offsets_[r + 1] - metadata_offsets_[r]);
  out->embedding = embeddings_.get() + r * dims_;
  out->norm = norms_[r];
  out->confidence = confidence_[r];
  out->activation = activation_[r];
  out->created_at = created_at_[r];
  // const_cast: the words are only ever accessed atomically (UpdateAccess).
  out->last_access_at = std::bit_cast<double>(
      std::atomic_ref<uint64_t>(const_cast<uint64_t&>(last_access_[r])).load(std::memory_order_relaxed));
  out->access_count = std::bit_cast<double>(
      std::atomic_ref<uint64_t>(const_cast<uint64_t&>(access_count_[r])).load(std::memory_order_relaxed));
  out->seq = seqs_[r];
}

void ColdStaging::UpdateAccess(uint64_t r, double last_access_at, double access_count) {
  std::atomic_ref<uint64_t>(last_access_[r]).store(std::bit_cast<uint64_t>(last_access_at), std::memory_order_relaxed);
  std::atomic_ref<uint64_t>(access_count_[r]).store(std::bit_cast<uint64_t>(access_count), std::memory_order_relaxed);
}

uint64_t ColdStaging::NextLive(uint64_t r) const {
  const uint64_t n = rows();
  while (r < n) {
    const uint64_t live_bits = ~deleted_[r >> 6] >> (r & 63);
    if (live_bits != 0) return std::min(n, r + static_cast<uint64_t>(std::countr_zero(live_bits)));
    r = (r | 63) + 1;
  }
  return n;
}

uint64_t ColdStaging::UpperBound(uint64_t key) const {
  return static_cast<uint64_t>(std::upper_bound(keys_.begin(), keys_.end(), key) - keys_.begin());
}

uint64_t ColdStaging::NthLiveKey(uint64_t n) const {
  for (uint64_t r = NextLive(0); r < rows(); r = NextLive(r + 1)) {
    if (n-- == 0) return keys_[r];
  }
  return 0;  // unreachable when n < live()
}

ColdSegmentView ColdStaging::View(uint32_t segment, bool with_signatures) const {
  ColdSegmentView v;
  v.segment = segment;
  v.rows = rows();
  v.embeddings = embeddings_.get();
  v.norms = norms_.data();
  v.confidence = confidence_.data();
  v.activation = activation_.data();
  v.created_at = created_at_.data();
  v.metadata_offsets = metadata_offsets_.data();
  v.metadata_bytes = metadata_bytes_.data();
  v.metadata_size = metadata_bytes_.size();
  v.deleted = deleted_.data();
  if (with_signatures) v.signatures = signatures_.data();
  return v;
}

}  // namespace tierstore
