// WarmTier implementation: see warm_tier.h for the contract. This file is
// the block file and the tier over it: slots, the high-water and covered
// marks, inserts, frees, compaction. The bytes of warm.blocks and
// warm-var-<gen>.dat are docs/format/warm.md and warm_format.h; a var file
// is warm_var_file.h.
#include "warm_tier.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <limits>
#include <map>
#include <set>
#include <vector>

#include "crc32c.h"
#include "file_util.h"
#include "warm_format.h"
#include "warm_var_file.h"

namespace tierstore {

// Test hooks (declared by the tests themselves; not part of the public
// interface): override the chunk sizes used when files grow. 0 = default.
namespace warm_testing {
std::atomic<uint64_t> g_block_chunk_bytes{0};
std::atomic<uint64_t> g_var_chunk_bytes{0};
void SetChunkBytes(uint64_t block_chunk_bytes, uint64_t var_chunk_bytes) {
  g_block_chunk_bytes.store(block_chunk_bytes);
  g_var_chunk_bytes.store(var_chunk_bytes);
}
}  // namespace warm_testing

namespace {

using namespace warm;

// Growth is allocated on disk (posix_fallocate, so a full disk is an error,
// not a SIGBUS), so it is kept small for small stores: a store with one warm
// record takes about 5 MiB, not 128 MiB (a host may keep a store per agent).
// Block chunks are fixed per store (the header records them); var files
// grow as warm_var_file.h says.
constexpr uint64_t kDefaultBlockChunkBytes = uint64_t{4} << 20;
// Prefaulted past an append, in blocks (see PopulateForWrite).
constexpr uint32_t kBlockPopulateAhead = 128;

// A live block's decoded fields. ParseLive fills those in the block; the
// lengths and data_crc come from its var prefix (ParseExtent).
struct Parsed {
  uint32_t state = 0;
  uint64_t seq = 0;
  uint32_t id_len = 0, content_len = 0, metadata_len = 0;
  uint32_t data_crc = 0, embedding_crc = 0;
  uint32_t var_gen = 0;
  uint64_t var_offset = 0;  // start of the extent (of its prefix)
  const uint8_t* bytes = nullptr;  // id, content, metadata (set by ParseExtent)
  uint64_t var_len() const { return uint64_t{id_len} + content_len + metadata_len; }
  uint64_t extent_len() const { return kPrefixBytes + var_len(); }
};

class WarmTierImpl final : public WarmTier {
 public:
  WarmTierImpl(std::string dir, uint32_t dims, bool read_only, bool after_crash, const WarmOpenState* known)
      : dir_(std::move(dir)),
        blocks_path_(JoinPath(dir_, WarmTier::kBlockFileName)),
        dims_(dims),
        read_only_(read_only),
        after_crash_(after_crash),
        known_(known) {}

  Status OpenFiles();
  Status ScanSlots(std::map<uint32_t, uint64_t>* gen_end);
  void ForgetKnownState() { known_ = nullptr; }
  Status AdoptKnownState(std::map<uint32_t, uint64_t>* gen_end);
  WarmOpenState OpenState() const override {
    WarmOpenState st;
    st.live = live_;
    // Every slot below the mark was written once: the next open covers them.
    st.scan_limit = std::max(scan_limit_, mark_);
    // From the free bits, not the blocks: a close reads no block.
    for (uint32_t slot = 0; slot < st.scan_limit; ++slot) {
      if (((free_bits_[slot / 64] >> (slot % 64)) & 1) != 0) st.free_slots.push_back(slot);
    }
    for (const auto& [gen, vf] : var_files_) {
      // With nothing live, TrimAtClose cuts the file to its header page.
      const uint64_t tail = live_ == 0 ? kHeaderPage : vf.tail;
      if (gen == cur_gen_ || tail > kHeaderPage) st.var_tails.push_back({gen, tail});
    }
    st.var_live_bytes = var_live_bytes_;
    return st;
  }
  Status FinishOpen() override;

  Status ForEachLive(const std::function<Status(uint32_t slot, const RecordView&)>& fn,
                     const TornCopyPolicy* torn) override {
    uint32_t limit = scan_limit_;
    for (uint32_t slot = 0; slot < limit; ++slot) {
      if (slot + kPrefetchAhead < limit) PrefetchExtent(slot + kPrefetchAhead);
      const uint8_t* b = BlockPtr(slot);
      if (!IsLiveState(LoadState(b)) || Unpublished(slot)) continue;
      RecordView v;
      Parsed p;
      TS_RETURN_IF_ERROR(ParseLive(slot, b, &p));
      if (torn != nullptr && torn->source_survives(p.seq)) {
        // Everything, the prefix included (FillView checks it).
        if (!FillView(slot, b, &p, &v).ok() || !VerifyChecksums(slot, b, p, v, true).ok()) {
          torn->on_torn(slot);
          continue;
        }
      } else {
        TS_RETURN_IF_ERROR(FillView(slot, b, &p, &v));
      }
      TS_RETURN_IF_ERROR(fn(slot, v));
    }
    return Status::OK();
  }

  Status ForEachLiveKey(const std::function<Status(uint32_t slot, std::string_view id, uint64_t seq)>& fn,
                        const TornCopyPolicy* torn) override {
    if (torn == nullptr && !open_keys_.empty()) {
      std::vector<OpenKey> keys;
      keys.swap(open_keys_);  // used once: its memory goes with it
      for (const OpenKey& k : keys) TS_RETURN_IF_ERROR(fn(k.slot, std::string_view(k.id, k.id_len), k.seq));
      return Status::OK();
    }
    return ForEachLive([&](uint32_t slot, const RecordView& v) { return fn(slot, v.id, v.seq); }, torn);
  }

  Status Insert(const RecordView& rec, uint32_t* slot_out) override;

  Status Read(uint32_t slot, bool verify_embedding, RecordView* out) const override {
    Parsed p;
    RecordView v;
    TS_RETURN_IF_ERROR(View(slot, &p, &v));
    TS_RETURN_IF_ERROR(VerifyChecksums(slot, BlockPtr(slot), p, v, verify_embedding));
    *out = v;
    return Status::OK();
  }

  Status Peek(uint32_t slot, RecordView* out) const override {
    Parsed p;
    return View(slot, &p, out);
  }

  // The views of a live slot, its header parsed and its extent's bounds
  // checked; no checksum of its data.
  Status View(uint32_t slot, Parsed* p, RecordView* out) const {
    if (slot >= scan_limit_) return Status::InvalidArgument("warm slot " + std::to_string(slot) + " is out of range");
    if (!IsLive(slot)) return Status::InvalidArgument("warm slot " + std::to_string(slot) + " is not live");
    const uint8_t* b = BlockPtr(slot);
    // Live by the tier's own record: a block that does not read live is
    // damaged (ParseLive says so).
    TS_RETURN_IF_ERROR(ParseLive(slot, b, p));
    return FillView(slot, b, p, out);
  }

  // data_crc always, embedding_crc when asked, of a block FillView read.
  Status VerifyChecksums(uint32_t slot, const uint8_t* b, const Parsed& p, const RecordView& v,
                         bool verify_embedding) const {
    uint32_t c = Crc32cExtend(0, p.bytes, p.var_len());
    c = ExtendFixed(c, b);
    if (c != p.data_crc) {
      return Status::Corruption(VarPath(p.var_gen) + ": data checksum mismatch for slot " + std::to_string(slot) +
                                " of " + blocks_path_ + " (id, content, metadata or scalars damaged)");
    }
    if (verify_embedding && Crc32c(v.embedding, uint64_t{4} * dims_) != p.embedding_crc) {
      return Status::Corruption(blocks_path_ + ": embedding checksum mismatch in slot " + std::to_string(slot));
    }
    return Status::OK();
  }

