// The CPU backend's guard against two thread pools (backend/cpu/serial_blas.h): blas_split
// covers an output range exactly once in pieces of whole blocks, and SerialBlas leaves the BLAS
// thread count as it found it.
#include "quad/backend/cpu/serial_blas.h"

#include <gtest/gtest.h>

#include <vector>

#include "quad/backend/backend.h"

extern "C" int openblas_get_num_threads(void);

namespace quad {
namespace {

TEST(SerialBlas, SplitBlocksCoverTheRangeInAtMostOnePiecePerThread) {
  for (int total : {1, 15, 16, 17, 100, 1000, 4097})
    for (int threads : {1, 2, 3, 16})
      for (int align : {1, 16}) {
        const int block = blas_split_block(total, align, threads);
        EXPECT_EQ(block % align, 0);
        EXPECT_LE((total + block - 1) / block, threads) << total << " " << threads;
        EXPECT_GE(block * threads, total);
      }
}

TEST(SerialBlas, SplitRunsEveryIndexOnceAndRestoresTheThreadCount) {
  const int before = openblas_get_num_threads();
  for (int total : {1, 40, 1000}) {
    std::vector<int> hits(total, 0);
    blas_split(total, 16, 1e9, [&](int b, int e) {
      for (int i = b; i < e; ++i) {
#pragma omp atomic
        ++hits[i];
      }
    });
    for (int i = 0; i < total; ++i) ASSERT_EQ(hits[i], 1) << total << " at " << i;
  }
  {
    const SerialBlas serial;
    if (blas_uses_own_threads()) {
      EXPECT_EQ(openblas_get_num_threads(), 1);
    }
  }
  EXPECT_EQ(openblas_get_num_threads(), before);
}

}  // namespace
}  // namespace quad
