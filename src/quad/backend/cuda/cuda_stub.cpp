// Built instead of the CUDA backend when QUAD_CUDA is OFF (no nvcc at configure time).
#include "quad/backend/backend.h"
#include "quad/core/error.h"

namespace quad {

std::unique_ptr<Backend> make_cuda_backend() {
  fail("cuda",
       "quad was built without CUDA (reconfigure with -DQUAD_CUDA=ON on a machine with nvcc); "
       "run with --device cpu");
}

bool cuda_compiled() {
  return false;
}

int cuda_device_count() {
  return 0;
}

void* cuda_memory_allocate(size_t, const char*) {
  fail("cuda", "quad was built without CUDA: no GPU memory to allocate");
}

void cuda_memory_free(void*) noexcept {}

}  // namespace quad
