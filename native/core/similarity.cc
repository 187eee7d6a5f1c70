#include "similarity.h"

#include <cstdlib>
#include <string>

#if defined(__x86_64__)
#include <immintrin.h>
#endif

namespace tierstore {
namespace kernels {

float DotScalar(const float* a, const float* b, size_t n) {
  // Four partial sums, like the SIMD kernels, so the compiler may vectorize.
  float s0 = 0, s1 = 0, s2 = 0, s3 = 0;
  size_t i = 0;
  for (; i + 4 <= n; i += 4) {
    s0 += a[i] * b[i];
    s1 += a[i + 1] * b[i + 1];
    s2 += a[i + 2] * b[i + 2];
    s3 += a[i + 3] * b[i + 3];
  }
  for (; i < n; ++i) s0 += a[i] * b[i];
  return (s0 + s1) + (s2 + s3);
}

#if defined(__x86_64__)
__attribute__((target("avx2,fma"))) static inline float HorizontalSum256(__m256 v) {
  __m128 lo = _mm256_castps256_ps128(v);
  __m128 hi = _mm256_extractf128_ps(v, 1);
  lo = _mm_add_ps(lo, hi);
  __m128 shuf = _mm_movehdup_ps(lo);
  __m128 sums = _mm_add_ps(lo, shuf);
  shuf = _mm_movehl_ps(shuf, sums);
  sums = _mm_add_ss(sums, shuf);
  return _mm_cvtss_f32(sums);
}

__attribute__((target("avx2,fma"))) float DotAvx2(const float* a, const float* b, size_t n) {
  __m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps();
  __m256 acc2 = _mm256_setzero_ps(), acc3 = _mm256_setzero_ps();
  size_t i = 0;
  for (; i + 32 <= n; i += 32) {
    acc0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), acc0);
    acc1 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 8), _mm256_loadu_ps(b + i + 8), acc1);
    acc2 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 16), _mm256_loadu_ps(b + i + 16), acc2);
    acc3 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 24), _mm256_loadu_ps(b + i + 24), acc3);
  }
  for (; i + 8 <= n; i += 8) acc0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), acc0);
  float sum = HorizontalSum256(_mm256_add_ps(_mm256_add_ps(acc0, acc1), _mm256_add_ps(acc2, acc3)));
  for (; i < n; ++i) sum += a[i] * b[i];
  return sum;
}

// A tree reduction of the 16 lanes (4 dependent adds, not 16).
__attribute__((target("avx512f,avx2,fma"))) static inline float HorizontalSum512(__m512 v) {
  // The halves go through memory: GCC 12 warns (-Wuninitialized) inside
  // every intrinsic that splits a __m512 in registers.
  alignas(64) float lanes[16];
  _mm512_store_ps(lanes, v);
  return HorizontalSum256(_mm256_add_ps(_mm256_load_ps(lanes), _mm256_load_ps(lanes + 8)));
}

__attribute__((target("avx512f,avx2,fma"))) float DotAvx512(const float* a, const float* b, size_t n) {
  __m512 acc0 = _mm512_setzero_ps(), acc1 = _mm512_setzero_ps();
  __m512 acc2 = _mm512_setzero_ps(), acc3 = _mm512_setzero_ps();
  size_t i = 0;
  for (; i + 64 <= n; i += 64) {
    acc0 = _mm512_fmadd_ps(_mm512_loadu_ps(a + i), _mm512_loadu_ps(b + i), acc0);
    acc1 = _mm512_fmadd_ps(_mm512_loadu_ps(a + i + 16), _mm512_loadu_ps(b + i + 16), acc1);
    acc2 = _mm512_fmadd_ps(_mm512_loadu_ps(a + i + 32), _mm512_loadu_ps(b + i + 32), acc2);
    acc3 = _mm512_fmadd_ps(_mm512_loadu_ps(a + i + 48), _mm512_loadu_ps(b + i + 48), acc3);
  }
  for (; i + 16 <= n; i += 16) acc0 = _mm512_fmadd_ps(_mm512_loadu_ps(a + i), _mm512_loadu_ps(b + i), acc0);
  if (i < n) {  // masked tail: no read past the row
    __mmask16 m = static_cast<__mmask16>((1u << (n - i)) - 1);
    acc1 = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(m, a + i), _mm512_maskz_loadu_ps(m, b + i), acc1);
  }
  // (GCC 12's _mm512_reduce_add_ps trips -Wuninitialized, hence our own.)
  return HorizontalSum512(_mm512_add_ps(_mm512_add_ps(acc0, acc1), _mm512_add_ps(acc2, acc3)));
}

// Rows at a byte stride (contiguous matrices and warm blocks alike), one row
// after another with the row kernel inlined (same target, same unit).
// Software prefetching a few rows ahead was measured slower on both 4 KiB
// and huge pages.
__attribute__((target("avx512f,avx2,fma"))) void DotRowsStridedAvx512(const float* q, const unsigned char* first,
                                                                      size_t stride, size_t count, size_t dims,
                                                                      float* out) {
  for (size_t r = 0; r < count; ++r) out[r] = DotAvx512(q, reinterpret_cast<const float*>(first + r * stride), dims);
}

