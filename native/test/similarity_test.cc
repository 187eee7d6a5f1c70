// Tests of the similarity kernels: every kernel this CPU can run agrees with
// the portable scalar one (and with a double-precision reference) for every
// length from 0 to 300 — covering each SIMD tail — and on misaligned rows.
// Dot, DotRows and DotRowsStrided are run with each kernel forced in turn
// (kernels::ForceKernelForTesting); a kernel this CPU lacks is printed as
// "NOT RUN: kernel <name>" so a run on such a CPU says what it did not test.
#include "../core/similarity.h"

#include <cmath>
#include <cstdlib>
#include <string>
#include <random>
#include <vector>

#include "testing.h"

using namespace tierstore;

namespace {

double Reference(const float* a, const float* b, size_t n) {
  double s = 0;
  for (size_t i = 0; i < n; ++i) s += double{a[i]} * b[i];
  return s;
}

bool Close(double got, double want, size_t n) {
  // float32 accumulation of n products of values in [-1, 1].
  return std::fabs(got - want) <= 1e-5 * std::max<double>(1.0, static_cast<double>(n));
}

}  // namespace

static const char* const kAllKernels[] = {"scalar", "avx2", "avx512"};

static void ReportNotRun(const char* kernel, const char* what) {
  std::printf("NOT RUN: kernel %s (%s): this CPU cannot run it\n", kernel, what);
}

TEST(EveryKernelMatchesTheReferenceForEveryLength) {
  std::mt19937 rng(42);
  std::uniform_real_distribution<float> u(-1.0f, 1.0f);
  // One spare float in front so rows start misaligned too.
  std::vector<float> a(301 + 1), b(301 + 1);
  for (float& x : a) x = u(rng);
  for (float& x : b) x = u(rng);
  for (size_t offset : {size_t{0}, size_t{1}}) {
    for (size_t n = 0; n <= 300; ++n) {
      const float* pa = a.data() + offset;
      const float* pb = b.data() + offset;
      const double want = Reference(pa, pb, n);
      CHECK(Close(kernels::DotScalar(pa, pb, n), want, n));
      if (kernels::CpuHasAvx2Fma()) CHECK(Close(kernels::DotAvx2(pa, pb, n), want, n));
      if (kernels::CpuHasAvx512()) CHECK(Close(kernels::DotAvx512(pa, pb, n), want, n));
      CHECK(Close(Dot(pa, pb, n), want, n));
    }
  }
  if (!kernels::CpuHasAvx2Fma()) ReportNotRun("avx2", "DotAvx2");
  if (!kernels::CpuHasAvx512()) ReportNotRun("avx512", "DotAvx512");
}

// The public entry points with each kernel forced: the dispatch reaches the
// kernel it names and that kernel scores rows (contiguous and strided).
TEST(EveryForcedKernelScoresThroughThePublicEntryPoints) {
  std::mt19937 rng(5);
  std::uniform_real_distribution<float> u(-1.0f, 1.0f);
  const size_t dims = 37, rows = 29, stride_floats = dims + 3;
  std::vector<float> m(rows * dims), blocks(rows * stride_floats + 1), q(dims), out(rows), strided(rows);
  for (float& x : m) x = u(rng);
  for (float& x : blocks) x = u(rng);
  for (float& x : q) x = u(rng);
  int ran = 0;
  for (const char* kernel : kAllKernels) {
    if (!kernels::ForceKernelForTesting(kernel)) {
      ReportNotRun(kernel, "forced through Dot, DotRows and DotRowsStrided");
      continue;
    }
    ++ran;
    CHECK(std::string(SimdKernelName()) == kernel);
    DotRows(q.data(), m.data(), rows, dims, out.data());
    DotRowsStrided(q.data(), blocks.data() + 1, stride_floats * sizeof(float), rows, dims, strided.data());
    for (size_t r = 0; r < rows; ++r) {
      CHECK(Close(out[r], Reference(q.data(), m.data() + r * dims, dims), dims));
      CHECK(Close(strided[r], Reference(q.data(), blocks.data() + 1 + r * stride_floats, dims), dims));
      CHECK(Close(Dot(q.data(), m.data() + r * dims, dims), Reference(q.data(), m.data() + r * dims, dims), dims));
    }
    std::printf("kernel %s: run (forced)\n", kernel);
  }
  CHECK(kernels::ForceKernelForTesting(nullptr));
  CHECK(!kernels::ForceKernelForTesting("no-such-kernel"));
  // scalar always runs; avx2 and avx512 wherever the CPU has them
  CHECK_EQ(ran, 1 + (kernels::CpuHasAvx2Fma() ? 1 : 0) + (kernels::CpuHasAvx512() ? 1 : 0));
}

