// BLAS calls made from inside an OpenMP parallel region must run single-threaded. OpenBLAS's
// OpenMP build does that by itself; its pthreads build (the default libopenblas0-pthread of
// Debian and Ubuntu) does not: every thread of the region would run each call on the whole
// BLAS thread pool as well, and on a 16-core machine a small model's perplexity took 28 s
// instead of 1. A SerialBlas alive around such a region sets the pthreads build to one thread
// and restores the count afterwards; with any other build it does nothing. The large BLAS
// calls of the ops (blas_split) then run on the OpenMP threads instead of OpenBLAS's own, whose
// workers would otherwise spin between calls while the next OpenMP region runs.
#pragma once

#include <omp.h>

#include <algorithm>

namespace quad {

class SerialBlas {
 public:
  SerialBlas();
  ~SerialBlas();
  SerialBlas(const SerialBlas&) = delete;
  SerialBlas& operator=(const SerialBlas&) = delete;

 private:
  int restore_ = 0;  // BLAS threads to restore, 0 when nothing was changed
};

// Whether the OpenBLAS linked in runs its own pthreads pool (openblas_get_parallel() == 1).
bool blas_uses_own_threads();

// The block length that splits [0, total) into at most `threads` pieces, a multiple of align.
inline int blas_split_block(int total, int align, int threads) {
  const int per = (total + threads - 1) / threads;
  return std::max(align, (per + align - 1) / align * align);
}

// Runs f(begin, end) on the whole range [0, total) of a BLAS call's output dimension: in one
// piece when BLAS threads itself through OpenMP (or the call is small), else split in blocks of
// `align` over the OpenMP threads with BLAS serial.
template <typename F>
void blas_split(int total, int align, double flops, F&& f) {
  const int threads = omp_get_max_threads();
  if (!blas_uses_own_threads() || threads <= 1 || omp_in_parallel() || total <= align) {
    f(0, total);
    return;
  }
  const SerialBlas serial;
  const int block = blas_split_block(total, align, threads);
  const int blocks = (total + block - 1) / block;
#pragma omp parallel for schedule(static) if (flops > 1e6)
  for (int b = 0; b < blocks; ++b) f(b * block, std::min(total, (b + 1) * block));
}

}  // namespace quad
