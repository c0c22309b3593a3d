// An owning device allocation that only grows (scratch for staged activations).
#pragma once

#include <cstddef>

namespace quad::cuda {

class DeviceBuffer {
 public:
  DeviceBuffer() = default;
  ~DeviceBuffer();
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;
  DeviceBuffer(DeviceBuffer&& other) noexcept;
  DeviceBuffer& operator=(DeviceBuffer&& other) noexcept;

  // At least `bytes` of device memory (contents not kept when it grows).
  void* ensure(size_t bytes);
  void* data() const { return ptr_; }
  size_t capacity() const { return bytes_; }
  void reset();

 private:
  void* ptr_ = nullptr;
  size_t bytes_ = 0;
};

// Whether p lies in an allocation made through memory.h's cuda kind (a lookup in a registry of
// those allocations, much cheaper than asking the driver).
bool owns_device_memory(const void* p);

// cudaMalloc with a clear error: "[cuda] out of GPU memory allocating N MiB for WHAT (free F MiB
// of T MiB)".
void* device_alloc(size_t bytes, const char* what);
[[noreturn]] void fail_out_of_memory(size_t bytes, const char* what);

}  // namespace quad::cuda
