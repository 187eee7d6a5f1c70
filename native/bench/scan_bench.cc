// scan_bench: how far is a similarity scan from the hardware limit?
//
// Over one N x dims float32 matrix (row-major, 2 MiB aligned, default
// 100,000 x 768 = 307 MB, far larger than any cache) it times, on 1 and 2
// threads:
//   dot-avx2   the reference loop: a plain C++ AVX2+FMA dot
//              product per row (4 accumulators of 8 floats), cosine with
//              precomputed row norms, top-10 by insertion into a small array;
//   core DotRows  the core's own kernel (native/core/similarity.h, runtime
//              dispatch), over blocks of 1,024 rows, then the same cosine and
//              top-10: the kernel alone, without the store around it
//              (store_bench times Store::Recall);
//   read-u64   a raw memory-bandwidth read: the sum of the same bytes as
//              uint64 (AVX2 adds), which does no useful work, so its GB/s is
//              about the most a scan over these bytes can reach here.
// and prints ms per scan (median of --reps), GB/s, and each time over
// read-u64's (1.00 = at the bandwidth limit). The top-10 of both kernels is
// checked against a scalar double-precision scan before anything is timed.
//
// Pages: everything runs twice, on a matrix in transparent huge pages
// (madvise(MADV_HUGEPAGE); what a file mapping backed by large folios or a
// huge-page allocation gets) and on plain 4 KiB pages. On this machine's KVM
// guest the hardware prefetchers stop at 4 KiB boundaries, so the same loop
// reads ~1.6x faster on huge pages: the limit depends on the pages, and a
// store scan can beat a 4 KiB-page reference loop. --pages huge or 4k for one.
//
// usage: scan_bench [--n 100000] [--dims 768] [--reps 9] [--threads 1,2] [--pages huge,4k] [--json FILE]

#include <immintrin.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include <sys/mman.h>

#include "similarity.h"

namespace {

constexpr int kTopK = 10;

struct Hit {
  float score;
  uint32_t row;
};

// Best kTopK, best first (score desc, row asc on ties).
struct TopK {
  Hit h[kTopK];
  int size = 0;
  float worst() const { return size < kTopK ? -INFINITY : h[size - 1].score; }
  void Offer(float score, uint32_t row) {
    if (size == kTopK && !(score > h[size - 1].score)) return;
    int j = size < kTopK ? size++ : kTopK - 1;
    while (j > 0 && (h[j - 1].score < score || (h[j - 1].score == score && h[j - 1].row > row))) {
      h[j] = h[j - 1];
      --j;
    }
    h[j] = Hit{score, row};
  }
  void Merge(const TopK& o) {
    for (int i = 0; i < o.size; ++i) Offer(o.h[i].score, o.h[i].row);
  }
};

// ---- (a) the reference loop: AVX2 + FMA -------------------------------------

__attribute__((target("avx2,fma"))) float DotAvx2(const float* a, const float* b, size_t dims) {
  __m256 s0 = _mm256_setzero_ps(), s1 = _mm256_setzero_ps(), s2 = _mm256_setzero_ps(), s3 = _mm256_setzero_ps();
  size_t d = 0;
  for (; d + 32 <= dims; d += 32) {
    s0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + d), _mm256_loadu_ps(b + d), s0);
    s1 = _mm256_fmadd_ps(_mm256_loadu_ps(a + d + 8), _mm256_loadu_ps(b + d + 8), s1);
    s2 = _mm256_fmadd_ps(_mm256_loadu_ps(a + d + 16), _mm256_loadu_ps(b + d + 16), s2);
    s3 = _mm256_fmadd_ps(_mm256_loadu_ps(a + d + 24), _mm256_loadu_ps(b + d + 24), s3);
  }
  for (; d + 8 <= dims; d += 8) s0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + d), _mm256_loadu_ps(b + d), s0);
  __m256 s = _mm256_add_ps(_mm256_add_ps(s0, s1), _mm256_add_ps(s2, s3));
  __m128 h = _mm_add_ps(_mm256_castps256_ps128(s), _mm256_extractf128_ps(s, 1));
  h = _mm_add_ps(h, _mm_movehl_ps(h, h));
  h = _mm_add_ss(h, _mm_movehdup_ps(h));
  float r = _mm_cvtss_f32(h);
  for (; d < dims; ++d) r += a[d] * b[d];
  return r;
}

