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
  static std::mutex mu;
  static std::map<const void*, size_t> raised;  // kernel → largest limit set (one GPU)
  std::lock_guard<std::mutex> lock(mu);
  auto it = raised.find(kernel);
  if (it != raised.end() && bytes <= it->second) return cudaSuccess;
  if (max_carveout)
    if (cudaError_t e = cudaFuncSetAttribute(kernel, cudaFuncAttributePreferredSharedMemoryCarveout,
                                             int(cudaSharedmemCarveoutMaxShared)))
      return e;
  if (bytes > 48 * 1024)
    if (cudaError_t e =
            cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, int(bytes)))
      return e;
  raised[kernel] = bytes;
  return cudaSuccess;
}

}  // namespace quad::cuda