__attribute__((target("avx2,fma"))) void DotRowsStridedAvx2(const float* q, const unsigned char* first,
                                                            size_t stride, size_t count, size_t dims, float* out) {
  for (size_t r = 0; r < count; ++r) out[r] = DotAvx2(q, reinterpret_cast<const float*>(first + r * stride), dims);
}

bool CpuHasAvx2Fma() {
  __builtin_cpu_init();
  return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
}
bool CpuHasAvx512() {
  __builtin_cpu_init();
  return __builtin_cpu_supports("avx512f");
}
bool CpuIsAmd() {
  __builtin_cpu_init();
  return __builtin_cpu_is("amd");
}
// AMD's Zen 4 runs each 512-bit operation as two 256-bit halves: for this
// memory-bound scan its AVX-512 kernel measured 5-15% slower than AVX2
// (native/bench/scan_bench, BENCHMARKS.md). Elsewhere AVX-512 is used.
bool PreferAvx512() { return CpuHasAvx512() && !CpuIsAmd(); }
#else
float DotAvx2(const float* a, const float* b, size_t n) { return DotScalar(a, b, n); }
float DotAvx512(const float* a, const float* b, size_t n) { return DotScalar(a, b, n); }
bool CpuHasAvx2Fma() { return false; }
bool CpuHasAvx512() { return false; }
bool CpuIsAmd() { return false; }
bool PreferAvx512() { return false; }
#endif

}  // namespace kernels

namespace {
using DotFn = float (*)(const float*, const float*, size_t);
using RowsFn = void (*)(const float*, const unsigned char*, size_t, size_t, size_t, float*);

void DotRowsStridedScalar(const float* q, const unsigned char* first, size_t stride, size_t count, size_t dims,
                          float* out) {
  for (size_t r = 0; r < count; ++r) {
    out[r] = kernels::DotScalar(q, reinterpret_cast<const float*>(first + r * stride), dims);
  }
}

struct Kernel {
  DotFn fn;
  RowsFn rows;
  const char* name;
};
Kernel Choose() {
#if defined(__x86_64__)
  const Kernel avx512{&kernels::DotAvx512, &kernels::DotRowsStridedAvx512, "avx512"};
  const Kernel avx2{&kernels::DotAvx2, &kernels::DotRowsStridedAvx2, "avx2"};
#endif
  const Kernel scalar{&kernels::DotScalar, &DotRowsStridedScalar, "scalar"};
  // TIERSTORE_SIMD=avx512|avx2|scalar forces a kernel this CPU can run (for
  // benchmarks and for ruling a kernel out); anything else is ignored.
  if (const char* want = std::getenv("TIERSTORE_SIMD")) {
    const std::string w(want);
    if (w == "scalar") return scalar;
#if defined(__x86_64__)
    if (w == "avx2" && kernels::CpuHasAvx2Fma()) return avx2;
    if (w == "avx512" && kernels::CpuHasAvx512()) return avx512;
#endif
  }
#if defined(__x86_64__)
  if (kernels::PreferAvx512()) return avx512;
  if (kernels::CpuHasAvx2Fma()) return avx2;
#endif
  return scalar;
}
Kernel& Active() {
  static Kernel k = Choose();
  return k;
}
}  // namespace

namespace kernels {
bool ForceKernelForTesting(const char* name) {
  if (name == nullptr) {
    Active() = Choose();
    return true;
  }
  const std::string w(name);
  if (w == "scalar") {
    Active() = Kernel{&DotScalar, &DotRowsStridedScalar, "scalar"};
    return true;
  }
#if defined(__x86_64__)
  if (w == "avx2" && CpuHasAvx2Fma()) {
    Active() = Kernel{&DotAvx2, &DotRowsStridedAvx2, "avx2"};
    return true;
  }
  if (w == "avx512" && CpuHasAvx512()) {
    Active() = Kernel{&DotAvx512, &DotRowsStridedAvx512, "avx512"};
    return true;
  }
#endif
  return false;
}
}  // namespace kernels

float Dot(const float* a, const float* b, size_t dims) { return Active().fn(a, b, dims); }

void DotRows(const float* q, const float* rows, size_t count, size_t dims, float* out) {
  Active().rows(q, reinterpret_cast<const unsigned char*>(rows), dims * sizeof(float), count, dims, out);
}

void DotRowsStrided(const float* q, const void* first_row, size_t stride_bytes, size_t count, size_t dims,
                    float* out) {
  Active().rows(q, static_cast<const unsigned char*>(first_row), stride_bytes, count, dims, out);
}

const char* SimdKernelName() { return Active().name; }

}  // namespace tierstore
