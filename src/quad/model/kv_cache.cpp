#include "quad/model/kv_cache.h"

namespace quad {

KVCache::KVCache(const ModelConfig& config, int cap)
    : capacity(cap), n_kv_heads(config.num_kv_heads), head_dim(config.head_dim) {
  k.assign(config.num_layers, std::vector<float>(size_t(cap) * row()));
  v.assign(config.num_layers, std::vector<float>(size_t(cap) * row()));
}

}  // namespace quad
