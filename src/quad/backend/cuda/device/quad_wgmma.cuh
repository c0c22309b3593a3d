// PTX wrappers for Hopper's warpgroup MMA (sm_90a): shared-memory matrix descriptors, the
// fences and group waits, and the three wgmma forms the QUAD prefill kernel uses (A from
// registers, B from shared memory in the canonical no-swizzle K-major layout: 8-row × 16-byte
// core matrices, `lbo` bytes apart along K and `sbo` bytes apart along N).
#pragma once

#include <cstdint>

namespace quad::cuda {

__device__ __forceinline__ uint64_t wgmma_desc(const void* smem, unsigned lbo, unsigned sbo) {
  const uint64_t addr = unsigned(__cvta_generic_to_shared(smem));
  return ((addr & 0x3FFFF) >> 4) | (uint64_t((lbo >> 4) & 0x3FFF) << 16) |
         (uint64_t((sbo >> 4) & 0x3FFF) << 32);  // base offset 0, no swizzle
}
// K-major tile with the 128-byte swizzle: rows of 128 bytes, 8-row atoms of 1024 bytes (1024-byte
// aligned), 16-byte chunk c of row r stored at chunk c ^ (r % 8). `smem` may point into a row
// (k offset inside the atom); the hardware applies the swizzle to the full address.
__device__ __forceinline__ uint64_t wgmma_desc_sw128(const void* smem) {
  const uint64_t addr = unsigned(__cvta_generic_to_shared(smem));
  return ((addr & 0x3FFFF) >> 4) | (uint64_t(1) << 16) | (uint64_t(1024 >> 4) << 32) |
         (uint64_t(1) << 62);
}

__device__ __forceinline__ void wgmma_fence() {
  asm volatile("wgmma.fence.sync.aligned;\n" ::: "memory");
}
__device__ __forceinline__ void wgmma_commit() {
  asm volatile("wgmma.commit_group.sync.aligned;\n" ::: "memory");
}
template <int N>
__device__ __forceinline__ void wgmma_wait() {
  asm volatile("wgmma.wait_group.sync.aligned %0;\n" ::"n"(N) : "memory");
}
// Shared memory written by ordinary stores or cp.async, read next by the tensor cores.
__device__ __forceinline__ void fence_proxy_async() {
  asm volatile("fence.proxy.async.shared::cta;\n" ::: "memory");
}
// Keeps the compiler from moving accesses of accumulator registers across wgmma issue/wait.
template <int N>
__device__ __forceinline__ void wgmma_fence_operands(int (&d)[N]) {
#pragma unroll
  for (int i = 0; i < N; ++i) asm volatile("" : "+r"(d[i])::"memory");
}
template <int N>
__device__ __forceinline__ void wgmma_fence_operands(unsigned (&d)[N]) {
#pragma unroll
  for (int i = 0; i < N; ++i) asm volatile("" : "+r"(d[i])::"memory");
}
template <int N>
__device__ __forceinline__ void wgmma_fence_operands(float (&d)[N]) {
#pragma unroll
  for (int i = 0; i < N; ++i) asm volatile("" : "+f"(d[i])::"memory");
}

// The accumulator operands of m64n256 and m64n128 wgmmas (128 and 64 registers): register lists,
// constraints, and the A-register and B-descriptor operands that follow them.
#define QUAD_WGMMA_REGS_0_63                                                                       \
  "%0,%1,%2,%3,%4,%5,%6,%7,%8,%9,%10,%11,%12,%13,%14,%15,%16,%17,%18,%19,%20,%21,%22,%23,%24,%25," \
  "%26,%27,%28,%29,%30,%31,%32,%33,%34,%35,%36,%37,%38,%39,%40,%41,%42,%43,%44,%45,%46,%47,%48,%"  \
  "49,%50,%51,%52,%53,%54,%55,%56,%57,%58,%59,%60,%61,%62,%63"
#define QUAD_WGMMA_REGS_64_127                                                                     \
  "%64,%65,%66,%67,%68,%69,%70,%71,%72,%73,%74,%75,%76,%77,%78,%79,%80,%81,%82,%83,%84,%85,%86,%"  \
  "87,%88,%89,%90,%91,%92,%93,%94,%95,%96,%97,%98,%99,%100,%101,%102,%103,%104,%105,%106,%107,%"   \
  "108,%109,%110,%111,%112,%113,%114,%115,%116,%117,%118,%119,%120,%121,%122,%123,%124,%125,%126," \
  "%127"
#define QUAD_WGMMA_D_LIST64 "{" QUAD_WGMMA_REGS_0_63 "}"
#define QUAD_WGMMA_D_LIST128 "{" QUAD_WGMMA_REGS_0_63 "," QUAD_WGMMA_REGS_64_127 "}"
#define QUAD_WGMMA_D_OPERANDS64(C)                                                              \
  C(d[0]), C(d[1]), C(d[2]), C(d[3]), C(d[4]), C(d[5]), C(d[6]), C(d[7]), C(d[8]), C(d[9]),     \
      C(d[10]), C(d[11]), C(d[12]), C(d[13]), C(d[14]), C(d[15]), C(d[16]), C(d[17]), C(d[18]), \
      C(d[19]), C(d[20]), C(d[21]), C(d[22]), C(d[23]), C(d[24]), C(d[25]), C(d[26]), C(d[27]), \
      C(d[28]), C(d[29]), C(d[30]), C(d[31]), C(d[32]), C(d[33]), C(d[34]), C(d[35]), C(d[36]), \
      C(d[37]), C(d[38]), C(d[39]), C(d[40]), C(d[41]), C(d[42]), C(d[43]), C(d[44]), C(d[45]), \
      C(d[46]), C(d[47]), C(d[48]), C(d[49]), C(d[50]), C(d[51]), C(d[52]), C(d[53]), C(d[54]), \
      C(d[55]), C(d[56]), C(d[57]), C(d[58]), C(d[59]), C(d[60]), C(d[61]), C(d[62]), C(d[63])
#define QUAD_WGMMA_D_OPERANDS128(C)                                                             \
  QUAD_WGMMA_D_OPERANDS64(C), C(d[64]), C(d[65]), C(d[66]), C(d[67]), C(d[68]), C(d[69]),       \
      C(d[70]), C(d[71]), C(d[72]), C(d[73]), C(d[74]), C(d[75]), C(d[76]), C(d[77]), C(d[78]), \
      C(d[79]), C(d[80]), C(d[81]), C(d[82]), C(d[83]), C(d[84]), C(d[85]), C(d[86]), C(d[87]), \
      C(d[88]), C(d[89]), C(d[90]), C(d[91]), C(d[92]), C(d[93]), C(d[94]), C(d[95]), C(d[96]), \
      C(d[97]), C(d[98]), C(d[99]), C(d[100]), C(d[101]), C(d[102]), C(d[103]), C(d[104]),      \
      C(d[105]), C(d[106]), C(d[107]), C(d[108]), C(d[109]), C(d[110]), C(d[111]), C(d[112]),   \
      C(d[113]), C(d[114]), C(d[115]), C(d[116]), C(d[117]), C(d[118]), C(d[119]), C(d[120]),   \
      C(d[121]), C(d[122]), C(d[123]), C(d[124]), C(d[125]), C(d[126]), C(d[127])
#define QUAD_WGMMA_AB128 ", {%128,%129,%130,%131}, %132, p"
#define QUAD_WGMMA_AB64 ", {%64,%65,%66,%67}, %68, p"

// d (64×N s32 per warpgroup, N / 2 registers) += a (64×32, registers) · b (32×N, shared memory),
// N = 256 or 128; ATYPE and BTYPE are u8 or s8.
#define QUAD_WGMMA_I8(NAME, ATYPE, BTYPE, N, REGS)                                              \
  __device__ __forceinline__ void NAME(int(&d)[REGS], const unsigned(&a)[4], uint64_t desc_b) { \
    asm volatile(                                                                               \
        "{\n.reg .pred p;\nsetp.ne.b32 p, 1, 0;\n"                                              \
        "wgmma.mma_async.sync.aligned.m64n" #N "k32.s32." ATYPE "." BTYPE                       \
        " " QUAD_WGMMA_D_LIST##REGS QUAD_WGMMA_AB##REGS ";\n}\n"                                \
        : QUAD_WGMMA_D_OPERANDS##REGS("+r")                                                     \
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(desc_b));                             \
  }
QUAD_WGMMA_I8(wgmma_u8u8, "u8", "u8", 256, 128)
QUAD_WGMMA_I8(wgmma_u8s8, "u8", "s8", 256, 128)
QUAD_WGMMA_I8(wgmma_u8u8, "u8", "u8", 128, 64)
QUAD_WGMMA_I8(wgmma_u8s8, "u8", "s8", 128, 64)
#undef QUAD_WGMMA_I8

// d (64×N f32 per warpgroup) += a (64×16 f16, registers) · b (16×N f16, shared memory).
#define QUAD_WGMMA_F16(N, REGS)                                                          \
  __device__ __forceinline__ void wgmma_f16(float(&d)[REGS], const unsigned(&a)[4],      \
                                            uint64_t desc_b) {                           \
    asm volatile(                                                                        \
        "{\n.reg .pred p;\nsetp.ne.b32 p, 1, 0;\n"                                       \
        "wgmma.mma_async.sync.aligned.m64n" #N                                           \
        "k16.f32.f16.f16 " QUAD_WGMMA_D_LIST##REGS QUAD_WGMMA_AB##REGS ", 1, 1, 0;\n}\n" \
        : QUAD_WGMMA_D_OPERANDS##REGS("+f")                                              \
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(desc_b));                      \
  }
QUAD_WGMMA_F16(256, 128)
QUAD_WGMMA_F16(128, 64)
#undef QUAD_WGMMA_F16
#undef QUAD_WGMMA_REGS_0_63
#undef QUAD_WGMMA_REGS_64_127
#undef QUAD_WGMMA_D_LIST128
#undef QUAD_WGMMA_D_OPERANDS128
#undef QUAD_WGMMA_AB128
#undef QUAD_WGMMA_D_LIST64
#undef QUAD_WGMMA_D_OPERANDS64
#undef QUAD_WGMMA_AB64

}  // namespace quad::cuda
