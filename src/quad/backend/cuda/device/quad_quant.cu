// Per-token activation quantization of the QUAD linear layer into the fragment-major layout
// (quad_linear.h): quant_u (weightless RMSNorm, fp16 outlier part, codes of the rest) and
// quant_d (online Hadamard, then codes). One block per token row, the row held in shared memory
// as fp32. Scales and codes follow the reference quantizer (backend/ref): scale = max|a| / qmax
// · clip in IEEE fp32, code = clamp(round_half_even(a / scale)), an all-zero row gives scale 0
// and codes 0.
#include <math.h>

#include "quad_linear.h"
#include "reduce.cuh"

namespace quad::cuda {

namespace {

constexpr int kThreads = 256;

__device__ float quad_code(float v, float scale, float qmax) {
  return fminf(fmaxf(rintf(__fdiv_rn(v, scale)), -qmax - 1.0f), qmax);
}

// Writes the codes of v[0..K) (shared memory) for row `row` and returns nothing; the scale and
// the code sum go to out.scales / out.sums. All threads of the block call it.
__device__ void quantize_row(const float* v, int K, int bits, float clip, int row,
                             QuadActivations out, float* fscratch, int* iscratch) {
  const float qmax = bits == 4 ? 7.0f : 127.0f;
  float amax = 0.0f;
  for (int c = threadIdx.x; c < K; c += blockDim.x) amax = MaxOp{}(amax, fabsf(v[c]));
  amax = block_reduce(amax, MaxOp{}, 0.0f, fscratch);
  const float scale = __fmul_rn(__fdiv_rn(amax, qmax), clip);
  const int Kp = quad_padded_k(K);
  uint8_t* dst = out.codes + size_t(row) * quad_row_bytes(K, bits);
  int sum = 0;
  if (bits == 4) {
    // One byte = codes k, k+1 (k even) in the activation (non-a8) order.
    for (int k = 2 * threadIdx.x; k < Kp; k += 2 * blockDim.x) {
      unsigned byte = 0;
#pragma unroll
      for (int h = 0; h < 2; ++h) {
        if (k + h >= K) continue;  // padding: nibble 0
        const int q = scale == 0.0f ? 0 : int(quad_code(v[k + h], scale, qmax));
        sum += q;
        byte |= unsigned(q + 8) << (4 * h);
      }
      int pos, shift;
      quad_w4_position(k, false, &pos, &shift);
      dst[pos] = uint8_t(byte);
    }
  } else {
    for (int k = threadIdx.x; k < Kp; k += blockDim.x) {
      int q = 0;
      if (k < K && scale != 0.0f) q = int(quad_code(v[k], scale, qmax));
      sum += q;
      dst[quad_a8_position(k)] = uint8_t(int8_t(q));
    }
  }
  sum = block_reduce(sum, SumOp{}, 0, iscratch);
  if (threadIdx.x == 0) {
    out.scales[row] = scale;
    out.sums[row] = sum;
  }
}

__global__ void quant_u_kernel(const __nv_bfloat16* h, int r, int K, int divisor, float eps,
                               int bits, float clip, QuadActivations out) {
  extern __shared__ float row[];  // r + K
  __shared__ float fscratch[32];
  __shared__ int iscratch[32];
  const int D = r + K;
  const __nv_bfloat16* src = h + size_t(blockIdx.x) * D;
  float ss = 0.0f;
  for (int c = threadIdx.x; c < D; c += blockDim.x) {
    const float v = __bfloat162float(src[c]);
    row[c] = v;
    ss = fmaf(v, v, ss);
  }
  ss = block_reduce(ss, SumOp{}, 0.0f, fscratch);
  const float inv = 1.0f / sqrtf(ss / float(divisor) + eps);
  for (int c = threadIdx.x; c < D; c += blockDim.x) {
    const float a = row[c] * inv;
    row[c] = a;
    if (c < r) out.outlier[size_t(blockIdx.x) * r + c] = __float2half_rn(a);
  }
  __syncthreads();
  quantize_row(row + r, K, bits, clip, blockIdx.x, out, fscratch, iscratch);
}

__global__ void quant_d_kernel(const __nv_bfloat16* x, int K, const float* mix, int K_o,
                               bool inner_fwht, int bits, float clip, QuadActivations out) {
  extern __shared__ float smem[];  // K_o² mix, K input, K output
  __shared__ float fscratch[32];
  __shared__ int iscratch[32];
  float* m = smem;
  float* in = m + K_o * K_o;
  float* y = in + K;
  const int P = K / K_o;
  const __nv_bfloat16* src = x + size_t(blockIdx.x) * K;
  for (int c = threadIdx.x; c < K_o * K_o; c += blockDim.x) m[c] = mix[c];
  for (int c = threadIdx.x; c < K; c += blockDim.x) in[c] = __bfloat162float(src[c]);
  __syncthreads();
  if (inner_fwht) {
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
  for (int idx = threadIdx.x; idx < K; idx += blockDim.x) {
    const int a = idx / P, j = idx % P;
    float acc = 0.0f;
    for (int b = 0; b < K_o; ++b) acc = fmaf(m[a * K_o + b], in[b * P + j], acc);
    y[idx] = acc;
  }
  __syncthreads();
  quantize_row(y, K, bits, clip, blockIdx.x, out, fscratch, iscratch);
}

cudaError_t raise_smem(const void* kernel, size_t bytes) {
  if (bytes <= 48 * 1024) return cudaSuccess;
  return cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, int(bytes));
}

}  // namespace

cudaError_t launch_quad_quant_u(const __nv_bfloat16* h, int M, int r, int K, int divisor,
                                float eps, int bits, float clip, QuadActivations out,
                                cudaStream_t stream) {
  if (M <= 0) return cudaSuccess;
  if ((bits != 4 && bits != 8) || K <= 0 || r < 0 || (r > 0 && !out.outlier))
    return cudaErrorInvalidValue;
  const size_t smem = size_t(r + K) * sizeof(float);
  if (cudaError_t e = raise_smem(reinterpret_cast<const void*>(quant_u_kernel), smem)) return e;
  quant_u_kernel<<<M, kThreads, smem, stream>>>(h, r, K, divisor, eps, bits, clip, out);
  return cudaGetLastError();
}

cudaError_t launch_quad_quant_d(const __nv_bfloat16* x, int M, int K, const float* mix, int K_o,
                                bool inner_fwht, int bits, float clip, QuadActivations out,
                                cudaStream_t stream) {
  if (M <= 0) return cudaSuccess;
  if ((bits != 4 && bits != 8) || K <= 0 || K_o <= 0 || K_o > 64 || K % K_o != 0)
    return cudaErrorInvalidValue;
  const int P = K / K_o;
  if (inner_fwht && (P & (P - 1)) != 0) return cudaErrorInvalidValue;
  const size_t smem = (size_t(K_o) * K_o + 2 * size_t(K)) * sizeof(float);
  if (cudaError_t e = raise_smem(reinterpret_cast<const void*>(quant_d_kernel), smem)) return e;
  quant_d_kernel<<<M, kThreads, smem, stream>>>(x, K, mix, K_o, inner_fwht, bits, clip, out);
  return cudaGetLastError();
}

void quad_prepare_weights(const int8_t* codes, int N, int K, bool a8_order, uint8_t* packed,
                          int32_t* sums) {
  const int row_bytes = quad_row_bytes(K, 4);
  for (int o = 0; o < N; ++o) {
    uint8_t* dst = packed + size_t(o) * row_bytes;
    for (int b = 0; b < row_bytes; ++b) dst[b] = 0;
    int sum = 0;
    for (int k = 0; k < K; ++k) {
      const int q = codes[size_t(o) * K + k];
      sum += q;
      int pos, shift;
      quad_w4_position(k, a8_order, &pos, &shift);
      dst[pos] |= uint8_t((q + 8) << shift);
    }
    sums[o] = sum;
  }
}

}  // namespace quad::cuda
