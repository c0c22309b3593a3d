// Helpers of the CUDA tests: skipping without a GPU, the normalized error.
#pragma once

#include <gtest/gtest.h>

#include <cstddef>
#include <vector>

#include "quad/backend/backend.h"

// Skips the current test, with the reason, when the CUDA backend cannot run here.
#define QUAD_REQUIRE_GPU()                                                     \
  if (!::quad::cuda_compiled()) GTEST_SKIP() << "quad was built without CUDA"; \
  if (::quad::cuda_device_count() == 0) GTEST_SKIP() << "no CUDA GPU on this machine"

namespace quad::test {

// ‖a − b‖² / ‖b‖² (NaN if a holds a NaN, so a poisoned, unwritten output fails).
inline double nmse(const std::vector<float>& a, const std::vector<float>& b) {
  double num = 0, den = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    num += double(a[i] - b[i]) * (a[i] - b[i]);
    den += double(b[i]) * b[i];
  }
  return den > 0 ? num / den : num;
}

}  // namespace quad::test
