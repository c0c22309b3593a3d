// Host side of memory.h; the cuda kind is forwarded to the CUDA backend's allocator (or its
// stub, which refuses).
#include <cstdlib>
#include <new>

#include "quad/backend/memory.h"
#include "quad/core/error.h"

namespace quad {

void* cuda_memory_allocate(size_t bytes, const char* what);  // cuda/cuda_memory.cpp or stub
void cuda_memory_free(void* p) noexcept;

void* memory_allocate(MemoryKind kind, size_t bytes, const char* what) {
  if (bytes == 0) return nullptr;
  if (kind == MemoryKind::cuda) return cuda_memory_allocate(bytes, what);
  void* p = std::aligned_alloc(64, (bytes + 63) / 64 * 64);
  check(p != nullptr, "memory", "out of host memory allocating {} MiB for {}", bytes >> 20, what);
  return p;
}

void memory_free(MemoryKind kind, void* p) noexcept {
  if (!p) return;
  if (kind == MemoryKind::cuda)
    cuda_memory_free(p);
  else
    std::free(p);
}

}  // namespace quad
