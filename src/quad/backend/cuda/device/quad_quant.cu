// Per-token activation quantization of the QUAD linear layer into the fragment-major layout
// (quad_linear.h): quant_u (weightless RMSNorm, the outlier part as an fp16 pair, codes of the
// rest) and quant_d (online Hadamard, then codes). One block per token row; each thread owns chunks
// of 8 consecutive codes (16-byte loads, one 32-bit store per chunk of 4-bit codes). Scales and
// codes follow the reference quantizer (backend/ref): scale = max|a| / qmax · clip in IEEE fp32,
// code = clamp(round_half_even(a / scale)), an all-zero row gives scale 0 and codes 0.
#include <cooperative_groups.h>
#include <float.h>
#include <math.h>

#include <algorithm>
#include <type_traits>

#include "dynamic_smem.cuh"
#include "half_convert.cuh"
#include "pdl.cuh"
#include "quad_linear.h"
#include "quad_mma.cuh"
#include "quant_code.cuh"
#include "reduce.cuh"
#include "silu.cuh"

namespace quad::cuda {

namespace cg = cooperative_groups;

namespace {

constexpr int kMaxPer = 8;  // 8-code chunks per thread

// Lets the kernel launched after this one with programmatic dependent launch (the weight-streaming
// GEMM) start now and prefetch its weights (it waits for this grid's results before reading
// them), then waits for the kernel before this one (pdl.cuh).
__device__ __forceinline__ void allow_dependents() {
  pdl_allow_next();
  pdl_wait();
}

__device__ __forceinline__ void load8(const __nv_bfloat16* p, float (&v)[8]) {
  const uint4 raw = *reinterpret_cast<const uint4*>(p);
  const __nv_bfloat162* b = reinterpret_cast<const __nv_bfloat162*>(&raw);
#pragma unroll
  for (int m = 0; m < 4; ++m) {
    const float2 f = __bfloat1622float2(b[m]);
    v[2 * m] = f.x;
    v[2 * m + 1] = f.y;
  }
}

__device__ __forceinline__ void load8(const float* p, float (&v)[8]) {
  const float4 a = reinterpret_cast<const float4*>(p)[0], b = reinterpret_cast<const float4*>(p)[1];
  v[0] = a.x, v[1] = a.y, v[2] = a.z, v[3] = a.w, v[4] = b.x, v[5] = b.y, v[6] = b.z, v[7] = b.w;
}

// A D-type input given as SwiGLU's two halves (fp32, or bf16 where the joined gate|up GEMM
// wrote them): silu(gate) ⊙ up is formed as the rows are loaded (never stored), with the formula
// of launch_silu_mul. Rows are ld elements apart; offsets within a row as for a row pointer.
template <typename E>
struct GluRows {
  const E* gate;
  const E* up;
  size_t ld;
  __device__ GluRows operator+(size_t offset) const { return {gate + offset, up + offset, ld}; }
};

template <typename E>
__device__ __forceinline__ void load8(GluRows<E> p, float (&v)[8]) {
  float g[8], u[8];
  load8(p.gate, g);
  load8(p.up, u);
#pragma unroll
  for (int m = 0; m < 8; ++m) v[m] = silu_mul(g[m], u[m]);
}

// Row `row` of a D-type input of width K: plain rows are K apart, SwiGLU halves ld apart.
template <typename E>
__device__ __forceinline__ const E* row_of(const E* x, int row, int K) {
  return x + size_t(row) * K;
}
template <typename E>
__device__ __forceinline__ GluRows<E> row_of(GluRows<E> x, int row, int) {
  return {x.gate + size_t(row) * x.ld, x.up + size_t(row) * x.ld, x.ld};
}

// Stores the codes c[0..8) of k .. k+7 (k a multiple of 8) of a row at dst in the fragment-major
// layout, or in natural order (`natural`): one 32-bit word of offset nibbles (4-bit) or two
// words of int8; `valid` false writes padding (zero nibbles / zero bytes).
__device__ __forceinline__ void store_chunk(uint8_t* dst, int k, const int (&c)[8], int bits,
                                            bool valid, bool natural) {
  if (bits == 4) {
    unsigned word = 0;
    if (valid) {
#pragma unroll
      for (int m = 0; m < 8; ++m) word |= unsigned(c[m] + 8) << (4 * m);
    }
    int pos = k / 2, shift;
    if (!natural) quad_w4_position(k, false, &pos, &shift);
    *reinterpret_cast<unsigned*>(dst + pos) = word;
  } else {
#pragma unroll
    for (int h = 0; h < 2; ++h) {
      unsigned word = 0;
#pragma unroll
      for (int m = 0; m < 4; ++m) word |= unsigned(uint8_t(int8_t(c[4 * h + m]))) << (8 * m);
      *reinterpret_cast<unsigned*>(dst + (natural ? k + 4 * h : quad_a8_position(k + 4 * h))) =
          word;
    }
  }
}

// The codes of the 8 values v at k .. k+7 of a row (zero where !valid or !quantize, i.e. the
// row's scale is 0), stored by store_chunk; returns their sum.
__device__ __forceinline__ int quantize_chunk(uint8_t* dst, int k, const float (&v)[8], bool valid,
                                              bool quantize, const CodeOf& code, int bits,
                                              bool natural) {
  int c[8], sum = 0;
#pragma unroll
  for (int m = 0; m < 8; ++m) {
    c[m] = valid && quantize ? int(code(v[m])) : 0;
    sum += c[m];
  }
  store_chunk(dst, k, c, bits, valid, natural);
  return sum;
}

// The largest |v| of this thread's valid chunks (chunk i is q = threadIdx.x + i · blockDim.x).
template <int PER>
__device__ float chunks_amax(const float (&v)[PER][8], int K) {
  float amax = 0.0f;
#pragma unroll
  for (int i = 0; i < PER; ++i) {
    if (int(threadIdx.x) + i * int(blockDim.x) >= K / 8) continue;
#pragma unroll
    for (int m = 0; m < 8; ++m) amax = MaxOp{}(amax, fabsf(v[i][m]));
  }
  return amax;
}

// The codes of one row held in registers: chunk i of this thread is q = threadIdx.x + i ·
// blockDim.x, codes 8q .. 8q+7 (values v[i], valid for q < K/8; chunks up to the padded width
// write zero padding). Each chunk is one 32-bit store (4-bit) or two (8-bit). amax is the row's
// largest |v|. Writes the scale and the code sum of the row. All threads of the block call it.
template <int PER>
__device__ void quantize_chunks_max(const float (&v)[PER][8], int K, int bits, float clip, int row,
                                    const QuadActivations& out, float amax, int* iscratch) {
  const float qmax = bits == 4 ? 7.0f : 127.0f;
  const int nq = K / 8, nq_padded = quad_padded_k(K) / 8;
  const float scale = quant_scale(amax, qmax, clip);
  const CodeOf code = code_of(scale, qmax);
  uint8_t* dst = out.codes + size_t(row) * quad_row_bytes(K, bits);
  int sum = 0;
#pragma unroll
  for (int i = 0; i < PER; ++i) {
    const int q = threadIdx.x + i * blockDim.x;
    if (q >= nq_padded) continue;
    sum += quantize_chunk(dst, 8 * q, v[i], q < nq, scale != 0.0f, code, bits, out.natural);
  }
  sum = block_reduce(sum, SumOp{}, 0, iscratch);
  if (threadIdx.x == 0) {
    out.scales[row] = scale;
    out.sums[row] = sum;
  }
}

// The same with the row maximum found here.
template <int PER>
__device__ void quantize_chunks(const float (&v)[PER][8], int K, int bits, float clip, int row,
                                const QuadActivations& out, float* fscratch, int* iscratch) {
  const float amax = block_reduce(chunks_amax<PER>(v, K), MaxOp{}, 0.0f, fscratch);
  quantize_chunks_max<PER>(v, K, bits, clip, row, out, amax, iscratch);
}

// With `add` (fp32 rows only): the residual update add (M, r + K) is first added into h, which
// is written back (the forward pass's residual add, fused). The RMSNorm's sum of squares is in
// double and inv = 1 / sqrt(Σ/divisor + eps) rounded once, as the rmsnorm kernels compute it, so
// the codes are those of rmsnorm then quant_u without a divisor.
template <typename T, int PER>
__global__ void quant_u_kernel(T* h, const T* add, int r, int K, int divisor, float eps, int bits,
                               float clip, QuadActivations out) {
  __shared__ double dscratch[32];
  __shared__ float fscratch[32];
  __shared__ int iscratch[32];
  allow_dependents();
  const int row = blockIdx.x, nq = K / 8;
  T* src = h + size_t(row) * (r + K);
  const T* upd = add ? add + size_t(row) * (r + K) : nullptr;
  float v[PER][8], o[8];
  // Loads src[at .. at + 8) into w, plus the update (then written back) when there is one.
  auto load = [&](int at, float(&w)[8]) {
    load8(src + at, w);
    if constexpr (std::is_same_v<T, float>) {
      if (upd) {
        float u[8];
        load8(upd + at, u);
#pragma unroll
        for (int m = 0; m < 8; ++m) w[m] = __fadd_rn(w[m], u[m]);
        reinterpret_cast<float4*>(src + at)[0] = make_float4(w[0], w[1], w[2], w[3]);
        reinterpret_cast<float4*>(src + at)[1] = make_float4(w[4], w[5], w[6], w[7]);
      }
    }
  };
  double ss = 0.0;
#pragma unroll
  for (int i = 0; i < PER; ++i) {
    const int q = threadIdx.x + i * blockDim.x;
    if (q >= nq) continue;
    load(r + 8 * q, v[i]);
#pragma unroll
    for (int m = 0; m < 8; ++m) ss += double(v[i][m]) * double(v[i][m]);
  }
  const bool has_outlier = int(threadIdx.x) < r / 8;
  if (has_outlier) {
    load(8 * threadIdx.x, o);
#pragma unroll
    for (int m = 0; m < 8; ++m) ss += double(o[m]) * double(o[m]);
  }
  // The normalized row's maximum is fl(max|v| · inv): rounding is monotonic, so the sum of
  // squares and the raw maximum share one reduction.
  float amax = chunks_amax<PER>(v, K);
  float inv = 1.0f;
  if (divisor > 0) {
    block_reduce2(ss, SumOp{}, 0.0, dscratch, amax, MaxOp{}, 0.0f, fscratch);
    inv = float(1.0 / sqrt(ss / divisor + double(eps)));
    amax = __fmul_rn(amax, inv);
  } else {
    amax = block_reduce(amax, MaxOp{}, 0.0f, fscratch);
  }
  if (has_outlier) {
    __align__(16) __half hi[8], lo[8];
#pragma unroll
    for (int m = 0; m < 8; ++m) split_half(__fmul_rn(o[m], inv), &hi[m], &lo[m]);
    const size_t at = size_t(row) * r + 8 * threadIdx.x;
    *reinterpret_cast<uint4*>(out.outlier + at) = *reinterpret_cast<const uint4*>(hi);
    *reinterpret_cast<uint4*>(out.outlier_lo + at) = *reinterpret_cast<const uint4*>(lo);
  }
  if (divisor > 0)
#pragma unroll
    for (int i = 0; i < PER; ++i)
#pragma unroll
      for (int m = 0; m < 8; ++m) v[i][m] = __fmul_rn(v[i][m], inv);
  quantize_chunks_max<PER>(v, K, bits, clip, row, out, amax, iscratch);
}

// In-register Sylvester FWHT of one segment of P = 32·E values held by one warp (value i at lane
// i % 32, slot i / 32): x ← S_P x, unnormalized, natural order. The butterflies of the index bits
// below FIRST are skipped (done before, by fwht8_low): the stages of the bits commute.
template <int E, int FIRST = 1>
__device__ void warp_fwht(float* seg) {
  const int lane = threadIdx.x % 32;
  float v[E];
#pragma unroll
  for (int e = 0; e < E; ++e) v[e] = seg[lane + 32 * e];
#pragma unroll
  for (int h = 1; h < E; h *= 2)
#pragma unroll
    for (int e = 0; e < E; ++e)
      if (!(e & h)) {
        const float a = v[e], b = v[e + h];
        v[e] = a + b;
        v[e + h] = a - b;
      }
#pragma unroll
  for (int h = FIRST; h < 32; h *= 2)
#pragma unroll
    for (int e = 0; e < E; ++e) {
      const float other = __shfl_xor_sync(0xffffffffu, v[e], h);
      v[e] = (lane & h) ? other - v[e] : v[e] + other;
    }
#pragma unroll
  for (int e = 0; e < E; ++e) seg[lane + 32 * e] = v[e];
}

// The butterflies of index bits 0-2 on 8 consecutive values (a chunk starting at a multiple of
// 8): the first three stages of the Sylvester FWHT, before warp_fwht<E, 8>.
__device__ __forceinline__ void fwht8_low(float (&v)[8]) {
#pragma unroll
  for (int h = 1; h < 8; h *= 2)
#pragma unroll
    for (int e = 0; e < 8; ++e)
      if (!(e & h)) {
        const float a = v[e], b = v[e + h];
        v[e] = a + b;
        v[e + h] = a - b;
      }
}

constexpr int kMaxMix = 64;  // largest outer factor K_o

// The mix (K_o × K_o, row-major) transposed into mt and padded to K_o4 = 4·ceil(K_o/4) columns:
// mt[b · K_o4 + a] = mix[a · K_o + b], zero for a ≥ K_o (the layout mix_group reads).
__device__ void load_mix_transposed(float* mt, const float* mix, int K_o) {
  const int K_o4 = (K_o + 3) / 4 * 4;
  for (int c = threadIdx.x; c < K_o * K_o4; c += blockDim.x) {
    const int b = c / K_o4, a = c % K_o4;
    mt[c] = a < K_o ? mix[a * K_o + b] : 0.0f;
  }
}

// Outputs a = 4·gi .. 4·gi+3 of one column of the outer mix: Σ_b mixᵀ[b, a] · col[b], with the
// mix transposed and padded to K_o4 columns so that the four share one 16-byte load.
template <int COLS>
__device__ __forceinline__ float4 mix_group(const float (&col)[COLS], const float* mt, int K_o,
                                            int K_o4, int gi) {
  float4 acc = make_float4(0.0f, 0.0f, 0.0f, 0.0f);
#pragma unroll
  for (int b = 0; b < COLS; ++b) {
    if (b >= K_o) break;
    const float4 m4 = *reinterpret_cast<const float4*>(mt + b * K_o4 + 4 * gi);
    acc.x = fmaf(m4.x, col[b], acc.x);
    acc.y = fmaf(m4.y, col[b], acc.y);
    acc.z = fmaf(m4.z, col[b], acc.z);
    acc.w = fmaf(m4.w, col[b], acc.w);
  }
  return acc;
}

// y[a, j] = Σ_b mix[a, b] · x[b, j] in place on the row (K_o × P, rows ld apart) in shared
// memory, with the mix transposed and padded to K_o4 = 4·ceil(K_o/4) columns (mt[b · K_o4 + a]).
// Each column j is read into registers by `slices` threads, which then write disjoint groups of 4
// outputs each; COLS is the register capacity (K_o ≤ COLS).
template <int COLS>
__device__ void mix_columns(float* in, const float* mt, int K_o, int P, int ld) {
  const int K_o4 = (K_o + 3) / 4 * 4, groups = K_o4 / 4;
  const int slices = max(1, int(blockDim.x) / P);
  for (int base = 0; base < P * slices; base += blockDim.x) {
    const int t = base + threadIdx.x;
    const bool active = t < P * slices;
    const int j = t % P, slice = t / P;
    float col[COLS];
#pragma unroll
    for (int b = 0; b < COLS; ++b) col[b] = active && b < K_o ? in[b * ld + j] : 0.0f;
    if (slices > 1) __syncthreads();  // every column read before any is overwritten
    if (active) {
      for (int gi = slice; gi < groups; gi += slices) {
        const float4 acc = mix_group<COLS>(col, mt, K_o, K_o4, gi);
        const float r[4] = {acc.x, acc.y, acc.z, acc.w};
#pragma unroll
        for (int i = 0; i < 4; ++i)
          if (4 * gi + i < K_o) in[(4 * gi + i) * ld + j] = r[i];
      }
    }
  }
}

// D-type input: row in shared memory; FWHT per segment (one warp each, or butterflies through
// shared memory when P is not 32·E with E ≤ 16); the outer mix (mix_columns); then the codes
// from registers.
template <typename T, int PER, int E, int COLS>
__global__ void quant_d_kernel(T x, int K, const float* mix, int K_o, bool inner_fwht, int bits,
                               float clip, QuadActivations out) {
  extern __shared__ __align__(16) float smem[];  // mixᵀ (K_o × K_o4), then the row (K)
  __shared__ float fscratch[32];
  __shared__ int iscratch[32];
  pdl_allow_next();
  const int K_o4 = (K_o + 3) / 4 * 4;
  float* mt = smem;
  float* in = smem + K_o * K_o4;
  const int P = K / K_o, nq = K / 8, row = blockIdx.x;
  const T src = row_of(x, blockIdx.x, K);
  load_mix_transposed(mt, mix, K_o);  // a constant: read while the kernel before finishes
  pdl_wait();
  float v[PER][8];  // this thread's chunks, later its outputs
  if constexpr (PER <= 2) {
    // One or two chunks per thread: every load in flight at once, for latency.
#pragma unroll
    for (int i = 0; i < PER; ++i) {
      const int q = threadIdx.x + i * blockDim.x;
      if (q < nq) load8(src + 8 * q, v[i]);
    }
#pragma unroll
    for (int i = 0; i < PER; ++i) {
      const int q = threadIdx.x + i * blockDim.x;
      if (q >= nq) continue;
      reinterpret_cast<float4*>(in)[2 * q] = make_float4(v[i][0], v[i][1], v[i][2], v[i][3]);
      reinterpret_cast<float4*>(in)[2 * q + 1] = make_float4(v[i][4], v[i][5], v[i][6], v[i][7]);
    }
  } else {
    // More chunks: fewer live registers (occupancy hides the latency).
    for (int q = threadIdx.x; q < nq; q += blockDim.x) {
      float t[8];
      load8(src + 8 * q, t);
      reinterpret_cast<float4*>(in)[2 * q] = make_float4(t[0], t[1], t[2], t[3]);
      reinterpret_cast<float4*>(in)[2 * q + 1] = make_float4(t[4], t[5], t[6], t[7]);
    }
  }
  __syncthreads();
  if (inner_fwht) {
    if constexpr (E > 0) {
      for (int seg = threadIdx.x / 32; seg < K_o; seg += blockDim.x / 32)
        warp_fwht<E>(in + seg * P);
      __syncthreads();
    } else {
      const int half = P / 2;
      for (int len = 1; len < P; len *= 2) {
        for (int idx = threadIdx.x; idx < K_o * half; idx += blockDim.x) {
          const int seg = idx / half, p = idx % half;
          const int i = seg * P + (p / len) * 2 * len + (p % len);
          const float a = in[i], b = in[i + len];
          in[i] = a + b;
          in[i + len] = a - b;
        }
        __syncthreads();
      }
    }
  }
  mix_columns<COLS>(in, mt, K_o, P, P);
  __syncthreads();
#pragma unroll
  for (int i = 0; i < PER; ++i) {
    const int q = threadIdx.x + i * blockDim.x;
    if (q >= nq) continue;
    const float4 lo = reinterpret_cast<const float4*>(in)[2 * q];
    const float4 hi = reinterpret_cast<const float4*>(in)[2 * q + 1];
    v[i][0] = lo.x, v[i][1] = lo.y, v[i][2] = lo.z, v[i][3] = lo.w;
    v[i][4] = hi.x, v[i][5] = hi.y, v[i][6] = hi.z, v[i][7] = hi.w;
  }
  quantize_chunks<PER>(v, K, bits, clip, row, out, fscratch, iscratch);
}

// D-type input, the outer mix on tensor cores. A Hadamard mix is c · S with S of ±1: then
// Yᵀ = c · (Xᵀ · Sᵀ), one tf32 m16n8k8 MMA chain per 16 columns j (M = j, N = a, K = b; K_o ≤ 32,
// padded to 32 with zero rows of S and of X). S is exact in tf32; X is split into its tf32 part
// and the tf32 part of the rest (bf16 inputs are exact, one part), so the products carry ~22 bits
// and sum in fp32, like the FMA path's. Any other mix takes the FMA path (mix_columns). The row
// sits in shared memory as 32 segments `ld` = P + 8 floats apart (A-fragment loads free of bank
// conflicts); each warp mixes its own column tiles in place.
constexpr int kMmaThreads = 256;

__host__ __device__ inline int mma_row_ld(int P) {
  return P + 8;
}
constexpr int kSignFragFloats = 4 * 4 * 32 * 2;  // B fragments of S: (k step, n tile, lane, 2)
__host__ __device__ inline int mma_smem_floats(int K, int K_o) {
  return kSignFragFloats + K_o * ((K_o + 3) / 4 * 4) + 32 * mma_row_ld(K / K_o);
}

template <typename T>
struct ExactInTf32 : std::false_type {};
template <>
struct ExactInTf32<const __nv_bfloat16*> : std::true_type {};

template <typename T, int E>
__global__ void __launch_bounds__(kMmaThreads, 4)
    quant_d_mma_kernel(T x, int K, const float* mix, int K_o, bool inner_fwht, int bits, float clip,
                       QuadActivations out) {
  extern __shared__ __align__(16) float smem[];  // S's fragments, mixᵀ (K_o × K_o4), the row
  __shared__ float fscratch[32];
  __shared__ int iscratch[32];
  pdl_allow_next();
  const int tid = threadIdx.x, lane = tid % 32, warp = tid / 32, g = lane / 4, t = lane % 4;
  const int K_o4 = (K_o + 3) / 4 * 4, P = K / K_o, ld = mma_row_ld(P), nq = K / 8;
  const int row = blockIdx.x;
  uint2* sfrag = reinterpret_cast<uint2*>(smem);
  float* mt = smem + kSignFragFloats;
  float* in = mt + K_o * K_o4;
  // Element k of the row in shared memory: shifts when P is a power of two (every Hadamard size
  // in practice), not two divisions per chunk.
  const int pshift = (P & (P - 1)) == 0 ? __ffs(P) - 1 : -1;
  auto at = [&](int k) {
    return pshift >= 0 ? in + (k >> pshift) * ld + (k & (P - 1)) : in + (k / P) * ld + k % P;
  };
  load_mix_transposed(mt, mix, K_o);  // a constant: read while the kernel before finishes
  for (int i = tid; i < (32 - K_o) * ld; i += blockDim.x) in[K_o * ld + i] = 0.0f;
  __syncthreads();
  const float c = fabsf(mt[0]);
  bool same = c > 0.0f && c <= FLT_MAX;
  for (int i = tid; i < K_o * K_o4; i += blockDim.x)
    if (i % K_o4 < K_o && fabsf(mt[i]) != c) same = false;
  const bool signs = __syncthreads_and(same);
  // B fragments of Sᵀ (k = b, n = a), for k step ks and n tile nt at sfrag[(4ks + nt) · 32 +
  // lane]: b0 = S[8nt + g][8ks + t], b1 at b + 4 (loaded conflict-free, 8 bytes per lane).
  for (int f = tid; f < 4 * 4 * 32; f += blockDim.x) {
    const int ks = f / 128, nt = f / 32 % 4, fl = f % 32, a = 8 * nt + fl / 4, b = 8 * ks + fl % 4;
    auto sign = [&](int bb) {
      return __float_as_uint(a < K_o && bb < K_o ? copysignf(1.0f, mt[bb * K_o4 + a]) : 0.0f);
    };
    sfrag[f] = make_uint2(sign(b), sign(b + 4));
  }
  pdl_wait();

  const T src = row_of(x, row, K);
  constexpr int kLoads = std::is_pointer_v<T> ? 2 : 1;  // SwiGLU halves take twice the registers
  for (int q0 = tid; q0 < nq; q0 += kLoads * kMmaThreads) {
    float v[kLoads][8];
#pragma unroll
    for (int u = 0; u < kLoads; ++u)
      if (q0 + u * kMmaThreads < nq) load8(src + 8 * (q0 + u * kMmaThreads), v[u]);
#pragma unroll
    for (int u = 0; u < kLoads; ++u) {
      const int q = q0 + u * kMmaThreads;
      if (q >= nq) continue;
      if (E > 0 && inner_fwht) fwht8_low(v[u]);
      float* dst = at(8 * q);
      reinterpret_cast<float4*>(dst)[0] = make_float4(v[u][0], v[u][1], v[u][2], v[u][3]);
      reinterpret_cast<float4*>(dst)[1] = make_float4(v[u][4], v[u][5], v[u][6], v[u][7]);
    }
  }
  __syncthreads();
  if constexpr (E > 0) {
    if (inner_fwht) {
      for (int seg = warp; seg < K_o; seg += kMmaThreads / 32) warp_fwht<E, 8>(in + seg * ld);
      __syncthreads();
    }
  }

  // bf16 rows are exact in tf32 unless the FWHT has summed them.
  constexpr bool kOnePart = ExactInTf32<T>::value && E == 0;
  float amax = 0.0f;
  if (signs) {
    for (int tile = warp; tile < P / 16; tile += kMmaThreads / 32) {
      const int j0 = 16 * tile;
      float acc[4][4] = {};
#pragma unroll
      for (int ks = 0; ks < 4; ++ks) {
        // A = Xᵀ: a0 = X[8ks + t][j0 + g], a1 at j + 8, a2 at b + 4, a3 at both.
        const float* p = in + (8 * ks + t) * ld + j0 + g;
        const float xv[4] = {p[0], p[8], p[4 * ld], p[4 * ld + 8]};
        unsigned hi[4], lo[4];
#pragma unroll
        for (int i = 0; i < 4; ++i) {
          hi[i] = kOnePart ? __float_as_uint(xv[i]) : to_tf32(xv[i]);
          lo[i] = to_tf32(__fsub_rn(xv[i], __uint_as_float(hi[i])));
        }
#pragma unroll
        for (int nt = 0; nt < 4; ++nt) {
          const uint2 sb = sfrag[(4 * ks + nt) * 32 + lane];
          mma_tf32(acc[nt], hi[0], hi[1], hi[2], hi[3], sb.x, sb.y);
          if constexpr (!kOnePart) mma_tf32(acc[nt], lo[0], lo[1], lo[2], lo[3], sb.x, sb.y);
        }
      }
      __syncwarp();  // every lane's loads of the tile done before it is overwritten
                     // c0 = (j0 + g, a = 8nt + 2t), c1 at a + 1, c2 at j + 8, c3 at both.
#pragma unroll
      for (int nt = 0; nt < 4; ++nt)
#pragma unroll
        for (int e = 0; e < 4; ++e) {
          const int a = 8 * nt + 2 * t + (e & 1), j = j0 + g + 8 * (e >> 1);
          if (a >= K_o) continue;
          const float y = __fmul_rn(acc[nt][e], c);
          in[a * ld + j] = y;
          amax = MaxOp{}(amax, fabsf(y));
        }
    }
  } else {
    mix_columns<32>(in, mt, K_o, P, ld);
    __syncthreads();
    for (int i = tid; i < K; i += blockDim.x) amax = MaxOp{}(amax, fabsf(*at(i)));
  }
  amax = block_reduce(amax, MaxOp{}, 0.0f, fscratch);  // its barriers order the row too

  const float qmax = bits == 4 ? 7.0f : 127.0f;
  const float scale = quant_scale(amax, qmax, clip);
  const CodeOf code = code_of(scale, qmax);
  uint8_t* dst = out.codes + size_t(row) * quad_row_bytes(K, bits);
  int sum = 0;
  for (int q = tid; q < quad_padded_k(K) / 8; q += blockDim.x) {
    float v[8] = {};
    if (q < nq && scale != 0.0f) {  // rows past K are not in shared memory
      const float4* p = reinterpret_cast<const float4*>(at(8 * q));
      const float4 lo = p[0], hi = p[1];
      v[0] = lo.x, v[1] = lo.y, v[2] = lo.z, v[3] = lo.w;
      v[4] = hi.x, v[5] = hi.y, v[6] = hi.z, v[7] = hi.w;
    }
    sum += quantize_chunk(dst, 8 * q, v, q < nq, scale != 0.0f, code, bits, out.natural);
  }
  sum = block_reduce(sum, SumOp{}, 0, iscratch);
  if (tid == 0) {
    out.scales[row] = scale;
    out.sums[row] = sum;
  }
}

template <typename T, int E>
cudaError_t launch_d_mma(int M, T x, int K, const float* mix, int K_o, bool inner, int bits,
                         float clip, const QuadActivations& out, cudaStream_t stream) {
  const size_t smem = size_t(mma_smem_floats(K, K_o)) * sizeof(float);
  const void* kernel = reinterpret_cast<const void*>(quant_d_mma_kernel<T, E>);
  if (cudaError_t e = allow_dynamic_smem(kernel, smem, true)) return e;
  return launch_pdl(quant_d_mma_kernel<T, E>, dim3(M), dim3(kMmaThreads), smem, stream, x, K, mix,
                    K_o, inner, bits, clip, out);
}

// D-type input for a few rows (decode): one row per cluster of kCluster blocks on as many SMs,
// exchanging data through their shared memory (distributed shared memory) by remote stores,
// so that no block waits on a remote load and two cluster barriers suffice. Block `rank` loads
// and transforms the segments b ≡ rank (mod kCluster), sends each segment's column slice
// [d·cols, (d+1)·cols) to block d, mixes the columns of its own slice, and writes their codes;
// the row maximum reaches every block the same way, the code sum by atomics on the output.
constexpr int kCluster = 8;

__device__ __forceinline__ void cluster_arrive_relaxed() {
  asm volatile("barrier.cluster.arrive.relaxed.aligned;\n" ::: "memory");
}
__device__ __forceinline__ void cluster_wait() {
  asm volatile("barrier.cluster.wait.aligned;\n" ::: "memory");
}

// Shared memory of quant_d_cluster_kernel, in floats: mixᵀ (K_o × K_o4), the own segments
// (ceil(K_o / kCluster) × P), the received column slices (K_o × P / kCluster).
__host__ __device__ inline int cluster_smem_floats(int K, int K_o) {
  const int P = K / K_o;
  return K_o * ((K_o + 3) / 4 * 4) + (K_o + kCluster - 1) / kCluster * P + K_o * (P / kCluster);
}

template <typename T, int E>
__global__ void __cluster_dims__(kCluster, 1, 1)
    quant_d_cluster_kernel(T x, int K, const float* mix, int K_o, bool inner_fwht, int bits,
                           float clip, QuadActivations out) {
  extern __shared__ __align__(16) float smem[];
  __shared__ float fscratch[32];
  __shared__ int iscratch[32];
  __shared__ float s_amax[kCluster];  // every block's maximum, sent by each
  pdl_allow_next();
  // Remote shared memory may be written only once every block of the cluster runs: arrive
  // now, wait just before the first remote store.
  cluster_arrive_relaxed();
  cg::cluster_group cluster = cg::this_cluster();
  const int rank = int(cluster.block_rank()), row = blockIdx.x / kCluster;
  const int K_o4 = (K_o + 3) / 4 * 4, P = K / K_o, cols = P / kCluster;
  const int own = (K_o - rank + kCluster - 1) / kCluster;  // segments rank, rank + kCluster, ...
  const int own_max = (K_o + kCluster - 1) / kCluster;
  float* mt = smem;
  float* seg = mt + K_o * K_o4;       // own segment i at seg + i·P; later the mixed columns
  float* colbuf = seg + own_max * P;  // segment b's slice at colbuf + b·cols
  load_mix_transposed(mt, mix, K_o);  // a constant: read while the kernel before finishes
  pdl_wait();
  const T src = row_of(x, row, K);
  constexpr int kLoads = 2;  // chunks of 8 per thread, all in flight at once (launch checks)
  float v[kLoads][8];
#pragma unroll
  for (int i = 0; i < kLoads; ++i) {
    const int q = threadIdx.x + i * blockDim.x;
    if (q < own * (P / 8))
      load8(src + (rank + kCluster * (q / (P / 8))) * P + 8 * (q % (P / 8)), v[i]);
  }
#pragma unroll
  for (int i = 0; i < kLoads; ++i) {
    const int q = threadIdx.x + i * blockDim.x;
    if (q >= own * (P / 8)) continue;
    if (E > 0 && inner_fwht) fwht8_low(v[i]);
    reinterpret_cast<float4*>(seg)[2 * q] = make_float4(v[i][0], v[i][1], v[i][2], v[i][3]);
    reinterpret_cast<float4*>(seg)[2 * q + 1] = make_float4(v[i][4], v[i][5], v[i][6], v[i][7]);
  }
  __syncthreads();
  if constexpr (E > 0) {
    if (inner_fwht) {
      for (int i = threadIdx.x / 32; i < own; i += blockDim.x / 32) warp_fwht<E, 8>(seg + i * P);
      __syncthreads();
    }
  }
  cluster_wait();
  // Send: 4 floats at a time, slice d of own segment i to block d.
  for (int c = threadIdx.x; c < own * P / 4; c += blockDim.x) {
    const int i = 4 * c / P, p = 4 * c % P, d = p / cols;
    const float4 val = reinterpret_cast<const float4*>(seg)[c];
    float* dst = cluster.map_shared_rank(colbuf, d) + (rank + kCluster * i) * cols + p % cols;
    *reinterpret_cast<float4*>(dst) = val;
  }
  cluster.sync();  // every slice received

  // Mix this block's columns: column j read into registers by `slices` threads, each writing
  // disjoint groups of 4 outputs (a, j) to seg + a·cols + j.
  const int groups = K_o4 / 4, slices = max(1, int(blockDim.x) / cols);
  const int t = threadIdx.x, j = t % cols, slice = t / cols;
  const bool active = t < cols * slices;
  float col[32];
#pragma unroll
  for (int b = 0; b < 32; ++b) col[b] = active && b < K_o ? colbuf[b * cols + j] : 0.0f;
  float amax = 0.0f;
  if (active) {
    for (int gi = slice; gi < groups; gi += slices) {
      const float4 acc = mix_group<32>(col, mt, K_o, K_o4, gi);
      const float r[4] = {acc.x, acc.y, acc.z, acc.w};
#pragma unroll
      for (int i = 0; i < 4; ++i)
        if (4 * gi + i < K_o) {
          seg[(4 * gi + i) * cols + j] = r[i];
          amax = MaxOp{}(amax, fabsf(r[i]));
        }
    }
  }
  amax = block_reduce(amax, MaxOp{}, 0.0f, fscratch);  // its barriers order seg too
  if (threadIdx.x < kCluster) *cluster.map_shared_rank(&s_amax[rank], int(threadIdx.x)) = amax;
  if (rank == 0 && threadIdx.x == 0) out.sums[row] = 0;  // before the barrier; adds after it
  cluster.sync();
  float row_max = 0.0f;
#pragma unroll
  for (int b = 0; b < kCluster; ++b) row_max = MaxOp{}(row_max, s_amax[b]);
  const float qmax = bits == 4 ? 7.0f : 127.0f;
  const float scale = quant_scale(row_max, qmax, clip);
  const CodeOf code = code_of(scale, qmax);

  // Codes of this block's columns: chunks of 8 consecutive j in every segment a.
  uint8_t* dst = out.codes + size_t(row) * quad_row_bytes(K, bits);
  int sum = 0;
  for (int q = threadIdx.x; q < K_o * (cols / 8); q += blockDim.x) {
    const int a = q / (cols / 8), jj = 8 * (q % (cols / 8));
    float v[8];
#pragma unroll
    for (int m = 0; m < 8; ++m) v[m] = seg[a * cols + jj + m];
    sum += quantize_chunk(dst, a * P + rank * cols + jj, v, true, scale != 0.0f, code, bits,
                          out.natural);
  }
  if (rank == 0) {  // zero padding up to the padded width
    const int zeros[8] = {};
    for (int k = K + 8 * threadIdx.x; k < quad_padded_k(K); k += 8 * blockDim.x)
      store_chunk(dst, k, zeros, bits, false, out.natural);
  }
  sum = block_reduce(sum, SumOp{}, 0, iscratch);
  if (threadIdx.x == 0) {
    atomicAdd(out.sums + row, sum);
    if (rank == 0) out.scales[row] = scale;
  }
}

template <typename T, int E>
cudaError_t launch_d_cluster(int M, T x, int K, const float* mix, int K_o, bool inner, int bits,
                             float clip, const QuadActivations& out, cudaStream_t stream) {
  const size_t smem = size_t(cluster_smem_floats(K, K_o)) * sizeof(float);
  const void* kernel = reinterpret_cast<const void*>(quant_d_cluster_kernel<T, E>);
  if (cudaError_t e = allow_dynamic_smem(kernel, smem)) return e;
  return launch_pdl(quant_d_cluster_kernel<T, E>, dim3(M * kCluster), dim3(256), smem, stream, x, K,
                    mix, K_o, inner, bits, clip, out);
}

// Threads per row and chunks per thread: few rows (decode) get wide blocks for latency, many
// rows narrower ones for occupancy. per = 0 when the row is too long.
void row_shape(int chunks, int M, int wide, int narrow, int* threads, int* per) {
  int t = M <= 64 ? wide : narrow;
  int p = (chunks + t - 1) / t;
  if (p > kMaxPer) {
    t = wide;
    p = (chunks + t - 1) / t;
  }
  p = p <= 1 ? 1 : p <= 2 ? 2 : p <= 4 ? 4 : p <= 8 ? 8 : 0;
  if (p) t = std::min(t, ((chunks + p - 1) / p + 31) / 32 * 32);
  *threads = std::max(t, 32);
  *per = p;
}

template <typename T, int PER>
cudaError_t launch_u(int M, int threads, T* h, const T* add, int r, int K, int divisor, float eps,
                     int bits, float clip, const QuadActivations& out, cudaStream_t stream) {
  return launch_pdl(quant_u_kernel<T, PER>, dim3(M), dim3(threads), 0, stream, h, add, r, K,
                    divisor, eps, bits, clip, out);
}

template <typename T, int PER, int E, int COLS>
cudaError_t launch_d(int M, int threads, T x, int K, const float* mix, int K_o, bool inner,
                     int bits, float clip, const QuadActivations& out, cudaStream_t stream) {
  const size_t smem = (size_t(K_o) * ((K_o + 3) / 4 * 4) + K) * sizeof(float);
  const void* kernel = reinterpret_cast<const void*>(quant_d_kernel<T, PER, E, COLS>);
  if (cudaError_t e = allow_dynamic_smem(kernel, smem, true)) return e;
  return launch_pdl(quant_d_kernel<T, PER, E, COLS>, dim3(M), dim3(threads), smem, stream, x, K,
                    mix, K_o, inner, bits, clip, out);
}

template <typename T, int E, int COLS>
cudaError_t launch_d_per(int per, int M, int threads, T x, int K, const float* mix, int K_o,
                         bool inner, int bits, float clip, const QuadActivations& out,
                         cudaStream_t stream) {
  switch (per) {
    case 1:
      return launch_d<T, 1, E, COLS>(M, threads, x, K, mix, K_o, inner, bits, clip, out, stream);
    case 2:
      return launch_d<T, 2, E, COLS>(M, threads, x, K, mix, K_o, inner, bits, clip, out, stream);
    case 4:
      return launch_d<T, 4, E, COLS>(M, threads, x, K, mix, K_o, inner, bits, clip, out, stream);
    default:
      return launch_d<T, 8, E, COLS>(M, threads, x, K, mix, K_o, inner, bits, clip, out, stream);
  }
}

// Register FWHT when P = 32·E (E ≤ 16) and the column capacity, else the shared-memory path.
template <typename T, int COLS>
cudaError_t launch_d_fwht(int per, int M, int threads, T x, int K, const float* mix, int K_o,
                          bool inner, int bits, float clip, const QuadActivations& out,
                          cudaStream_t stream) {
  if (inner) {
    switch (K / K_o) {
      case 32:
        return launch_d_per<T, 1, COLS>(per, M, threads, x, K, mix, K_o, true, bits, clip, out,
                                        stream);
      case 64:
        return launch_d_per<T, 2, COLS>(per, M, threads, x, K, mix, K_o, true, bits, clip, out,
                                        stream);
      case 128:
        return launch_d_per<T, 4, COLS>(per, M, threads, x, K, mix, K_o, true, bits, clip, out,
                                        stream);
      case 256:
        return launch_d_per<T, 8, COLS>(per, M, threads, x, K, mix, K_o, true, bits, clip, out,
                                        stream);
      case 512:
        return launch_d_per<T, 16, COLS>(per, M, threads, x, K, mix, K_o, true, bits, clip, out,
                                         stream);
      default: break;
    }
  }
  return launch_d_per<T, 0, COLS>(per, M, threads, x, K, mix, K_o, inner, bits, clip, out, stream);
}

template <typename T>
cudaError_t quant_u(T* h, const T* add, int M, int r, int K, int divisor, float eps, int bits,
                    float clip, QuadActivations out, cudaStream_t stream) {
  if (M <= 0) return cudaSuccess;
  if ((bits != 4 && bits != 8) || K <= 0 || K % 8 != 0 || r < 0 || r % 8 != 0 ||
      (r > 0 && (!out.outlier || !out.outlier_lo)))
    return cudaErrorInvalidValue;
  int threads, per;
  row_shape(quad_padded_k(K) / 8, M, 1024, 256, &threads, &per);
  threads = std::max(threads, r / 8);
  if (per == 0 || threads > 1024) return cudaErrorInvalidValue;
  switch (per) {
    case 1: return launch_u<T, 1>(M, threads, h, add, r, K, divisor, eps, bits, clip, out, stream);
    case 2: return launch_u<T, 2>(M, threads, h, add, r, K, divisor, eps, bits, clip, out, stream);
    case 4: return launch_u<T, 4>(M, threads, h, add, r, K, divisor, eps, bits, clip, out, stream);
    default: return launch_u<T, 8>(M, threads, h, add, r, K, divisor, eps, bits, clip, out, stream);
  }
}

template <typename T>
cudaError_t quant_d(T x, int M, int K, const float* mix, int K_o, bool inner_fwht, int bits,
                    float clip, QuadActivations out, cudaStream_t stream) {
  if (M <= 0) return cudaSuccess;
  if ((bits != 4 && bits != 8) || K <= 0 || K % 8 != 0 || K_o <= 0 || K_o > kMaxMix || K % K_o != 0)
    return cudaErrorInvalidValue;
  const int P = K / K_o;
  if (inner_fwht && (P & (P - 1)) != 0) return cudaErrorInvalidValue;
  int threads, per;
  // Many rows: about 4 chunks per thread, 256 to 512 threads (measured: 512 helps the
  // 14336-wide down_proj input, hurts the 4096-wide head mix).
  const int chunks = quad_padded_k(K) / 8;
  row_shape(chunks, M, 512, std::clamp((chunks / 4 + 31) / 32 * 32, 256, 512), &threads, &per);
  if (per == 0) return cudaErrorInvalidValue;
  // The outer mix gives each thread whole columns: a thread count that is not a multiple of P
  // leaves a second pass with few threads busy (448 threads for P = 512 took twice as long).
  if (P <= 512 && threads % P != 0 && P % threads != 0)
    threads = std::min(512, (threads + P - 1) / P * P);
  threads = std::max(threads, 128);
  // Few rows: a cluster of blocks per row (when the columns split evenly into chunks of 8).
  const int own_chunks = (K_o + kCluster - 1) / kCluster * (P / 8);
  // (Measured no faster than one block for the head mix, which has no FWHT: only with it.)
  if (M <= 16 && inner_fwht && K_o <= 32 && P % (8 * kCluster) == 0 && own_chunks <= 2 * 256) {
    switch (P) {
      case 64:
        return launch_d_cluster<T, 2>(M, x, K, mix, K_o, inner_fwht, bits, clip, out, stream);
      case 128:
        return launch_d_cluster<T, 4>(M, x, K, mix, K_o, inner_fwht, bits, clip, out, stream);
      case 256:
        return launch_d_cluster<T, 8>(M, x, K, mix, K_o, inner_fwht, bits, clip, out, stream);
      case 512:
        return launch_d_cluster<T, 16>(M, x, K, mix, K_o, inner_fwht, bits, clip, out, stream);
      default: break;
    }
  }
  // The tensor-core mix: many rows, and the head mix (no FWHT) at any row count (measured on
  // H100, 2048 rows: down_proj's 14336-wide input 169 → 114 µs, o_proj's head mix 54 → 35 µs; one
  // row of the head mix 4.8 → 3.2 µs; docs/cuda_kernels.md v21).
  const bool mma_fits = K_o <= 32 && P % 16 == 0 && (!inner_fwht || (P >= 32 && P <= 512)) &&
                        size_t(mma_smem_floats(K, K_o)) * sizeof(float) <= 200 * 1024;
  if (mma_fits && (M > 16 || !inner_fwht)) {
    switch (inner_fwht ? P : 0) {
      case 0: return launch_d_mma<T, 0>(M, x, K, mix, K_o, false, bits, clip, out, stream);
      case 32: return launch_d_mma<T, 1>(M, x, K, mix, K_o, true, bits, clip, out, stream);
      case 64: return launch_d_mma<T, 2>(M, x, K, mix, K_o, true, bits, clip, out, stream);
      case 128: return launch_d_mma<T, 4>(M, x, K, mix, K_o, true, bits, clip, out, stream);
      case 256: return launch_d_mma<T, 8>(M, x, K, mix, K_o, true, bits, clip, out, stream);
      default: return launch_d_mma<T, 16>(M, x, K, mix, K_o, true, bits, clip, out, stream);
    }
  }
  if (K_o <= 32)
    return launch_d_fwht<T, 32>(per, M, threads, x, K, mix, K_o, inner_fwht, bits, clip, out,
                                stream);
  return launch_d_fwht<T, 64>(per, M, threads, x, K, mix, K_o, inner_fwht, bits, clip, out, stream);
}

}  // namespace

// Without an update, h is only read.
cudaError_t launch_quad_quant_u(const __nv_bfloat16* h, int M, int r, int K, int divisor, float eps,
                                int bits, float clip, QuadActivations out, cudaStream_t stream) {
  return quant_u(const_cast<__nv_bfloat16*>(h), static_cast<const __nv_bfloat16*>(nullptr), M, r, K,
                 divisor, eps, bits, clip, out, stream);
}
cudaError_t launch_quad_quant_u(const float* h, int M, int r, int K, int divisor, float eps,
                                int bits, float clip, QuadActivations out, cudaStream_t stream) {
  return quant_u(const_cast<float*>(h), static_cast<const float*>(nullptr), M, r, K, divisor, eps,
                 bits, clip, out, stream);
}
cudaError_t launch_quad_add_quant_u(float* h, const float* add, int M, int r, int K, int divisor,
                                    float eps, int bits, float clip, QuadActivations out,
                                    cudaStream_t stream) {
  if ((reinterpret_cast<uintptr_t>(h) | reinterpret_cast<uintptr_t>(add)) % 16 != 0)
    return cudaErrorMisalignedAddress;
  return quant_u(h, add, M, r, K, divisor, eps, bits, clip, out, stream);
}
cudaError_t launch_quad_quant_d(const __nv_bfloat16* x, int M, int K, const float* mix, int K_o,
                                bool inner_fwht, int bits, float clip, QuadActivations out,
                                cudaStream_t stream) {
  return quant_d(x, M, K, mix, K_o, inner_fwht, bits, clip, out, stream);
}
cudaError_t launch_quad_quant_d(const float* x, int M, int K, const float* mix, int K_o,
                                bool inner_fwht, int bits, float clip, QuadActivations out,
                                cudaStream_t stream) {
  return quant_d(x, M, K, mix, K_o, inner_fwht, bits, clip, out, stream);
}
cudaError_t launch_quad_quant_d_swiglu(const float* gate, const float* up, int M, int K,
                                       const float* mix, int K_o, bool inner_fwht, int bits,
                                       float clip, QuadActivations out, cudaStream_t stream) {
  if ((reinterpret_cast<uintptr_t>(gate) | reinterpret_cast<uintptr_t>(up)) % 16 != 0)
    return cudaErrorMisalignedAddress;
  return quant_d(GluRows<float>{gate, up, size_t(K)}, M, K, mix, K_o, inner_fwht, bits, clip, out,
                 stream);
}
cudaError_t launch_quad_quant_d_swiglu(const __nv_bfloat16* gate, const __nv_bfloat16* up, int ld,
                                       int M, int K, const float* mix, int K_o, bool inner_fwht,
                                       int bits, float clip, QuadActivations out,
                                       cudaStream_t stream) {
  if ((reinterpret_cast<uintptr_t>(gate) | reinterpret_cast<uintptr_t>(up)) % 16 != 0 ||
      ld % 8 != 0)
    return cudaErrorMisalignedAddress;
  if (ld < K) return cudaErrorInvalidValue;
  return quant_d(GluRows<__nv_bfloat16>{gate, up, size_t(ld)}, M, K, mix, K_o, inner_fwht, bits,
                 clip, out, stream);
}

}  // namespace quad::cuda
