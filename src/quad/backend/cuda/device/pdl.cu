#include <cstdlib>
#include <cstring>

#include "pdl.cuh"

namespace quad::cuda {

bool pdl_enabled() {
  static const bool enabled = [] {
    const char* v = std::getenv("QUAD_CUDA_PDL");
    return !(v && std::strcmp(v, "0") == 0);
  }();
  return enabled;
}

}  // namespace quad::cuda