__attribute__((target("avx2,fma"))) void ScanAvx2(const float* m, const float* norms, size_t begin, size_t end,
                                                  size_t dims, const float* q, float qn, TopK* top) {
  for (size_t i = begin; i < end; ++i) {
    float dot = DotAvx2(m + i * dims, q, dims);
    float score = norms[i] == 0 ? 0.0f : dot / (qn * norms[i]);
    if (score > top->worst() || top->size < kTopK) top->Offer(score, static_cast<uint32_t>(i));
  }
}

// ---- (b) raw read bandwidth: sum of uint64 over the same bytes ---------------

__attribute__((target("avx2"))) uint64_t SumU64Avx2(const uint64_t* p, size_t count) {
  __m256i s0 = _mm256_setzero_si256(), s1 = s0, s2 = s0, s3 = s0;
  size_t i = 0;
  for (; i + 16 <= count; i += 16) {
    s0 = _mm256_add_epi64(s0, _mm256_load_si256(reinterpret_cast<const __m256i*>(p + i)));
    s1 = _mm256_add_epi64(s1, _mm256_load_si256(reinterpret_cast<const __m256i*>(p + i + 4)));
    s2 = _mm256_add_epi64(s2, _mm256_load_si256(reinterpret_cast<const __m256i*>(p + i + 8)));
    s3 = _mm256_add_epi64(s3, _mm256_load_si256(reinterpret_cast<const __m256i*>(p + i + 12)));
  }
  __m256i s = _mm256_add_epi64(_mm256_add_epi64(s0, s1), _mm256_add_epi64(s2, s3));
  alignas(32) uint64_t lanes[4];
  _mm256_store_si256(reinterpret_cast<__m256i*>(lanes), s);
  uint64_t r = lanes[0] + lanes[1] + lanes[2] + lanes[3];
  for (; i < count; ++i) r += p[i];
  return r;
}

// The core kernel: DotRows over blocks, then cosine and top-k as above.
void ScanCore(const float* m, const float* norms, size_t begin, size_t end, size_t dims, const float* q, float qn,
              TopK* top) {
  constexpr size_t kBlock = 1024;
  float dots[kBlock];
  for (size_t b = begin; b < end; b += kBlock) {
    size_t cnt = std::min(kBlock, end - b);
    tierstore::DotRows(q, m + b * dims, cnt, dims, dots);
    for (size_t j = 0; j < cnt; ++j) {
      float score = norms[b + j] == 0 ? 0.0f : dots[j] / (qn * norms[b + j]);
      if (score > top->worst() || top->size < kTopK) top->Offer(score, static_cast<uint32_t>(b + j));
    }
  }
}

uint64_t SumU64Scalar(const uint64_t* p, size_t count) {
  uint64_t r = 0;
  for (size_t i = 0; i < count; ++i) r += p[i];
  return r;
}

// ---- scalar reference (correctness, and the fallback without AVX2) ----------

void ScanScalar(const float* m, const float* norms, size_t begin, size_t end, size_t dims, const float* q,
                float qn, TopK* top) {
  for (size_t i = begin; i < end; ++i) {
    double s = 0;
    for (size_t d = 0; d < dims; ++d) s += double(m[i * dims + d]) * q[d];
    float score = norms[i] == 0 ? 0.0f : static_cast<float>(s / (double(qn) * norms[i]));
    top->Offer(score, static_cast<uint32_t>(i));
  }
}

// ---- harness ------------------------------------------------------------------

double NowMs() {
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

// Splits [0, rows) into `threads` contiguous ranges (64-row aligned) and runs fn(t, begin, end) on each.
template <typename Fn>
void Parallel(int threads, size_t rows, Fn fn) {
  if (threads == 1) {
    fn(0, 0, rows);
    return;
  }
  std::vector<std::thread> ts;
  size_t per = (rows / threads + 63) & ~size_t{63};
  for (int t = 0; t < threads; ++t) {
    size_t b = std::min(rows, t * per), e = t == threads - 1 ? rows : std::min(rows, (t + 1) * per);
    ts.emplace_back([=] { fn(t, b, e); });
  }
  for (auto& th : ts) th.join();
}

struct Result {
  std::string name;
  std::string pages;
  int threads;
  double median_ms, min_ms, gbps;
};

template <typename Fn>
Result Time(const char* name, int threads, int reps, double bytes, Fn once) {
  once();  // warm-up (page faults, frequency)
  std::vector<double> ms;
  for (int r = 0; r < reps; ++r) {
    double t0 = NowMs();
    once();
    ms.push_back(NowMs() - t0);
  }
  std::sort(ms.begin(), ms.end());
  double med = ms[ms.size() / 2];
  return Result{name, "", threads, med, ms.front(), bytes / (med / 1e3) / 1e9};
}

}  // namespace

