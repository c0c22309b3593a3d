// Applying QUAD's change of basis and QuaRot's rotations to the weights (QUAD-SPEC §3.6–3.7).
// All products are computed in fp64 and rounded to fp32 once.
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "quad/model/model.h"
#include "quad/quant/hadamard.h"
#include "quad/quant/online_transforms.h"
#include "quad/quant/projection.h"

namespace quad {

// T = E·blockdiag(R_r, R_d) (d × (r+d)) where E is the expansion of `basis` (identity when
// basis is null, r = 0) and R_n are random-sign Hadamard rotations from `seed` (identity blocks
// when rotate is false). T·Tᵀ = I_d.
std::vector<double> residual_transform(const OutlierBasis* basis, int d, bool rotate,
                                       uint64_t seed);

// Re-expresses the residual stream of a norm-folded model through T (d × D): embedding and
// readers (q/k/v/gate/up, lm_head) ← W·T, writers (o/down) ← Tᵀ·W (and their biases); norms
// stay weightless with divisor d. In two parts, for one layer at a time: a decoder layer (norms
// folded), and the embedding + lm_head (which sets the model's residual width to D).
// The fp64 products run on `backend` when it has transform_weight (cuda), else on the host.
void transform_layer(DecoderLayer& layer, int d, const std::vector<double>& t, int D,
                     Backend* backend = nullptr);
void transform_embedding_and_head(Model& model, const std::vector<double>& t, int D,
                                  Backend* backend = nullptr);

// QuaRot's online Hadamards for one layer at a time (the transforms are planned once):
// apply() rotates the weights — W_down ← W_down·H_mᵀ, v_proj rows per kv head ← A_hd·W,
// W_o ← W_o·(H_h ⊗ A_hd)ᵀ — and attaches the online halves; attach() only attaches them.
class OnlineHadamards {
 public:
  explicit OnlineHadamards(const ModelConfig& config);
  void apply(DecoderLayer& layer) const;
  void attach(DecoderLayer& layer) const;

 private:
  std::vector<double> a_;  // A_hd
  hadamard::Transform down_t_;
  HeadMixInput head_mix_;
  std::shared_ptr<HadamardInput> down_input_;
  std::shared_ptr<HeadMixInput> heads_input_;
  int hd_, heads_, kv_heads_;
};

// Attaches the online halves only (for a folder whose weights already carry the offline ones).
void attach_online_transforms(Model& model);

}  // namespace quad
