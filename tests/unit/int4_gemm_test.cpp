// Every int4 GEMM kernel this CPU supports against the reference kernel: random non-zero codes
// at odd shapes, extreme codes, the packing convention itself, and the dispatcher.
#include "quad/backend/cpu/kernels/int4_gemm.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <cstring>
#include <random>
#include <vector>

#include "quad/core/error.h"
#include "quad/quant/weight_quant.h"

namespace {

using quad::kernels::Int4Kernel;

std::vector<Int4Kernel> fast_kernels() {
  std::vector<Int4Kernel> ks;
  for (Int4Kernel k : {Int4Kernel::kAvx2, Int4Kernel::kAvx512Vnni})
    if (quad::kernels::kernel_supported(k)) ks.push_back(k);
  return ks;
}

struct Problem {
  int n, k, out;
  std::vector<int8_t> x, w;  // codes
  std::vector<uint8_t> wp;   // packed
  std::vector<float> sx, sw;
};

// Non-zero codes: x in [-xmax-1, xmax] \ {0}, w in [-8, 7] \ {0}.
Problem random_problem(int n, int k, int out, int xbits, uint32_t seed) {
  std::mt19937 rng(seed);
  const int xmax = (1 << (xbits - 1)) - 1;
  std::uniform_int_distribution<int> xd(-xmax - 1, xmax), wd(-8, 7);
  std::uniform_real_distribution<float> sd(0.001f, 0.1f);
  Problem p{n, k, out, {}, {}, {}, {}, {}};
  p.x.resize(size_t(n) * k);
  p.w.resize(size_t(out) * k);
  for (auto& v : p.x) do
      v = int8_t(xd(rng));
    while (v == 0);
  for (auto& v : p.w) do
      v = int8_t(wd(rng));
    while (v == 0);
  p.sx.resize(size_t(n));
  p.sw.resize(size_t(out));
  for (auto& v : p.sx) v = sd(rng);
  for (auto& v : p.sw) v = sd(rng);
  p.wp = quad::pack_int4(p.w.data(), out, k);
  return p;
}

std::vector<float> run(Int4Kernel kernel, const Problem& p) {
  // NaN-filled so that an unwritten output cannot pass.
  std::vector<float> y(size_t(p.n) * p.out, std::numeric_limits<float>::quiet_NaN());
  quad::kernels::gemm_s8_s4_with(kernel, p.x.data(), p.sx.data(), p.n, p.k, p.wp.data(),
                                 p.sw.data(), p.out, y.data());
  return y;
}

// Bit-exact: all kernels compute the same int32 and the same float epilogue.
void expect_same(const std::vector<float>& a, const std::vector<float>& b, const char* what) {
  ASSERT_EQ(a.size(), b.size());
  for (size_t i = 0; i < a.size(); ++i) {
    uint32_t ua, ub;
    std::memcpy(&ua, &a[i], 4);
    std::memcpy(&ub, &b[i], 4);
    ASSERT_EQ(ua, ub) << what << " at " << i << ": " << a[i] << " vs " << b[i];
  }
}

TEST(Int4Gemm, ReferenceMatchesUnpackedDot) {
  const Problem p = random_problem(3, 70, 5, 8, 7);
  const auto y = run(Int4Kernel::kRef, p);
  for (int i = 0; i < p.n; ++i) {
    for (int o = 0; o < p.out; ++o) {
      int32_t acc = 0;
      for (int c = 0; c < p.k; ++c) acc += p.x[size_t(i) * p.k + c] * p.w[size_t(o) * p.k + c];
      EXPECT_EQ(y[size_t(i) * p.out + o], float(acc) * p.sx[size_t(i)] * p.sw[size_t(o)]);
    }
  }
}

TEST(Int4Gemm, KernelsMatchReferenceOnOddShapes) {
  const auto kernels = fast_kernels();
  if (kernels.empty()) GTEST_SKIP() << "no SIMD kernel on this CPU";
  uint32_t seed = 1;
  for (int n : {1, 2, 3, 7, 16, 33, 130}) {
    for (int k : {2, 30, 64, 130, 512, 1408}) {
      for (int out : {1, 5, 64, 257}) {
        if (size_t(n) * k * out > size_t(40) << 20) continue;  // keep the reference quick
        for (int xbits : {4, 8}) {
          const Problem p = random_problem(n, k, out, xbits, seed++);
          const auto want = run(Int4Kernel::kRef, p);
          for (Int4Kernel kern : kernels) {
            SCOPED_TRACE(testing::Message() << quad::kernels::kernel_name(kern) << " n=" << n
                                            << " k=" << k << " out=" << out << " a" << xbits);
            expect_same(run(kern, p), want, quad::kernels::kernel_name(kern));
          }
        }
      }
    }
  }
}

TEST(Int4Gemm, KernelsMatchReferenceOnExtremeCodes) {
  const auto kernels = fast_kernels();
  if (kernels.empty()) GTEST_SKIP() << "no SIMD kernel on this CPU";
  const int n = 9, k = 1408 + 2, out = 7;
  for (int wv : {-8, 7}) {
    for (int xv : {-128, 127, -8, 7}) {
      Problem p = random_problem(n, k, out, 8, 99);
      std::fill(p.w.begin(), p.w.end(), int8_t(wv));
      std::fill(p.x.begin(), p.x.end(), int8_t(xv));
      p.wp = quad::pack_int4(p.w.data(), out, k);
      const auto want = run(Int4Kernel::kRef, p);
      // The int32 result is exactly k·wv·xv.
      EXPECT_EQ(want[0], float(int32_t(k) * wv * xv) * p.sx[0] * p.sw[0]);
      for (Int4Kernel kern : kernels) {
        SCOPED_TRACE(testing::Message()
                     << quad::kernels::kernel_name(kern) << " w=" << wv << " x=" << xv);
        expect_same(run(kern, p), want, quad::kernels::kernel_name(kern));
      }
    }
  }
}

TEST(Int4Gemm, MixedExtremeRowsAndLargeK) {
  // Alternating extremes per row and a k large enough for many chunks plus a tail.
  const auto kernels = fast_kernels();
  if (kernels.empty()) GTEST_SKIP() << "no SIMD kernel on this CPU";
  Problem p = random_problem(5, 8192 + 66, 13, 8, 5);
  for (size_t i = 0; i < p.x.size(); ++i) p.x[i] = (i % 3 == 0) ? int8_t(-128) : int8_t(127);
  for (size_t i = 0; i < p.w.size(); ++i) p.w[i] = (i % 5 == 0) ? int8_t(7) : int8_t(-8);
  p.wp = quad::pack_int4(p.w.data(), p.out, p.k);
  const auto want = run(Int4Kernel::kRef, p);
  for (Int4Kernel kern : kernels) expect_same(run(kern, p), want, quad::kernels::kernel_name(kern));
}

TEST(Int4Gemm, HugeKWrapsBackToTheExactInt32) {
  // k past the AVX-512 kernel's flush interval (1024 chunks = 131072 columns), and a k where
  // Σ (w + 8)·x leaves int32 (15·128·k > 2³¹) while Σ w·x = −896·k still fits: the modular
  // int32 arithmetic of the kernels must give the exact result.
  const auto kernels = fast_kernels();
  if (kernels.empty()) GTEST_SKIP() << "no SIMD kernel on this CPU";
  for (int k : {131072 + 130, 2300000}) {
    for (int n : {1, 2, 5}) {
      Problem p = random_problem(n, k, 3, 8, 11);
      std::fill(p.x.begin(), p.x.end(), int8_t(-128));
      std::fill(p.w.begin(), p.w.end(), int8_t(7));
      p.wp = quad::pack_int4(p.w.data(), p.out, p.k);
      const auto want = run(Int4Kernel::kRef, p);
      EXPECT_EQ(want[0], float(-896 * k) * p.sx[0] * p.sw[0]);
      for (Int4Kernel kern : kernels) {
        SCOPED_TRACE(testing::Message()
                     << quad::kernels::kernel_name(kern) << " k=" << k << " n=" << n);
        expect_same(run(kern, p), want, quad::kernels::kernel_name(kern));
      }
    }
  }
}

TEST(Int4Gemm, DispatcherAndErrors) {
  const Int4Kernel sel = quad::kernels::selected_kernel();
  EXPECT_TRUE(quad::kernels::kernel_supported(sel));
  EXPECT_STREQ(quad::kernels::kernel_name(), quad::kernels::kernel_name(sel));
  const Problem p = random_problem(4, 200, 9, 8, 3);
  std::vector<float> y(size_t(p.n) * p.out);
  quad::kernels::gemm_s8_s4(p.x.data(), p.sx.data(), p.n, p.k, p.wp.data(), p.sw.data(), p.out,
                            y.data());
  expect_same(y, run(Int4Kernel::kRef, p), "dispatch");
  EXPECT_THROW(quad::kernels::gemm_s8_s4_with(Int4Kernel::kRef, p.x.data(), p.sx.data(), 1, 3,
                                              p.wp.data(), p.sw.data(), 1, y.data()),
               quad::Error);
}

}  // namespace