int main(int argc, char** argv) {
  size_t n = 100000, dims = 768;
  int reps = 9;
  std::vector<int> thread_counts = {1, 2};
  std::vector<std::string> page_kinds = {"huge", "4k"};
  const char* json = nullptr;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto next = [&]() -> const char* {
      if (i + 1 >= argc) { std::fprintf(stderr, "%s needs a value\n", a.c_str()); std::exit(2); }
      return argv[++i];
    };
    if (a == "--n") n = std::strtoull(next(), nullptr, 10);
    else if (a == "--dims") dims = std::strtoull(next(), nullptr, 10);
    else if (a == "--reps") reps = std::atoi(next());
    else if (a == "--json") json = next();
    else if (a == "--pages") {
      page_kinds.clear();
      std::string v = next();
      if (v.find("huge") != std::string::npos) page_kinds.push_back("huge");
      if (v.find("4k") != std::string::npos) page_kinds.push_back("4k");
    }
    else if (a == "--threads") {
      thread_counts.clear();
      std::string s = next();
      for (size_t p = 0; p < s.size();) {
        size_t c = s.find(',', p);
        thread_counts.push_back(std::atoi(s.substr(p, c - p).c_str()));
        p = c == std::string::npos ? s.size() : c + 1;
      }
    } else {
      std::fprintf(stderr, "usage: %s [--n N] [--dims D] [--reps R] [--threads 1,2] [--pages huge,4k] [--json FILE]\n", argv[0]);
      return 2;
    }
  }
  if (n == 0 || dims == 0 || reps < 1) return 2;

  const bool avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  std::vector<Result> results;
  volatile uint64_t sink = 0;
  for (size_t pass = 0; pass < page_kinds.size(); ++pass) {
    const bool huge = page_kinds[pass] == "huge";
    const size_t floats = n * dims;
    constexpr size_t kHuge = size_t{2} << 20;
    const size_t bytes_total = (floats * sizeof(float) + kHuge - 1) & ~(kHuge - 1);
    float* m = static_cast<float*>(std::aligned_alloc(kHuge, bytes_total));
    if (m) madvise(m, bytes_total, huge ? MADV_HUGEPAGE : MADV_NOHUGEPAGE);
    std::vector<float> norms(n), q(dims);
    if (!m) { std::fprintf(stderr, "cannot allocate %zu bytes\n", bytes_total); return 1; }
    std::memset(reinterpret_cast<char*>(m) + floats * sizeof(float), 0, bytes_total - floats * sizeof(float));
    uint32_t x = 0x9e3779b9u;
    auto rnd = [&] {
      x ^= x << 13; x ^= x >> 17; x ^= x << 5;
      return static_cast<float>(x) / 2147483648.0f - 1.0f;
    };
    for (size_t i = 0; i < n; ++i) {
      double s = 0;
      for (size_t d = 0; d < dims; ++d) {
        float v = rnd();
        m[i * dims + d] = v;
        s += double(v) * v;
      }
      norms[i] = static_cast<float>(std::sqrt(s));
    }
    double qs = 0;
    for (size_t d = 0; d < dims; ++d) { q[d] = rnd(); qs += double(q[d]) * q[d]; }
    const float qn = static_cast<float>(std::sqrt(qs));
    const double bytes = double(floats) * sizeof(float);
    unsigned hw = std::thread::hardware_concurrency();

    if (pass == 0)
      std::printf("scan_bench: %zu x %zu float32 = %.1f MB, %d reps (median), %u hardware threads, AVX2+FMA %s, core kernel %s\n",
                  n, dims, bytes / 1e6, reps, hw, avx2 ? "yes" : "NO (scalar fallback)", tierstore::SimdKernelName());

    // Correctness first: the AVX2 top-10 must equal the scalar one.
    TopK ref, got;
    ScanScalar(m, norms.data(), 0, n, dims, q.data(), qn, &ref);
    if (avx2) ScanAvx2(m, norms.data(), 0, n, dims, q.data(), qn, &got);
    else got = ref;
    TopK core;
    ScanCore(m, norms.data(), 0, n, dims, q.data(), qn, &core);
    for (const TopK* t : {&got, &core}) {
      for (int i = 0; i < kTopK; ++i) {
        if (t->h[i].row != ref.h[i].row && std::fabs(t->h[i].score - ref.h[i].score) > 1e-5f) {
          std::fprintf(stderr, "MISMATCH (%s) at rank %d: row %u (%.7f), scalar row %u (%.7f)\n",
                       t == &got ? "avx2 loop" : "core DotRows", i + 1, t->h[i].row, t->h[i].score, ref.h[i].row,
                       ref.h[i].score);
          return 1;
        }
      }
    }

    size_t first = results.size();
    for (int threads : thread_counts) {
      if (threads < 1) continue;
      results.push_back(Time("dot-avx2 top-10", threads, reps, bytes, [&] {
        std::vector<TopK> tops(threads);
        Parallel(threads, n, [&](int t, size_t b, size_t e) {
          if (avx2) ScanAvx2(m, norms.data(), b, e, dims, q.data(), qn, &tops[t]);
          else ScanScalar(m, norms.data(), b, e, dims, q.data(), qn, &tops[t]);
        });
        for (int t = 1; t < threads; ++t) tops[0].Merge(tops[t]);
        sink = sink + tops[0].h[0].row;
      }));
      results.push_back(Time("core DotRows top-10", threads, reps, bytes, [&] {
        std::vector<TopK> tops(threads);
        Parallel(threads, n, [&](int t, size_t b, size_t e) { ScanCore(m, norms.data(), b, e, dims, q.data(), qn, &tops[t]); });
        for (int t = 1; t < threads; ++t) tops[0].Merge(tops[t]);
        sink = sink + tops[0].h[0].row;
      }));
      results.push_back(Time("read-u64 (bandwidth)", threads, reps, bytes, [&] {
        std::vector<uint64_t> sums(threads);
        const uint64_t* p = reinterpret_cast<const uint64_t*>(m);
        size_t words = bytes_total / 8;
        // rows are split as for the scan; ranges in words, 8-word (64-byte) aligned
        Parallel(threads, words / 8, [&](int t, size_t b, size_t e) {
          sums[t] = avx2 ? SumU64Avx2(p + b * 8, (e - b) * 8) : SumU64Scalar(p + b * 8, (e - b) * 8);
        });
        uint64_t s = 0;
        for (uint64_t v : sums) s += v;
        sink = sink + s;
      }));
    }
    for (size_t i = first; i < results.size(); ++i) results[i].pages = page_kinds[pass];
    std::free(m);
  }

  std::printf("%-22s %5s %7s %10s %10s %8s %14s\n", "kernel", "pages", "threads", "median ms", "min ms", "GB/s", "vs bandwidth");
  for (const Result& r : results) {
    double bw_ms = 0;
    for (const Result& b : results)
      if (b.threads == r.threads && b.pages == r.pages && b.name.rfind("read-u64", 0) == 0) bw_ms = b.median_ms;
    std::printf("%-22s %5s %7d %10.2f %10.2f %8.2f %13.2fx\n", r.name.c_str(), r.pages.c_str(), r.threads, r.median_ms,
                r.min_ms, r.gbps, bw_ms > 0 ? r.median_ms / bw_ms : 0.0);
  }
  std::printf("(vs bandwidth: time over read-u64's on the same pages and threads; 1.00x = at the memory-bandwidth limit)\n");

  if (json) {
    FILE* f = std::fopen(json, "w");
    if (!f) { std::perror(json); return 1; }
    std::fprintf(f, "{\"n\": %zu, \"dims\": %zu, \"bytes\": %.0f, \"reps\": %d, \"avx2\": %s, \"results\": [", n, dims, double(n) * dims * sizeof(float),
                 reps, avx2 ? "true" : "false");
    for (size_t i = 0; i < results.size(); ++i)
      std::fprintf(f, "%s\n  {\"kernel\": \"%s\", \"pages\": \"%s\", \"threads\": %d, \"median_ms\": %.3f, \"min_ms\": %.3f, \"gbps\": %.3f}",
                   i ? "," : "", results[i].name.c_str(), results[i].pages.c_str(), results[i].threads, results[i].median_ms,
                   results[i].min_ms, results[i].gbps);
    std::fprintf(f, "\n]}\n");
    std::fclose(f);
  }
  return 0;
}