  const float* Embedding(uint32_t slot) const override {
    if (slot >= SlotLimit()) return nullptr;
    return reinterpret_cast<const float*>(BlockPtr(slot) + kBlockHeaderBytes);
  }

  WarmScalars Scalars(uint32_t slot) const override {
    WarmScalars s;
    if (slot >= SlotLimit()) return s;
    const uint8_t* b = BlockPtr(slot);
    s.norm = Load<float>(b + kOffNorm);
    s.confidence = Load<float>(b + kOffConfidence);
    s.activation = Load<float>(b + kOffActivation);
    s.created_at = Load<double>(b + kOffCreatedAt);
    s.last_access_at = Load<double>(b + kOffLastAccess);
    s.access_count = Load<double>(b + kOffAccessCount);
    s.seq = Load<uint64_t>(b + kOffSeq);
    return s;
  }

  bool IsLive(uint32_t slot) const override {
    return slot < scan_limit_ && ((free_bits_[slot / 64] >> (slot % 64)) & 1) == 0;
  }

  void VerifyBlocks(const std::function<void(const std::string&, const std::string&)>& fn) const override {
    for (uint32_t s = 0; s < scan_limit_; s += bpc_) AdviseWillNeed(BlockPtr(s), size_t{bpc_} * block_size_);
    for (uint32_t slot = 0; slot < scan_limit_; ++slot) {
      const uint32_t state = LoadState(BlockPtr(slot));
      const bool held_free = ((free_bits_[slot / 64] >> (slot % 64)) & 1) != 0;
      if (state == kStateFree && slot < mark_) {
        fn(blocks_path_, SlotCorruption(slot, "block is zeroed (never-written state) below the high-water mark " +
                                                  std::to_string(mark_)));
      } else if (state != kStateFree && state != kStateFreed && state != kStateWriting && !IsLiveState(state)) {
        char buf[16];
        std::snprintf(buf, sizeof buf, "0x%08x", state);
        fn(blocks_path_, SlotCorruption(slot, std::string("invalid block state ") + buf));
      } else if (IsLiveState(state) && held_free && !Unpublished(slot)) {
        fn(blocks_path_, SlotCorruption(slot, "block reads live, but its record was deleted or moved"));
      }
    }
  }

  void WillNeed(uint32_t first_slot, uint32_t count) const override {
    const uint32_t end = static_cast<uint32_t>(std::min<uint64_t>(uint64_t{first_slot} + count, scan_limit_));
    for (uint32_t s = first_slot; s < end;) {  // block runs, chunk by chunk
      const uint32_t chunk_end = std::min<uint32_t>(end, (s / bpc_ + 1) * bpc_);
      AdviseWillNeed(BlockPtr(s), size_t{chunk_end - s} * block_size_);
      s = chunk_end;
    }
    // The var bytes: the span of the live blocks' extents, per generation.
    std::map<uint32_t, std::pair<uint64_t, uint64_t>> spans;
    for (uint32_t s = first_slot; s < end; ++s) {
      if (!IsLive(s)) continue;
      const uint64_t loc = LoadLoc(BlockPtr(s));
      auto [it, fresh] = spans.try_emplace(LocGen(loc), LocOffset(loc), LocOffset(loc));
      if (!fresh) {
        it->second.first = std::min(it->second.first, LocOffset(loc));
        it->second.second = std::max(it->second.second, LocOffset(loc));
      }
    }
    for (const auto& [gen, span] : spans) {
      const uint8_t* a = nullptr;
      const uint8_t* b = nullptr;
      auto vf = var_files_.find(gen);
      if (vf == var_files_.end()) continue;
      // Each end within a mapped region (a span across regions is advised in part).
      if (!vf->second.Resolve(span.first, 1, &a).ok() || !vf->second.Resolve(span.second, 1, &b).ok()) continue;
      const uintptr_t pa = reinterpret_cast<uintptr_t>(a), pb = reinterpret_cast<uintptr_t>(b);
      if (pb < pa || pb - pa != span.second - span.first) continue;  // not one mapping: no advice
      AdviseWillNeed(a, static_cast<size_t>(pb - pa) + 4096);
    }
  }

  uint32_t SlotLimit() const override { return static_cast<uint32_t>(chunks_.size() * uint64_t{bpc_}); }

  WarmFilterArray::View FilterEntries() const override {
    filter_.Prepare(scan_limit_, [&](uint32_t slot, FilterEntry* e) {
      RecordView v;
      if (!IsLive(slot) || !Peek(slot, &v).ok()) return false;
      *e = FilterEntry::Of(v);
      return true;
    });
    return filter_.Snapshot();
  }
  Status AdoptFilterFile(uint64_t store_id, uint64_t token) override { return filter_.Adopt(dir_, store_id, token); }
  Status WriteFilterFile(uint64_t store_id, uint64_t token, bool durable) override {
    if (read_only_) return Status::ReadOnly("the warm tier in " + dir_ + " is open read-only");
    return filter_.WriteFile(dir_, store_id, token, durable);
  }

  void ScanRuns(std::vector<WarmRun>* out) const override {
    for (size_t c = 0; c < chunks_.size(); ++c) {
      const uint64_t first = uint64_t{c} * bpc_;
      if (first >= scan_limit_) break;
      WarmRun run;
      run.base = chunks_[c].base;
      run.first_slot = static_cast<uint32_t>(first);
      run.count = static_cast<uint32_t>(std::min<uint64_t>(bpc_, scan_limit_ - first));
      run.block_size = block_size_;
      run.embedding_offset = kBlockHeaderBytes;
      run.free_bits = free_bits_.data();
      if (unpublished_count_ != 0) {
        run.pending = unpublished_bits_.data();
        run.pending_words = unpublished_bits_.size();
      }
      out->push_back(run);
    }
  }

  Status Free(uint32_t slot) override {
    TS_RETURN_IF_ERROR(BeginFree(slot, "Free"));
    AccountFreed(slot);
    PublishState(BlockPtr(slot), kStateFreed);
    MarkBlockDirty(slot);
    SetFree(slot, true);
    --live_;
    return Status::OK();
  }

  Status FreeLater(uint32_t slot) override {
    TS_RETURN_IF_ERROR(BeginFree(slot, "FreeLater"));
    if (unpublished_count_ >= kMaxPendingFrees) PublishFrees();
    // The block is not touched now, not even its var extent's length (its
    // page may not be mapped in yet): PublishFrees, or Insert reusing the
    // slot, accounts for it; Stats counts it meanwhile.
    if (unpublished_bits_.size() < free_bits_.size()) unpublished_bits_.resize(free_bits_.size(), 0);
    unpublished_bits_[slot / 64] |= uint64_t{1} << (slot % 64);
    ++unpublished_count_;
    SetFree(slot, true);
    --live_;
    return Status::OK();
  }

  void PublishFrees() override {
    ForEachUnpublished([&](uint32_t slot) {  // in file order
      AccountFreed(slot);
      PublishState(BlockPtr(slot), kStateFreed);
      MarkBlockDirty(slot);
    });
    std::fill(unpublished_bits_.begin(), unpublished_bits_.end(), 0);
    unpublished_count_ = 0;
  }

  size_t PendingFrees() const override { return unpublished_count_; }

