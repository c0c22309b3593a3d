// Applying QUAD's change of basis and QuaRot's rotations to the weights (QUAD-SPEC §3.6–3.7).
// All products are computed in fp64 and rounded to fp32 once.
#pragma once

#include <cstdint>
#include <vector>

#include "quad/model/model.h"
#include "quad/quant/projection.h"

namespace quad {

// T = E·blockdiag(R_r, R_d) (d × (r+d)) where E is the expansion of `basis` (identity when
// basis is null, r = 0) and R_n are random-sign Hadamard rotations from `seed` (identity blocks
// when rotate is false). T·Tᵀ = I_d.
std::vector<double> residual_transform(const OutlierBasis* basis, int d, bool rotate,
                                       uint64_t seed);

// Re-expresses the residual stream of a norm-folded model through T (d × D): embedding and
// readers (q/k/v/gate/up, lm_head) ← W·T, writers (o/down) ← Tᵀ·W (and their biases). The
// model's residual width becomes D; norms stay weightless with divisor d.
void apply_residual_transform(Model& model, const std::vector<double>& t, int D);

// QuaRot's online Hadamards: W_down ← W_down·H_mᵀ, v_proj rows per kv head ← A_hd·W, and
// W_o ← W_o·(H_h ⊗ A_hd)ᵀ, then attaches the online halves (attach_online_transforms).
void apply_online_hadamards(Model& model);

// Attaches the online halves only (for a folder whose weights already carry the offline ones).
void attach_online_transforms(Model& model);

}  // namespace quad
