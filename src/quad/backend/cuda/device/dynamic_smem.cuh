// Raising a kernel's dynamic shared-memory limit (needed above 48 KiB) once per kernel and size
// instead of on every launch: cudaFuncSetAttribute is a driver call on the launch path.
#pragma once

#include <cuda_runtime_api.h>

#include <cstddef>
#include <map>
#include <mutex>

namespace quad::cuda {

// max_carveout: also ask for the largest shared-memory carveout, for kernels that need several
// blocks of this size per SM (left to the driver, the carveout may fit only one).
inline cudaError_t allow_dynamic_smem(const void* kernel, size_t bytes, bool max_carveout = false) {
  if (bytes <= 48 * 1024 && !max_carveout) return cudaSuccess;
  struct Raised {
    size_t bytes = 0;       // largest dynamic shared-memory limit set
    bool carveout = false;  // the largest carveout asked for
  };
  static std::mutex mu;
  static std::map<const void*, Raised> raised;  // per kernel (one GPU)
  std::lock_guard<std::mutex> lock(mu);
  Raised& done = raised[kernel];
  if (max_carveout && !done.carveout) {
    if (cudaError_t e = cudaFuncSetAttribute(kernel, cudaFuncAttributePreferredSharedMemoryCarveout,
                                             int(cudaSharedmemCarveoutMaxShared)))
      return e;
    done.carveout = true;
  }
  if (bytes > 48 * 1024 && bytes > done.bytes) {
    if (cudaError_t e =
            cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, int(bytes)))
      return e;
    done.bytes = bytes;
  }
  return cudaSuccess;
}

}  // namespace quad::cuda
