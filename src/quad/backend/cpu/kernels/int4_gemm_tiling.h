// The tiling shared by the ISA-specific int4 GEMM kernels (int4_gemm_avx2.cpp,
// int4_gemm_avx512vnni.cpp): the tile arguments, the dispatch of edge tiles and the threaded
// sweep over row groups and token blocks. A kernel supplies a policy type with its chunk width
// (packed weight bytes per step) and its R × T tile function.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>

#include "quad/backend/cpu/kernels/int4_gemm.h"

namespace quad::kernels {

// Internal linkage on purpose: each kernel file compiles this with its own ISA flags, and shared
// inline definitions would let the linker keep one ISA's copy for both.
namespace {

struct TileArgs {
  const uint8_t* w;  // first row of the tile
  size_t ldw;        // k / 2
  int steps;         // full chunks (Kernel::kChunkBytes) per row
  int tail;          // remaining bytes per row (< kChunkBytes)
  const int8_t* x;   // first token of the tile (prepared)
  size_t ldx;        // kp
  const int32_t* xsum;
  const float* sx;
  const float* sw;
  float* y;  // y + t0·out + o0
  size_t ldy;
};

// Calls Kernel::tile<r, t> for runtime 1 ≤ r ≤ R, 1 ≤ t ≤ T (the edge tiles).
template <class Kernel, int R, int T>
void tile_any(int r, int t, const TileArgs& a) {
  if constexpr (R > 1) {
    if (r < R) return tile_any<Kernel, R - 1, T>(r, t, a);
  }
  if constexpr (T > 1) {
    if (t < T) return tile_any<Kernel, R, T - 1>(r, t, a);
  }
  Kernel::template tile<R, T>(a);
}

// Threads only pay off above a few microseconds of work.
constexpr double kParallelMacs = 1 << 18;

// Dynamic schedule in work items of about 64 KiB of weights: on a machine shared with other
// jobs a thread that is descheduled for a while does not hold the others up (measured the same
// as static when the machine is not loaded).
inline int chunk_for(size_t bytes_per_item) {
  const size_t items = (size_t(1) << 16) / (bytes_per_item > 0 ? bytes_per_item : 1);
  return items > 0 ? int(items) : 1;
}

// Tiles of R rows × T tokens; token blocks of TB tokens whose prepared activations stay in L2
// while the row groups sweep (each row group's weights are reused from L1 across the block).
// No barrier between token blocks (nowait): blocks write disjoint outputs.
template <class Kernel, int R, int T, int TB>
void run_tiles(const PreparedX& xp, const float* sx, int n, int k, const uint8_t* w_packed,
               const float* sw, int out, float* y) {
  const size_t ldw = size_t(k / 2);
  const int steps = int(ldw / Kernel::kChunkBytes), tail = int(ldw % Kernel::kChunkBytes);
  const int groups = (out + R - 1) / R;
  const bool parallel = double(n) * out * k >= kParallelMacs;
  const int chunk = chunk_for(size_t(R) * ldw);
#pragma omp parallel if (parallel)
  for (int i0 = 0; i0 < n; i0 += TB) {
    const int i1 = std::min(n, i0 + TB);
#pragma omp for schedule(dynamic, chunk) nowait
    for (int g = 0; g < groups; ++g) {
      const int o0 = g * R, rows = std::min(R, out - o0);
      for (int t0 = i0; t0 < i1; t0 += T) {
        const TileArgs a{w_packed + size_t(o0) * ldw,
                         ldw,
                         steps,
                         tail,
                         xp.x + size_t(t0) * xp.kp,
                         size_t(xp.kp),
                         xp.xsum + t0,
                         sx + t0,
                         sw + o0,
                         y + size_t(t0) * out + o0,
                         size_t(out)};
        tile_any<Kernel, R, T>(rows, std::min(T, i1 - t0), a);
      }
    }
  }
}

}  // namespace

}  // namespace quad::kernels
