// Next-token selection: greedy at temperature 0, else softmax(logits / T) restricted to the
// smallest set of tokens whose probability mass reaches top_p (nucleus sampling). The choice
// itself is backend/sampling.h's; the Sampler owns the random stream.
#pragma once

#include <cstdint>
#include <random>

#include "quad/backend/sampling.h"

namespace quad {

class Backend;

struct SamplerOptions {
  float temperature = 0.0f;
  float top_p = 1.0f;
  uint64_t seed = 0;
};

class Sampler {
 public:
  explicit Sampler(SamplerOptions options);
  // From logits in host memory.
  int32_t sample(const float* logits, int vocab);
  // From logits in `backend`'s memory, chosen there (Backend::sample_token): the same token for
  // the same logits and seed.
  int32_t sample(Backend& backend, const float* logits, int vocab);

 private:
  double draw();  // the uniform draw of one step; none at temperature 0

  SamplerOptions options_;
  std::mt19937_64 rng_;
};

}  // namespace quad
