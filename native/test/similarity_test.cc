// Tests of the similarity kernels: every kernel this CPU can run agrees with
// the portable scalar one (and with a double-precision reference) for every
// length from 0 to 300 — covering each SIMD tail — and on misaligned rows.
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
  } else if (forced == nullptr) {
    if (kernels::PreferAvx512()) CHECK(name == "avx512");
    else if (kernels::CpuHasAvx2Fma()) CHECK(name == "avx2");
    else CHECK(name == "scalar");
  }
  CHECK_EQ(kernels::PreferAvx512(), kernels::CpuHasAvx512() && !kernels::CpuIsAmd());
}
