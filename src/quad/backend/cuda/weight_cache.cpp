#include "quad/backend/cuda/weight_cache.h"

#include <cstring>

#include "quad/backend/cuda/cuda_check.h"
#include "quad/backend/cuda/device_buffer.h"
#include "quad/core/error.h"

namespace quad::cuda {

namespace {

constexpr size_t kFullHashBytes = 16 << 10;
constexpr size_t kSamples = 256;

uint64_t fnv1a(uint64_t h, const unsigned char* p, size_t n) {
  for (size_t i = 0; i < n; ++i) h = (h ^ p[i]) * 1099511628211ull;
  return h;
}

}  // namespace

uint64_t weight_fingerprint(const void* host, size_t bytes) {
  const auto* p = static_cast<const unsigned char*>(host);
  uint64_t h = 14695981039346656037ull;
  if (bytes <= kFullHashBytes) return fnv1a(h, p, bytes);
  const size_t span = bytes - 8;
  for (size_t s = 0; s < kSamples; ++s) h = fnv1a(h, p + span / (kSamples - 1) * s, 8);
  return fnv1a(h, p + span, 8);
}

WeightCache::~WeightCache() {
  clear();
}

void WeightCache::clear() {
  for (auto& [key, e] : entries_) (void)cudaFree(e.device);
  entries_.clear();
  total_bytes_ = 0;
}

bool WeightCache::evict_unused() {
  bool any = false;
  for (auto it = entries_.begin(); it != entries_.end();) {
    if (it->second.last_op != op_) {
      (void)cudaFree(it->second.device);
      total_bytes_ -= it->second.bytes;
      it = entries_.erase(it);
      any = true;
    } else {
      ++it;
    }
  }
  return any;
}

const void* WeightCache::get(const void* host, size_t bytes, cudaStream_t stream) {
  if (!host || bytes == 0) return nullptr;
  return get(Key{Part{host, bytes}}, stream);
}

const void* WeightCache::get_joined(std::initializer_list<Part> parts, cudaStream_t stream) {
  check(parts.size() >= 1 && parts.size() <= kMaxParts, "cuda", "get_joined: {} parts (1..{})",
        parts.size(), kMaxParts);
  Key key{};
  size_t i = 0;
  for (const Part& p : parts) {
    check(p.first != nullptr && p.second > 0, "cuda", "get_joined: an empty part");
    key[i++] = p;
  }
  return get(key, stream);
}

const void* WeightCache::get(const Key& key, cudaStream_t stream) {
  auto [it, inserted] = entries_.try_emplace(key);
  Entry& e = it->second;
  if (!inserted && frozen_) {
    e.last_op = op_;
    return e.device;
  }
  size_t bytes = 0;
  uint64_t fp = 0;
  for (const Part& p : key)
    if (p.first) {
      bytes += p.second;
      fp = fp * 1099511628211ull ^ weight_fingerprint(p.first, p.second);
    }
  if (inserted) {
    e.last_op = op_;  // never evicted by its own allocation
    void* p = nullptr;
    cudaError_t err = cudaMalloc(&p, bytes);
    if (err == cudaErrorMemoryAllocation) {  // make room: drop what this op does not use
      (void)cudaGetLastError();
      if (evict_unused()) {
        err = cudaMalloc(&p, bytes);
        if (err == cudaErrorMemoryAllocation) (void)cudaGetLastError();
      }
    }
    if (err != cudaSuccess) {
      entries_.erase(it);
      if (err == cudaErrorMemoryAllocation) fail_out_of_memory(bytes, "weights");
      fail_cuda("cudaMalloc (weights)", err);
    }
    e.device = p;
    e.bytes = bytes;
    total_bytes_ += bytes;
  } else if (e.fingerprint == fp) {
    e.last_op = op_;
    return e.device;
  }
  size_t at = 0;
  for (const Part& p : key)
    if (p.first) {
      QUAD_CUDA_CHECK(cudaMemcpyAsync(static_cast<char*>(e.device) + at, p.first, p.second,
                                      cudaMemcpyHostToDevice, stream));
      at += p.second;
    }
  e.fingerprint = fp;
  e.last_op = op_;
  return e.device;
}

}  // namespace quad::cuda
