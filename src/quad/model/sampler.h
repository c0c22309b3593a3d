// Next-token selection: greedy at temperature 0, else softmax(logits / T) restricted to the
// smallest set of tokens whose probability mass reaches top_p (nucleus sampling).
#pragma once

#include <cstdint>
#include <random>

namespace quad {

struct SamplerOptions {
  float temperature = 0.0f;
  float top_p = 1.0f;
  uint64_t seed = 0;
};

class Sampler {
 public:
  explicit Sampler(SamplerOptions options);
  int32_t sample(const float* logits, int vocab);

 private:
  SamplerOptions options_;
  std::mt19937_64 rng_;
};

int32_t argmax(const float* values, int n);

}  // namespace quad
