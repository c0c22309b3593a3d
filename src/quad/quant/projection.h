// QUAD's outlier subspace (QUAD-SPEC §3.4–3.5): the Gram matrix of the un-normalized residual
// stream at both norm inputs of every layer, summed into one global d×d matrix (fp64), its
// top-r eigenvectors U_r, and the expansion E = [U_r | I − U_r U_rᵀ] (d × (r+d)).
#pragma once

#include <cstdint>
#include <functional>
#include <vector>

#include "quad/backend/backend.h"
#include "quad/model/model.h"

namespace quad {

// Σ over calibration windows (all of one length), layers and both norms of XᵀX (d×d, fp64,
// row-major). Layer by layer: `layer(l)` gives decoder layer l (norms folded), which is held in
// model.layers[l] only while every window passes through it; the model needs its embedding.
std::vector<double> residual_gram(Model& model, const std::function<DecoderLayer(int)>& layer,
                                  Backend& backend,
                                  const std::vector<std::vector<int32_t>>& windows,
                                  bool progress = true);

struct OutlierBasis {
  int d = 0, r = 0;
  std::vector<double> u;            // U_r (d × r), columns by decreasing eigenvalue
  std::vector<double> eigenvalues;  // all d, decreasing
};

// Symmetric eigendecomposition (LAPACK dsyevd); each eigenvector's sign is fixed so that its
// largest-magnitude entry is positive (deterministic output).
OutlierBasis top_eigenvectors(std::vector<double> gram, int d, int r);

// E = [U_r | I − U_r U_rᵀ], d × (r+d), row-major.
std::vector<double> expansion_matrix(const OutlierBasis& basis);

}  // namespace quad
