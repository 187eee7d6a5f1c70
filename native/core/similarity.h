// Similarity kernels: dot products over contiguous float32 rows.
//
// Guarantees: DotRows computes out[i] = sum_j q[j] * rows[i*dims + j] for
// every row, with float32 multiply-adds in a fixed order per kernel (results
// differ from a double-precision reference by rounding only: well within
// 1e-5 relative for unit-scale data). The kernel (AVX-512F, AVX2+FMA, or
// portable C++) is chosen once at run time from the CPU (see SimdKernelName),
// so one binary runs on any x86-64. No alignment is required of any pointer.
// Thread-safety: pure functions.
#pragma once

#include <cstddef>

namespace tierstore {

void DotRows(const float* q, const float* rows, size_t count, size_t dims, float* out);
// The same over rows that start stride_bytes apart (first_row, first_row +
// stride_bytes, ...): out[i] = dot(q, row i), as Dot computes it. Each row
// must be float-aligned (warm blocks: the embedding at a fixed offset).
void DotRowsStrided(const float* q, const void* first_row, size_t stride_bytes, size_t count, size_t dims,
                    float* out);
float Dot(const float* a, const float* b, size_t dims);
// "avx512", "avx2" or "scalar": the kernel Dot and DotRows use. Chosen once:
// the environment variable TIERSTORE_SIMD (avx512, avx2 or scalar) forces one
// the CPU supports; otherwise AVX-512 where present (except on AMD, where
// AVX2 scans faster), else AVX2+FMA, else portable C++.
const char* SimdKernelName();

namespace kernels {
// Exposed for tests that compare every kernel with the portable one.
float DotScalar(const float* a, const float* b, size_t n);
float DotAvx2(const float* a, const float* b, size_t n);
float DotAvx512(const float* a, const float* b, size_t n);
bool CpuHasAvx2Fma();
bool CpuHasAvx512();
bool CpuIsAmd();
// Whether the row kernel is AVX-512 when nothing overrides it.
bool PreferAvx512();
// For tests only: makes Dot, DotRows and DotRowsStrided use the named
// kernel ("avx512", "avx2" or "scalar") from now on, or the one chosen at
// start-up for nullptr. Returns false, changing nothing, for a kernel this
// CPU cannot run or an unknown name. Not thread-safe: call it while no
// other thread scores.
bool ForceKernelForTesting(const char* name);
}  // namespace kernels

}  // namespace tierstore
