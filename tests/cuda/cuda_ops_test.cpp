// The CUDA op harness: every CudaBackend op against the reference backend on random inputs
// (never zeros) at odd shapes, outputs poisoned with NaN first so an unwritten element fails.
// Tolerances are normalized errors ‖cuda − ref‖² / ‖ref‖² (NMSE), stated per op; the
// quantization ops and integer GEMMs must match bit for bit.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <random>
#include <tuple>

#include "cuda_test_util.h"
#include "quad/backend/memory.h"
#include "quad/core/error.h"
#include "quad/quant/weight_quant.h"
#include "test_support.h"

namespace quad {
namespace {

using test::nmse;
using test::random_normal;

const float kPoison = std::numeric_limits<float>::quiet_NaN();

// fp32 GEMM (cuBLAS, no TF32) vs the fp64-accumulating reference: relative error ~ √k · 2⁻²⁴
// per output, NMSE ~1e-13 at these widths; 1e-10 leaves room and still catches any indexing or
// layout bug (those give NMSE ≥ 1e-2).
constexpr double kLinearTol = 1e-10;
// RMSNorm: the sum of squares is fp64 on both sides; only the last fp32 products differ.
constexpr double kNormTol = 1e-12;
// RoPE: products rounded separately on the GPU, possibly fused on the CPU: ≤ 1 ulp.
constexpr double kRopeTol = 1e-13;
// Attention: fp32 scores and online softmax vs the fp64 reference.
constexpr double kAttentionTol = 1e-10;
// SiLU: exp in double rounded to float vs the reference's expf: ≤ 1-2 ulp.
constexpr double kSiluTol = 1e-12;

class CudaOps : public ::testing::Test {
 protected:
  void SetUp() override {
    QUAD_REQUIRE_GPU();
    cuda = make_backend("cuda");
  }
  std::unique_ptr<Backend> ref = make_ref_backend();
  std::unique_ptr<Backend> cuda;
};

std::vector<int8_t> random_codes(size_t n, int lo, int hi, uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_int_distribution<int> dist(lo, hi);
  std::vector<int8_t> v(n);
  for (auto& c : v) {
    do c = int8_t(dist(rng));
    while (c == 0);  // never zero
  }
  return v;
}

// Positive scales in [0.01, 1.01).
std::vector<float> random_scales(size_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> dist(0.01f, 1.01f);
  std::vector<float> v(n);
  for (auto& s : v) s = dist(rng);
  return v;
}

TEST_F(CudaOps, Linear) {
  uint32_t seed = 100;
  for (auto [n, in, out, bias] : {std::tuple{1, 72, 200, false},
                                  {3, 200, 72, true},
                                  {17, 264, 200, true},
                                  {1, 264, 17, true},
                                  {130, 72, 264, false}}) {
    auto x = random_normal(size_t(n) * in, seed++), w = random_normal(size_t(out) * in, seed++),
         b = random_normal(out, seed++);
    std::vector<float> y0(size_t(n) * out), y1(y0.size(), kPoison);
    ref->linear(x.data(), n, in, w.data(), out, bias ? b.data() : nullptr, y0.data());
    cuda->linear(x.data(), n, in, w.data(), out, bias ? b.data() : nullptr, y1.data());
    EXPECT_LT(nmse(y1, y0), kLinearTol) << n << "x" << in << "->" << out;
  }
}

// The weight cache notices new contents at the same address (whole-matrix rewrite, and a
// small buffer changed in one element).
TEST_F(CudaOps, LinearSeesChangedWeights) {
  const int n = 3, in = 200, out = 72;
  auto x = random_normal(size_t(n) * in, 1), w = random_normal(size_t(out) * in, 2),
       b = random_normal(out, 3);
  std::vector<float> y0(size_t(n) * out), y1(y0.size(), kPoison);
  cuda->linear(x.data(), n, in, w.data(), out, b.data(), y1.data());
  const float* w_addr = w.data();
  const auto w2 = random_normal(w.size(), 4);
  std::copy(w2.begin(), w2.end(), w.begin());
  b[5] += 1.0f;
  ASSERT_EQ(w.data(), w_addr);
  std::fill(y1.begin(), y1.end(), kPoison);
  ref->linear(x.data(), n, in, w.data(), out, b.data(), y0.data());
  cuda->linear(x.data(), n, in, w.data(), out, b.data(), y1.data());
  EXPECT_LT(nmse(y1, y0), kLinearTol);
}

TEST_F(CudaOps, RmsNorm) {
  uint32_t seed = 200;
  for (auto [n, width, divisor, weighted] : {std::tuple{1, 72, 72, true},
                                             {3, 200, 200, true},
                                             {17, 264, 200, false},
                                             {3, 264, 200, true}}) {
    auto x = random_normal(size_t(n) * width, seed++, 3.0f), w = random_normal(width, seed++);
    std::vector<float> y0(x.size()), y1(x.size(), kPoison);
    ref->rmsnorm(x.data(), n, width, weighted ? w.data() : nullptr, divisor, 1e-5f, y0.data());
    cuda->rmsnorm(x.data(), n, width, weighted ? w.data() : nullptr, divisor, 1e-5f, y1.data());
    EXPECT_LT(nmse(y1, y0), kNormTol) << n << "x" << width << " /" << divisor;
  }
}

TEST_F(CudaOps, Rope) {
  for (int hd : {16, 64}) {
    std::vector<float> inv(hd / 2);
    for (int i = 0; i < hd / 2; ++i) inv[i] = std::pow(10000.0f, -2.0f * i / hd);
    const RopeTable table = RopeTable::build(inv, 300);
    for (auto [n, heads] : {std::pair{1, 4}, {3, 2}, {17, 4}}) {
      auto x0 = random_normal(size_t(n) * heads * hd, uint32_t(300 + n + hd)), x1 = x0;
      std::vector<int32_t> pos(n);
      for (int i = 0; i < n; ++i) pos[i] = (i * 37 + 5) % 300;
      ref->rope(x0.data(), n, heads, hd, pos.data(), table);
      cuda->rope(x1.data(), n, heads, hd, pos.data(), table);
      EXPECT_LT(nmse(x1, x0), kRopeTol) << n << " " << heads << " " << hd;
    }
  }
  // A position past the table is the reference's error.
  const RopeTable small = RopeTable::build({1.0f, 0.5f}, 8);
  std::vector<float> x(4, 1.0f);
  const int32_t bad = 8;
  EXPECT_THROW(cuda->rope(x.data(), 1, 1, 4, &bad, small), Error);
}

TEST_F(CudaOps, AttentionPrefillAndDecode) {
  uint32_t seed = 400;
  // (tokens, start position, heads, kv heads, head_dim): prefill, decode, several key tiles
  // (more than 128 keys), MHA and GQA.
  for (auto [n, pos0, H, Hkv, hd] : {std::tuple{1, 0, 4, 2, 16},
                                     {3, 0, 4, 2, 64},
                                     {17, 0, 4, 2, 16},
                                     {17, 150, 4, 2, 64},
                                     {1, 300, 4, 2, 64},
                                     // decode over a long cache at Llama-3-8B's heads, and
                                     // head_dim 128 with fewer keys than warps
                                     {1, 2047, 32, 8, 128},
                                     {1, 5, 8, 2, 128},
                                     {2, 0, 4, 2, 64},
                                     {130, 0, 4, 4, 16},
                                     {3, 5, 6, 2, 64},
                                     // the batched-GEMM prefill path: continuing a cache,
                                     // Llama-3's head_dim, more rows than one chunk (512)
                                     {32, 0, 4, 2, 16},
                                     {77, 40, 8, 2, 128},
                                     {600, 3, 4, 1, 64}}) {
    const int len = pos0 + n;
    auto q = random_normal(size_t(n) * H * hd, seed++),
         k = random_normal(size_t(len) * Hkv * hd, seed++),
         v = random_normal(size_t(len) * Hkv * hd, seed++);
    std::vector<float> o0(q.size()), o1(q.size(), kPoison);
    ref->attention(q.data(), n, H, Hkv, hd, k.data(), v.data(), pos0, o0.data());
    cuda->attention(q.data(), n, H, Hkv, hd, k.data(), v.data(), pos0, o1.data());
    EXPECT_LT(nmse(o1, o0), kAttentionTol)
        << "n=" << n << " pos0=" << pos0 << " " << H << "/" << Hkv << " hd=" << hd;
  }
  std::vector<float> q(3 * 16, 1.0f), k(16, 1.0f), out(q.size());
  EXPECT_THROW(cuda->attention(q.data(), 1, 3, 2, 16, k.data(), k.data(), 0, out.data()), Error);
}

// With reduced precision allowed, prefill attention runs the fp16 flash-attention kernel: q, k,
// v and the probabilities rounded to fp16 (relative error ~1e-3 per element, NMSE ~1e-7), fp32
// accumulation. Cases: both head sizes, GQA and MHA, continuing a cache, a partial last block
// and key tile, the diagonal inside a tile, many keys for few rows, large scores.
TEST_F(CudaOps, FlashAttentionPrefill) {
  auto fast = make_backend("cuda");
  fast->allow_reduced_precision();
  uint32_t seed = 900;
  for (auto [n, pos0, H, Hkv, hd, amp] : {std::tuple{2, 0, 4, 2, 64, 1.0f},
                                          {77, 40, 8, 2, 128, 1.0f},
                                          {130, 0, 4, 4, 64, 1.0f},
                                          {64, 64, 2, 1, 128, 1.0f},
                                          {5, 300, 4, 2, 128, 1.0f},
                                          {600, 3, 4, 1, 64, 1.0f},
                                          {100, 0, 4, 2, 128, 2.0f}}) {
    const int len = pos0 + n;
    auto q = random_normal(size_t(n) * H * hd, seed++, amp),
         k = random_normal(size_t(len) * Hkv * hd, seed++, amp),
         v = random_normal(size_t(len) * Hkv * hd, seed++);
    std::vector<float> o0(q.size()), o1(q.size(), kPoison);
    ref->attention(q.data(), n, H, Hkv, hd, k.data(), v.data(), pos0, o0.data());
    fast->attention(q.data(), n, H, Hkv, hd, k.data(), v.data(), pos0, o1.data());
    // The scores' rounding error grows with |q|·|k|, so the bound with amp⁴.
    EXPECT_LT(nmse(o1, o0), 2e-6 * std::pow(amp, 4))
        << "n=" << n << " pos0=" << pos0 << " " << H << "/" << Hkv << " hd=" << hd
        << " amp=" << amp;
    EXPECT_GT(nmse(o1, o0), 0.0) << "the fp16 kernel ran";  // not the exact fp32 path
  }
}

// RoPE fused into the flash kernel's load of q (rope_attention) gives what rope() then
// attention() give on the same backend, bit for bit (the same roundings), and the same rotated
// keys in the cache; non-consecutive positions take the steps.
TEST_F(CudaOps, FlashRopeAttentionMatchesTheSteps) {
  auto fast = make_backend("cuda");
  fast->allow_reduced_precision();
  uint32_t seed = 1300;
  for (auto [n, pos0, H, Hkv, hd, consecutive] : {std::tuple{77, 40, 8, 2, 128, true},
                                                  {130, 0, 4, 4, 64, true},
                                                  {5, 300, 4, 2, 128, true},
                                                  {33, 7, 4, 1, 64, false}}) {
    std::vector<float> inv(hd / 2);
    for (int i = 0; i < hd / 2; ++i) inv[i] = std::pow(500000.0f, -2.0f * i / hd);
    const RopeTable table = RopeTable::build(inv, 400);
    const int len = pos0 + n;
    const auto q = random_normal(size_t(n) * H * hd, seed++),
               k = random_normal(size_t(len) * Hkv * hd, seed++),
               v = random_normal(size_t(len) * Hkv * hd, seed++);
    std::vector<int32_t> pos(n);
    for (int i = 0; i < n; ++i) pos[i] = consecutive ? pos0 + i : pos0 + 2 * i;
    auto q0 = q, k0 = k;
    std::vector<float> o0(q.size()), o1(q.size(), kPoison);
    fast->rope(q0.data(), n, H, hd, pos.data(), table);
    fast->rope(k0.data() + size_t(pos0) * Hkv * hd, n, Hkv, hd, pos.data(), table);
    fast->attention(q0.data(), n, H, Hkv, hd, k0.data(), v.data(), pos0, o0.data());
    auto q1 = q, k1 = k;
    fast->rope_attention(q1.data(), n, H, Hkv, hd, k1.data(), v.data(), pos0, pos.data(), table,
                         o1.data());
    EXPECT_EQ(k1, k0) << "n=" << n << " hd=" << hd;
    EXPECT_EQ(o1, o0) << "n=" << n << " hd=" << hd;
  }
}

// The embedding gather: on the host for few tokens, on the GPU from the cached table once the
// weights are frozen (inference); both copy rows exactly, into host or device memory.
TEST_F(CudaOps, EmbedGathersExactRows) {
  const int vocab = 301, width = 37;
  const std::vector<float> table = random_normal(size_t(vocab) * width, 950);
  auto frozen = make_backend("cuda");
  frozen->assume_weights_frozen();
  for (int n : {1, 31, 32, 200}) {
    std::vector<int32_t> tokens(n);
    for (int i = 0; i < n; ++i) tokens[i] = (i * 7919 + 13) % vocab;
    std::vector<float> x0(size_t(n) * width), x1(x0.size(), kPoison), x2(x0.size(), kPoison);
    ref->embed(table.data(), vocab, width, tokens.data(), n, x0.data());
    frozen->embed(table.data(), vocab, width, tokens.data(), n, x1.data());
    EXPECT_EQ(x1, x0) << n;
    BackendArray<float> dx;
    dx.ensure(MemoryKind::cuda, x0.size());
    frozen->embed(table.data(), vocab, width, tokens.data(), n, dx.data());
    frozen->copy(x2.data(), dx.data(), sizeof(float) * x2.size());
    EXPECT_EQ(x2, x0) << n << " into device memory";
    EXPECT_EQ(x0[size_t(n - 1) * width + 5], table[size_t(tokens[n - 1]) * width + 5]);
  }
}

TEST_F(CudaOps, SiluMulAndAdd) {
  for (size_t n : {size_t(1), size_t(17), size_t(200 * 17 + 3)}) {
    auto g = random_normal(n, 500, 4.0f), u = random_normal(n, 501);
    std::vector<float> y0(n), y1(n, kPoison);
    ref->silu_mul(g.data(), u.data(), n, y0.data());
    cuda->silu_mul(g.data(), u.data(), n, y1.data());
    EXPECT_LT(nmse(y1, y0), kSiluTol) << n;
    // in place (out aliases gate), as the forward pass calls it
    auto g2 = g;
    cuda->silu_mul(g2.data(), u.data(), n, g2.data());
    EXPECT_LT(nmse(g2, y0), kSiluTol) << n;
    // add is one fp32 addition per element: exact
    auto a0 = random_normal(n, 502), a1 = a0;
    ref->add(a0.data(), g.data(), n);
    cuda->add(a1.data(), g.data(), n);
    EXPECT_EQ(a0, a1) << n;
  }
}

// Fake quantization: same scales, same round-half-even codes, bit for bit.
TEST_F(CudaOps, ActQuantExact) {
  uint32_t seed = 600;
  for (auto [n, width, bits, skip] : {std::tuple{1, 72, 4, 0},
                                      {3, 200, 8, 0},
                                      {17, 264, 4, 8},
                                      {17, 72, 8, 5},
                                      {3, 264, 4, 64}}) {
    auto x0 = random_normal(size_t(n) * width, seed++, 2.0f), x1 = x0;
    const ActQuantSpec spec{bits, skip, 0.9f};
    ref->act_quant(x0.data(), n, width, spec);
    cuda->act_quant(x1.data(), n, width, spec);
    EXPECT_EQ(x0, x1) << n << "x" << width << " bits=" << bits << " skip=" << skip;
  }
  // Ties: values exactly half-way between codes round to even on both.
  std::vector<float> ties{7.0f, 0.5f, 1.5f, 2.5f, -0.5f, -1.5f, -2.5f, 3.5f};
  auto t0 = ties, t1 = ties;
  ref->act_quant(t0.data(), 1, 8, ActQuantSpec{4, 0, 1.0f});
  cuda->act_quant(t1.data(), 1, 8, ActQuantSpec{4, 0, 1.0f});
  EXPECT_EQ(t0, t1);
}

TEST_F(CudaOps, QuantizeRowsExact) {
  uint32_t seed = 700;
  // (rows, width, row stride, bits): strided rows as the integer path reads x[:, r:].
  for (auto [n, width, ld, bits] : {std::tuple{1, 72, 72, 4},
                                    {3, 200, 264, 8},
                                    {17, 264, 264, 4},
                                    {17, 200, 200, 8},
                                    {70, 72, 80, 4}}) {
    auto x = random_normal(size_t(n) * ld, seed++, 2.0f);
    std::vector<int8_t> c0(size_t(n) * width), c1(c0.size(), int8_t(99));
    std::vector<float> s0(n), s1(n, kPoison);
    ref->quantize_rows(x.data() + (ld - width), n, width, ld, bits, 0.9f, c0.data(), s0.data());
    cuda->quantize_rows(x.data() + (ld - width), n, width, ld, bits, 0.9f, c1.data(), s1.data());
    EXPECT_EQ(c0, c1) << n << "x" << width << " ld=" << ld << " bits=" << bits;
    EXPECT_EQ(s0, s1);
  }
}

// Integer GEMMs: int32 accumulation is exact and the epilogue is the same expression, so the
// results are identical. Shapes cover partial 64×64 tiles and k not a multiple of 4 or 64.
TEST_F(CudaOps, IntGemmAndInt4GemmExact) {
  uint32_t seed = 800;
  for (auto [n, k, out] : {std::tuple{1, 72, 200},
                           {3, 200, 72},
                           {17, 264, 200},
                           {70, 30, 17},
                           {130, 74, 65},
                           {2, 1408, 3}}) {
    auto xq = random_codes(size_t(n) * k, -128, 127, seed++);
    auto w8 = random_codes(size_t(out) * k, -128, 127, seed++);
    auto w4 = random_codes(size_t(out) * k, -8, 7, seed++);
    auto sx = random_scales(n, seed++), sw = random_scales(out, seed++);
    std::vector<float> y0(size_t(n) * out), y1(y0.size(), kPoison);
    ref->int_gemm(xq.data(), sx.data(), n, k, w8.data(), sw.data(), out, y0.data());
    cuda->int_gemm(xq.data(), sx.data(), n, k, w8.data(), sw.data(), out, y1.data());
    EXPECT_EQ(y0, y1) << "int8 " << n << "x" << k << "x" << out;
    const auto packed = pack_int4(w4.data(), out, k);
    std::fill(y1.begin(), y1.end(), kPoison);
    ref->int4_gemm(xq.data(), sx.data(), n, k, packed.data(), sw.data(), out, y0.data());
    cuda->int4_gemm(xq.data(), sx.data(), n, k, packed.data(), sw.data(), out, y1.data());
    EXPECT_EQ(y0, y1) << "int4 " << n << "x" << k << "x" << out;
  }
  std::vector<int8_t> xq(3, 1);
  std::vector<uint8_t> w4(2, 0x11);
  std::vector<float> s(1, 1.0f), y(1);
  EXPECT_THROW(cuda->int4_gemm(xq.data(), s.data(), 1, 3, w4.data(), s.data(), 1, y.data()), Error);
}

}  // namespace
}  // namespace quad
