// The prefill GEMM of the QUAD linear layer on Hopper's warpgroup MMA (sm_90a, `wgmma`).
//
// Roles are swapped against y = x · wᵀ: the weights are wgmma's A operand and the tokens its B
// operand, so that the 4-bit weights can be widened in registers (A may come from registers,
// B must come from shared memory). Each warpgroup computes 64 output channels × the block's
// tokens; a block is two warpgroups over 256 tokens (m64n256k32, 128 s32 accumulators per
// thread: the wide tile, 128 × 256) or four over 128 (m64n128k32, 64 accumulators: the tall
// tile, 256 × 128, which widens half as many activation codes per MAC).
//
// Per k block of 128 codes (one pipeline stage):
//  - weights: each thread loads its own two 16-byte runs (rows g and g + 8 of its warp's 16
//    rows; the tile-major layout of quad_linear.h) straight into registers two stages ahead,
//    and widens them to the u8 A fragments (low nibbles = k 4t..4t+3, high = k 16+4t..);
//  - activations are stored in natural k order for this kernel (QuadActivations::natural);
//    8-bit ones are copied by cp.async into a 4-slot ring of tiles (128-byte rows, 128-byte
//    swizzle), two stages ahead; 4-bit ones into a 4-slot staging ring (packed), and widened one
//    stage ahead into a 3-slot ring of such u8 tiles: the 16 packed bytes of a k32 step give their
//    low nibbles to wgmma k 0..15 and their high nibbles to k 16..31; word t of the step (codes
//    8t..8t+7) thus lands at k 4t..4t+3 and 16+4t..16+4t+3, where the weights' register fragments
//    put the same codes.
// One barrier per stage; wgmma groups are committed per stage with at most two in flight, or
// (RING) per k step with at most four.
// The epilogue is the one of the tiled kernel (quad_gemm.cu): exact integer correction, scales,
// then the outlier product as two more wgmmas (weights' fp16 outlier columns from registers,
// the tokens' fp16 pair from shared memory) into the fp32 accumulators, bias, store.
#include <algorithm>
#include <cstdlib>

#include "dynamic_smem.cuh"
#include "quad_epilogue.cuh"
#include "quad_linear.h"
#include "quad_mma.cuh"
#include "quad_wgmma.cuh"