  void UpdateAccess(uint32_t slot, double last_access_at, double access_count) override {
    if ((!read_only_ && !finished_) || !IsLive(slot)) return;  // Open changes no file
    if (!chunks_[slot / bpc_].writable) return;  // read-only, and no private copy to be had
    uint8_t* b = BlockPtr(slot);
    Store<double>(b + kOffLastAccess, last_access_at);
    Store<double>(b + kOffAccessCount, access_count);
    if (!read_only_) MarkBlockDirty(slot);
  }

  void TrimAtClose() override {
    const bool trim = !read_only_ && finished_ && unverified_.empty();
    chunks_.clear();
    header_ = Region();
    for (auto& [gen, vf] : var_files_) vf.regions.clear();  // unmapped before the file shrinks
    if (!trim) return;
    auto cur = var_files_.find(cur_gen_);
    if (cur == var_files_.end()) return;
    VarFile& vf = cur->second;
    // The tail is where appends went on (frees leave it); with nothing live
    // (everything moved to cold) no byte past the header is referenced.
    const uint64_t end = live_ == 0 ? kHeaderPage : std::max(vf.tail, kHeaderPage);
    const uint64_t keep = RoundUp(end, std::max<uint64_t>(PageSize(), kHeaderPage));
    if (keep < vf.size && ::ftruncate(vf.file.fd(), static_cast<off_t>(keep)) == 0) vf.size = keep;
  }

  Status Sync() override {
    if (read_only_) return Status::OK();
    PublishFrees();
    bool blocks_dirty = false;
    for (auto& r : chunks_) {
      if (!r.dirty) continue;
      TS_RETURN_IF_ERROR(r.map.Sync(blocks_path_));
      r.dirty = false;
      blocks_dirty = true;
    }
    for (auto& [gen, vf] : var_files_) {
      bool dirty = false;
      for (auto& r : vf.regions) {
        if (!r.dirty) continue;
        TS_RETURN_IF_ERROR(r.map.Sync(vf.path));
        r.dirty = false;
        dirty = true;
      }
      if (dirty || vf.gen == cur_gen_) TS_RETURN_IF_ERROR(vf.file.Sync());
    }
    (void)blocks_dirty;
    // After the blocks and their var bytes: on disk neither mark covers a
    // block that is not.
    CoverAll();
    if (header_.dirty) {
      TS_RETURN_IF_ERROR(header_.map.Sync(blocks_path_));
      header_.dirty = false;
    }
    if (blocks_.is_open()) TS_RETURN_IF_ERROR(blocks_.Sync());
    return Status::OK();
  }

  Status Compact(uint64_t* bytes_reclaimed) override;

  WarmStats Stats() const override {
    WarmStats s;
    s.live_records = live_;
    s.slots = SlotLimit();
    s.block_file_bytes = blocks_size_;
    for (const auto& [gen, vf] : var_files_) s.var_file_bytes += vf.size;
    s.var_live_bytes = var_live_bytes_;
    ForEachUnpublished([&](uint32_t slot) {
      s.var_live_bytes -= std::min(s.var_live_bytes, CountedExtentBytes(slot, BlockPtr(slot)));
    });
    s.high_water_mark = mark_;
    return s;
  }

 private:
  uint8_t* BlockPtr(uint32_t slot) const {
    const Region& r = chunks_[slot / bpc_];
    return r.base + uint64_t{slot % bpc_} * block_size_;
  }
  void MarkBlockDirty(uint32_t slot) { chunks_[slot / bpc_].dirty = true; }

  void CoverAll() override {
    if (read_only_ || !finished_ || covered_ == mark_) return;
    __atomic_store_n(reinterpret_cast<uint64_t*>(header_.base + kOffCovered), PackMark(mark_), __ATOMIC_RELEASE);
    header_.dirty = true;
    covered_ = mark_;
  }

  // One aligned 8-byte store of mark and check into the header mapping.
  void RaiseMark(uint32_t mark) {
    __atomic_store_n(reinterpret_cast<uint64_t*>(header_.base + kOffMark), PackMark(mark), __ATOMIC_RELEASE);
    header_.dirty = true;
    mark_ = mark;
  }

  Status NotFinished(const char* what) const {
    return Status::InvalidArgument(std::string(what) + " on the warm tier in " + dir_ +
                                   " before FinishOpen(): the open is not complete");
  }

  std::string VarPath(uint32_t gen) const { return JoinPath(dir_, VarFileName(gen)); }

  std::string SlotCorruption(uint32_t slot, const std::string& what) const {
    return blocks_path_ + ": slot " + std::to_string(slot) + ": " + what;
  }

  // Decodes and verifies a live block's fixed fields (header_crc, its
  // location). Touches only the block's own bytes; the lengths are in the
  // var prefix, which ParseExtent reads.
  Status ParseLive(uint32_t slot, const uint8_t* b, Parsed* p) const {
    p->state = LoadState(b);
    if (!IsLiveState(p->state)) return Status::Corruption(SlotCorruption(slot, "block is not live"));
    if (ExtendFixed(0, b) != Load<uint32_t>(b + kOffHeaderCrc)) {
      return Status::Corruption(SlotCorruption(slot, "block header checksum mismatch"));
    }
    p->seq = Load<uint64_t>(b + kOffSeq);
    p->embedding_crc = Load<uint32_t>(b + kOffEmbeddingCrc);
    const uint64_t loc = LoadLoc(b);
    p->var_offset = LocOffset(loc);
    p->var_gen = LocGen(loc);
    if (p->var_gen == 0) return Status::Corruption(SlotCorruption(slot, "var location names generation 0"));
    if (p->var_offset < kHeaderPage) return Status::Corruption(SlotCorruption(slot, "var offset inside the header page"));
    return Status::OK();
  }

  // Pointer to [off, off+n) of generation gen, or CORRUPTION when it is not
  // inside one mapped region of that file.
  Status ResolveVar(uint32_t gen, uint64_t off, uint64_t n, const uint8_t** out) const {
    auto it = var_files_.find(gen);
    if (it == var_files_.end()) return Status::Corruption(VarPath(gen) + ": var file missing");
    return it->second.Resolve(off, n, out);
  }

  // Open reads every live record's extent (prefix and id) in slot order;
  // they lie on pages of their own, so each costs a cache and TLB miss.
  // Touching the extent a few slots ahead overlaps them.
  static constexpr uint32_t kPrefetchAhead = 8;
  void PrefetchExtent(uint32_t slot) const {
    const uint8_t* b = BlockPtr(slot);
    if (LoadState(b) != kStateLive) return;
    const uint64_t loc = LoadLoc(b);
    auto it = var_files_.find(LocGen(loc));
    if (it == var_files_.end()) return;
    const uint64_t off = LocOffset(loc);
    const Region* r = RegionFrom(it->second.regions, off);
    if (r != nullptr && off - r->file_off < r->len) __builtin_prefetch(r->base + (off - r->file_off));
  }

  // The location word of a block: Compact changes it in place.
  static uint64_t LoadLoc(const uint8_t* b) {
    return __atomic_load_n(reinterpret_cast<const uint64_t*>(b + kOffLoc), __ATOMIC_ACQUIRE);
  }

