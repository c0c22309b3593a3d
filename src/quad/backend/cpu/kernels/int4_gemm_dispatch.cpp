// Run-time choice of the int4 GEMM kernel and the activation preparation shared by the SIMD
// kernels. Compiled with the library's baseline flags (x86-64-v3): only the kernel files use
// AVX-512 instructions, and they are called only after __builtin_cpu_supports says so.
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "quad/backend/cpu/kernels/int4_gemm.h"
#include "quad/core/error.h"

namespace quad::kernels {

const char* kernel_name(Int4Kernel kernel) {
  switch (kernel) {
    case Int4Kernel::kRef: return "ref";
    case Int4Kernel::kAvx2: return "avx2";
    case Int4Kernel::kAvx512Vnni: return "avx512";
  }
  return "?";
}

bool kernel_supported(Int4Kernel kernel) {
  switch (kernel) {
    case Int4Kernel::kRef: return true;
    case Int4Kernel::kAvx2: return __builtin_cpu_supports("avx2");
    case Int4Kernel::kAvx512Vnni:
      return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
             __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512vnni");
  }
  return false;
}

namespace {

Int4Kernel choose_kernel() {
  if (const char* env = std::getenv("QUAD_KERNEL"); env != nullptr && *env != '\0') {
    for (Int4Kernel k : {Int4Kernel::kRef, Int4Kernel::kAvx2, Int4Kernel::kAvx512Vnni}) {
      if (std::strcmp(env, kernel_name(k)) == 0) {
        if (!kernel_supported(k))
          fail("kernels", "QUAD_KERNEL={} is not supported on this CPU", env);
        return k;
      }
    }
    fail("kernels", "unknown QUAD_KERNEL={} (expected ref, avx2 or avx512)", env);
  }
  if (kernel_supported(Int4Kernel::kAvx512Vnni)) return Int4Kernel::kAvx512Vnni;
  if (kernel_supported(Int4Kernel::kAvx2)) return Int4Kernel::kAvx2;
  return Int4Kernel::kRef;
}

// See PreparedX in the header: rows padded to kp, each 128-column block split into its even
// and odd columns.
struct XBuffer {
  std::vector<int8_t> bytes;
  std::vector<int32_t> sums;
  PreparedX prepare(const int8_t* xq, int n, int k) {
    const int kp = padded_k(k);
    bytes.assign(size_t(n) * kp + 64, 0);
    sums.assign(size_t(n), 0);
    int8_t* base = bytes.data() + (64 - reinterpret_cast<uintptr_t>(bytes.data()) % 64) % 64;
    for (int i = 0; i < n; ++i) {
      const int8_t* x = xq + size_t(i) * k;
      int8_t* d = base + size_t(i) * kp;
      int32_t s = 0;
      for (int c = 0; c < k; c += 2) {
        const int blk = c / kBlock, t = (c % kBlock) / 2;
        d[blk * kBlock + t] = x[c];
        d[blk * kBlock + kBlock / 2 + t] = x[c + 1];
        s += x[c] + x[c + 1];
      }
      sums[size_t(i)] = s;
    }
    return PreparedX{base, sums.data(), kp};
  }
};

}  // namespace

Int4Kernel selected_kernel() {
  static const Int4Kernel kernel = choose_kernel();
  return kernel;
}

const char* kernel_name() {
  return kernel_name(selected_kernel());
}

void gemm_s8_s4_with(Int4Kernel kernel, const int8_t* xq, const float* sx, int n, int k,
                     const uint8_t* w_packed, const float* sw, int out, float* y) {
  if (k < 0 || k % 2 != 0) fail("kernels", "gemm_s8_s4: k = {} must be even", k);
  if (!kernel_supported(kernel)) {
    fail("kernels", "gemm_s8_s4: kernel {} is not supported on this CPU", kernel_name(kernel));
  }
  if (n <= 0 || out <= 0) return;
  if (kernel == Int4Kernel::kRef) {
    gemm_s8_s4_ref(xq, sx, n, k, w_packed, sw, out, y);
    return;
  }
  // Reused across calls of one thread so that decode does not allocate per token.
  thread_local XBuffer buffer;
  const PreparedX xp = buffer.prepare(xq, n, k);
  if (kernel == Int4Kernel::kAvx2) {
    gemm_s8_s4_avx2(xp, sx, n, k, w_packed, sw, out, y);
  } else {
    gemm_s8_s4_avx512vnni(xp, sx, n, k, w_packed, sw, out, y);
  }
}

void gemm_s8_s4(const int8_t* xq, const float* sx, int n, int k, const uint8_t* w_packed,
                const float* sw, int out, float* y) {
  gemm_s8_s4_with(selected_kernel(), xq, sx, n, k, w_packed, sw, out, y);
}

}  // namespace quad::kernels
