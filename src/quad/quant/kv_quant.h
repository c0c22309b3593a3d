// Simulated int4 KV cache (QUAD-SPEC §4.6): for every (token, head) row of keys (after RoPE)
// and values: rotate by the normalized Hadamard of size head_dim, fake-quantize symmetric per
// row in chunks of at most 128 with clip 0.95, rotate back.
#pragma once

#include <memory>

#include "quad/model/layers.h"

namespace quad {

std::shared_ptr<const InputTransform> make_kv_quantizer(int head_dim, int bits, float clip);

}  // namespace quad
