// QuaRot's first steps (QUAD-SPEC §3.3): fold every RMSNorm weight into the linears that read
// the normalized stream, leaving weightless norms (divisor d), and optionally center the
// embedding rows (a QuaRot legacy step, exact only for LayerNorm models).
#pragma once

#include "quad/model/model.h"

namespace quad {

// q/k/v ← W·diag(γ_attn), gate/up ← W·diag(γ_mlp), lm_head ← W·diag(γ_final); norms become
// weightless. The model's logits are unchanged up to fp32 rounding. lm_head must already be
// untied (Model::load always gives it its own copy).
void fold_norms(Model& model);
// The same for one decoder layer, and for the final norm alone.
void fold_layer_norms(DecoderLayer& layer);
void fold_final_norm(Model& model);

// Each embedding row e ← e − mean(e).
void center_embeddings(Model& model);

}  // namespace quad
