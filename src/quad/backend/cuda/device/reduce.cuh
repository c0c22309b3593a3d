// Block-wide reductions for kernels whose blockDim.x is a multiple of 32 (at most 1024).
// Every thread gets the result. `scratch` is __shared__ T[32]; the trailing barrier makes it
// reusable by the next call.
#pragma once

namespace quad::cuda {

template <typename T, typename Op>
__device__ T warp_reduce(T v, Op op) {
  for (int offset = 16; offset > 0; offset /= 2) v = op(v, __shfl_xor_sync(0xffffffffu, v, offset));
  return v;
}

template <typename T, typename Op>
__device__ T block_reduce(T v, Op op, T identity, T* scratch) {
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32, warps = blockDim.x / 32;
  v = warp_reduce(v, op);
  if (lane == 0) scratch[warp] = v;
  __syncthreads();
  T r = lane < warps ? scratch[lane] : identity;
  r = warp_reduce(r, op);
  __syncthreads();
  return r;
}

// Two reductions in one pass (one pair of barriers instead of two): a by op_a, b by op_b.
template <typename A, typename OpA, typename B, typename OpB>
__device__ void block_reduce2(A& a, OpA op_a, A id_a, A* scratch_a, B& b, OpB op_b, B id_b,
                              B* scratch_b) {
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32, warps = blockDim.x / 32;
  a = warp_reduce(a, op_a);
  b = warp_reduce(b, op_b);
  if (lane == 0) {
    scratch_a[warp] = a;
    scratch_b[warp] = b;
  }
  __syncthreads();
  a = warp_reduce(lane < warps ? scratch_a[lane] : id_a, op_a);
  b = warp_reduce(lane < warps ? scratch_b[lane] : id_b, op_b);
  __syncthreads();
}

struct SumOp {
  template <typename T>
  __device__ T operator()(T a, T b) const {
    return a + b;
  }
};

// The larger of a and b; a NaN b loses (like std::max(a, b) with a first), which is what the
// CPU quantizer's running maximum does.
struct MaxOp {
  __device__ float operator()(float a, float b) const { return a < b ? b : a; }
};

}  // namespace quad::cuda