  // Resolves a parsed block's var extent into p->bytes: reads the lengths
  // and data_crc from the prefix and verifies key_crc (which also catches a
  // damaged location). Never reads outside a mapping.
  Status ParseExtent(uint32_t slot, Parsed* p) const {
    auto where = [&](const Status& s) {
      return Status::Corruption(s.message() + " (slot " + std::to_string(slot) + " of " + blocks_path_ + ")");
    };
    const uint8_t* var = nullptr;
    Status s = ResolveVar(p->var_gen, p->var_offset, kPrefixBytes, &var);
    if (!s.ok()) return where(s);
    p->id_len = Load<uint32_t>(var);
    p->content_len = Load<uint32_t>(var + 4);
    p->metadata_len = Load<uint32_t>(var + 8);
    p->data_crc = Load<uint32_t>(var + kPrefixDataCrc);
    if (p->id_len == 0 || p->id_len > kMaxIdBytes || p->content_len > kMaxContentBytes ||
        p->metadata_len > kMaxMetadataBytes) {
      return Status::Corruption(VarPath(p->var_gen) + ": impossible id/content/metadata length in the extent of slot " +
                                std::to_string(slot) + " of " + blocks_path_);
    }
    s = ResolveVar(p->var_gen, p->var_offset, p->extent_len(), &var);
    if (!s.ok()) return where(s);
    if (ComputeKeyCrc(var, var + kPrefixBytes, p->id_len, p->seq) != Load<uint32_t>(var + kPrefixKeyCrc)) {
      return Status::Corruption(VarPath(p->var_gen) + ": key checksum mismatch for slot " + std::to_string(slot) +
                                " of " + blocks_path_ + " (its lengths, id or location damaged)");
    }
    p->bytes = var + kPrefixBytes;
    return Status::OK();
  }

  // The var bytes a live slot adds to var_live_bytes_ (for Free), read
  // from its prefix through the mapping; 0 for a slot whose extent did not
  // verify at open (it was never counted).
  uint64_t CountedExtentBytes(uint32_t slot, const uint8_t* b) const {
    if (unverified_.count(slot)) return 0;
    const uint64_t loc = LoadLoc(b);
    const uint8_t* pre = nullptr;
    if (!ResolveVar(LocGen(loc), LocOffset(loc), kPrefixBytes, &pre).ok()) return 0;
    return kPrefixBytes + uint64_t{Load<uint32_t>(pre)} + Load<uint32_t>(pre + 4) + Load<uint32_t>(pre + 8);
  }

  Status FillView(uint32_t slot, const uint8_t* b, Parsed* p, RecordView* v) const {
    TS_RETURN_IF_ERROR(ParseExtent(slot, p));
    const char* c = reinterpret_cast<const char*>(p->bytes);
    v->id = std::string_view(c, p->id_len);
    v->content = std::string_view(c + p->id_len, p->content_len);
    v->metadata = std::string_view(c + p->id_len + p->content_len, p->metadata_len);
    v->embedding = reinterpret_cast<const float*>(b + kBlockHeaderBytes);
    v->norm = Load<float>(b + kOffNorm);
    v->confidence = Load<float>(b + kOffConfidence);
    v->activation = Load<float>(b + kOffActivation);
    v->created_at = Load<double>(b + kOffCreatedAt);
    v->last_access_at = Load<double>(b + kOffLastAccess);
    v->access_count = Load<double>(b + kOffAccessCount);
    v->seq = p->seq;
    return Status::OK();
  }

  void SetFree(uint32_t slot, bool free) {
    uint64_t& w = free_bits_[slot / 64];
    uint64_t bit = uint64_t{1} << (slot % 64);
    if (free) {
      w |= bit;
      if (slot < free_hint_) free_hint_ = slot;
    } else {
      w &= ~bit;
    }
  }

  // Lowest free slot, or false when none.
  bool LowestFree(uint32_t* slot) {
    uint32_t limit = SlotLimit();
    for (uint64_t wi = free_hint_ / 64; wi < free_bits_.size(); ++wi) {
      uint64_t w = free_bits_[wi];
      if (wi == free_hint_ / 64) w &= ~uint64_t{0} << (free_hint_ % 64);
      if (w == 0) continue;
      uint64_t s = wi * 64 + static_cast<uint64_t>(__builtin_ctzll(w));
      if (s >= limit) break;
      free_hint_ = static_cast<uint32_t>(s);
      *slot = free_hint_;
      return true;
    }
    free_hint_ = limit;
    return false;
  }

  Status AddBlockChunk(bool grow) {
    uint64_t chunk_bytes = uint64_t{bpc_} * block_size_;
    if ((chunks_.size() + 1) * uint64_t{bpc_} > std::numeric_limits<uint32_t>::max()) {
      return Status::IoError(blocks_path_ + ": the warm tier is full (2^32 slots)");
    }
    uint64_t off = kHeaderPage + chunks_.size() * chunk_bytes;
    if (grow) TS_RETURN_IF_ERROR(GrowFile(&blocks_, off, off + chunk_bytes));
    Region r;
    // A read-only tier maps its blocks privately, so get() keeps access
    // statistics in memory as it does for hot records (never in the file).
    Status s = MapRange(blocks_, off, chunk_bytes, read_only_ ? MapMode::kPrivate : MapMode::kShared, &r);
    if (!s.ok()) {
      if (grow && ::ftruncate(blocks_.fd(), static_cast<off_t>(off)) != 0) {
        // The failure to map is what gets reported.
      }
      return s;
    }
    chunks_.push_back(std::move(r));
    blocks_size_ = off + chunk_bytes;
    free_bits_.resize((SlotLimit() + 63) / 64, 0);
    return Status::OK();
  }

  // Reserves n contiguous bytes in the current var file (see VarFile::Reserve).
  Status ReserveVar(uint64_t n, uint64_t* off, uint8_t** ptr) { return var_files_.at(cur_gen_).Reserve(n, off, ptr); }

  Status CreateVarFile(uint32_t gen, VarFile* vf) { return VarFile::Create(dir_, gen, vf); }
  Status OpenVarFile(uint32_t gen, VarFile* vf) { return VarFile::Open(dir_, gen, read_only_, vf); }

