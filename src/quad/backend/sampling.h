// The next-token choice from one row of logits, given the sampler's uniform draw: greedy at
// temperature 0, else softmax(logits / T) restricted to the smallest set of most probable
// tokens whose mass reaches top_p (nucleus sampling). The host implementation; Backend::
// sample_token runs it where the logits are (the cuda backend mirrors it on the GPU).
#pragma once

#include <cstdint>

namespace quad {

// First maximum (as torch's argmax).
int32_t argmax(const float* values, int n);

// canonical ∈ [0, 1) is the draw (Sampler makes it; unused at temperature 0). Tokens are ranked
// by probability, ties by index; the token returned is the first in that order whose
// cumulative probability reaches canonical × (the kept mass).
int32_t sample_from_logits(const float* logits, int vocab, float temperature, float top_p,
                           double canonical);

}  // namespace quad
