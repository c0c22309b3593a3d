#include "quad/backend/cuda/device_buffer.h"

#include <cstdint>
#include <map>
#include <mutex>
#include <utility>

#include "quad/backend/cuda/cuda_check.h"

namespace quad::cuda {

void fail_out_of_memory(size_t bytes, const char* what) {
  size_t free_b = 0, total_b = 0;
  (void)cudaMemGetInfo(&free_b, &total_b);
  fail("cuda", "out of GPU memory allocating {} MiB for {} (free {} MiB of {} MiB)", bytes >> 20,
       what, free_b >> 20, total_b >> 20);
}

void* device_alloc(size_t bytes, const char* what) {
  void* p = nullptr;
  const cudaError_t err = cudaMalloc(&p, bytes);
  if (err == cudaErrorMemoryAllocation) {
    (void)cudaGetLastError();  // clear it, so the next call does not report it again
    fail_out_of_memory(bytes, what);
  }
  if (err != cudaSuccess) fail_cuda("cudaMalloc", err);
  return p;
}

DeviceBuffer::~DeviceBuffer() {
  reset();
}

DeviceBuffer::DeviceBuffer(DeviceBuffer&& other) noexcept
    : ptr_(std::exchange(other.ptr_, nullptr)), bytes_(std::exchange(other.bytes_, 0)) {}

DeviceBuffer& DeviceBuffer::operator=(DeviceBuffer&& other) noexcept {
  if (this != &other) {
    reset();
    ptr_ = std::exchange(other.ptr_, nullptr);
    bytes_ = std::exchange(other.bytes_, 0);
  }
  return *this;
}

void* DeviceBuffer::ensure(size_t bytes) {
  if (bytes <= bytes_) return ptr_;
  reset();
  const size_t grown = bytes + bytes / 4;  // some headroom: fewer reallocations as n grows
  ptr_ = device_alloc(grown, "scratch");
  bytes_ = grown;
  return ptr_;
}

void DeviceBuffer::reset() {
  if (ptr_) (void)cudaFree(ptr_);  // a destructor path: nothing useful to do on failure
  ptr_ = nullptr;
  bytes_ = 0;
}

}  // namespace quad::cuda

namespace {

// Live allocations of memory.h's cuda kind: start address → size.
std::mutex registry_mutex;
std::map<uintptr_t, size_t>& registry() {
  static std::map<uintptr_t, size_t> r;
  return r;
}

}  // namespace

namespace quad::cuda {

bool owns_device_memory(const void* p) {
  const auto a = reinterpret_cast<uintptr_t>(p);
  std::lock_guard<std::mutex> lock(registry_mutex);
  auto it = registry().upper_bound(a);
  if (it == registry().begin()) return false;
  --it;
  return a < it->first + it->second;
}

}  // namespace quad::cuda

namespace quad {

// memory.h's cuda kind.
void* cuda_memory_allocate(size_t bytes, const char* what) {
  void* p = cuda::device_alloc(bytes, what);
  std::lock_guard<std::mutex> lock(registry_mutex);
  registry()[reinterpret_cast<uintptr_t>(p)] = bytes;
  return p;
}

void cuda_memory_free(void* p) noexcept {
  {
    std::lock_guard<std::mutex> lock(registry_mutex);
    registry().erase(reinterpret_cast<uintptr_t>(p));
  }
  (void)cudaFree(p);  // a destructor path: nothing useful to do on failure
}

}  // namespace quad
