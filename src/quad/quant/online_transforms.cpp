#include "quad/quant/online_transforms.h"

#include <fmt/format.h>

#include <cmath>

#include <type_traits>
#include <vector>

#include "quad/core/error.h"

namespace quad {

HadamardInput::HadamardInput(int n) : transform_(hadamard::plan(n)) {}

void HadamardInput::apply(float* x, int rows, int width) const {
  check(width == transform_.plan().n, "hadamard", "online Hadamard of size {} applied to width {}",
        transform_.plan().n, width);
  transform_.apply(x, rows);
}

void HadamardInput::apply_backward(float* dy, int rows, int width) const {
  check(width == transform_.plan().n, "hadamard", "online Hadamard of size {} applied to width {}",
        transform_.plan().n, width);
  transform_.apply_transposed(dy, rows);
}

const KronForm* HadamardInput::kron_form() const {
  std::call_once(kron_once_, [this] {
    const hadamard::Plan& p = transform_.plan();
    kron_.outer = p.K;
    kron_.inner = p.pow2;
    const double sa = 1.0 / std::sqrt(double(p.K));
    for (double v : hadamard::factor_matrix(p)) kron_.a.push_back(float(v * sa));
    hadamard::Plan sylvester;  // K = 1: dense() is the normalized Sylvester matrix
    sylvester.n = sylvester.pow2 = p.pow2;
    for (double v : hadamard::dense(sylvester)) kron_.b.push_back(float(v));
  });
  return &kron_;
}

std::string HadamardInput::describe() const {
  return "hadamard " + transform_.plan().describe();
}

HeadMixInput::HeadMixInput(int heads, int head_dim)
    : heads_(heads), head_dim_(head_dim), transform_(hadamard::plan(heads)) {}

namespace {

// For each row of x (rows, heads·hd): transpose to (hd, heads), transform every length-heads
// row, transpose back.
template <typename T>
void head_mix_row(const hadamard::Transform& t, T* row, int heads, int hd, bool transposed) {
  std::vector<T> tmp(size_t(heads) * hd);
  for (int h = 0; h < heads; ++h)
    for (int j = 0; j < hd; ++j) tmp[size_t(j) * heads + h] = row[size_t(h) * hd + j];
  if constexpr (std::is_same_v<T, float>) {
    if (transposed)
      t.apply_transposed(tmp.data(), hd);
    else
      t.apply(tmp.data(), hd);
  } else {
    check(!transposed, "hadamard", "transposed head mix is fp32 only");
    t.apply(tmp.data(), hd);
  }
  for (int h = 0; h < heads; ++h)
    for (int j = 0; j < hd; ++j) row[size_t(h) * hd + j] = tmp[size_t(j) * heads + h];
}

// For each row of x (rows, heads·hd): transpose to (hd, heads), transform every length-heads
// row, transpose back. A single row runs outside any parallel region: an inactive enclosing
// region would make the transform's own region a nested team with a second thread pool, whose
// spinning threads oversubscribe the cores during decode.
template <typename T>
void head_mix(const hadamard::Transform& t, T* x, int rows, int heads, int hd,
              bool transposed = false) {
  if (rows == 1) return head_mix_row(t, x, heads, hd, transposed);
#pragma omp parallel for schedule(static)
  for (int r = 0; r < rows; ++r)
    head_mix_row(t, x + size_t(r) * heads * hd, heads, hd, transposed);
}

}  // namespace

void HeadMixInput::apply(float* x, int rows, int width) const {
  check(width == heads_ * head_dim_, "hadamard", "head mix of {}x{} applied to width {}", heads_,
        head_dim_, width);
  head_mix(transform_, x, rows, heads_, head_dim_);
}

void HeadMixInput::apply_backward(float* dy, int rows, int width) const {
  check(width == heads_ * head_dim_, "hadamard", "head mix of {}x{} applied to width {}", heads_,
        head_dim_, width);
  head_mix(transform_, dy, rows, heads_, head_dim_, true);
}

void HeadMixInput::apply(double* x, int rows) const {
  head_mix(transform_, x, rows, heads_, head_dim_);
}

const KronForm* HeadMixInput::kron_form() const {
  std::call_once(kron_once_, [this] {
    kron_.outer = heads_;
    kron_.inner = head_dim_;
    for (double v : hadamard::dense(transform_.plan())) kron_.a.push_back(float(v));
  });
  return &kron_;
}

std::string HeadMixInput::describe() const {
  return fmt::format("head mix over {} heads ({})", heads_, transform_.plan().describe());
}

}  // namespace quad