namespace quad::cuda {

namespace {

constexpr int kCoreK = kQuadBlockK / 16;  // core matrices along k per stage
constexpr int kMaxOutlier = 64;

// A block's tile: WGS warpgroups of 64 output channels each, all over the same TOK tokens (one
// m64nTOK wgmma per warpgroup and k step, TOK / 2 accumulators per thread). Every warpgroup reads
// the whole u8 token tile, so shared-memory traffic per MAC falls as channels per block grow.
template <int WGS, int TOK>
struct WgTile {
  static constexpr int kWgs = WGS;
  static constexpr int kThreads = 128 * WGS;
  static constexpr int kN = 64 * WGS;  // output channels per block
  static constexpr int kM = TOK;       // tokens per block
  static constexpr int kAcc = TOK / 2;
  static constexpr int kStageB = TOK * kQuadBlockK;  // u8 token tile of one stage
};
using WideTile = WgTile<2, 256>;  // 128 channels × 256 tokens, 256 threads
using TallTile = WgTile<4, 128>;  // 256 channels × 128 tokens, 512 threads

template <int ABITS, typename T>
struct WgLayout {
  // 8-bit: cp.async straight into a ring of u8 tiles. 4-bit: a packed staging ring + u8 ring.
  static constexpr int B_SLOTS = ABITS == 8 ? 4 : 3;
  static constexpr int STG_SLOTS = ABITS == 8 ? 0 : 4;
  static constexpr int STG_BYTES = T::kM * kQuadBlockK / 2;  // packed codes of one stage
  static constexpr size_t B_OFF = 0;
  static constexpr size_t STG_OFF = B_OFF + size_t(B_SLOTS) * T::kStageB;
  static constexpr size_t OUT_OFF = STG_OFF + size_t(STG_SLOTS) * STG_BYTES;
  // Operands and the tokens' outlier pair (hi and lo tiles, kM × 2r bytes each; 224 KiB in all
  // for 4-bit inputs on the wide tile at r = 64, within the 227 KiB of a block), or the output
  // tiles of the epilogue (one per warpgroup: kM rows × (64 · out + 16) bytes).
  static size_t smem_bytes(int r, size_t out_bytes) {
    return std::max(OUT_OFF + size_t(T::kM) * 4 * r, T::kWgs * T::kM * (64 * out_bytes + 16));
  }
};

// Byte offset of the 16-byte chunk c of token n in a tile of `chunks_per_row` chunks per token,
// canonical no-swizzle layout (the fp16 outlier tile).
__device__ __forceinline__ int core_offset(int n, int c, int chunks_per_row) {
  return ((n >> 3) * chunks_per_row + c) * 128 + (n & 7) * 16;
}
// The same for the u8 operand tiles (k 16c .. 16c+15 of a stage): 128-byte rows, 128-byte swizzle
// (wgmma_desc_sw128); QUAD_WGMMA_NOSWIZZLE builds the no-swizzle layout instead (comparison).
__device__ __forceinline__ int tile_offset(int n, int c) {
#ifdef QUAD_WGMMA_NOSWIZZLE
  return core_offset(n, c, kCoreK);
#else
  return n * 128 + ((c ^ (n & 7)) << 4);
#endif
}
__device__ __forceinline__ uint64_t tile_desc(const uint8_t* tile, int step) {
#ifdef QUAD_WGMMA_NOSWIZZLE
  return wgmma_desc(tile + 2 * step * 128, 128, kCoreK * 128);
#else
  return wgmma_desc_sw128(tile + 32 * step);
#endif
}

#if defined(__CUDA_ARCH_FEAT_SM90_ALL)
#define QUAD_WGMMA_BODY 1
#endif

template <int ABITS, typename T, bool RING, typename OutT>
__global__ void __launch_bounds__(T::kThreads, 1)
    quad_wgmma_kernel(QuadActivations act, int M, QuadWeights w, OutT* y) {
#ifdef QUAD_WGMMA_BODY
  using L = WgLayout<ABITS, T>;
  constexpr int kWgThreads = T::kThreads, kTileN = T::kN, kTileM = T::kM, kStageB = T::kStageB;
  extern __shared__ __align__(1024) uint8_t smem[];
  const int tid = threadIdx.x, lane = tid % 32, warp = tid / 32;
  const int g = lane / 4, t = lane % 4, wg = warp / 4, wi = warp % 4;
  // Token tiles vary fastest: blocks running together share their weight tiles in L2 (the
  // other order streams all weights once per token tile and measured a 63% L2 hit rate).
  const int m0 = blockIdx.x * kTileM, n0 = blockIdx.y * kTileN;
  const int N = w.N, K = w.K, r = w.r;
  const int nb = quad_padded_k(K) / kQuadBlockK;
  const int a_ld = quad_row_bytes(K, ABITS);
  uint8_t* sB = smem + L::B_OFF;
  uint8_t* sStg = smem + L::STG_OFF;
  uint8_t* sAo = smem + L::OUT_OFF;

  // Outlier part of the tokens (the fp16 pair: hi tile, then lo tile at sAo + kM · 2r; canonical
  // layout, r / 8 chunks per token), own group.
  if (r > 0) {
    const int cpr = r / 8;
    for (int id = tid; id < 2 * kTileM * cpr; id += kWgThreads) {
      const int part = id / (kTileM * cpr), n = id % kTileM, c = id % (kTileM * cpr) / kTileM;
      const bool valid = m0 + n < M;
      const __half* src = part ? act.outlier_lo : act.outlier;
      const __half* p = valid ? src + size_t(m0 + n) * r + c * 8 : src;
      cp_async16(sAo + part * kTileM * 2 * r + core_offset(n, c, cpr), p, valid);
    }
  }
  cp_async_commit();

  // Stage kb of the activations: u8 tile (8-bit) or packed staging (4-bit), zero past M / K.
  auto load_act = [&](int kb) {
    if constexpr (ABITS == 8) {
      uint8_t* dst = sB + (kb % L::B_SLOTS) * kStageB;
#pragma unroll
      for (int i = 0; i < kTileM * kCoreK / kWgThreads; ++i) {
        const int id = tid + i * kWgThreads;
        const int n = (id % 8) + 8 * (id / 64), c = (id / 8) % 8;
        const bool valid = m0 + n < M;
        const uint8_t* p =
            valid ? act.codes + size_t(m0 + n) * a_ld + kb * 128 + c * 16 : act.codes;
        cp_async16(dst + tile_offset(n, c), p, valid);
      }
    } else {
      uint8_t* dst = sStg + (kb % L::STG_SLOTS) * L::STG_BYTES;
#pragma unroll
      for (int i = 0; i < kTileM * 4 / kWgThreads; ++i) {
        const int id = tid + i * kWgThreads, n = id / 4, run = id % 4;
        const bool valid = m0 + n < M;
        const uint8_t* p =
            valid ? act.codes + size_t(m0 + n) * a_ld + kb * 64 + run * 16 : act.codes;
        // Runs of a token rotate with the token so that the widening reads are conflict-free.
        cp_async16(dst + n * 64 + 16 * (run ^ ((n >> 1) & 3)), p, valid);
      }
    }
  };
  // 4-bit: staging of stage kb → u8 tile, one 16-byte run (token n, k step s) at a time.
  auto widen_act = [&](int kb) {
    constexpr int slots = ABITS == 4 ? L::STG_SLOTS : 1;
    const uint8_t* src = sStg + (kb % slots) * L::STG_BYTES;
    uint8_t* dst = sB + (kb % L::B_SLOTS) * kStageB;
#pragma unroll
    for (int i = 0; i < kTileM * 4 / kWgThreads; ++i) {
      const int n = (tid + i * kWgThreads) % kTileM, s = (tid + i * kWgThreads) / kTileM;
      const uint4 run = *reinterpret_cast<const uint4*>(src + n * 64 + 16 * (s ^ ((n >> 1) & 3)));
      *reinterpret_cast<uint4*>(dst + tile_offset(n, 2 * s)) =
          make_uint4(lo_nibbles(run.x), lo_nibbles(run.y), lo_nibbles(run.z), lo_nibbles(run.w));
      *reinterpret_cast<uint4*>(dst + tile_offset(n, 2 * s + 1)) =
          make_uint4(hi_nibbles(run.x), hi_nibbles(run.y), hi_nibbles(run.z), hi_nibbles(run.w));
    }
  };

  // This thread's weight rows: g and g + 8 of 16-row group G.
  const int G = n0 / 16 + 4 * wg + wi;
  const bool w_valid = G * 16 < quad_padded_n(N);
  const uint8_t* wbase = w.codes + size_t(G) * nb * 1024 + g * 64 + 16 * t;
  auto load_w = [&](int kb, uint4(&wr)[2]) {
    if (w_valid && kb < nb) {
      wr[0] = load_stream(wbase + size_t(kb) * 1024);
      wr[1] = load_stream(wbase + size_t(kb) * 1024 + 512);
    } else {
      wr[0] = wr[1] = make_uint4(0, 0, 0, 0);
    }
  };

  int acc[T::kAcc];
#pragma unroll
  for (int i = 0; i < T::kAcc; ++i) acc[i] = 0;

  // The u8 A fragment of k step s from this thread's two weight runs.
  auto widen_w = [](const uint4(&wr)[2], int s, unsigned(&a)[4]) {
    a[0] = lo_nibbles(word_of(wr[0], s));
    a[1] = lo_nibbles(word_of(wr[1], s));
    a[2] = hi_nibbles(word_of(wr[0], s));
    a[3] = hi_nibbles(word_of(wr[1], s));
  };

  // One stage: widen the weights, load the weights two stages ahead, issue 4 wgmmas.
  auto stage = [&](int kb, uint4(&wr)[2], unsigned(&af)[4][4]) {
#pragma unroll
    for (int s = 0; s < 4; ++s) {
      widen_w(wr, s, af[s]);
      wgmma_fence_operands(af[s]);  // all widened before the fence: no arrives between wgmmas
    }
    load_w(kb + 2, wr);
    const uint8_t* b = sB + (kb % L::B_SLOTS) * kStageB;
    wgmma_fence_operands(acc);
    wgmma_fence();
#pragma unroll
    for (int s = 0; s < 4; ++s) {
      const uint64_t desc = tile_desc(b, s);
      if constexpr (ABITS == 4)
        wgmma_u8u8(acc, af[s], desc);
      else
        wgmma_u8s8(acc, af[s], desc);
    }
    wgmma_commit();
  };
  // RING: one wgmma group per k step, four in flight; the A fragments of step s reuse the
  // registers of the previous stage's step s, complete once at most three groups are pending.
  auto stage_ring = [&](int kb, uint4(&wr)[2], unsigned(&af)[4][4]) {
    const uint8_t* b = sB + (kb % L::B_SLOTS) * kStageB;
#pragma unroll
    for (int s = 0; s < 4; ++s) {
      wgmma_wait<3>();
      wgmma_fence_operands(af[s]);
      widen_w(wr, s, af[s]);
      wgmma_fence_operands(af[s]);
      wgmma_fence_operands(acc);
      wgmma_fence();
      if constexpr (ABITS == 4)
        wgmma_u8u8(acc, af[s], tile_desc(b, s));
      else
        wgmma_u8s8(acc, af[s], tile_desc(b, s));
      wgmma_commit();
    }
    load_w(kb + 2, wr);
  };

  // Prologue: the first stages in flight; 4-bit widens stage 0 here.
  uint4 wr0[2], wr1[2];
  unsigned af0[4][4], af1[4][4];
  load_w(0, wr0);
  load_w(1, wr1);
  constexpr int AHEAD = ABITS == 8 ? 2 : L::STG_SLOTS;  // stages issued before the loop
#pragma unroll
  for (int s = 0; s < AHEAD; ++s) {
    if (s < nb) load_act(s);
    cp_async_commit();
  }
  if constexpr (ABITS == 4) {
    cp_async_wait<AHEAD - 1>();
    __syncthreads();
    widen_act(0);
  }

  // Iteration kb: stage kb's u8 tile is complete after the barrier (cp.async data or widened
  // stores of every thread, each followed by the proxy fence); every warpgroup has waited for
  // its wgmmas of stage kb - 2, so the slots those read may be refilled.
  auto iteration = [&](int kb, uint4(&wr)[2], unsigned(&af)[4][4]) {
    cp_async_wait<ABITS == 8 ? 1 : AHEAD - 2>();
    fence_proxy_async();
    __syncthreads();
    if constexpr (ABITS == 8) {
      if (kb + 2 < nb) load_act(kb + 2);
    } else {
      if (kb + AHEAD < nb) load_act(kb + AHEAD);  // into the slot widened last iteration
    }
    cp_async_commit();
    if constexpr (RING)
      stage_ring(kb, wr, af0);  // one ring of four steps' fragments for every stage
    else
      stage(kb, wr, af);
    if constexpr (ABITS == 4) {
      if (kb + 1 < nb) widen_act(kb + 1);
    }
    if constexpr (!RING) {
      wgmma_wait<1>();
      wgmma_fence_operands(acc);
    }
  };
  int kb = 0;
  for (; kb + 1 < nb; kb += 2) {
    iteration(kb, wr0, af0);
    iteration(kb + 1, wr1, af1);
  }
  if (kb < nb) iteration(kb, wr0, af0);
  wgmma_wait<0>();
  wgmma_fence_operands(acc);
  cp_async_wait<0>();
  __syncthreads();

  // Epilogue. Element i of acc: channel ch(i) = row g (+8 for i % 4 ≥ 2) of this warp's 16,
  // token n(i) = 8 (i / 4) + 2t + i % 2.
  const int ch_base = n0 + 64 * wg + 16 * wi + g;
  float sw[2];
  int sq[2];
#pragma unroll
  for (int h = 0; h < 2; ++h) {
    const int ch = ch_base + 8 * h;
    sw[h] = ch < N ? w.scales[ch] : 0.0f;
    sq[h] = ch < N ? w.sums[ch] : 0;
  }
  float out[T::kAcc];
#pragma unroll
  for (int j = 0; j < kTileM / 8; ++j)
#pragma unroll
    for (int e = 0; e < 2; ++e) {
      const int n = m0 + 8 * j + 2 * t + e;
      const float sx = n < M ? act.scales[n] : 0.0f;
      const int sa = n < M ? act.sums[n] : 0;
#pragma unroll
      for (int h = 0; h < 2; ++h) {
        const int i = 4 * j + 2 * h + e;
        out[i] = float(corrected(acc[i], ABITS, sa, sq[h], K)) * sx * sw[h];
      }
    }

  if (r > 0) {
    const __half* wo = w.outlier;
#pragma unroll 1
    for (int kk = 0; kk < r / 16; ++kk) {
      unsigned af[4];
#pragma unroll
      for (int q = 0; q < 4; ++q) {
        const int ch = ch_base + 8 * (q & 1), k = 16 * kk + 8 * (q >> 1) + 2 * t;
        af[q] = ch < N ? *reinterpret_cast<const unsigned*>(wo + size_t(ch) * r + k) : 0u;
      }
      wgmma_fence_operands(out);
      wgmma_fence();
      wgmma_f16(out, af, wgmma_desc(sAo + kTileM * 2 * r + 2 * kk * 128, 128, (r / 8) * 128));
      wgmma_f16(out, af, wgmma_desc(sAo + 2 * kk * 128, 128, (r / 8) * 128));
      wgmma_commit();
      wgmma_wait<0>();
      wgmma_fence_operands(out);
    }
  }

#pragma unroll
  for (int h = 0; h < 2; ++h) {
    const int ch = ch_base + 8 * h;
    const float b = ch < N && w.bias ? w.bias[ch] : 0.0f;
#pragma unroll
    for (int j = 0; j < kTileM / 8; ++j)
#pragma unroll
      for (int e = 0; e < 2; ++e) out[4 * j + 2 * h + e] += b;
  }

  // Stores. Full channel tiles with 16-byte aligned rows: through shared memory (each warpgroup
  // its kTileM tokens × 64 channels, rows padded by 16 bytes), then 16-byte row-contiguous stores.
  // Otherwise element by element.
  constexpr int kVec = 16 / sizeof(OutT), kRowBytes = 64 * sizeof(OutT) + 16;
  if (N % kVec == 0 && n0 + kTileN <= N) {
    __syncthreads();  // every warpgroup is done with the operand tiles
    OutT* tile = reinterpret_cast<OutT*>(smem + size_t(wg) * kTileM * kRowBytes);
    const int stride = kRowBytes / sizeof(OutT);
#pragma unroll
    for (int j = 0; j < kTileM / 8; ++j)
#pragma unroll
      for (int h = 0; h < 2; ++h)
#pragma unroll
        for (int e = 0; e < 2; ++e)
          store_one(tile + (8 * j + 2 * t + e) * stride + 16 * wi + g + 8 * h,
                    out[4 * j + 2 * h + e]);
    __syncthreads();
    const int wt = tid % 128;
    for (int c = wt; c < kTileM * 64 / kVec; c += 128) {
      const int n = c / (64 / kVec), v = c % (64 / kVec);
      if (m0 + n >= M) break;
      *reinterpret_cast<uint4*>(y + size_t(m0 + n) * N + n0 + 64 * wg + kVec * v) =
          *reinterpret_cast<const uint4*>(reinterpret_cast<const uint8_t*>(tile) + n * kRowBytes +
                                          16 * v);
    }
  } else {
#pragma unroll
    for (int h = 0; h < 2; ++h) {
      const int ch = ch_base + 8 * h;
      if (ch >= N) continue;
#pragma unroll
      for (int j = 0; j < kTileM / 8; ++j)
#pragma unroll
        for (int e = 0; e < 2; ++e) {
          const int n = m0 + 8 * j + 2 * t + e;
          if (n < M) store_one(y + size_t(n) * N + ch, out[4 * j + 2 * h + e]);
        }
    }
  }
#endif
}

// An attribute of the current device, or `fallback` when there is none.
int device_attribute(cudaDeviceAttr attr, int fallback) {
  int dev = 0, value = 0;
  if (cudaGetDevice(&dev) != cudaSuccess ||
      cudaDeviceGetAttribute(&value, attr, dev) != cudaSuccess)
    return fallback;
  return value;
}

}  // namespace

int quad_sm_count() {
  static const int count = device_attribute(cudaDevAttrMultiProcessorCount, 1);
  return count;
}

namespace {

bool device_is_sm90() {
  static const bool yes = device_attribute(cudaDevAttrComputeCapabilityMajor, 0) == 9 &&
                          device_attribute(cudaDevAttrComputeCapabilityMinor, -1) == 0;
  return yes;
}

template <int ABITS, typename T, bool RING, typename OutT>
cudaError_t launch_wgmma_tile(const QuadActivations& act, int M, const QuadWeights& w, OutT* y,
                              cudaStream_t stream) {
  const size_t smem = WgLayout<ABITS, T>::smem_bytes(w.r, sizeof(OutT));
  void (*kernel)(QuadActivations, int, QuadWeights, OutT*) =
      quad_wgmma_kernel<ABITS, T, RING, OutT>;
  if (cudaError_t e = allow_dynamic_smem(reinterpret_cast<const void*>(kernel), smem)) return e;
  const dim3 grid((M + T::kM - 1) / T::kM, (w.N + T::kN - 1) / T::kN);
  kernel<<<grid, T::kThreads, smem, stream>>>(act, M, w, y);
  return cudaGetLastError();
}

// Measured on H100 (docs/cuda_kernels.md v22, M = 2048 and 4096, two rounds each): the tall
// tile took 9–11% off q and gate/up with 4-bit inputs, whose channels fill whole 256-channel
// tiles; it was 6–26% slower on the 4160-channel o/down outputs with 4-bit inputs, and with
// 8-bit inputs slower than the wide tile with step groups (o M=2048 83 vs 59 µs).
WgmmaTile pick_tile(const QuadWeights& w) {
  return w.act_bits == 4 && w.N % TallTile::kN == 0 ? WgmmaTile::tall : WgmmaTile::wide;
}

// One wgmma group per k step (RING) for the tall tile and for 8-bit inputs: the wide tile with
// 8-bit inputs was ~20% faster with it (o M=4096 139 → 118 µs, down 440 → 352), with 4-bit
// inputs 3–5% slower (not profiled; the 4-bit path widens the next stage between the steps).
template <int ABITS, typename OutT>
cudaError_t launch_wgmma(const QuadActivations& act, int M, const QuadWeights& w, OutT* y,
                         WgmmaTile tile, cudaStream_t stream) {
  if (tile == WgmmaTile::automatic) tile = pick_tile(w);
  if (tile == WgmmaTile::tall)
    return launch_wgmma_tile<ABITS, TallTile, true>(act, M, w, y, stream);
  return launch_wgmma_tile<ABITS, WideTile, ABITS == 8>(act, M, w, y, stream);
}

}  // namespace

bool quad_wgmma_available(const QuadWeights& w) {
#if defined(QUAD_CUDA_SM90A)
  static const bool enabled = [] {
    const char* env = std::getenv("QUAD_CUDA_WGMMA");
    return !(env && env[0] == '0');
  }();
  return enabled && w.r <= kMaxOutlier && device_is_sm90();
#else
  (void)w;
  return false;
#endif
}

template <typename OutT>
cudaError_t launch_quad_gemm_wgmma(const QuadActivations& act, int M, const QuadWeights& w, OutT* y,
                                   cudaStream_t stream, WgmmaTile tile) {
  if (cudaError_t e = check_args(act, M, w)) return e;
  if (w.r > kMaxOutlier || !act.natural) return cudaErrorInvalidValue;
  if (M == 0) return cudaSuccess;
  return by_act_bits(w.act_bits, [&](auto bits) {
    return launch_wgmma<decltype(bits)::value>(act, M, w, y, tile, stream);
  });
}
template cudaError_t launch_quad_gemm_wgmma(const QuadActivations&, int, const QuadWeights&,
                                            __nv_bfloat16*, cudaStream_t, WgmmaTile);
template cudaError_t launch_quad_gemm_wgmma(const QuadActivations&, int, const QuadWeights&, float*,
                                            cudaStream_t, WgmmaTile);

}  // namespace quad::cuda
