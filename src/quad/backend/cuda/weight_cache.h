// Device copies of weights, uploaded once. Phase-1 CUDA backend: the model hands the backend
// host pointers, and the large read-only operands of each op (linear weights, integer weight
// codes, scales, norm weights, biases, the RoPE table) are cached on the device keyed by
// (host pointer, byte size).
//
// Assumption: a weight buffer does not change while it is alive. Model keeps its weights in
// std::vectors that neither move nor change during a forward pass or a run of `ppl`, `eval`,
// `generate` or `bench`. Reuse is checked by a fingerprint of the contents (all bytes of buffers
// up to 16 KiB, 256 evenly spaced 8-byte samples plus the last 8 bytes of larger ones), so a
// buffer freed and another allocated at the same address, or a matrix rewritten as a whole (the
// quantization pipeline replaces fp weights with their dequantized codes), is uploaded again.
// A change that touches only unsampled elements of a large buffer is NOT seen: code that edits
// weights in place between calls must use a new CudaBackend (or another backend).
#pragma once

#include <cuda_runtime_api.h>

#include <array>
#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <map>
#include <utility>

namespace quad::cuda {

class WeightCache {
 public:
  WeightCache() = default;
  ~WeightCache();
  WeightCache(const WeightCache&) = delete;
  WeightCache& operator=(const WeightCache&) = delete;

  // Marks the start of a backend op: buffers returned during the op stay valid until its end,
  // even if memory runs short and older entries are evicted.
  void begin_op() { ++op_; }
  // The device copy of [host, host + bytes) (null for a null host pointer or zero bytes).
  const void* get(const void* host, size_t bytes, cudaStream_t stream);
  template <typename T>
  const T* get(const T* host, size_t count, cudaStream_t stream) {
    return static_cast<const T*>(get(static_cast<const void*>(host), count * sizeof(T), stream));
  }
  // Host buffers (pointer, bytes), up to kMaxParts of them.
  using Part = std::pair<const void*, size_t>;
  static constexpr size_t kMaxParts = 3;
  // One device buffer holding the parts one after another (e.g. the q, k and v weights as one
  // matrix for one GEMM), cached like a single buffer and fingerprinted part by part.
  const void* get_joined(std::initializer_list<Part> parts, cudaStream_t stream);
  // From now on a cached buffer is trusted unchanged without its fingerprint (the caller
  // promised frozen weights: Backend::assume_weights_frozen). The sampled fingerprint costs a
  // few hundred cache misses per weight per op, which a decode step cannot afford.
  void freeze() { frozen_ = true; }
  void clear();
  size_t bytes() const { return total_bytes_; }

 private:
  struct Entry {
    void* device = nullptr;
    size_t bytes = 0;
    uint64_t fingerprint = 0;
    uint64_t last_op = 0;
  };
  // Frees entries not used in the current op; false if there were none.
  bool evict_unused();

  using Key = std::array<Part, kMaxParts>;  // unused parts are (null, 0)
  const void* get(const Key& key, cudaStream_t stream);

  std::map<Key, Entry> entries_;
  size_t total_bytes_ = 0;
  uint64_t op_ = 0;
  bool frozen_ = false;
};

// The content fingerprint described above (exposed for tests).
uint64_t weight_fingerprint(const void* host, size_t bytes);

}  // namespace quad::cuda
