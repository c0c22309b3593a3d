// Programmatic dependent launch (PDL): a kernel launched with launch_pdl may start while the
// kernel before it on the stream still runs, once every block of that one has called
// pdl_allow_next() (or exited). It must call pdl_wait() before touching memory the kernels
// before it write or read (a no-op when it was launched normally). Each decode step is a chain
// of small kernels; this hides the launch latency between them.
#pragma once

#include <cuda_runtime_api.h>

#include <utility>

namespace quad::cuda {

// Waits until the kernels before this one on the stream have finished and their writes are
// visible.
__device__ __forceinline__ void pdl_wait() {
  asm volatile("griddepcontrol.wait;\n" ::: "memory");
}
// Lets the next kernel on the stream (launched with launch_pdl) start now.
__device__ __forceinline__ void pdl_allow_next() {
  asm volatile("griddepcontrol.launch_dependents;\n" ::);
}

// Whether launch_pdl asks for programmatic dependent launch (QUAD_CUDA_PDL=0: plain launches,
// for measuring what it saves).
bool pdl_enabled();

// kernel<<<grid, block, smem, stream>>>(args...) with programmatic stream serialization.
template <typename... Params, typename... Args>
cudaError_t launch_pdl(void (*kernel)(Params...), dim3 grid, dim3 block, size_t smem,
                       cudaStream_t stream, Args&&... args) {
  cudaLaunchConfig_t cfg = {};
  cfg.gridDim = grid;
  cfg.blockDim = block;
  cfg.dynamicSmemBytes = smem;
  cfg.stream = stream;
  cudaLaunchAttribute attr[1];
  attr[0].id = cudaLaunchAttributeProgrammaticStreamSerialization;
  attr[0].val.programmaticStreamSerializationAllowed = 1;
  cfg.attrs = attr;
  cfg.numAttrs = pdl_enabled() ? 1 : 0;
  return cudaLaunchKernelEx(&cfg, kernel, std::forward<Args>(args)...);
}

}  // namespace quad::cuda
