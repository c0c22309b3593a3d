// Per-layer key/value cache: (capacity, n_kv_heads, head_dim) fp32 per layer, in the memory of
// the backend that fills it.
#pragma once

#include <vector>

#include "quad/backend/memory.h"
#include "quad/model/config.h"

namespace quad {

struct KVCache {
  int capacity = 0;  // positions
  int n_kv_heads = 0, head_dim = 0;
  std::vector<BackendArray<float>> k, v;  // [layer] -> (capacity, n_kv_heads, head_dim)

  KVCache() = default;
  KVCache(const ModelConfig& config, int capacity, MemoryKind memory = MemoryKind::host);
  size_t row() const { return size_t(n_kv_heads) * head_dim; }
  float* k_at(int layer, int pos) { return k[layer].data() + size_t(pos) * row(); }
  float* v_at(int layer, int pos) { return v[layer].data() + size_t(pos) * row(); }
};

}  // namespace quad
