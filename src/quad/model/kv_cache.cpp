#include "quad/model/kv_cache.h"

namespace quad {

KVCache::KVCache(const ModelConfig& config, int cap, MemoryKind memory)
    : capacity(cap), n_kv_heads(config.num_kv_heads), head_dim(config.head_dim) {
  k.resize(config.num_layers);
  v.resize(config.num_layers);
  for (int l = 0; l < config.num_layers; ++l) {
    k[l].ensure(memory, size_t(cap) * row(), "the KV cache");
    v[l].ensure(memory, size_t(cap) * row(), "the KV cache");
  }
}

}  // namespace quad
