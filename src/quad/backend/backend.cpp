#include "quad/backend/backend.h"

#include <fmt/ranges.h>
#include <omp.h>

#include <cmath>
#include <cstdlib>

#include "quad/core/error.h"

extern "C" void openblas_set_num_threads(int);

namespace quad {

RopeTable RopeTable::build(const std::vector<float>& inv_freq, int max_positions) {
  RopeTable t;
  const int half = int(inv_freq.size());
  t.head_dim = 2 * half;
  t.max_positions = max_positions;
  t.cos.resize(size_t(max_positions) * half);
  t.sin.resize(size_t(max_positions) * half);
  for (int p = 0; p < max_positions; ++p)
    for (int i = 0; i < half; ++i) {
      const float angle = float(p) * inv_freq[i];
      t.cos[size_t(p) * half + i] = float(std::cos(double(angle)));
      t.sin[size_t(p) * half + i] = float(std::sin(double(angle)));
    }
  return t;
}

std::unique_ptr<Backend> make_backend(const std::string& name) {
  if (name == "ref") return make_ref_backend();
  if (name == "cpu") return make_cpu_backend();
  if (name == "cuda") return make_cuda_backend();
  fail("backend", "unknown backend '{}' (available: {})", name, fmt::join(backend_names(), ", "));
}

std::vector<std::string> backend_names() {
  std::vector<std::string> names{"ref", "cpu"};
  if (cuda_compiled()) names.push_back("cuda");
  return names;
}

bool backend_available(const std::string& name) {
  if (name == "ref" || name == "cpu") return true;
  if (name == "cuda") return cuda_compiled() && cuda_device_count() > 0;
  return false;
}

void set_num_threads(int threads) {
  if (threads <= 0) {  // default: OMP_NUM_THREADS if the user set it, else every core
    const char* env = std::getenv("OMP_NUM_THREADS");
    threads = env && std::atoi(env) > 0 ? std::atoi(env) : omp_get_num_procs();
  }
  omp_set_num_threads(threads);
  openblas_set_num_threads(threads);
}

int num_threads() {
  return omp_get_max_threads();
}

}  // namespace quad
