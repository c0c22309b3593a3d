// The QUAD linear kernels of issue 8 (backend/cuda/device/quad_linear.h) against plain host
// references on random inputs (never zeros), at odd shapes, outputs poisoned first:
//  - the fragment-major layouts are bijections (runs without a GPU);
//  - quant_u / quant_d: scales, fp16 outlier part, codes and code sums vs the reference
//    quantizer after the reference RMSNorm / Hadamard transforms of the CPU model;
//  - the GEMMs (tiled and weight-streaming, A4 and A8, with and without outlier part and bias)
//    vs an exact integer product with fp64 epilogue; the only error allowed is bf16 rounding;
//  - a U-type and a D-type layer end to end vs the reference backend's ops.
#include "quad/backend/cuda/device/quad_linear.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <random>
#include <set>
#include <vector>

#include "cuda_test_util.h"
#include "quad/quant/hadamard.h"
#include "quad/quant/online_transforms.h"
#include "quad/quant/weight_quant.h"
#include "test_support.h"

namespace quad {
namespace {

using cuda::QuadActivations;
using cuda::QuadWeights;

#define CUDA_OK(call)                                                          \
  do {                                                                         \
    const cudaError_t err_ = (call);                                           \
    ASSERT_EQ(err_, cudaSuccess) << #call << ": " << cudaGetErrorString(err_); \
  } while (0)

template <typename T>
struct Dev {
  T* p = nullptr;
  size_t n = 0;
  explicit Dev(size_t count) : n(count) {
    if (cudaMalloc(reinterpret_cast<void**>(&p), std::max<size_t>(1, n) * sizeof(T)) != cudaSuccess)
      p = nullptr;
    if (p) cudaMemset(p, 0xFF, std::max<size_t>(1, n) * sizeof(T));  // poison
  }
  Dev(const std::vector<T>& h) : Dev(h.size()) {
    if (p && n) cudaMemcpy(p, h.data(), n * sizeof(T), cudaMemcpyHostToDevice);
  }
  ~Dev() { cudaFree(p); }
  std::vector<T> get() const {
    std::vector<T> h(n);
    if (n) cudaMemcpy(h.data(), p, n * sizeof(T), cudaMemcpyDeviceToHost);
    return h;
  }
};

uint16_t bf16_bits(float v) {  // round to nearest even
  uint32_t u;
  std::memcpy(&u, &v, 4);
  u += 0x7FFFu + ((u >> 16) & 1u);
  return uint16_t(u >> 16);
}
float bf16_value(uint16_t b) {
  uint32_t u = uint32_t(b) << 16;
  float v;
  std::memcpy(&v, &u, 4);
  return v;
}
float half_value(__half h) {
  return __half2float(h);
}

std::vector<__nv_bfloat16> to_bf16(const std::vector<float>& x, std::vector<float>* rounded) {
  std::vector<__nv_bfloat16> out(x.size());
  rounded->resize(x.size());
  for (size_t i = 0; i < x.size(); ++i) {
    __nv_bfloat16_raw raw;
    raw.x = bf16_bits(x[i]);
    out[i] = raw;
    const uint16_t b = raw.x;
    (*rounded)[i] = bf16_value(b);
  }
  return out;
}

std::vector<__half> to_half(const std::vector<float>& x, std::vector<float>* rounded) {
  std::vector<__half> out(x.size());
  rounded->resize(x.size());
  for (size_t i = 0; i < x.size(); ++i) {
    out[i] = __float2half_rn(x[i]);
    (*rounded)[i] = __half2float(out[i]);
  }
  return out;
}

std::vector<float> random_normal(size_t n, std::mt19937& rng, float scale = 1.0f) {
  std::normal_distribution<float> d(0.0f, scale);
  std::vector<float> v(n);
  for (auto& x : v) x = d(rng);
  return v;
}

// Byte of 8-bit code k in a row: fragment-major, or natural order (the wgmma kernel's input).
int a8_byte(int k, bool natural) {
  return natural ? k : cuda::quad_a8_position(k);
}
// Byte and nibble shift of 4-bit activation code k: fragment-major, or natural (plain packing).
void a4_position(int k, bool natural, int* pos, int* shift) {
  if (natural) {
    *pos = k / 2;
    *shift = 4 * (k % 2);
  } else {
    cuda::quad_w4_position(k, false, pos, shift);
  }
}

// Codes of one row back from the fragment-major layout (weights are offset by 8).
std::vector<int> decode_row(const uint8_t* row, int K, int bits, bool a8_order, bool offset,
                            bool natural = false) {
  std::vector<int> q(K);
  for (int k = 0; k < K; ++k) {
    if (bits == 8) {
      q[k] = int8_t(row[a8_byte(k, natural)]);
    } else {
      int pos, shift;
      if (natural)
        a4_position(k, true, &pos, &shift);
      else
        cuda::quad_w4_position(k, a8_order, &pos, &shift);
      const int nib = (row[pos] >> shift) & 0xF;
      q[k] = offset ? nib - 8 : (nib >= 8 ? nib - 16 : nib);
    }
  }
  return q;
}

// Activation codes (signed) → the layout the quant kernels write.
std::vector<uint8_t> encode_acts(const std::vector<int>& q, int M, int K, int bits, bool natural) {
  const int rb = cuda::quad_row_bytes(K, bits);
  std::vector<uint8_t> out(size_t(M) * rb, 0);
  for (int i = 0; i < M; ++i)
    for (int k = 0; k < K; ++k) {
      const int v = q[size_t(i) * K + k];
      if (bits == 8) {
        out[size_t(i) * rb + a8_byte(k, natural)] = uint8_t(int8_t(v));
      } else {
        int pos, shift;
        a4_position(k, natural, &pos, &shift);
        out[size_t(i) * rb + pos] |= uint8_t((v + 8) << shift);
      }
    }
  return out;
}

bool gpu_here() {
  return cuda_compiled() && cuda_device_count() > 0;
}

TEST(QuadLayout, PositionsAreBijections) {
  for (int K : {32, 128, 200, 4096}) {
    const int Kp = cuda::quad_padded_k(K);
    for (bool a8 : {false, true}) {
      std::set<int> seen;
      for (int k = 0; k < Kp; ++k) {
        int pos, shift;
        cuda::quad_w4_position(k, a8, &pos, &shift);
        ASSERT_LT(pos, cuda::quad_row_bytes(K, 4));
        ASSERT_TRUE(seen.insert(pos * 2 + shift / 4).second) << "k " << k;
      }
    }
    std::set<int> seen8;
    for (int k = 0; k < Kp; ++k) {
      const int pos = cuda::quad_a8_position(k);
      ASSERT_LT(pos, cuda::quad_row_bytes(K, 8));
      ASSERT_TRUE(seen8.insert(pos).second) << "k " << k;
    }
  }
}

TEST(QuadLayout, WeightOffsetsAreABijection) {
  for (auto [N, K] : {std::pair{16, 128}, std::pair{21, 300}, std::pair{40, 4096}}) {
    for (bool a8 : {false, true}) {
      std::set<size_t> seen;
      for (int o = 0; o < cuda::quad_padded_n(N); ++o)
        for (int k = 0; k < cuda::quad_padded_k(K); ++k) {
          int shift;
          const size_t pos = cuda::quad_weight_offset(o, k, K, a8, &shift);
          ASSERT_LT(pos, cuda::quad_weight_bytes(N, K));
          ASSERT_TRUE(seen.insert(pos * 2 + shift / 4).second) << "row " << o << " k " << k;
        }
    }
  }
}

TEST(QuadLayout, PreparedWeightsDecodeToTheirCodes) {
  std::mt19937 rng(3);
  std::uniform_int_distribution<int> code(-8, 7);
  const int N = 21, K = 300;
  std::vector<int8_t> q(size_t(N) * K);
  for (auto& v : q) v = int8_t(code(rng));
  for (bool a8 : {false, true}) {
    std::vector<uint8_t> packed(cuda::quad_weight_bytes(N, K), 0xAA);
    std::vector<int32_t> sums(N);
    cuda::quad_prepare_weights(q.data(), N, K, a8, packed.data(), sums.data());
    std::vector<int> nibbles_set(packed.size() * 2, 0);
    for (int o = 0; o < N; ++o) {
      int s = 0;
      for (int k = 0; k < K; ++k) {
        int shift;
        const size_t pos = cuda::quad_weight_offset(o, k, K, a8, &shift);
        ASSERT_EQ(((packed[pos] >> shift) & 0xF) - 8, q[size_t(o) * K + k]);
        nibbles_set[pos * 2 + shift / 4] = 1;
        s += q[size_t(o) * K + k];
      }
      EXPECT_EQ(sums[o], s);
    }
    for (size_t i = 0; i < nibbles_set.size(); ++i) {  // padding (rows and k): zero nibbles
      if (nibbles_set[i]) continue;
      ASSERT_EQ((packed[i / 2] >> (4 * (i % 2))) & 0xF, 0) << i;
    }
  }
}

// The repack from a folder's packed nibbles writes the same bytes and sums as from int8 codes
// (odd row count, both activation orders; host code, no GPU needed).
TEST(QuadLayout, PackedCodesPrepareLikeInt8Codes) {
  std::mt19937 rng(5);
  std::uniform_int_distribution<int> code(-8, 7);
  const int N = 37, K = 4098;
  std::vector<int8_t> q(size_t(N) * K);
  for (auto& v : q) v = int8_t(code(rng));
  const std::vector<uint8_t> nibbles = pack_int4(q.data(), N, K);
  for (bool a8 : {false, true}) {
    std::vector<uint8_t> want(cuda::quad_weight_bytes(N, K)), got(want.size(), 0x5A);
    std::vector<int32_t> want_sums(N), got_sums(N, -1);
    cuda::quad_prepare_weights(q.data(), N, K, a8, want.data(), want_sums.data());
    cuda::quad_prepare_packed_weights(nibbles.data(), N, K, a8, got.data(), got_sums.data());
    EXPECT_EQ(got, want) << "a8 " << a8;
    EXPECT_EQ(got_sums, want_sums) << "a8 " << a8;
  }
}

// Reference quantizer: scale = max|a| / qmax · clip (fp32), codes round-half-even and clamped.
void reference_quantize(const float* a, int K, int bits, float clip, float* scale, int* codes) {
  const float qmax = bits == 4 ? 7.0f : 127.0f;
  float amax = 0.0f;
  for (int k = 0; k < K; ++k) amax = std::max(amax, std::fabs(a[k]));
  *scale = amax / qmax * clip;
  for (int k = 0; k < K; ++k)
    codes[k] = *scale == 0.0f
                   ? 0
                   : int(std::min(std::max(std::nearbyint(a[k] / *scale), -qmax - 1), qmax));
}

// Compares one quantized row: scale, codes (a few ±1 flips allowed where the fp32 transform
// rounds differently), and the stored sum of the GPU's own codes.
void expect_row_matches(const std::vector<uint8_t>& codes, const std::vector<float>& scales,
                        const std::vector<int32_t>& sums, int row, const float* ref_a, int K,
                        int bits, float clip, double scale_tol, int* flips, bool natural) {
  float ref_scale;
  std::vector<int> ref_codes(K);
  reference_quantize(ref_a, K, bits, clip, &ref_scale, ref_codes.data());
  EXPECT_NEAR(scales[row], ref_scale, scale_tol * ref_scale) << "row " << row;
  const int rb = cuda::quad_row_bytes(K, bits);
  auto got = decode_row(codes.data() + size_t(row) * rb, K, bits, false, true, natural);
  int sum = 0;
  for (int k = 0; k < K; ++k) {
    sum += got[k];
    ASSERT_LE(std::abs(got[k] - ref_codes[k]), 1) << "row " << row << " k " << k;
    *flips += got[k] != ref_codes[k];
  }
  EXPECT_EQ(sums[row], sum) << "row " << row;
  // Padding stays zero (it must add nothing to the integer sums).
  const int Kp = cuda::quad_padded_k(K);
  for (int k = K; k < Kp; ++k) {
    if (bits == 8) {
      ASSERT_EQ(codes[size_t(row) * rb + a8_byte(k, natural)], 0);
    } else {
      int pos, shift;
      a4_position(k, natural, &pos, &shift);
      ASSERT_EQ((codes[size_t(row) * rb + pos] >> shift) & 0xF, 0);
    }
  }
}

TEST(QuadQuant, UTypeMatchesReferenceNormAndQuantizer) {
  if (!gpu_here()) GTEST_SKIP() << "no CUDA GPU";
  std::mt19937 rng(11);
  for (auto [M, r, K, bits] :
       {std::tuple{7, 16, 200, 4}, std::tuple{33, 64, 4096, 4}, std::tuple{5, 0, 96, 8},
        std::tuple{3, 32, 1000, 8}, std::tuple{90, 64, 4096, 4}, std::tuple{70, 16, 8192, 8}}) {
    const bool natural = M % 2 == 1;  // both layouts
    SCOPED_TRACE(testing::Message() << "M " << M << " r " << r << " K " << K << " bits " << bits
                                    << " natural " << natural);
    const int D = r + K, divisor = K;
    std::vector<float> h;
    auto hb = to_bf16(random_normal(size_t(M) * D, rng, 3.0f), &h);
    Dev<__nv_bfloat16> dh(hb);
    Dev<uint8_t> codes(size_t(M) * cuda::quad_row_bytes(K, bits));
    Dev<float> scales(M);
    Dev<int32_t> sums(M);
    Dev<__half> outl(2 * size_t(M) * std::max(r, 1));  // hi, then lo
    QuadActivations act{codes.p, scales.p, sums.p, outl.p, outl.p + size_t(M) * r, natural};
    CUDA_OK(cuda::launch_quad_quant_u(dh.p, M, r, K, divisor, 1e-5f, bits, 0.9f, act, nullptr));
    CUDA_OK(cudaDeviceSynchronize());
    auto c = codes.get();
    auto s = scales.get();
    auto su = sums.get();
    auto o = outl.get();
    int flips = 0;
    for (int i = 0; i < M; ++i) {
      double ss = 0;
      for (int j = 0; j < D; ++j) ss += double(h[size_t(i) * D + j]) * h[size_t(i) * D + j];
      const float inv = float(1.0 / std::sqrt(ss / divisor + 1e-5));
      std::vector<float> a(D);
      for (int j = 0; j < D; ++j) a[j] = h[size_t(i) * D + j] * inv;
      for (int j = 0; j < r; ++j) {
        // hi is fp16(a); hi + lo carries a to ~22 bits (lo may be subnormal: 3e-8 absolute).
        const float hi = half_value(o[size_t(i) * r + j]);
        const float lo = half_value(o[size_t(M) * r + size_t(i) * r + j]);
        EXPECT_NEAR(hi, a[j], 1e-3 * std::fabs(a[j]) + 1e-6);
        EXPECT_NEAR(double(hi) + lo, a[j], 2e-6 * std::fabs(a[j]) + 6e-8);
      }
      expect_row_matches(c, s, su, i, a.data() + r, K, bits, 0.9f, 1e-5, &flips, natural);
    }
    EXPECT_LE(flips, std::max(2, M * K / 1000));
  }
}

// The mix of a D-type case: the CPU transform of heads > 0 (head mix of (heads, K / heads)) or
// else of the size-K Hadamard, applied to ref, with its outer factor for the kernel.
void online_hadamard(int K, int heads, int M, std::vector<float>& ref, std::vector<float>* mix,
                     int* K_o, bool* inner) {
  mix->clear();
  if (heads > 0) {
    HeadMixInput t(heads, K / heads);
    t.apply(ref.data(), M, K);
    const auto dense = hadamard::dense(hadamard::plan(heads));
    mix->assign(dense.begin(), dense.end());
    *K_o = heads;
    *inner = false;
  } else {
    HadamardInput t(K);
    t.apply(ref.data(), M, K);
    const auto p = hadamard::plan(K);
    const auto a = hadamard::factor_matrix(p);
    for (double v : a) mix->push_back(float(v / std::sqrt(double(K))));
    *K_o = p.K;
    *inner = true;
  }
}

// Runs `launch` (a D-type quantization of M rows of width K) into poisoned activation buffers
// and compares each row with the reference quantizer on ref.
template <typename Launch>
void check_d_rows(int M, int K, int bits, bool natural, const std::vector<float>& ref,
                  int max_flips, Launch launch) {
  Dev<uint8_t> codes(size_t(M) * cuda::quad_row_bytes(K, bits));
  Dev<float> scales(M);
  Dev<int32_t> sums(M);
  const QuadActivations act{codes.p, scales.p, sums.p, nullptr, nullptr, natural};
  CUDA_OK(launch(act));
  CUDA_OK(cudaDeviceSynchronize());
  auto c = codes.get();
  auto s = scales.get();
  auto su = sums.get();
  int flips = 0;
  for (int i = 0; i < M; ++i)
    expect_row_matches(c, s, su, i, ref.data() + size_t(i) * K, K, bits, 0.9f, 1e-5, &flips,
                       natural);
  EXPECT_LE(flips, max_flips);
}

// launch_quad_quant_d on x: the bf16 values xb, or the fp32 values xf when `fp32`.
void check_quant_d(const std::vector<float>& xf, const std::vector<__nv_bfloat16>& xb, bool fp32,
                   int M, int K, const std::vector<float>& mix, int K_o, bool inner, int bits,
                   const std::vector<float>& ref, bool natural, int max_flips) {
  Dev<__nv_bfloat16> dxb(xb);
  Dev<float> dxf(xf), dmix(mix);
  check_d_rows(M, K, bits, natural, ref, max_flips, [&](const QuadActivations& act) {
    return fp32 ? cuda::launch_quad_quant_d(dxf.p, M, K, dmix.p, K_o, inner, bits, 0.9f, act,
                                            nullptr)
                : cuda::launch_quad_quant_d(dxb.p, M, K, dmix.p, K_o, inner, bits, 0.9f, act,
                                            nullptr);
  });
}

TEST(QuadQuant, DTypeMatchesCpuOnlineHadamards) {
  if (!gpu_here()) GTEST_SKIP() << "no CUDA GPU";
  std::mt19937 rng(12);
  struct Case {
    int M, K, heads, bits;  // heads > 0: head mix of (heads, K / heads); else the size-K Hadamard
  };
  // Register FWHT (P = 128, 256, 512), the shared-memory fallback (P = 1024), head mixes, wide
  // (few rows) and narrow (many rows) blocks, and (above 16 rows) the tensor-core mix.
  for (Case cs :
       {Case{9, 1408, 0, 8}, Case{4, 7168, 0, 4}, Case{6, 512, 8, 8}, Case{3, 2048, 32, 4},
        Case{2, 14336, 0, 8}, Case{3, 1024, 0, 4}, Case{70, 14336, 0, 4}, Case{80, 4096, 32, 8},
        Case{40, 2048, 16, 4}, Case{24, 7168, 0, 8}, Case{33, 1408, 0, 4}, Case{17, 3072, 24, 4}}) {
    for (bool fp32 : {false, true}) {
      const bool natural = cs.M % 2 == 0;  // both layouts
      SCOPED_TRACE(testing::Message()
                   << "M " << cs.M << " K " << cs.K << " heads " << cs.heads << " bits " << cs.bits
                   << " natural " << natural << " fp32 " << fp32);
      std::vector<float> x;
      auto xb = to_bf16(random_normal(size_t(cs.M) * cs.K, rng, 2.0f), &x);
      if (fp32) x = random_normal(size_t(cs.M) * cs.K, rng, 2.0f);
      std::vector<float> ref = x, mix;
      int K_o;
      bool inner;
      online_hadamard(cs.K, cs.heads, cs.M, ref, &mix, &K_o, &inner);
      check_quant_d(x, xb, fp32, cs.M, cs.K, mix, K_o, inner, cs.bits, ref, natural,
                    std::max(3, cs.M * cs.K / 500));
    }
  }
}

// A mix that is not c · (±1) (any K_o × K_o matrix): the FMA path of the many-rows kernel, and the
// few-rows kernel, against y[a, j] = Σ_b mix[a, b] · x[b, j] in double.
TEST(QuadQuant, DTypeArbitraryMixMatchesCpu) {
  if (!gpu_here()) GTEST_SKIP() << "no CUDA GPU";
  std::mt19937 rng(21);
  for (int M : {5, 40}) {
    const int K_o = 12, P = 64, K = K_o * P;
    SCOPED_TRACE(testing::Message() << "M " << M);
    std::vector<float> x;
    auto xb = to_bf16(random_normal(size_t(M) * K, rng), &x);
    const std::vector<float> mix = random_normal(size_t(K_o) * K_o, rng, 0.3f);
    std::vector<float> ref(x.size());
    for (int i = 0; i < M; ++i)
      for (int a = 0; a < K_o; ++a)
        for (int j = 0; j < P; ++j) {
          double y = 0;
          for (int b = 0; b < K_o; ++b)
            y += double(mix[size_t(a) * K_o + b]) * x[size_t(i) * K + b * P + j];
          ref[size_t(i) * K + a * P + j] = float(y);
        }
    check_quant_d(x, xb, false, M, K, mix, K_o, false, 4, ref, true, std::max(3, M * K / 500));
  }
}

// SwiGLU's halves (bf16 side by side in one row of the joined gate|up output, or fp32 in two
// arrays): silu(gate) · up formed on load, then the Hadamard and the codes, against the CPU
// formula and transform.
TEST(QuadQuant, DTypeSwigluMatchesCpu) {
  if (!gpu_here()) GTEST_SKIP() << "no CUDA GPU";
  std::mt19937 rng(31);
  const int K = 14336;
  for (int M : {3, 70}) {
    for (bool joined : {true, false}) {
      SCOPED_TRACE(testing::Message() << "M " << M << " joined " << joined);
      std::vector<float> gu;
      auto gub = to_bf16(random_normal(size_t(M) * 2 * K, rng, 1.5f), &gu);
      if (!joined) gu = random_normal(size_t(M) * 2 * K, rng, 1.5f);
      std::vector<float> gate(size_t(M) * K), up(size_t(M) * K), ref(size_t(M) * K);
      for (int i = 0; i < M; ++i)
        for (int k = 0; k < K; ++k) {
          const float g = gu[size_t(i) * 2 * K + k], u = gu[size_t(i) * 2 * K + K + k];
          gate[size_t(i) * K + k] = g;
          up[size_t(i) * K + k] = u;
          ref[size_t(i) * K + k] = g / (1.0f + float(std::exp(-double(g)))) * u;
        }
      std::vector<float> mix;
      int K_o;
      bool inner;
      online_hadamard(K, 0, M, ref, &mix, &K_o, &inner);
      Dev<__nv_bfloat16> dgu(gub);
      Dev<float> dg(gate), du(up), dmix(mix);
      check_d_rows(M, K, 4, false, ref, std::max(3, M * K / 500), [&](const QuadActivations& act) {
        return joined ? cuda::launch_quad_quant_d_swiglu(dgu.p, dgu.p + K, 2 * K, M, K, dmix.p, K_o,
                                                         inner, 4, 0.9f, act, nullptr)
                      : cuda::launch_quad_quant_d_swiglu(dg.p, du.p, M, K, dmix.p, K_o, inner, 4,
                                                         0.9f, act, nullptr);
      });
    }
  }
}

struct GemmCase {
  int M, N, K, r, act_bits;
  bool bias;
};

// Runs the GEMM on random codes and checks every output against the exact product.
// tiled: -1 = launch_quad_gemm's choice, 0 = the tiled mma.sync kernel, 100 + v = the decode
// kernel's variant v, 200 = the wgmma kernel (its tile by shape), 201 / 202 = its wide / tall tile.
void check_gemm(const GemmCase& cs, int tiled, std::mt19937& rng) {
  SCOPED_TRACE(testing::Message() << "M " << cs.M << " N " << cs.N << " K " << cs.K << " r " << cs.r
                                  << " A" << cs.act_bits << " tiled variant " << tiled);
  const int M = cs.M, N = cs.N, K = cs.K, r = cs.r;
  const int amax = cs.act_bits == 4 ? 7 : 127;
  std::uniform_int_distribution<int> acode(-amax - 1, amax), wcode(-8, 7);
  std::uniform_real_distribution<float> sdist(0.001f, 0.02f);
  std::vector<int> aq(size_t(M) * K);
  std::vector<int8_t> wq(size_t(N) * K);
  for (auto& v : aq) v = acode(rng);
  for (auto& v : wq) v = int8_t(wcode(rng));
  std::vector<float> sx(M), sw(N);
  for (auto& v : sx) v = sdist(rng);
  for (auto& v : sw) v = sdist(rng);
  std::vector<int32_t> asum(M, 0);
  for (int i = 0; i < M; ++i)
    for (int k = 0; k < K; ++k) asum[i] += aq[size_t(i) * K + k];
  std::vector<uint8_t> wpacked(cuda::quad_weight_bytes(N, K));
  std::vector<int32_t> wsum(N);
  cuda::quad_prepare_weights(wq.data(), N, K, cs.act_bits == 8, wpacked.data(), wsum.data());
  // The tokens' outlier pair: independent random hi and lo parts (lo as large as hi, so that a
  // kernel dropping either part fails), the reference multiplies their exact sum.
  std::vector<float> ao, ao_lo, wo, bias;
  auto aoh = to_half(random_normal(size_t(M) * r, rng), &ao);
  auto aolh = to_half(random_normal(size_t(M) * r, rng, 0.5f), &ao_lo);
  aoh.insert(aoh.end(), aolh.begin(), aolh.end());
  auto woh = to_half(random_normal(size_t(N) * r, rng, 0.05f), &wo);
  bias = random_normal(N, rng);  // fp32 (not rounded: the kernels take fp32 biases)

  QuadWeights w{nullptr, nullptr, nullptr, nullptr, nullptr, N, K, r, cs.act_bits};
  const bool wgmma = tiled >= 200;
  const bool natural = wgmma || (tiled == -1 && cuda::quad_gemm_natural(M, w));
  Dev<uint8_t> dA(encode_acts(aq, M, K, cs.act_bits, natural));
  Dev<float> dsx(sx), dsw(sw);
  Dev<int32_t> dasum(asum), dwsum(wsum);
  Dev<uint8_t> dW(wpacked);
  Dev<__half> dao(aoh), dwo(woh);
  Dev<float> dbias(bias);
  Dev<__nv_bfloat16> dy(size_t(M) * N);
  QuadActivations act{
      dA.p, dsx.p, dasum.p, r ? dao.p : nullptr, r ? dao.p + size_t(M) * r : nullptr, natural};
  w = QuadWeights{dW.p, dsw.p, dwsum.p, r ? dwo.p : nullptr, cs.bias ? dbias.p : nullptr,
                  N,    K,     r,       cs.act_bits};
  const auto tile = tiled == 201   ? cuda::WgmmaTile::wide
                    : tiled == 202 ? cuda::WgmmaTile::tall
                                   : cuda::WgmmaTile::automatic;
  CUDA_OK(wgmma          ? cuda::launch_quad_gemm_wgmma(act, M, w, dy.p, nullptr, tile)
          : tiled >= 100 ? cuda::launch_quad_gemv_variant(act, M, w, dy.p, nullptr, tiled - 100)
          : tiled >= 0   ? cuda::launch_quad_gemm_tiled(act, M, w, dy.p, nullptr)
                         : cuda::launch_quad_gemm(act, M, w, dy.p, nullptr));
  CUDA_OK(cudaDeviceSynchronize());
  auto y = dy.get();
  double rms = 0;
  std::vector<double> ref(size_t(M) * N);
  for (int i = 0; i < M; ++i)
    for (int o = 0; o < N; ++o) {
      long dot = 0;
      for (int k = 0; k < K; ++k) dot += long(aq[size_t(i) * K + k]) * wq[size_t(o) * K + k];
      double v = double(dot) * sx[i] * sw[o];
      for (int j = 0; j < r; ++j)
        v += (double(ao[size_t(i) * r + j]) + ao_lo[size_t(i) * r + j]) * wo[size_t(o) * r + j];
      if (cs.bias) v += bias[o];
      ref[size_t(i) * N + o] = v;
      rms += v * v;
    }
  rms = std::sqrt(rms / ref.size());
  int bad = 0;
  for (size_t e = 0; e < ref.size(); ++e) {
    const double got = bf16_value(__nv_bfloat16_raw(y[e]).x);
    const double tol = 4e-3 * std::fabs(ref[e]) + 1e-5 * rms;
    if (!(std::fabs(got - ref[e]) <= tol) && bad++ < 5)
      ADD_FAILURE() << "y[" << e / N << "," << e % N << "] = " << got << ", expected " << ref[e];
  }
  EXPECT_EQ(bad, 0);
}

TEST(QuadGemm, MatchesExactProductAtOddShapes) {
  if (!gpu_here()) GTEST_SKIP() << "no CUDA GPU";
  std::mt19937 rng(13);
  // The last case is wide enough for launch_quad_gemm to pick the wgmma kernel.
  const std::vector<GemmCase> cases = {
      {1, 72, 200, 16, 4, true},
      {3, 264, 1000, 0, 4, false},
      {5, 130, 4096, 64, 4, true},
      {16, 257, 384, 32, 4, false},
      {9, 96, 96, 16, 8, true},
      {1, 200, 4096, 0, 8, false},
      {16, 130, 1408, 64, 8, true},
      {17, 72, 200, 16, 4, true},
      {130, 264, 1000, 0, 4, true},
      {300, 257, 4096, 64, 4, false},
      {129, 130, 384, 128, 8, true},
      {200, 96, 1408, 0, 8, false},
      {64, 1, 256, 16, 4, false},
      {300, 12700, 96, 16, 4, true},
      // More 16-row groups than a persistent decode grid has blocks: each loops.
      {3, 12700, 384, 64, 4, true},
      {16, 9000, 200, 16, 8, false}};
  for (const auto& cs : cases) {
    check_gemm(cs, -1, rng);
    check_gemm(cs, 0, rng);  // the tiled kernel (at decode sizes too)
    if (cs.M <= 16)
      for (int variant = 1; variant <= 4; ++variant) check_gemm(cs, 100 + variant, rng);
  }
}

// The wgmma prefill kernel (sm_90a) on its own, each case with both block tiles (128 × 256 and
// 256 × 128) and the one picked by shape: tiles cut at every edge (M around 128 and 256, N around
// 128 and 256), one k block, odd k block counts, K not a multiple of 128, r 0 / 16 / 64.
TEST(QuadGemm, WgmmaMatchesExactProduct) {
  if (!gpu_here()) GTEST_SKIP() << "no CUDA GPU";
  if (!cuda::quad_wgmma_available(QuadWeights{}))
    GTEST_SKIP() << "the wgmma kernel needs an sm_90a build on a compute-capability 9.0 GPU";
  std::mt19937 rng(17);
  const std::vector<GemmCase> cases = {
      {17, 72, 128, 16, 4, true},     {256, 128, 96, 0, 4, false},  {257, 130, 1000, 64, 4, true},
      {600, 264, 4096, 64, 4, false}, {1, 1, 200, 16, 4, true},     {33, 520, 384, 0, 4, true},
      {17, 72, 128, 16, 8, true},     {255, 129, 640, 0, 8, false}, {513, 264, 4096, 64, 8, true},
      {300, 1, 1408, 16, 8, false},   {64, 640, 256, 32, 8, true},  {130, 256, 1000, 64, 4, true},
      {300, 768, 384, 16, 4, false},  {127, 512, 4096, 0, 4, true}, {129, 256, 640, 64, 8, false}};
  for (const auto& cs : cases)
    for (int tile : {200, 201, 202}) check_gemm(cs, tile, rng);
}

TEST(QuadGemm, RejectsBadArguments) {
  QuadActivations act{};
  QuadWeights w{};
  w.N = 8;
  w.K = 32;
  w.r = 128;
  w.act_bits = 8;
  EXPECT_EQ(cuda::launch_quad_gemv_variant(act, 1, w, nullptr, nullptr, 5), cudaErrorInvalidValue);
  EXPECT_EQ(cuda::launch_quad_gemv_variant(act, 17, w, nullptr, nullptr, 0), cudaErrorInvalidValue);
  w.N = 8;
  w.K = 32;
  w.r = 8;  // not a multiple of 16
  EXPECT_EQ(cuda::launch_quad_gemm(act, 1, w, static_cast<float*>(nullptr), nullptr),
            cudaErrorInvalidValue);
  w.r = 0;
  w.act_bits = 5;
  EXPECT_EQ(cuda::launch_quad_gemm(act, 1, w, static_cast<float*>(nullptr), nullptr),
            cudaErrorInvalidValue);
  // 8-bit codes in the layout the kernel does not read.
  w.act_bits = 8;
  act.natural = true;
  EXPECT_EQ(cuda::launch_quad_gemm_tiled(act, 32, w, nullptr, nullptr), cudaErrorInvalidValue);
  EXPECT_EQ(cuda::launch_quad_gemv_variant(act, 4, w, nullptr, nullptr, 0), cudaErrorInvalidValue);
  act.natural = false;
  EXPECT_EQ(cuda::launch_quad_gemm_wgmma(act, 32, w, static_cast<__nv_bfloat16*>(nullptr), nullptr),
            cudaErrorInvalidValue);
  act.natural = true;
  w.r = 128;  // more outlier columns than the wgmma kernel's shared memory holds
  EXPECT_EQ(cuda::launch_quad_gemm_wgmma(act, 32, w, static_cast<__nv_bfloat16*>(nullptr), nullptr),
            cudaErrorInvalidValue);
}

// The kernel benchmark refuses unknown or incomplete flags before touching the GPU (runs in CI).
TEST(QuadLinearBench, RejectsBadFlags) {
  for (const char* args :
       {"--bogus", "--json", "--quick extra", "--m", "--m 0", "--m 4,x", "--m 1,,2"}) {
    auto r = test::run_program(QUAD_LINEAR_BENCH, args);
    EXPECT_EQ(r.exit_code, 2) << args;
    EXPECT_NE(r.err.find("usage: quad_linear_bench"), std::string::npos) << args << ": " << r.err;
  }
}

// A U-type layer end to end (RMSNorm → quantize → GEMM + outlier + bias) against the reference
// backend's ops on the same bf16-rounded input; the only differences are the few codes that
// the fp32 norm rounds to the other side and the bf16 output.
TEST(QuadLinear, UTypeLayerMatchesReferenceBackend) {
  if (!gpu_here()) GTEST_SKIP() << "no CUDA GPU";
  std::mt19937 rng(14);
  const int M = 37, r = 16, d = 256, N = 192, D = r + d;
  std::vector<float> h;
  auto hb = to_bf16(random_normal(size_t(M) * D, rng), &h);
  std::vector<int8_t> wq(size_t(N) * d);
  std::uniform_int_distribution<int> wcode(-8, 7);
  for (auto& v : wq) v = int8_t(wcode(rng));
  std::vector<float> sw(N, 0.01f), wo;
  auto woh = to_half(random_normal(size_t(N) * r, rng, 0.1f), &wo);

  auto ref = make_ref_backend();
  std::vector<float> a(h.size());
  ref->rmsnorm(h.data(), M, D, nullptr, d, 1e-5f, a.data());
  std::vector<int8_t> xq(size_t(M) * d);
  std::vector<float> sx(M);
  ref->quantize_rows(a.data() + r, M, d, D, 4, 0.9f, xq.data(), sx.data());
  auto w4 = pack_int4(wq.data(), N, d);
  std::vector<float> y_ref(size_t(M) * N), y_out(size_t(M) * N), ao(size_t(M) * r);
  ref->int4_gemm(xq.data(), sx.data(), M, d, w4.data(), sw.data(), N, y_ref.data());
  for (int i = 0; i < M; ++i)
    for (int j = 0; j < r; ++j) ao[size_t(i) * r + j] = a[size_t(i) * D + j];
  ref->linear(ao.data(), M, r, wo.data(), N, nullptr, y_out.data());
  for (size_t e = 0; e < y_ref.size(); ++e) y_ref[e] += y_out[e];

  std::vector<uint8_t> wpacked(cuda::quad_weight_bytes(N, d));
  std::vector<int32_t> wsum(N);
  cuda::quad_prepare_weights(wq.data(), N, d, false, wpacked.data(), wsum.data());
  Dev<__nv_bfloat16> dh(hb);
  Dev<uint8_t> codes(size_t(M) * cuda::quad_row_bytes(d, 4)), dW(wpacked);
  Dev<float> scales(M), dsw(sw);
  Dev<int32_t> sums(M), dwsum(wsum);
  Dev<__half> outl(2 * size_t(M) * r), dwo(woh);
  Dev<__nv_bfloat16> dy(size_t(M) * N);
  QuadWeights w{dW.p, dsw.p, dwsum.p, dwo.p, nullptr, N, d, r, 4};
  for (int M_run : {M, 1, 16}) {  // prefill, then the weight-streaming kernel on the first rows
    QuadActivations act{codes.p,
                        scales.p,
                        sums.p,
                        outl.p,
                        outl.p + size_t(M) * r,
                        cuda::quad_gemm_natural(M_run, w)};
    CUDA_OK(cuda::launch_quad_quant_u(dh.p, M_run, r, d, d, 1e-5f, 4, 0.9f, act, nullptr));
    CUDA_OK(cuda::launch_quad_gemm(act, M_run, w, dy.p, nullptr));
    CUDA_OK(cudaDeviceSynchronize());
    auto yb = dy.get();
    std::vector<float> got(size_t(M_run) * N),
        want(y_ref.begin(), y_ref.begin() + size_t(M_run) * N);
    for (size_t e = 0; e < got.size(); ++e) {
      got[e] = bf16_value(__nv_bfloat16_raw(yb[e]).x);
    }
    EXPECT_LT(test::nmse(got, want), 1e-4) << "M " << M_run;
  }
}

}  // namespace
}  // namespace quad
