#include "quad/model/sampler.h"

#include <cmath>
#include <limits>

#include "quad/backend/backend.h"
#include "quad/core/error.h"

namespace quad {

Sampler::Sampler(SamplerOptions options) : options_(options), rng_(options.seed) {
  check(options.temperature >= 0 && std::isfinite(options.temperature), "sampler",
        "--temp must be a finite number >= 0 (got {})", options.temperature);
  check(options.top_p > 0 && options.top_p <= 1, "sampler", "--top-p must be in (0, 1] (got {})",
        options.top_p);
}

// uniform_real_distribution(0, mass) draws generate_canonical · mass: drawing the canonical
// value here and scaling it where the mass is known keeps the stream of earlier versions.
double Sampler::draw() {
  if (options_.temperature == 0) return 0.0;
  return std::generate_canonical<double, std::numeric_limits<double>::digits>(rng_);
}

int32_t Sampler::sample(const float* logits, int vocab) {
  const double c = draw();
  return sample_from_logits(logits, vocab, options_.temperature, options_.top_p, c);
}

int32_t Sampler::sample(Backend& backend, const float* logits, int vocab) {
  const double c = draw();
  return backend.sample_token(logits, vocab, options_.temperature, options_.top_p, c);
}

}  // namespace quad
