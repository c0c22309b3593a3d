// Launch shape of the element-wise kernels, which walk their range in grid-stride loops.
#pragma once

#include <cstddef>

namespace quad::cuda {

inline constexpr int kGridStrideThreads = 256;

// Blocks for n elements, one per kGridStrideThreads up to a cap; the loops cover the rest.
inline int grid_stride_blocks(size_t n) {
  const size_t b = (n + kGridStrideThreads - 1) / kGridStrideThreads;
  return int(b < 65535u * 16u ? b : 65535u * 16u);
}

}  // namespace quad::cuda