TEST(DotRowsScoresEveryRow) {
  std::mt19937 rng(7);
  std::uniform_real_distribution<float> u(-1.0f, 1.0f);
  for (size_t dims : {size_t{3}, size_t{37}, size_t{768}}) {
    const size_t rows = 97;
    std::vector<float> m(rows * dims), q(dims), out(rows, -99.0f);
    for (float& x : m) x = u(rng);
    for (float& x : q) x = u(rng);
    DotRows(q.data(), m.data(), rows, dims, out.data());
    for (size_t r = 0; r < rows; ++r) CHECK(Close(out[r], Reference(q.data(), m.data() + r * dims, dims), dims));
  }
}

TEST(DotRowsStridedScoresRowsAtAnyStride) {
  std::mt19937 rng(11);
  std::uniform_real_distribution<float> u(-1.0f, 1.0f);
  for (size_t dims : {size_t{1}, size_t{17}, size_t{768}}) {
    // Rows inside blocks with a header in front, as warm blocks are; the
    // stride is a multiple of 4 bytes but not of the row.
    for (size_t pad : {size_t{0}, size_t{4}, size_t{128}}) {
      const size_t rows = 41, stride_floats = dims + pad / 4 + 1;
      std::vector<float> blocks(rows * stride_floats + 1, 12345.0f), q(dims), out(rows, -99.0f);
      for (size_t r = 0; r < rows; ++r) {
        for (size_t j = 0; j < dims; ++j) blocks[r * stride_floats + pad / 4 + j] = u(rng);
      }
      for (float& x : q) x = u(rng);
      DotRowsStrided(q.data(), blocks.data() + pad / 4, stride_floats * sizeof(float), rows, dims, out.data());
      for (size_t r = 0; r < rows; ++r) {
        CHECK(Close(out[r], Reference(q.data(), blocks.data() + r * stride_floats + pad / 4, dims), dims));
      }
      DotRowsStrided(q.data(), blocks.data(), stride_floats * sizeof(float), 0, dims, nullptr);  // no rows
    }
  }
}

TEST(KernelNameMatchesCpu) {
  std::string name = SimdKernelName();
  const char* forced = std::getenv("TIERSTORE_SIMD");
  if (forced != nullptr && std::string(forced) == "scalar") {
    CHECK(name == "scalar");
  } else if (forced != nullptr && std::string(forced) == "avx2") {
    if (kernels::CpuHasAvx2Fma()) CHECK(name == "avx2");
    else ReportNotRun("avx2", "TIERSTORE_SIMD=avx2");
  } else if (forced != nullptr && std::string(forced) == "avx512") {
    if (kernels::CpuHasAvx512()) CHECK(name == "avx512");
    else ReportNotRun("avx512", "TIERSTORE_SIMD=avx512");
  } else if (forced == nullptr) {
    if (kernels::PreferAvx512()) CHECK(name == "avx512");
    else if (kernels::CpuHasAvx2Fma()) CHECK(name == "avx2");
    else CHECK(name == "scalar");
  }
  CHECK_EQ(kernels::PreferAvx512(), kernels::CpuHasAvx512() && !kernels::CpuIsAmd());
}
