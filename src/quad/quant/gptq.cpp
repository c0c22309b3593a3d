// GPTQ with fixed per-row scales, no groups, no act-order (QUAD-SPEC §4.2; Frantar et al. 2022).
#include <cblas.h>
#include <fmt/format.h>
#include <lapacke.h>

#include <algorithm>
#include <cmath>
#include <numeric>

#include "quad/backend/backend.h"
#include "quad/core/error.h"
#include "quad/quant/weight_quant.h"

namespace quad {
namespace {

constexpr int kDampRetries = 3;  // after the first try, retry with 10x, 100x, 1000x the damping

// Dead inputs (H_ii == 0) never reach the layer: their diagonal entry becomes 1 so H stays
// invertible, and their weights 0 so they quantize to 0 and push no error anywhere. Applied to
// H's diagonal diag (cols) and W (rows, cols); returns the dead columns.
template <typename T>
std::vector<int> handle_dead_columns(std::vector<double>& diag, std::vector<T>& W, int rows,
                                     int cols) {
  std::vector<int> dead;
  for (int i = 0; i < cols; ++i) {
    if (diag[i] != 0) continue;
    diag[i] = 1;
    for (int r = 0; r < rows; ++r) W[size_t(r) * cols + i] = 0;
    dead.push_back(i);
  }
  return dead;
}

// LAPACK is called column-major with 'L' on our row-major buffers: the column-major lower
// triangle is the row-major upper one, and this avoids LAPACKE's transposing copies. dpotrf and
// dpotri touch only that triangle, so the row-major lower triangle keeps the original H (used to
// undo a failed try) and dpotri's half-filled inverse needs no symmetrizing.

// Replaces the upper triangle of A (n × n, symmetric PD) by the upper Cholesky factor U of A⁻¹
// (A⁻¹ = UᵀU); returns false if a factorization hits a non-positive pivot.
bool upper_cholesky_of_inverse(std::vector<double>& A, int n) {
  return LAPACKE_dpotrf(LAPACK_COL_MAJOR, 'L', n, A.data(), n) == 0 &&
         LAPACKE_dpotri(LAPACK_COL_MAJOR, 'L', n, A.data(), n) == 0 &&
         LAPACKE_dpotrf(LAPACK_COL_MAJOR, 'L', n, A.data(), n) == 0;
}

// Upper triangle of A := H + damp·I, from the untouched lower triangle and the saved diagonal.
void load_damped_upper(std::vector<double>& A, const std::vector<double>& diag, int n,
                       double damp) {
  for (int i = 0; i < n; ++i) {
    A[size_t(i) * n + i] = diag[i] + damp;
    for (int j = i + 1; j < n; ++j) A[size_t(i) * n + j] = A[size_t(j) * n + i];
  }
}

// Calls try_damp(λ) with λ = percdamp·mean(diag H), grown 10x per retry (from 1e-4·mean when
// percdamp is 0) while it reports that H + λI is not positive definite; throws when no damping
// works.
template <typename TryDamp>
void retry_with_damping(const std::vector<double>& diag, double percdamp, TryDamp&& try_damp) {
  const int n = int(diag.size());
  for (int i = 0; i < n; ++i) {
    // No damping can fix this, and a Gram matrix never has it: report it as such.
    if (diag[i] < 0) {
      fail("gptq", "Hessian diagonal entry ({}, {}) is {} < 0; H must be (2/n)·XᵀX", i, i, diag[i]);
    }
  }
  const double mean_diag = std::accumulate(diag.begin(), diag.end(), 0.0) / n;
  double damp = percdamp * mean_diag;
  for (int attempt = 0;; ++attempt) {
    if (try_damp(damp)) return;
    if (attempt == kDampRetries) {
      fail("gptq",
           "Hessian ({}x{}, mean diagonal {:.3g}) is not positive definite even with damping "
           "{:.3g} ({} tries, 10x more each); the calibration activations are degenerate, or "
           "percdamp is too small",
           n, n, mean_diag, damp, kDampRetries + 1);
    }
    const double next = damp > 0 ? damp * 10 : 1e-4 * mean_diag;  // percdamp 0: start small
    fmt::print(stderr,
               "quad: [gptq] warning: Hessian not positive definite with damping {:.3g}; "
               "retrying with {:.3g}\n",
               damp, next);
    damp = next;
  }
}

std::vector<double> diagonal(const std::vector<double>& H, int n) {
  std::vector<double> diag(n);
  for (int i = 0; i < n; ++i) diag[i] = H[size_t(i) * n + i];
  return diag;
}

// Turns H (n × n) in place into the upper Cholesky factor U of (H + λI)⁻¹, zeros below the
// diagonal (retry_with_damping chooses λ).
void damped_inverse_factor(std::vector<double>& H, int n, double percdamp) {
  const std::vector<double> diag = diagonal(H, n);
  retry_with_damping(diag, percdamp, [&](double damp) {
    load_damped_upper(H, diag, n, damp);
    return upper_cholesky_of_inverse(H, n);
  });
  for (int i = 1; i < n; ++i) std::fill_n(H.data() + size_t(i) * n, i, 0.0);
}

// H whole, or (H empty) only its diagonal.
void check_inputs(const float* w, int rows, int cols, const std::vector<double>& H,
                  const std::vector<float>& scales, const GptqOptions& o,
                  const std::vector<double>* diag = nullptr) {
  check(rows >= 0 && cols >= 0, "gptq", "bad weight shape {}x{}", rows, cols);
  check(o.bits >= 2 && o.bits <= 8, "gptq", "bits must be in 2..8, got {}", o.bits);
  check(o.block_size >= 1, "gptq", "block_size must be >= 1, got {}", o.block_size);
  check(std::isfinite(o.percdamp) && o.percdamp >= 0, "gptq",
        "percdamp must be finite and >= 0, got {}", o.percdamp);
  if (!diag) {
    check(H.size() == size_t(cols) * cols, "gptq", "Hessian has {} entries, expected {}x{}",
          H.size(), cols, cols);
  }
  check(scales.size() == size_t(rows), "gptq", "{} scales for {} rows", scales.size(), rows);
  for (int r = 0; r < rows; ++r) {
    check(std::isfinite(scales[r]) && scales[r] > 0, "gptq",
          "scale of row {} is {} (must be positive and finite)", r, scales[r]);
  }
  for (size_t k = 0; k < H.size(); ++k) {
    if (!std::isfinite(H[k])) {
      fail("gptq", "Hessian entry ({}, {}) is {} (NaN/inf in the calibration activations?)",
           k / cols, k % cols, H[k]);
    }
  }
  for (size_t i = 0; diag && i < diag->size(); ++i) {
    if (!std::isfinite((*diag)[i])) {
      fail("gptq", "Hessian entry ({}, {}) is {} (NaN/inf in the calibration activations?)", i, i,
           (*diag)[i]);
    }
  }
  for (size_t k = 0; k < size_t(rows) * cols; ++k) {
    if (!std::isfinite(w[k])) fail("gptq", "weight ({}, {}) is {}", k / cols, k % cols, w[k]);
  }
}

// GPTQ on a backend that has it, H (host or backend memory) left as it is: dead columns are
// zeroed in a float copy of w and count as a unit diagonal (Backend::gptq does the same).
std::vector<int8_t> gptq_on_backend(const float* w, int rows, int cols, const double* h,
                                    std::vector<double> diag, const std::vector<float>& scales,
                                    const GptqOptions& o, Backend& backend) {
  std::vector<int8_t> codes(size_t(rows) * cols);
  if (rows == 0 || cols == 0) return codes;
  std::vector<float> wf(w, w + size_t(rows) * cols);  // the backend widens it to fp64 itself
  handle_dead_columns(diag, wf, rows, cols);
  retry_with_damping(diag, o.percdamp, [&](double damp) {
    return backend.gptq(wf.data(), rows, cols, h, damp, scales.data(), o.bits, o.block_size,
                        codes.data());
  });
  return codes;
}

}  // namespace

std::vector<int8_t> gptq_quantize(const float* w, int rows, int cols, const double* hessian,
                                  const std::vector<double>& diag, const std::vector<float>& scales,
                                  const GptqOptions& o, Backend& backend) {
  check(diag.size() == size_t(cols), "gptq", "Hessian diagonal has {} entries, expected {}",
        diag.size(), cols);
  if (!backend.gptq_supported(o.block_size)) {
    std::vector<double> h(size_t(cols) * cols);
    backend.copy(h.data(), hessian, sizeof(double) * h.size());
    return gptq_quantize(w, rows, cols, std::move(h), scales, o, &backend);
  }
  // The whole of H is not read on the host: its diagonal catches non-finite activations.
  check_inputs(w, rows, cols, std::vector<double>(), scales, o, &diag);
  return gptq_on_backend(w, rows, cols, hessian, diag, scales, o, backend);
}

std::vector<int8_t> gptq_quantize(const float* w, int rows, int cols, std::vector<double> hessian,
                                  const std::vector<float>& scales, const GptqOptions& o,
                                  Backend* backend) {
  check_inputs(w, rows, cols, hessian, scales, o);
  if (backend && backend->gptq_supported(o.block_size))
    return gptq_on_backend(w, rows, cols, hessian.data(), diagonal(hessian, cols), scales, o,
                           *backend);
  std::vector<int8_t> codes(size_t(rows) * cols);
  if (rows == 0 || cols == 0) return codes;
  const int qmin = quant_min(o.bits), qmax = quant_max(o.bits);

  std::vector<double> W(w, w + size_t(rows) * cols);  // (rows, cols), updated in place
  std::vector<double> diag = diagonal(hessian, cols);
  for (int i : handle_dead_columns(diag, W, rows, cols)) hessian[size_t(i) * cols + i] = 1;
  damped_inverse_factor(hessian, cols, o.percdamp);
  const std::vector<double> U = std::move(hessian);  // (cols, cols), upper triangular

  const int bs = o.block_size;
  std::vector<double> err(size_t(rows) * std::min(bs, cols));  // (rows, block width)
  for (int b0 = 0; b0 < cols; b0 += bs) {
    const int b1 = std::min(b0 + bs, cols), width = b1 - b0;
    // Inside a block each row evolves independently: quantize column i, then spread its scaled
    // error over the block's later columns through row i of U.
#pragma omp parallel for schedule(static)
    for (int r = 0; r < rows; ++r) {
      double* wr = W.data() + size_t(r) * cols;
      double* er = err.data() + size_t(r) * width;
      const double s = scales[r];
      for (int i = b0; i < b1; ++i) {
        const int q = quantize_code(wr[i], s, qmin, qmax);
        codes[size_t(r) * cols + i] = int8_t(q);
        const double* ui = U.data() + size_t(i) * cols;
        const double e = (wr[i] - q * s) / ui[i];
        for (int j = i + 1; j < b1; ++j) wr[j] -= e * ui[j];
        er[i - b0] = e;
      }
    }
    // Lazy batch update of every later column: W[:, b1:] -= Err · U[b0:b1, b1:].
    if (b1 < cols) {
      cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, rows, cols - b1, width, -1.0,
                  err.data(), width, U.data() + size_t(b0) * cols + b1, cols, 1.0, W.data() + b1,
                  cols);
    }
  }
  return codes;
}

}  // namespace quad
