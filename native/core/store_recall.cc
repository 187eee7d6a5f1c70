// Recall: exact top-k cosine similarity over the selected tiers, in four
// steps run under the store's shared lock:
//   1. CollectRanges  the rows to score, as ranges over the tiers' memory
//                     (hot arena chunks, warm block runs, cold segment columns)
//   2. Scan           every row scored in float (SIMD), keeping each row that
//                     could be in the top k; split across threads when asked
//   3. Rescore        the rows kept scored again exactly, in double
//   4. Rank           the k best by exact score, ties by id, read out
//
// Why steps 2 and 3, so that the hits are those of an exact scan:
// - The scan scores every row in float (SIMD) and keeps each row that
//    could be in the top k: the k best float scores, and every row within
//    kSlack of the k-th of them. A float cosine here is within
//    (dims + 4) * 2^-24 of the exact one (rounding of the unit query, a dot
//    product of dims terms in any order, the stored norm and the division),
//    so a row whose exact score reaches the true k-th has a float score at
//    least the k-th float score minus twice that; kSlack is twice that
//    again.
// - The rows kept are scored again in double (ExactTerms) and ranked by
//    that score, ties by id in byte order. Scores near a tie therefore
//    rank as a double-precision brute-force scan ranks them, not by float
//    rounding noise, and the score returned is the double one.
#include <algorithm>
#include <atomic>
#include <cmath>
#include <functional>
#include <limits>
#include <string_view>
#include <system_error>
#include <thread>
#include <utility>
#include <vector>

#include "similarity.h"
#include "store_impl.h"

namespace tierstore {

// One candidate of a recall: its float score from the scan, then its exact
// score; `row` is its embedding (valid while the store lock is held), `loc`
// finds it again (the id only on an exact-score tie).
struct StoreImpl::Scored {
  float score;
  double exact;
  const float* row;
  Location loc;
};

// Rows to score, `count` of them, in one of three shapes:
// - cold: a contiguous matrix (stride = dims) with norms, confidence and a
//   deletion bitmap per row;
// - hot: one arena chunk (stride = dims) with an info entry per row;
// - warm: slots [first_slot, first_slot + count), read through the tier.
struct StoreImpl::ScanRange {
  enum class Kind { kCold, kHot, kWarm } kind = Kind::kCold;
  const float* matrix = nullptr;
  const float* norms = nullptr;                        // cold
  const float* confidence = nullptr;                   // cold
  const float* activation = nullptr;                   // cold
  const double* created_at = nullptr;                  // cold
  ColdSegmentView cold;                                // cold: the segment's columns
  const uint64_t* deleted = nullptr;                   // cold: bitmap, one bit per row
  const EmbeddingArena::RowInfo* info = nullptr;       // hot
  size_t count = 0;
  uint32_t segment = 0;                                // cold
  WarmRun warm;                                        // warm
  const WarmFilterArray::View* warm_filter = nullptr;  // warm, filtered recalls: the slots' filter entries

