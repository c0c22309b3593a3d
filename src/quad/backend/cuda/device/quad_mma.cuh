// PTX wrappers shared by the QUAD GEMM kernels: asynchronous copies, streaming loads, int8 and
// fp16 mma.sync, and the widening of offset 4-bit codes (see quad_linear.h for the layouts).
#pragma once

#include <cuda_fp16.h>

#include <cstdint>

namespace quad::cuda {

// 16 bytes global → shared, bypassing L1; zero-filled when !valid (src is then not read).
__device__ __forceinline__ void cp_async16(void* smem, const void* src, bool valid) {
  const unsigned dst = unsigned(__cvta_generic_to_shared(smem));
  const int bytes = valid ? 16 : 0;
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(dst), "l"(src), "r"(bytes));
}
__device__ __forceinline__ void cp_async_commit() {
  asm volatile("cp.async.commit_group;\n" ::);
}
template <int N>
__device__ __forceinline__ void cp_async_wait() {
  asm volatile("cp.async.wait_group %0;\n" ::"n"(N));
}

// A 16-byte load of data read once (weights): not kept in L1.
__device__ __forceinline__ uint4 load_stream(const void* p) {
  uint4 v;
  asm("ld.global.nc.L1::no_allocate.v4.u32 {%0, %1, %2, %3}, [%4];\n"
      : "=r"(v.x), "=r"(v.y), "=r"(v.z), "=r"(v.w)
      : "l"(p));
  return v;
}

__device__ __forceinline__ unsigned word_of(const uint4& v, int i) {
  return i == 0 ? v.x : i == 1 ? v.y : i == 2 ? v.z : v.w;  // i is a compile-time constant
}

// Eight offset nibbles → two words of four u8 (the low and the high nibbles).
__device__ __forceinline__ unsigned lo_nibbles(unsigned w) {
  return w & 0x0F0F0F0Fu;
}
__device__ __forceinline__ unsigned hi_nibbles(unsigned w) {
  return (w >> 4) & 0x0F0F0F0Fu;
}

// d (16×8 s32) += a (16×32) · b (32×8); A_TYPE/B_TYPE are u8 or s8.
#define QUAD_MMA_I8(NAME, ATYPE, BTYPE)                                                   \
  __device__ __forceinline__ void NAME(int(&d)[4], unsigned a0, unsigned a1, unsigned a2, \
                                       unsigned a3, unsigned b0, unsigned b1) {           \
    asm volatile("mma.sync.aligned.m16n8k32.row.col.s32." ATYPE "." BTYPE                 \
                 ".s32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, {%0, %1, %2, %3};\n" \
                 : "+r"(d[0]), "+r"(d[1]), "+r"(d[2]), "+r"(d[3])                         \
                 : "r"(a0), "r"(a1), "r"(a2), "r"(a3), "r"(b0), "r"(b1));                 \
  }
QUAD_MMA_I8(mma_u8u8, "u8", "u8")
QUAD_MMA_I8(mma_s8u8, "s8", "u8")
QUAD_MMA_I8(mma_u8s8, "u8", "s8")
#undef QUAD_MMA_I8

// d (16×8 f32) += a (16×16 f16) · b (16×8 f16). Not volatile: a register-only instruction the
// compiler may schedule among independent ones (interleaving accumulator chains hides latency).
__device__ __forceinline__ void mma_f16(float (&d)[4], unsigned a0, unsigned a1, unsigned a2,
                                        unsigned a3, unsigned b0, unsigned b1) {
  asm("mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, "
      "{%8, %9}, {%0, %1, %2, %3};\n"
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
      : "r"(a0), "r"(a1), "r"(a2), "r"(a3), "r"(b0), "r"(b1));
}

// d (16×8 f32) += a (16×8 tf32) · b (8×8 tf32). Operands are fp32 bit patterns; the tensor
// core reads their top 19 bits.
__device__ __forceinline__ void mma_tf32(float (&d)[4], unsigned a0, unsigned a1, unsigned a2,
                                         unsigned a3, unsigned b0, unsigned b1) {
  asm("mma.sync.aligned.m16n8k8.row.col.f32.tf32.tf32.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, "
      "{%8, %9}, {%0, %1, %2, %3};\n"
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
      : "r"(a0), "r"(a1), "r"(a2), "r"(a3), "r"(b0), "r"(b1));
}

// x rounded to the nearest tf32 (ties away from zero), as an fp32 bit pattern.
__device__ __forceinline__ unsigned to_tf32(float x) {
  unsigned r;
  asm("cvt.rna.tf32.f32 %0, %1;\n" : "=r"(r) : "f"(x));
  return r;
}

__device__ __forceinline__ void ldmatrix_x4(unsigned (&r)[4], const void* smem) {
  const unsigned a = unsigned(__cvta_generic_to_shared(smem));
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0, %1, %2, %3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(a));
}

// The transposed load: lane i gets rows 2·(i % 4), 2·(i % 4) + 1 of column i / 4 of each 8×8
// matrix, i.e. mma's B fragment from a row-major (k, n) tile.
__device__ __forceinline__ void ldmatrix_x4_trans(unsigned (&r)[4], const void* smem) {
  const unsigned a = unsigned(__cvta_generic_to_shared(smem));
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0, %1, %2, %3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(a));
}

}  // namespace quad::cuda
