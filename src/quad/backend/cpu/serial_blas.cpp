#include "quad/backend/cpu/serial_blas.h"

#include <omp.h>

extern "C" {
int openblas_get_parallel(void);  // 0 sequential, 1 pthreads, 2 OpenMP
int openblas_get_num_threads(void);
void openblas_set_num_threads(int);
}

namespace quad {

bool blas_uses_own_threads() {
  static const bool pthreads = openblas_get_parallel() == 1;
  return pthreads;
}

SerialBlas::SerialBlas() {
  if (!blas_uses_own_threads() || omp_in_parallel()) return;
  const int threads = openblas_get_num_threads();
  if (threads <= 1) return;
  openblas_set_num_threads(1);
  restore_ = threads;
}

SerialBlas::~SerialBlas() {
  if (restore_ > 0) openblas_set_num_threads(restore_);
}

}  // namespace quad