  std::string dir_;
  std::string blocks_path_;
  uint32_t dims_;
  bool read_only_;
  bool after_crash_;  // the store was not closed cleanly: see the covered mark
  const WarmOpenState* known_;  // Open only: a clean close's state, or null
  bool adopted_state_ = false;  // Open took known_ instead of scanning the blocks
  uint32_t block_size_ = 0;
  uint32_t bpc_ = 1;
  File blocks_;
  Region header_;        // the header page, mapped for writable tiers only
  uint32_t mark_ = 0;    // high-water mark: every slot below it was written
  uint32_t covered_ = 0;  // covered mark (see the format); <= mark_
  // Every live slot is below it: the mark, or one past a live block found
  // above the mark at open (a read-only tier never raises the mark).
  uint32_t scan_limit_ = 0;
  bool finished_ = false;  // FinishOpen done (always false for read-only)
  // Deferred by Open, done by FinishOpen:
  std::vector<uint32_t> pending_freed_;      // slots left "writing" by a crash
  std::vector<uint32_t> pending_zeroed_;     // zeroed slots at/above the covered mark after a crash
  std::vector<std::string> pending_remove_;  // unreferenced var files, stale tmp files
  uint32_t new_gen_ = 0;                     // var generation to create when cur_gen_ == 0
  uint64_t blocks_size_ = 0;
  std::vector<Region> chunks_;
  std::vector<uint64_t> free_bits_;
  uint32_t free_hint_ = 0;
  // What filtered scans read instead of the blocks (FilterEntries).
  mutable WarmFilterArray filter_;
  // FreeLater's slots, a bit each: free in memory, still "live" on disk
  // until PublishFrees (or Insert reusing the slot). unpublished_bits_ is
  // empty or as long as free_bits_ was at the last FreeLater (slots past it
  // are not pending).
  std::vector<uint64_t> unpublished_bits_;
  size_t unpublished_count_ = 0;
  bool Unpublished(uint32_t slot) const {
    return unpublished_count_ != 0 && slot / 64 < unpublished_bits_.size() &&
           ((unpublished_bits_[slot / 64] >> (slot % 64)) & 1) != 0;
  }
  // Calls fn(slot) for each unpublished slot, in slot order.
  template <typename Fn>
  void ForEachUnpublished(const Fn& fn) const {
    if (unpublished_count_ == 0) return;
    for (size_t w = 0; w < unpublished_bits_.size(); ++w) {
      for (uint64_t bits = unpublished_bits_[w]; bits != 0; bits &= bits - 1) {
        fn(static_cast<uint32_t>(w * 64 + static_cast<size_t>(__builtin_ctzll(bits))));
      }
    }
  }
  void ClearUnpublished(uint32_t slot) {
    unpublished_bits_[slot / 64] &= ~(uint64_t{1} << (slot % 64));
    --unpublished_count_;
  }
  // The checks and bookkeeping Free and FreeLater share.
  Status BeginFree(uint32_t slot, const char* op) {
    DropOpenKeys();
    if (read_only_) return Status::ReadOnly("the warm tier in " + dir_ + " is open read-only");
    if (!finished_) return NotFinished(op);
    if (!IsLive(slot)) return Status::InvalidArgument("warm slot " + std::to_string(slot) + " is not live");
    return Status::OK();
  }
  // A freed slot's var bytes leave the live count (its block is about to be
  // stored free or overwritten).
  void AccountFreed(uint32_t slot) {
    const uint64_t n = CountedExtentBytes(slot, BlockPtr(slot));
    unverified_.erase(slot);
    var_live_bytes_ -= std::min(var_live_bytes_, n);
  }
  uint32_t populated_slots_ = 0;  // fresh blocks below it were prefaulted (PopulateForWrite)
  std::map<uint32_t, VarFile> var_files_;
  uint32_t cur_gen_ = 0;  // 0 = no var file (read-only, nothing live)
  uint64_t live_ = 0;
  uint64_t var_live_bytes_ = 0;
  // After a crash: live slots whose var extent did not verify at
  // open (not counted in var_live_bytes_); ForEachLive hands them to
  // TornCopyPolicy or reports them.
  std::set<uint32_t> unverified_;
  // A clean open's live blocks, as its extent pass verified them,
  // for ForEachLiveKey (dropped by it and by any change to the tier; empty
  // otherwise, when ForEachLiveKey reads the blocks).
  struct OpenKey {
    uint32_t slot;
    uint32_t id_len;
    uint64_t seq;
    const char* id;  // into a var mapping
  };
  std::vector<OpenKey> open_keys_;
  void DropOpenKeys() {
    if (open_keys_.capacity() != 0) std::vector<OpenKey>().swap(open_keys_);
  }
};

// Scans the slots ever written: free list, live count, the var
// generations referenced (their extent ends come from the var prefixes,
// read by VerifyExtents).
Status WarmTierImpl::ScanSlots(std::map<uint32_t, uint64_t>* gen_end) {
  uint32_t limit = SlotLimit();
  for (uint32_t slot = 0; slot < limit; ++slot) {
    uint8_t* b = BlockPtr(slot);
    uint32_t state = LoadState(b);
    if (state == kStateFree && slot >= mark_) {
      // Never written, and (the mark only rises; a kill leaves at most the
      // slot at the mark written above it) neither is any slot past it.
      // Their pages stay unread: reading unwritten blocks would fill the
      // page cache with zeros.
      for (uint32_t rest = slot; rest < limit; ++rest) SetFree(rest, true);
      break;
    }
    if (state == kStateFree && slot < mark_ && after_crash_ && slot >= covered_) {
      // Written since the blocks were last covered, and lost to a power cut
      // before its page reached the disk: its record's other copy stands.
      if (!read_only_) pending_zeroed_.push_back(slot);
      SetFree(slot, true);
      continue;
    }
    if (state == kStateFree && slot < mark_) {
      // Below the mark every block was written once; a zero state means the
      // block (and the record it held, if live) was destroyed.
      return Status::Corruption(SlotCorruption(slot, "block is zeroed (never-written state) below the high-water mark " +
                                                         std::to_string(mark_) + "; its record is lost"));
    }
    if (state == kStateFree || state == kStateFreed || state == kStateWriting) {
      if (state == kStateWriting && !read_only_) pending_freed_.push_back(slot);  // an insert that never published
      SetFree(slot, true);
      continue;
    }
    if (!IsLiveState(state)) {
      char buf[16];
      std::snprintf(buf, sizeof buf, "0x%08x", state);
      return Status::Corruption(SlotCorruption(slot, std::string("invalid block state ") + buf));
    }
    // A live block at/above the mark: killed between publishing and raising.
    Parsed p;
    TS_RETURN_IF_ERROR(ParseLive(slot, b, &p));
    (*gen_end)[p.var_gen];  // the extent ends come from the var prefixes, below
    ++live_;
    scan_limit_ = slot + 1;
  }
  scan_limit_ = std::max(scan_limit_, mark_);
  free_hint_ = 0;

  return Status::OK();
}

// Takes a clean close's state instead of scanning: no block is read.
Status WarmTierImpl::AdoptKnownState(std::map<uint32_t, uint64_t>* gen_end) {
  const WarmOpenState& k = *known_;
  const uint32_t limit = SlotLimit();
  if (k.scan_limit > limit || k.scan_limit < mark_ || k.live + k.free_slots.size() != k.scan_limit) {
    return Status::Corruption(blocks_path_ + ": the persisted index's warm state (" + std::to_string(k.live) +
                              " live of " + std::to_string(k.scan_limit) + " slots) does not fit the file (" +
                              std::to_string(limit) + " slots, high-water mark " + std::to_string(mark_) + ")");
  }
  uint32_t prev = 0;
  for (size_t i = 0; i < k.free_slots.size(); ++i) {
    const uint32_t slot = k.free_slots[i];
    if (slot >= k.scan_limit || (i > 0 && slot <= prev)) {
      return Status::Corruption(blocks_path_ + ": the persisted index's free slots are out of order");
    }
    prev = slot;
  }
  for (uint32_t slot = k.scan_limit; slot < limit; ++slot) SetFree(slot, true);
  for (uint32_t slot : k.free_slots) SetFree(slot, true);
  live_ = k.live;
  scan_limit_ = k.scan_limit;
  adopted_state_ = true;
  free_hint_ = 0;
  for (const WarmOpenState::VarTail& t : k.var_tails) {
    if (t.gen == 0 || t.gen > kMaxGen || t.tail < kHeaderPage) {
      return Status::Corruption(blocks_path_ + ": the persisted index names a bad var generation");
    }
    (*gen_end)[t.gen] = t.tail;
  }
  var_live_bytes_ = k.var_live_bytes;
  return Status::OK();
}

Status WarmTierImpl::OpenFiles() {
  // Nothing here may create, write or remove a file: see FinishOpen.
  if (!PathExists(blocks_path_)) {
    return Status::Corruption(blocks_path_ + " is missing (every store has one from its creation)");
  }
  TS_RETURN_IF_ERROR(File::Open(blocks_path_, read_only_ ? O_RDONLY : O_RDWR, &blocks_));
  uint64_t size = 0;
  TS_RETURN_IF_ERROR(blocks_.Size(&size));
  if (size < kHeaderPage) {
    return Status::Corruption(blocks_path_ + ": file is " + std::to_string(size) +
                              " bytes, shorter than its 4096-byte header page (truncated)");
  }
  uint8_t h[kHeaderReadBytes];
  TS_RETURN_IF_ERROR(blocks_.ReadAt(0, h, sizeof h));
  if (std::memcmp(h, kBlocksMagic, 8) != 0) return Status::Corruption(blocks_path_ + ": bad magic (not a warm block file)");
  if (Load<uint32_t>(h + kOffHeaderFixedCrc) != Crc32c(h, kOffHeaderFixedCrc)) {
    return Status::Corruption(blocks_path_ + ": header checksum mismatch");
  }
  uint32_t version = Load<uint32_t>(h + 8);
  if (version != kBlocksFormatVersion) {
    return Status::Corruption(blocks_path_ + ": unsupported format version " + std::to_string(version));
  }
  uint32_t file_dims = Load<uint32_t>(h + 12);
  if (file_dims != dims_) {
    // The store's dimensions come from its manifest: a block file that
    // disagrees was copied in from elsewhere, not asked for by the user.
    return Status::Corruption(blocks_path_ + " has " + std::to_string(file_dims) + " dimensions, the store has " +
                              std::to_string(dims_) + ": the file belongs to another store");
  }
  uint32_t bs = Load<uint32_t>(h + 16);
  uint32_t bpc = Load<uint32_t>(h + 20);
  uint32_t emb_off = Load<uint32_t>(h + 24);
  uint64_t chunk_bytes = uint64_t{bpc} * bs;
  if (emb_off != kBlockHeaderBytes) {
    return Status::Corruption(blocks_path_ + ": embedding offset " + std::to_string(emb_off) +
                              " does not match format version " + std::to_string(version));
  }
  block_size_ = BlockSizeFor(dims_);
  if (bs != block_size_ || bpc == 0 || chunk_bytes % kHeaderPage != 0) {
    return Status::Corruption(blocks_path_ + ": inconsistent block geometry in the header");
  }
  uint32_t mark = 0;
  if (!UnpackMark(h + kOffMark, &mark)) {
    return Status::Corruption(blocks_path_ + ": high-water mark checksum mismatch in the header");
  }
  bpc_ = bpc;
  if ((size - kHeaderPage) % chunk_bytes != 0) {
    return Status::Corruption(blocks_path_ + ": size " + std::to_string(size) +
                              " is not the 4096-byte header plus whole chunks of " + std::to_string(chunk_bytes) +
                              " bytes (truncated or damaged)");
  }
  uint64_t n_chunks = (size - kHeaderPage) / chunk_bytes;
  if (n_chunks * bpc > std::numeric_limits<uint32_t>::max()) {
    return Status::Corruption(blocks_path_ + ": more slots than the format allows");
  }
  if (mark > n_chunks * bpc) {
    return Status::Corruption(blocks_path_ + ": the header says " + std::to_string(mark) +
                              " slots were used, but the file holds only " + std::to_string(n_chunks * bpc) +
                              " (truncated)");
  }
  uint32_t covered = mark;  // absent (all zeros): strict
  if (Load<uint64_t>(h + kOffCovered) != 0) {
    if (!UnpackMark(h + kOffCovered, &covered)) {
      return Status::Corruption(blocks_path_ + ": covered mark checksum mismatch in the header");
    }
    if (covered > mark) {
      return Status::Corruption(blocks_path_ + ": the covered mark " + std::to_string(covered) +
                                " is above the high-water mark " + std::to_string(mark));
    }
  }
  mark_ = mark;
  covered_ = covered;
  if (!read_only_) TS_RETURN_IF_ERROR(MapRange(blocks_, 0, kHeaderPage, MapMode::kShared, &header_));
  blocks_size_ = kHeaderPage;
  for (uint64_t i = 0; i < n_chunks; ++i) TS_RETURN_IF_ERROR(AddBlockChunk(/*grow=*/false));

  std::map<uint32_t, uint64_t> gen_end;  // referenced generation -> max extent end
  if (known_ != nullptr) {
    TS_RETURN_IF_ERROR(AdoptKnownState(&gen_end));
  } else {
    TS_RETURN_IF_ERROR(ScanSlots(&gen_end));
  }
  std::vector<std::string> names;
  TS_RETURN_IF_ERROR(ListDirectory(dir_, &names));
  std::set<uint32_t> existing;
  for (const auto& name : names) {
    uint32_t gen;
    if (ParseVarFileName(name, &gen)) existing.insert(gen);
  }
  for (const auto& [gen, end] : gen_end) {
    if (!existing.count(gen)) {
      return Status::Corruption(VarPath(gen) + ": var file referenced by live blocks of " + blocks_path_ +
                                " is missing");
    }
    VarFile vf;
    TS_RETURN_IF_ERROR(OpenVarFile(gen, &vf));
    if (end > vf.size) {
      return Status::Corruption(vf.path + ": file is " + std::to_string(vf.size) + " bytes but live records in " +
                                blocks_path_ + " reach byte " + std::to_string(end) + " (truncated)");
    }
    vf.tail = std::max<uint64_t>(end, kHeaderPage);
    var_files_.emplace(gen, std::move(vf));
  }
  // Every referenced var file is open: verify each live block's extent
  // prefix (key_crc) and learn the extent ends and live bytes from it.
  // A clean open keeps each block's id and seq for ForEachLiveKey (after
  // a crash ForEachLive decides on torn copies, so it reads them itself).
  if (!after_crash_ && known_ == nullptr) open_keys_.reserve(live_);
  for (uint32_t slot = 0; known_ == nullptr && slot < scan_limit_; ++slot) {
    if (slot + kPrefetchAhead < scan_limit_) PrefetchExtent(slot + kPrefetchAhead);
    const uint8_t* b = BlockPtr(slot);
    if (LoadState(b) != kStateLive) continue;
    Parsed p;
    TS_RETURN_IF_ERROR(ParseLive(slot, b, &p));
    Status s = ParseExtent(slot, &p);
    if (!s.ok()) {
      // After a crash this may be an extent a power cut kept from the
      // disk while its block got there: ForEachLive decides, with the
      // caller's TornCopyPolicy. Otherwise it is damage.
      if (!after_crash_) return s;
      unverified_.insert(slot);
      continue;
    }
    VarFile& vf = var_files_.at(p.var_gen);
    vf.tail = std::max(vf.tail, p.var_offset + p.extent_len());
    var_live_bytes_ += p.extent_len();
    if (!after_crash_) open_keys_.push_back({slot, p.id_len, p.seq, reinterpret_cast<const char*>(p.bytes)});
  }
  if (!gen_end.empty()) cur_gen_ = gen_end.rbegin()->first;
  if (read_only_) return Status::OK();  // nothing to defer: a reader never writes

  if (cur_gen_ == 0 && !existing.empty()) {
    // Nothing live: reuse the newest var file when it is intact, else
    // FinishOpen starts a new generation.
    uint32_t gen = *existing.rbegin();
    VarFile vf;
    if (gen <= kMaxGen && OpenVarFile(gen, &vf).ok()) {
      var_files_.emplace(gen, std::move(vf));
      cur_gen_ = gen;
    }
  }
  if (cur_gen_ == 0) {
    new_gen_ = existing.empty() ? 1 : *existing.rbegin() + 1;
    // Wrapped (24 bits): every existing file is
    // unreferenced and removed first.
    if (new_gen_ == 0 || new_gen_ > kMaxGen) new_gen_ = 1;
  }
  for (uint32_t gen : existing) {
    if (!var_files_.count(gen)) pending_remove_.push_back(VarPath(gen));
  }
  for (const auto& name : names) {
    if (name.size() > 4 && name.compare(name.size() - 4, 4, ".tmp") == 0 && name.rfind("warm", 0) == 0) {
      pending_remove_.push_back(JoinPath(dir_, name));
    }
  }
  return Status::OK();
}

Status WarmTierImpl::FinishOpen() {
  if (read_only_ || finished_) return Status::OK();
  DropOpenKeys();  // what follows changes blocks
  for (uint32_t slot : pending_freed_) {
    uint8_t* b = BlockPtr(slot);
    if (LoadState(b) != kStateWriting) continue;  // done by an earlier, failed attempt
    PublishState(b, kStateFreed);
    MarkBlockDirty(slot);
  }
  pending_freed_.clear();
  // Below the mark no block may read as never written: the next open
  // could not tell these from damage.
  for (uint32_t slot : pending_zeroed_) {
    uint8_t* b = BlockPtr(slot);
    if (LoadState(b) != kStateFree) continue;
    PublishState(b, kStateFreed);
    MarkBlockDirty(slot);
  }
  pending_zeroed_.clear();
  // Blocks written just above the mark (a crash between publishing and
  // raising) were written once: cover them so damage to them is detected.
  // (After a clean close, whose state the open adopted, there are none,
  // and those blocks were not read: nothing there is taken on trust.)
  uint32_t mark = mark_;
  while (!adopted_state_ && mark < SlotLimit() && LoadState(BlockPtr(mark)) != kStateFree) ++mark;
  if (mark != mark_) RaiseMark(mark);
  // Remove before creating: when generations wrapped, the new file reuses
  // the name of an unreferenced one.
  for (const std::string& path : pending_remove_) TS_RETURN_IF_ERROR(RemoveFile(path));  // ENOENT is fine: retry-safe
  if (!pending_remove_.empty()) TS_RETURN_IF_ERROR(SyncDirectory(dir_));
  pending_remove_.clear();
  if (cur_gen_ == 0) {
    VarFile vf;
    TS_RETURN_IF_ERROR(CreateVarFile(new_gen_, &vf));  // durable, directory synced
    var_files_.emplace(new_gen_, std::move(vf));
    cur_gen_ = new_gen_;
  }
  finished_ = true;
  return Status::OK();
}

Status WarmTierImpl::Insert(const RecordView& rec, uint32_t* slot_out) {
  if (read_only_) return Status::ReadOnly("the warm tier in " + dir_ + " is open read-only");
  if (!finished_) return NotFinished("Insert");
  DropOpenKeys();
  if (rec.id.empty() || rec.id.size() > kMaxIdBytes) {
    return Status::InvalidArgument("id must be 1.." + std::to_string(kMaxIdBytes) + " bytes, got " +
                                   std::to_string(rec.id.size()));
  }
  if (rec.content.size() > kMaxContentBytes) {
    return Status::ContentTooLarge("content of " + std::to_string(rec.content.size()) + " bytes exceeds the warm limit");
  }
  if (rec.metadata.size() > kMaxMetadataBytes) {
    return Status::ContentTooLarge("metadata of " + std::to_string(rec.metadata.size()) + " bytes exceeds the warm limit");
  }
  if (rec.embedding == nullptr) return Status::InvalidArgument("record has no embedding");

  const uint64_t n = uint64_t{rec.id.size()} + rec.content.size() + rec.metadata.size();
  const uint64_t prefix = kPrefixBytes;
  uint64_t var_off = 0;
  uint8_t* var = nullptr;
  TS_RETURN_IF_ERROR(ReserveVar(prefix + n, &var_off, &var));
  uint32_t slot = 0;
  if (!LowestFree(&slot)) {
    TS_RETURN_IF_ERROR(AddBlockChunk(/*grow=*/true));
    for (uint32_t s = SlotLimit() - bpc_; s < SlotLimit(); ++s) SetFree(s, true);
    if (!LowestFree(&slot)) return Status::IoError(blocks_path_ + ": no free slot after growth");
  }
  // Nothing can fail from here on. A slot FreeLater left unpublished is
  // rewritten whole below: its stale block goes with it.
  if (Unpublished(slot)) {
    ClearUnpublished(slot);
    AccountFreed(slot);
  }
  uint8_t* bytes = var + prefix;
  std::memcpy(bytes, rec.id.data(), rec.id.size());
  if (!rec.content.empty()) std::memcpy(bytes + rec.id.size(), rec.content.data(), rec.content.size());
  if (!rec.metadata.empty()) {
    std::memcpy(bytes + rec.id.size() + rec.content.size(), rec.metadata.data(), rec.metadata.size());
  }

  uint8_t h[kBlockHeaderBytes] = {};
  Store<uint64_t>(h + kOffSeq, rec.seq);
  Store<double>(h + kOffCreatedAt, rec.created_at);
  Store<double>(h + kOffLastAccess, rec.last_access_at);
  Store<double>(h + kOffAccessCount, rec.access_count);
  Store<float>(h + kOffConfidence, rec.confidence);
  Store<float>(h + kOffActivation, rec.activation);
  Store<float>(h + kOffNorm, rec.norm);
  const uint32_t embedding_crc = Crc32c(rec.embedding, uint64_t{4} * dims_);
  Store<uint64_t>(h + kOffLoc, PackLoc(cur_gen_, var_off));
  Store<uint32_t>(h + kOffEmbeddingCrc, embedding_crc);
  Store<uint32_t>(h + kOffHeaderCrc, ExtendFixed(0, h));
  Store<uint32_t>(var, static_cast<uint32_t>(rec.id.size()));
  Store<uint32_t>(var + 4, static_cast<uint32_t>(rec.content.size()));
  Store<uint32_t>(var + 8, static_cast<uint32_t>(rec.metadata.size()));
  Store<uint32_t>(var + kPrefixKeyCrc, ComputeKeyCrc(var, bytes, static_cast<uint32_t>(rec.id.size()), rec.seq));
  Store<uint32_t>(var + kPrefixDataCrc, ExtendFixed(Crc32cExtend(0, bytes, n), h));

  if (slot >= mark_ && slot + 1 < SlotLimit()) {
    // This store never wrote above the mark, but a damaged file may hold
    // garbage there that open never read (it stops at the first
    // never-written block). The mark is about to pass this slot: clear the
    // next block's state first, so the next open stops there whatever a
    // crash leaves, instead of reading the garbage as a block.
    uint8_t* next = BlockPtr(slot + 1);
    if (LoadState(next) != kStateFree) {
      PublishState(next, kStateFree);
      MarkBlockDirty(slot + 1);
    }
  }
  if (slot >= mark_ && slot + 2 > populated_slots_) {
    // A first write here (and the read of the next block's state, above):
    // prefault the blocks ahead, a chunk at most (chunks are mapped apart).
    const uint32_t from = std::max(slot, populated_slots_);
    const uint32_t chunk_end = (from / bpc_ + 1) * bpc_;
    const uint32_t to = static_cast<uint32_t>(
        std::min<uint64_t>({uint64_t{from} + kBlockPopulateAhead, chunk_end, SlotLimit()}));
    if (from < to) {  // none when the next block lies in a chunk not yet added
      PopulateForWrite(BlockPtr(from), BlockPtr(to - 1) + block_size_);
      populated_slots_ = to;
    }
  }
  uint8_t* b = BlockPtr(slot);
  PublishState(b, kStateWriting);
  std::memcpy(b + 4, h + 4, kBlockHeaderBytes - 4);
  std::memcpy(b + kBlockHeaderBytes, rec.embedding, uint64_t{4} * dims_);
  PublishState(b, kStateLive);
  // Only now (block complete and published) may the mark cover the slot.
  // Lowest-free allocation means every slot below `slot` is live, so the
  // slots below the raised mark were all written.
  if (slot >= mark_) RaiseMark(slot + 1);
  scan_limit_ = std::max(scan_limit_, slot + 1);

  VarFile& vf = var_files_.at(cur_gen_);
  vf.tail = var_off + prefix + n;
  vf.regions.back().dirty = true;
  MarkBlockDirty(slot);
  SetFree(slot, false);
  ++live_;
  var_live_bytes_ += prefix + n;
  if (filter_.made()) filter_.Set(slot, FilterEntry::Of(rec));
  *slot_out = slot;
  return Status::OK();
}

Status WarmTierImpl::Compact(uint64_t* bytes_reclaimed) {
  DropOpenKeys();
  if (read_only_) return Status::ReadOnly("the warm tier in " + dir_ + " is open read-only");
  if (!finished_) return NotFinished("Compact");
  PublishFrees();  // a block still reading live would point into the var file about to go
  *bytes_reclaimed = 0;
  uint32_t new_gen = var_files_.empty() ? 1 : var_files_.rbegin()->first + 1;
  if (new_gen > kMaxGen) {
    // 24 bits of generation: wrap to the smallest one not in use (every
    // generation in use is in var_files_; unreferenced files were removed).
    new_gen = 1;
    while (var_files_.count(new_gen)) ++new_gen;
  }
  if (new_gen == 0) return Status::IoError(dir_ + ": warm var file generations exhausted");
  if (kHeaderPage + var_live_bytes_ - 1 > kMaxOffset) {
    return Status::IoError(dir_ + ": live warm var bytes exceed what a block's location can address (2^40)");
  }

  // 1. Write the new generation with every live extent, and make it durable.
  struct Move {
    uint32_t slot;
    uint64_t off;
  };
  std::vector<Move> moves;
  moves.reserve(live_);
  VarFile nv;
  {
    Status s = CreateVarFile(new_gen, &nv);
    auto fail = [&](Status st) {
      nv.regions.clear();
      nv.file.Close();
      (void)RemoveFile(nv.path);
      return st;
    };
    if (!s.ok()) return fail(s);
    uint64_t total = var_live_bytes_;
    uint8_t* dst = nullptr;
    if (total > 0) {
      uint64_t page = std::max<uint64_t>(PageSize(), kHeaderPage);
      uint64_t len = RoundUp(total, page);
      s = GrowFile(&nv.file, kHeaderPage, kHeaderPage + len);
      if (!s.ok()) return fail(s);
      Region r;
      s = MapRange(nv.file, kHeaderPage, len, MapMode::kShared, &r);
      if (!s.ok()) return fail(s);
      dst = r.base;
      nv.regions.push_back(std::move(r));
      nv.size = kHeaderPage + len;
    }
    uint64_t cursor = 0;
    uint32_t limit = scan_limit_;
    for (uint32_t slot = 0; slot < limit; ++slot) {
      const uint8_t* b = BlockPtr(slot);
      if (!IsLiveState(LoadState(b))) continue;
      Parsed p;
      s = ParseLive(slot, b, &p);
      if (s.ok()) s = ParseExtent(slot, &p);
      if (!s.ok()) return fail(s);
      // The whole extent, its prefix included: nothing in it
      // depends on where it lies.
      uint64_t n = p.extent_len();
      if (cursor + n > total) return fail(Status::Corruption(blocks_path_ + ": live byte count changed during compaction"));
      std::memcpy(dst + cursor, p.bytes - kPrefixBytes, n);
      moves.push_back({slot, kHeaderPage + cursor});
      cursor += n;
    }
    nv.tail = kHeaderPage + cursor;
    if (!nv.regions.empty()) {
      s = nv.regions.back().map.Sync(nv.path);
      if (!s.ok()) return fail(s);
    }
    s = nv.file.Sync();
    if (!s.ok()) return fail(s);
  }

  // 2. Repoint each block with one aligned store of its location word. A
  //    crash leaves each block on the old or the new (complete, synced)
  //    file.
  std::vector<uint32_t> old_gens;
  uint64_t old_bytes = 0;
  for (const auto& [gen, vf] : var_files_) {
    old_gens.push_back(gen);
    old_bytes += vf.size;
  }
  uint64_t new_bytes = nv.size;
  var_files_.emplace(new_gen, std::move(nv));
  cur_gen_ = new_gen;
  for (const Move& m : moves) {
    uint8_t* b = BlockPtr(m.slot);
    __atomic_store_n(reinterpret_cast<uint64_t*>(b + kOffLoc), PackLoc(new_gen, m.off), __ATOMIC_RELEASE);
    MarkBlockDirty(m.slot);
  }
  for (auto& r : chunks_) {
    if (!r.dirty) continue;
    TS_RETURN_IF_ERROR(r.map.Sync(blocks_path_));
    r.dirty = false;
  }
  TS_RETURN_IF_ERROR(blocks_.Sync());

  // 3. No block references the old generations any more: drop them.
  for (uint32_t gen : old_gens) {
    std::string path = VarPath(gen);
    var_files_.erase(gen);  // unmaps and closes
    TS_RETURN_IF_ERROR(RemoveFile(path));
  }
  TS_RETURN_IF_ERROR(SyncDirectory(dir_));
  *bytes_reclaimed = old_bytes > new_bytes ? old_bytes - new_bytes : 0;
  return Status::OK();
}

}  // namespace

Status WarmTier::Create(const std::string& dir, uint32_t dimensions) {
  if (dimensions == 0 || dimensions > kMaxDimensions) {
    return Status::InvalidArgument("dimensions must be 1.." + std::to_string(kMaxDimensions) + ", got " +
                                   std::to_string(dimensions));
  }
  std::string path = JoinPath(dir, kBlockFileName);
  if (PathExists(path)) {
    return Status::InvalidArgument(path + " already exists; WarmTier::Create is for a new store only");
  }
  TS_RETURN_IF_ERROR(CreateDirectories(dir));
  uint32_t block_size = BlockSizeFor(dimensions);
  uint64_t page = std::max<uint64_t>(PageSize(), kHeaderPage);
  uint64_t unit = page / Gcd(block_size, page);  // blocks per page-multiple
  uint64_t target = warm_testing::g_block_chunk_bytes.load();
  if (target == 0) target = kDefaultBlockChunkBytes;
  uint64_t bpc = std::max<uint64_t>(unit, target / block_size / unit * unit);
  return AtomicWriteFile(path, BlocksHeaderPage(dimensions, block_size, static_cast<uint32_t>(bpc)));
}

Status WarmTier::Open(const std::string& dir, uint32_t dimensions, bool read_only, std::unique_ptr<WarmTier>* out) {
  return Open(dir, dimensions, read_only, /*after_crash=*/false, out);
}

Status WarmTier::Open(const std::string& dir, uint32_t dimensions, bool read_only, bool after_crash,
                      std::unique_ptr<WarmTier>* out) {
  return Open(dir, dimensions, read_only, after_crash, nullptr, out);
}

Status WarmTier::Open(const std::string& dir, uint32_t dimensions, bool read_only, bool after_crash,
                      const WarmOpenState* known, std::unique_ptr<WarmTier>* out) {
  if (dimensions == 0 || dimensions > kMaxDimensions) {
    return Status::InvalidArgument("dimensions must be 1.." + std::to_string(kMaxDimensions) + ", got " +
                                   std::to_string(dimensions));
  }
  auto t = std::make_unique<WarmTierImpl>(dir, dimensions, read_only, after_crash && known == nullptr, known);
  TS_RETURN_IF_ERROR(t->OpenFiles());
  t->ForgetKnownState();
  *out = std::move(t);
  return Status::OK();
}

}  // namespace tierstore