  const uint8_t* WarmBlock(size_t i) const { return warm.base + i * warm.block_size; }
  const float* Row(size_t i, uint32_t dims) const {
    return kind == Kind::kWarm ? reinterpret_cast<const float*>(WarmBlock(i) + warm.embedding_offset)
                               : matrix + i * dims;
  }
  float Norm(size_t i) const {
    switch (kind) {
      case Kind::kCold: return norms[i];
      case Kind::kHot: return info[i].norm;
      case Kind::kWarm: return warm_block::Norm(WarmBlock(i));
    }
    return 0;
  }
  Location LocOf(size_t i) const {
    switch (kind) {
      case Kind::kCold: return Location::Cold(ColdLoc{segment, static_cast<uint32_t>(i)});
      case Kind::kHot: return Location::Hot(info[i].key);
      case Kind::kWarm: return Location::Warm(warm.first_slot + static_cast<uint32_t>(i));
    }
    return Location();
  }
  // out[0..to-from) = dot(unit, row i) for rows [from, to). The warm
  // embeddings sit block_size apart; a free block's stale embedding is
  // scored too when it is in the span (free blocks are rare: they are
  // reused first) and then not offered.
  void Dots(const float* unit, size_t from, size_t to, uint32_t dims, float* out) const {
    if (kind == Kind::kWarm) {
      DotRowsStrided(unit, WarmBlock(from) + warm.embedding_offset, warm.block_size, to - from, dims, out);
    } else {
      DotRows(unit, matrix + from * dims, to - from, dims, out);
    }
  }
};

// The query as the scan and the rescoring use it.
struct StoreImpl::RecallQuery {
  const float* query;       // as given, for exact scores
  double norm;              // its norm, in double
  std::vector<float> unit;  // scaled to unit length, for float scores
  double slack;             // kSlack (see the top of this file)
};

namespace {

// The dot product of a and b and the squared norm of b, in double, with
// four partial sums in a fixed order. Recall's exact scores come from these:
// dot(q, x) / sqrt(dot(q, q) * dot(x, x)), each term summed the same way, so
// a record whose embedding equals the query scores exactly 1 (sqrt(s * s) is
// s in IEEE arithmetic), and any two computations of one cosine agree.
struct DotAndNorm {
  double dot;
  double nn;
};
DotAndNorm ExactTerms(const float* a, const float* b, uint32_t dims) {
  double d[4] = {0, 0, 0, 0}, n[4] = {0, 0, 0, 0};
  uint32_t j = 0;
  for (; j + 4 <= dims; j += 4) {
    for (uint32_t t = 0; t < 4; ++t) {
      d[t] += static_cast<double>(a[j + t]) * b[j + t];
      n[t] += static_cast<double>(b[j + t]) * b[j + t];
    }
  }
  double dot = (d[0] + d[1]) + (d[2] + d[3]), nn = (n[0] + n[1]) + (n[2] + n[3]);
  for (; j < dims; ++j) {
    dot += static_cast<double>(a[j]) * b[j];
    nn += static_cast<double>(b[j]) * b[j];
  }
  return {dot, nn};
}

}  // namespace

Status StoreImpl::Recall(const float* query, const RecallOptions& options, RecallResult* result) {
  result->records.Clear();
  result->scores.clear();
  if (options.k == 0) return Status::InvalidArgument("k must be >= 1");
  const double qnorm_d = NormOf(query, dims_);
  if (!std::isfinite(qnorm_d)) return Status::InvalidArgument("the query vector must have finite values");
  // The query scaled to unit length (in double, then rounded once). An
  // all-zero vector's cosine with anything is 0, the query's too:
  // every record scores 0 and ties go by id.
  RecallQuery q{query, qnorm_d, std::vector<float>(dims_, 0.0f),
                (static_cast<double>(dims_) + 8) * std::ldexp(1.0, -23)};
  if (qnorm_d > 0) {
    for (uint32_t j = 0; j < dims_; ++j) q.unit[j] = static_cast<float>(query[j] / qnorm_d);
  }
  ReaderLock lock(mu_);
  TS_RETURN_IF_ERROR(CheckOpen());
  // The store lock stays held (shared) for the whole call: nothing can move
  // or unmap underneath the pointers the steps collect.
  std::vector<ScanRange> ranges;
  WarmFilterArray::View warm_filter;
  if (options.filter != nullptr && options.filter->needs_record() && warm_count_ > 0) {
    warm_filter = warm_->FilterEntries();
  }
  TS_RETURN_IF_ERROR(CollectRanges(options, &warm_filter, &ranges));
  std::vector<Scored> candidates;
  TS_RETURN_IF_ERROR(Scan(ranges, q, options, &candidates));
  Rescore(q, &candidates);
  return Rank(&candidates, options, result);
}

// Step 1. A filtered recall takes the tiers' filter arrays too (the warm
// slots' entries, the cold segments' signatures), and asks the kernel to
// read ahead no block or embedding: the rows its filter excludes are not
// to be read at all.
Status StoreImpl::CollectRanges(const RecallOptions& options, const WarmFilterArray::View* warm_filter,
                                std::vector<ScanRange>* out) {
  auto in_scope = [&](Tier t) {
    return options.tier == TierSelector::kAll || static_cast<int>(options.tier) == static_cast<int>(t);
  };
  const bool filtered = options.filter != nullptr && options.filter->needs_record();
  if (in_scope(Tier::kHot) && !hot_.empty()) {
    for (size_t c = 0; c < hot_.arena().chunk_count(); ++c) {
      EmbeddingArena::ChunkView chunk = hot_.arena().Chunk(c);
      if (chunk.used == 0) continue;
      ScanRange r;
      r.kind = ScanRange::Kind::kHot;
      r.matrix = chunk.rows;
      r.info = chunk.info;
      r.count = chunk.used;
      out->push_back(r);
    }
  }
  if (in_scope(Tier::kWarm) && warm_count_ > 0) {
    std::vector<WarmRun> runs;
    warm_->ScanRuns(&runs);
    for (const WarmRun& run : runs) {
      // The mappings read no ahead by themselves.
      if (!filtered) AdviseWillNeed(run.base, size_t{run.count} * run.block_size);
      ScanRange r;
      r.kind = ScanRange::Kind::kWarm;
      r.warm = run;
      r.count = run.count;
      r.warm_filter = filtered ? warm_filter : nullptr;
      out->push_back(r);
    }
  }
  if (in_scope(Tier::kCold) && cold_count_ > 0) {
    const bool signatures = filtered && options.filter->has_metadata();
    TS_RETURN_IF_ERROR(cold_->ScanSegments([&](const ColdSegmentView& seg) {
      ScanRange r;
      r.kind = ScanRange::Kind::kCold;
      r.matrix = seg.embeddings;
      r.norms = seg.norms;
      r.confidence = seg.confidence;
      r.activation = seg.activation;
      r.created_at = seg.created_at;
      r.cold = seg;
      r.deleted = seg.deleted;
      r.count = seg.rows;
      r.segment = seg.segment;
      if (!filtered) AdviseWillNeed(seg.embeddings, static_cast<size_t>(seg.rows * dims_ * sizeof(float)));
      for (const void* col : {static_cast<const void*>(seg.norms), static_cast<const void*>(seg.confidence),
                              static_cast<const void*>(seg.activation)}) {
        AdviseWillNeed(col, static_cast<size_t>(seg.rows * sizeof(float)));
      }
      AdviseWillNeed(seg.created_at, static_cast<size_t>(seg.rows * sizeof(double)));
      out->push_back(r);
      return Status::OK();
    }, signatures));
  }
  return Status::OK();
}

// Step 2: the float scores, of the rows that pass the filter.
Status StoreImpl::Scan(const std::vector<ScanRange>& ranges, const RecallQuery& q, const RecallOptions& options,
                       std::vector<Scored>* candidates) {
  const float* query = q.query;
  const double qnorm_d = q.norm;
  const std::vector<float>& unit = q.unit;
  const double kSlack = q.slack;
  constexpr float kFloatSafeMin = 1e-30f, kFloatSafeMax = 1e30f;
  auto ExactCosine = [&](const float* row) -> float {
    const DotAndNorm t = ExactTerms(query, row, dims_);
    return t.nn > 0 && qnorm_d > 0 ? static_cast<float>(t.dot / (qnorm_d * std::sqrt(t.nn))) : 0.0f;
  };
  struct Kept {
    std::vector<float> best;   // min-heap of the k best float scores
    std::vector<Scored> rows;  // every row at or above best.front() - kSlack (and some below)
    size_t prune_at = 0;
    Status error;              // the first record the filter could not read
  };
  const size_t k = options.k;
  const RecordFilter* filter = options.filter != nullptr && !options.filter->empty() ? options.filter.get() : nullptr;
  const bool by_metadata = filter != nullptr && filter->has_metadata();
  auto confidence_passes = [&](float confidence) {
    return (!options.has_min_confidence || confidence >= options.min_confidence) &&
           (filter == nullptr || filter->MatchesConfidence(confidence));
  };
  // A row's verdict before its score: kOut; kIn; or kMaybe, which passes
  // everything but the metadata conditions' exact check (its filter entry's
  // signature holds their bits), done only if its score would keep it.
  enum Verdict : uint8_t { kOut = 0, kIn = 1, kMaybe = 2 };
  // The filter's conditions beyond confidence, from the tiers' filter
  // arrays (hot: the arena's row info; warm: the slots' filter entries;
  // cold: the scalar columns and the segment's signatures), so an excluded
  // row costs no block, embedding or metadata read. A warm slot the array
  // does not know is decided from its block and var bytes.
  auto rest_passes = [&](const ScanRange& r, size_t i) REQUIRES_SHARED(mu_) -> Verdict {
    if (filter == nullptr || !filter->needs_record()) return kIn;
    switch (r.kind) {
      case ScanRange::Kind::kHot:
        return !filter->MayMatch(r.info[i].filter) ? kOut : by_metadata ? kMaybe : kIn;
      case ScanRange::Kind::kCold:
        if (!filter->MatchesScalars(r.created_at[i], r.confidence[i], r.activation[i])) return kOut;
        if (!by_metadata) return kIn;
        return r.cold.signatures == nullptr || filter->MayMatchSignature(r.cold.signatures[i]) ? kMaybe : kOut;
      case ScanRange::Kind::kWarm: {
        const uint32_t slot = r.warm.first_slot + static_cast<uint32_t>(i);
        if (const FilterEntry* e = r.warm_filter != nullptr ? r.warm_filter->Find(slot) : nullptr) {
          return !filter->MayMatch(*e) ? kOut : by_metadata ? kMaybe : kIn;
        }
        const uint8_t* block = r.WarmBlock(i);
        if (!filter->MatchesScalars(warm_block::CreatedAt(block), warm_block::Confidence(block),
                                    warm_block::Activation(block))) {
          return kOut;
        }
        return by_metadata ? kMaybe : kIn;
      }
    }
    return kOut;
  };
  // The exact metadata check of a kMaybe row: metadata as stored, its
  // checksum not verified here (a hit is read again, checksums and all, by
  // Rank).
  auto metadata_matches = [&](const ScanRange& r, size_t i, Status* error) REQUIRES_SHARED(mu_) {
    if (r.kind == ScanRange::Kind::kCold) {
      std::string_view metadata;
      if (!r.cold.Metadata(i, &metadata)) {
        if (error->ok()) {
          *error = Status::Corruption(FileOf(r.LocOf(i)) + ": row " + std::to_string(i) +
                                      ": metadata offsets out of range");
        }
        return false;
      }
      return filter->MatchesMetadata(metadata);
    }
    if (r.kind == ScanRange::Kind::kHot) {
      const HotRecord* rec = HotAt(r.LocOf(i));
      return rec != nullptr && filter->MatchesMetadata(rec->metadata());
    }
    RecordView v;
    Status st = warm_->Peek(r.LocOf(i).warm_slot(), &v);
    if (!st.ok()) {
      if (error->ok()) *error = std::move(st);
      return false;
    }
    return filter->MatchesMetadata(v.metadata);
  };
  // verdict[i - from] for rows [from, to) of r: live, not masked, passing
  // min_confidence and the filter (see Verdict). Returns how many are not
  // kOut.
  auto admit_rows = [&](const ScanRange& r, size_t from, size_t to, Status* error, uint8_t* verdict)
                        REQUIRES_SHARED(mu_) {
    size_t n = 0;
    for (size_t i = from; i < to; ++i) {
      Verdict v = kOut;
      switch (r.kind) {
        case ScanRange::Kind::kCold:
          if (!((r.deleted[i / 64] >> (i % 64)) & 1) &&
              !Masked(Tier::kCold, ColdKey(ColdLoc{r.segment, static_cast<uint32_t>(i)})) &&
              confidence_passes(r.confidence[i])) {
            v = rest_passes(r, i);
          }
          break;
        case ScanRange::Kind::kHot:
          if (r.info[i].key != 0 && confidence_passes(r.info[i].confidence)) {  // key 0: a free row
            v = rest_passes(r, i);
          }
          break;
        case ScanRange::Kind::kWarm: {
          const uint32_t slot = r.warm.first_slot + static_cast<uint32_t>(i);
          if (r.warm.Free(slot)) break;
          // The filter first: a row it excludes by its entry costs no block.
          v = rest_passes(r, i);
          if (v == kOut) break;
          const uint8_t* block = r.WarmBlock(i);
          if (!warm_block::IsLive(block)) {
            if (error->ok()) {
              *error = Status::Corruption(FileOf(Location::Warm(slot)) + ": slot " + std::to_string(slot) +
                                          " holds a live record but its block does not read live");
            }
            v = kOut;
            break;
          }
          if (Masked(Tier::kWarm, slot) || !confidence_passes(warm_block::Confidence(block))) v = kOut;
          break;
        }
      }
      verdict[i - from] = v;
      n += v != kOut ? 1 : 0;
    }
    return n;
  };
  // Scores rows [begin, end) of the concatenation of all ranges into `kept`.
  // The scan and its workers need the store's mutex held shared for their
  // whole run: Recall holds it until the last worker has joined.
  auto scan = [&](size_t begin, size_t end, Kept* kept) REQUIRES_SHARED(mu_) {
    size_t base = 0;
    // Cosine against the unit query: dot / |row|. A row whose norm is
    // outside float's comfortable range (or zero), or whose dot overflowed,
    // is scored again in double, so huge and tiny values score exactly too.
    // A kMaybe row is checked exactly only once its score would keep it.
    auto offer = [&](float dot, const ScanRange& r, size_t i, bool maybe) REQUIRES_SHARED(mu_) {
      const float norm = r.Norm(i);
      const float* row = r.Row(i, dims_);
      float score = (norm >= kFloatSafeMin && norm <= kFloatSafeMax && std::isfinite(dot)) ? dot / norm : ExactCosine(row);
      // Only a damaged file can hold a non-finite value; NaN would break the
      // heap's ordering, so such a row ranks last.
      if (std::isnan(score)) score = -std::numeric_limits<float>::infinity();
      std::vector<float>& best = kept->best;
      if (best.size() >= k && score <= best.front() &&
          static_cast<double>(score) < static_cast<double>(best.front()) - kSlack) {
        return;
      }
      if (maybe && !metadata_matches(r, i, &kept->error)) return;
      const Location loc = r.LocOf(i);
      if (best.size() < k) {
        best.push_back(score);
        std::push_heap(best.begin(), best.end(), std::greater<float>());
      } else if (score > best.front()) {
        std::pop_heap(best.begin(), best.end(), std::greater<float>());
        best.back() = score;
        std::push_heap(best.begin(), best.end(), std::greater<float>());
      } else if (static_cast<double>(score) < static_cast<double>(best.front()) - kSlack) {
        return;
      }
      kept->rows.push_back(Scored{score, 0.0, row, loc});
      if (kept->rows.size() >= kept->prune_at) {
        // Rows that fell below the bar since they were kept leave; if most
        // stay (many rows score alike), the next prune waits for twice as many.
        const double bar = best.size() < k ? -std::numeric_limits<double>::infinity()
                                           : static_cast<double>(best.front()) - kSlack;
        std::erase_if(kept->rows, [&](const Scored& r) { return static_cast<double>(r.score) < bar; });
        kept->prune_at = std::max<size_t>(2 * kept->rows.size(), 2 * k + 1024);
      }
    };
    // A block of rows at a time: first which rows are candidates (live, and
    // passing the filter), then their dot products (the whole block through
    // DotRows, or, when the filter leaves few, each candidate alone, so an
    // excluded row's embedding is not read), then offer them while their
    // scalars (warm: the block header) are still cached.
    constexpr size_t kScanBlock = 256;
    float dots[kScanBlock];
    uint8_t admitted[kScanBlock];
    for (const ScanRange& r : ranges) {
      size_t lo = std::max(begin, base), hi = std::min(end, base + r.count);
      for (size_t block_lo = lo; block_lo < hi; block_lo += kScanBlock) {
        size_t from = block_lo - base, to = std::min(hi, block_lo + kScanBlock) - base;
        const size_t candidates = admit_rows(r, from, to, &kept->error, admitted);
        if (candidates == 0) continue;
        if (candidates * 4 < to - from) {
          for (size_t i = from; i < to; ++i) {
            if (admitted[i - from] != kOut) r.Dots(unit.data(), i, i + 1, dims_, &dots[i - from]);
          }
        } else {
          r.Dots(unit.data(), from, to, dims_, dots);
        }
        for (size_t i = from; i < to; ++i) {
          if (admitted[i - from] != kOut) offer(dots[i - from], r, i, admitted[i - from] == kMaybe);
        }
      }
      base += r.count;
    }
  };
  size_t total = 0;
  for (const ScanRange& r : ranges) total += r.count;
  unsigned threads = std::max(1u, options.threads);
  if (total < 4096) threads = 1;  // not worth a thread
  std::vector<Kept> heaps(threads);
  if (threads == 1) {
    scan(0, total, &heaps[0]);
  } else {
    // Threads take slices from a shared counter rather than one fixed share
    // each: rows cost differently (hot rows on huge pages, warm ones on
    // 4 KiB file pages), and a thread the machine runs slower does less.
    // About 16 slices per thread, none under 1024 rows.
    const size_t slice = std::max<size_t>(1024, total / (size_t{threads} * 16));
    std::atomic<size_t> next{0};
    auto worker = [&](Kept* heap) REQUIRES_SHARED(mu_) {
      for (size_t from = next.fetch_add(slice); from < total; from = next.fetch_add(slice)) {
        scan(from, std::min(total, from + slice), heap);
      }
    };
    std::vector<std::thread> workers;
    try {
      for (unsigned t = 1; t < threads; ++t) workers.emplace_back(worker, &heaps[t]);
    } catch (const std::system_error&) {
      // No thread to be had (resource limits): the slices the missing
      // threads would have taken are left on the counter for this one.
    }
    worker(&heaps[0]);
    for (std::thread& w : workers) w.join();
  }
  for (Kept& h : heaps) TS_RETURN_IF_ERROR(h.error);
  std::vector<Scored>& all = *candidates;
  for (Kept& h : heaps) all.insert(all.end(), h.rows.begin(), h.rows.end());
  // Each thread kept rows against its own k-th score; the bar is the k-th
  // float score of them all.
  if (all.size() > k) {
    std::vector<float> scores;
    scores.reserve(all.size());
    for (const Scored& c : all) scores.push_back(c.score);
    std::nth_element(scores.begin(), scores.begin() + static_cast<std::ptrdiff_t>(k - 1), scores.end(),
                     std::greater<float>());
    const double bar = static_cast<double>(scores[k - 1]) - kSlack;
    std::erase_if(all, [&](const Scored& c) { return static_cast<double>(c.score) < bar; });
  }
  return Status::OK();
}

// Step 3: exact scores.
void StoreImpl::Rescore(const RecallQuery& q, std::vector<Scored>* candidates) const {
  const float* query = q.query;
  const double qnorm_d = q.norm;
  std::vector<Scored>& all = *candidates;
  // An all-zero query scores 0 against everything.
  if (qnorm_d > 0) {
    const double qq = ExactTerms(query, query, dims_).nn;
    for (Scored& c : all) {
      const DotAndNorm t = ExactTerms(query, c.row, dims_);
      // A true cosine lies in [-1, 1]; rounding can overshoot by an ulp.
      c.exact = t.nn > 0 ? std::clamp(t.dot / std::sqrt(qq * t.nn), -1.0, 1.0) : 0.0;
      // Only a damaged file holds a non-finite value (see offer): last.
      if (std::isnan(c.exact)) c.exact = -std::numeric_limits<double>::infinity();
    }
  }
}

// Step 4: the k best, read out.
Status StoreImpl::Rank(std::vector<Scored>* candidates, const RecallOptions& options, RecallResult* result) {
  std::vector<Scored>& all = *candidates;
  const size_t k = options.k;
  // The k best by exact score, ties by id. The views ReadAt gives stay valid
  // while the lock is held, so each row returned is read once (its id and
  // record together); only rows tied with the k-th, when there are more of
  // them than places left (an all-zero query ties every row), are read for
  // their ids first.
  auto id_of = [&](const Location& loc) REQUIRES_SHARED(mu_) -> std::string_view {
    RecordView v;
    return ReadAt(loc, false, &v).ok() ? v.id : std::string_view();
  };
  const size_t n = std::min(k, all.size());
  if (all.size() > n) {
    std::nth_element(all.begin(), all.begin() + static_cast<std::ptrdiff_t>(n - 1), all.end(),
                     [](const Scored& a, const Scored& b) { return a.exact > b.exact; });
    const double kth = all[n - 1].exact;
    auto tied = std::partition(all.begin(), all.end(), [&](const Scored& c) { return c.exact > kth; });
    auto tied_end = std::partition(tied, all.end(), [&](const Scored& c) { return c.exact == kth; });
    const size_t need = n - static_cast<size_t>(tied - all.begin());
    if (static_cast<size_t>(tied_end - tied) > need) {
      std::vector<std::pair<std::string_view, Scored>> group;
      group.reserve(static_cast<size_t>(tied_end - tied));
      for (auto it = tied; it != tied_end; ++it) group.emplace_back(id_of(it->loc), *it);
      std::partial_sort(group.begin(), group.begin() + static_cast<std::ptrdiff_t>(need), group.end(),
                        [](const auto& a, const auto& b) { return a.first < b.first; });
      for (size_t i = 0; i < need; ++i) tied[static_cast<std::ptrdiff_t>(i)] = group[i].second;
    }
    all.resize(n);
  }
  struct Hit {
    RecordView view;
    double exact;
    Tier tier;
  };
  std::vector<Hit> hits;
  hits.reserve(n);
  for (const Scored& c : all) {
    Hit h{RecordView(), c.exact, c.loc.tier()};
    // Every hit's embedding is checked, asked for or not: its score came
    // from it, so a damaged one is CORRUPTION, not a wrong hit.
    TS_RETURN_IF_ERROR(ReadAt(c.loc, /*verify_embedding=*/true, &h.view));
    hits.push_back(h);
  }
  std::sort(hits.begin(), hits.end(), [](const Hit& a, const Hit& b) {
    return a.exact != b.exact ? a.exact > b.exact : a.view.id < b.view.id;
  });
  for (const Hit& h : hits) {
    result->records.Append(h.tier, h.view, options.include_embeddings, dims_);
    result->scores.push_back(h.exact);
  }
  return Status::OK();
}

}  // namespace tierstore
