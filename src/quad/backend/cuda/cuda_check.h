// Checks of CUDA runtime and cuBLAS calls: a failure throws quad::Error
// ("[cuda] cudaMalloc(&p, bytes) failed: out of memory (cudaErrorMemoryAllocation)").
#pragma once

#include <cublas_v2.h>
#include <cuda_runtime_api.h>

#include "quad/core/error.h"

namespace quad::cuda {

[[noreturn]] inline void fail_cuda(const char* call, cudaError_t err) {
  fail("cuda", "{} failed: {} ({})", call, cudaGetErrorString(err), cudaGetErrorName(err));
}

[[noreturn]] inline void fail_cublas(const char* call, cublasStatus_t status) {
  fail("cuda", "{} failed: {} ({})", call, cublasGetStatusString(status),
       cublasGetStatusName(status));
}

}  // namespace quad::cuda

#define QUAD_CUDA_CHECK(call)                                           \
  do {                                                                  \
    if (const cudaError_t quad_err_ = (call); quad_err_ != cudaSuccess) \
      ::quad::cuda::fail_cuda(#call, quad_err_);                        \
  } while (0)

#define QUAD_CUBLAS_CHECK(call)                                                    \
  do {                                                                             \
    if (const cublasStatus_t quad_st_ = (call); quad_st_ != CUBLAS_STATUS_SUCCESS) \
      ::quad::cuda::fail_cublas(#call, quad_st_);                                  \
  } while (0)
