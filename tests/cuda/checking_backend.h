// A Backend that runs every op on two backends with the same inputs (a copy each for in-place
// ops), records how far the tested backend's outputs are from the oracle's, and passes the
// tested backend's outputs on. Running a whole model through it checks every op on the shapes
// and values of real use: the integer ops must agree bit for bit, the fp ops within a normalized
// error. Not thread-safe.
#pragma once

#include <map>
#include <string>
#include <vector>

#include "quad/backend/backend.h"

namespace quad::test {

struct OpStats {
  int calls = 0;
  int inexact = 0;        // calls whose outputs were not bit-identical
  double worst_nmse = 0;  // ‖tested − oracle‖² / ‖oracle‖², worst call
};

class CheckingBackend final : public Backend {
 public:
  CheckingBackend(Backend& tested, Backend& oracle) : t_(tested), o_(oracle) {}
  std::string name() const override { return t_.name() + "-vs-" + o_.name(); }
  const std::map<std::string, OpStats>& stats() const { return stats_; }

  void linear(const float* x, int n, int in, const float* w, int out, const float* bias,
              float* y) override;
  void rmsnorm(const float* x, int n, int width, const float* weight, int divisor, float eps,
               float* y) override;
  void rope(float* x, int n, int heads, int head_dim, const int32_t* pos,
            const RopeTable& table) override;
  void attention(const float* q, int n, int n_heads, int n_kv_heads, int hd, const float* k_cache,
                 const float* v_cache, int pos0, float* out) override;
  void silu_mul(const float* gate, const float* up, size_t n, float* out) override;
  void add(float* x, const float* y, size_t n) override;
  void act_quant(float* x, int n, int width, const ActQuantSpec& spec) override;
  void quantize_rows(const float* x, int n, int width, int ld, int bits, float clip, int8_t* codes,
                     float* scales) override;
  void int_gemm(const int8_t* xq, const float* sx, int n, int k, const int8_t* wq, const float* sw,
                int out, float* y) override;
  void int4_gemm(const int8_t* xq, const float* sx, int n, int k, const uint8_t* w4,
                 const float* sw, int out, float* y) override;

 private:
  void record(const std::string& op, const float* tested, const std::vector<float>& oracle);
  template <typename T>
  void record_exact(const std::string& op, const T* tested, const std::vector<T>& oracle);

  Backend& t_;
  Backend& o_;
  std::map<std::string, OpStats> stats_;
};

}  // namespace quad::test
