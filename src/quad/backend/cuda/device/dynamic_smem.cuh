// Raising a kernel's dynamic shared-memory limit (needed above 48 KiB) once per kernel and size
// instead of on every launch: cudaFuncSetAttribute is a driver call on the launch path.
#pragma once

#include <cuda_runtime_api.h>

#include <cstddef>
#include <map>
#include <mutex>

namespace quad::cuda {

inline cudaError_t allow_dynamic_smem(const void* kernel, size_t bytes) {
  if (bytes <= 48 * 1024) return cudaSuccess;
  static std::mutex mu;
  static std::map<const void*, size_t> raised;  // kernel → largest limit set (one GPU)
  std::lock_guard<std::mutex> lock(mu);
  size_t& done = raised[kernel];
  if (bytes <= done) return cudaSuccess;
  const cudaError_t e =
      cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, int(bytes));
  if (e == cudaSuccess) done = bytes;
  return e;
}

}  // namespace quad::cuda
