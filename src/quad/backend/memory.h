// Where a forward pass keeps its activations and KV cache: host memory for the ref and cpu
// backends, GPU memory for cuda (whose ops also accept host pointers and stage them per op).
// BackendArray is an owning, grow-only array in one kind of memory; it frees itself without the
// backend object, so it may outlive the backend that chose its kind.
#pragma once

#include <cstddef>
#include <utility>

namespace quad {

enum class MemoryKind { host, cuda };

// Raw allocation and release in `kind` (64-byte aligned host memory; cudaMalloc for cuda, a
// quad::Error naming `what` when it runs out). Zero bytes gives null.
void* memory_allocate(MemoryKind kind, size_t bytes, const char* what);
void memory_free(MemoryKind kind, void* p) noexcept;

template <typename T>
class BackendArray {
 public:
  BackendArray() = default;
  ~BackendArray() { reset(); }
  BackendArray(const BackendArray&) = delete;
  BackendArray& operator=(const BackendArray&) = delete;
  BackendArray(BackendArray&& o) noexcept
      : kind_(o.kind_),
        ptr_(std::exchange(o.ptr_, nullptr)),
        size_(std::exchange(o.size_, 0)),
        capacity_(std::exchange(o.capacity_, 0)) {}
  BackendArray& operator=(BackendArray&& o) noexcept {
    if (this != &o) {
      reset();
      kind_ = o.kind_;
      ptr_ = std::exchange(o.ptr_, nullptr);
      size_ = std::exchange(o.size_, 0);
      capacity_ = std::exchange(o.capacity_, 0);
    }
    return *this;
  }

  // At least `count` elements in `kind`; the contents are not kept when it reallocates.
  T* ensure(MemoryKind kind, size_t count, const char* what = "activations") {
    if (kind != kind_ || count > capacity_) {
      reset();
      kind_ = kind;
      ptr_ = static_cast<T*>(memory_allocate(kind, count * sizeof(T), what));
      capacity_ = count;
    }
    size_ = count;
    return ptr_;
  }
  void reset() noexcept {
    memory_free(kind_, ptr_);
    ptr_ = nullptr;
    size_ = capacity_ = 0;
  }
  T* data() const { return ptr_; }
  size_t size() const { return size_; }
  MemoryKind kind() const { return kind_; }

 private:
  MemoryKind kind_ = MemoryKind::host;
  T* ptr_ = nullptr;
  size_t size_ = 0, capacity_ = 0;
};

}  // namespace quad
