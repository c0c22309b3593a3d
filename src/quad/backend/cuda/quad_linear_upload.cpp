#include "quad/backend/cuda/quad_linear_upload.h"

#include <fmt/format.h>

#include <array>
#include <cmath>
#include <string>
#include <vector>

#include "quad/backend/cuda/cuda_check.h"
#include "quad/quant/hadamard.h"
#include "quad/quant/online_transforms.h"

namespace quad::cuda {

namespace {

// Copies host into buf (grown to fit) and returns the device pointer.
template <typename T>
T* upload(DeviceBuffer& buf, const std::vector<T>& host) {
  auto* p = static_cast<T*>(buf.ensure(std::max<size_t>(host.size(), 1) * sizeof(T)));
  if (!host.empty())
    QUAD_CUDA_CHECK(cudaMemcpy(p, host.data(), host.size() * sizeof(T), cudaMemcpyHostToDevice));
  return p;
}

}  // namespace

// Why the fused kernels cannot run this linear, or "" when they can.
std::string DeviceQuadLinear::unsupported(const Linear& lin) {
  if (!lin.integer_path()) return "the fused QUAD kernels need integer weights and inputs";
  const QuantizedWeight& q = *lin.qweight;
  if (q.bits != 4) return fmt::format("the fused QUAD kernels take 4-bit weights, not {}", q.bits);
  const int bits = lin.input_quant.bits;
  if (bits != 4 && bits != 8) return fmt::format("{}-bit activations are not supported", bits);
  if (q.k % 8 != 0) return fmt::format("input width {} is not a multiple of 8", q.k);
  if (q.outlier % 16 != 0 || q.outlier > 128)
    return fmt::format("{} outlier columns (the kernels take multiples of 16 up to 128)",
                       q.outlier);
  if (lin.input_quant.skip_first != q.outlier)
    return "the input quantizer does not skip exactly the outlier columns";
  if (!lin.input_transform) return "";
  if (q.outlier != 0) return "an input transform and outlier columns together";
  if (const auto* had = dynamic_cast<const HadamardInput*>(lin.input_transform.get())) {
    const hadamard::Plan& p = had->transform().plan();
    if (p.K > 64 || (p.pow2 & (p.pow2 - 1)) != 0)
      return fmt::format("Hadamard of size {} = {} x {} has no fused kernel", p.n, p.K, p.pow2);
    return "";
  }
  if (const auto* hm = dynamic_cast<const HeadMixInput*>(lin.input_transform.get()))
    return hm->heads() <= 64 ? "" : fmt::format("a mix across {} heads (at most 64)", hm->heads());
  return fmt::format("input transform '{}' has no fused kernel", lin.input_transform->describe());
}

bool DeviceQuadLinear::supports(const Linear& lin) {
  return unsupported(lin).empty();
}

std::string DeviceQuadLinear::unsupported_joined(std::span<const Linear* const> parts) {
  if (parts.empty()) return "no layers to join";
  const Linear& first = *parts[0];
  for (size_t i = 0; i < parts.size(); ++i) {
    const Linear& lin = *parts[i];
    if (std::string why = unsupported(lin); !why.empty()) return lin.name + ": " + why;
    if (parts.size() == 1) return "";
    if (lin.input_transform) return lin.name + ": a layer with an online transform in a join";
    const QuantizedWeight &q = *lin.qweight, &q0 = *first.qweight;
    if (q.k != q0.k || q.outlier != q0.outlier || lin.input_quant.bits != first.input_quant.bits ||
        lin.input_quant.clip != first.input_quant.clip || lin.has_bias() != first.has_bias())
      return lin.name + ": quantizes its input unlike " + first.name;
    // Rows are stored in groups of 16: a part that ends inside a group would shift the next.
    if (i + 1 < parts.size() && q.out % 16 != 0)
      return fmt::format("{}: {} outputs (joined parts need multiples of 16)", lin.name, q.out);
  }
  return "";
}

DeviceQuadLinear::DeviceQuadLinear(const Linear& lin)
    : DeviceQuadLinear(std::array<const Linear*, 1>{&lin}) {}

DeviceQuadLinear::DeviceQuadLinear(std::span<const Linear* const> parts) {
  const std::string why = unsupported_joined(parts);
  check(why.empty(), "cuda", "{}", why);
  const Linear& lin = *parts[0];
  const QuantizedWeight& q = *lin.qweight;
  act_bits_ = lin.input_quant.bits;
  clip_ = lin.input_quant.clip;

  // The parts' rows one after another: codes prepared part by part (each a whole number of
  // 16-row groups), scales, code sums, outlier columns and biases concatenated.
  std::vector<uint8_t> packed;
  std::vector<int32_t> sums;
  std::vector<float> scales;
  std::vector<__half> outlier;
  std::vector<float> bias;
  int N = 0;
  for (const Linear* part : parts) {
    const QuantizedWeight& pq = *part->qweight;
    const size_t at = packed.size(), sum_at = sums.size();
    packed.resize(at + quad_weight_bytes(pq.out, pq.k));
    sums.resize(sum_at + pq.out);
    // 4-bit weights only (unsupported() refuses the rest): repacked from the packed nibbles.
    quad_prepare_packed_weights(pq.packed.data(), pq.out, pq.k, act_bits_ == 8, packed.data() + at,
                                sums.data() + sum_at);
    scales.insert(scales.end(), pq.scales.begin(), pq.scales.end());
    for (float w : pq.w_outlier) outlier.push_back(__float2half_rn(w));
    for (uint16_t h : pq.w_outlier_f16) {
      __half_raw raw;
      raw.x = h;
      outlier.push_back(__half(raw));
    }
    bias.insert(bias.end(), part->bias.begin(), part->bias.end());
    N += pq.out;
  }

  w_ = QuadWeights{upload(codes_, packed),
                   upload(scales_, scales),
                   upload(sums_, sums),
                   q.outlier ? upload(outlier_, outlier) : nullptr,
                   bias.empty() ? nullptr : upload(bias_, bias),
                   N,
                   q.k,
                   q.outlier,
                   act_bits_};

  if (!lin.input_transform) return;  // U-type
  std::vector<float> mix;
  if (const auto* had = dynamic_cast<const HadamardInput*>(lin.input_transform.get())) {
    const hadamard::Plan& p = had->transform().plan();
    const double norm = 1.0 / std::sqrt(double(p.n));
    for (double v : hadamard::factor_matrix(p)) mix.push_back(float(v * norm));
    K_o_ = p.K;
    inner_fwht_ = p.pow2 > 1;
  } else if (const auto* hm = dynamic_cast<const HeadMixInput*>(lin.input_transform.get())) {
    for (double v : hadamard::dense(hm->transform().plan())) mix.push_back(float(v));
    K_o_ = hm->heads();
    inner_fwht_ = false;
  }
  mix_ = upload(mixbuf_, mix);
}

void DeviceQuadLinear::grow(int M) {
  act_.codes =
      static_cast<uint8_t*>(act_codes_.ensure(size_t(M) * quad_row_bytes(w_.K, act_bits_)));
  act_.scales = static_cast<float*>(act_scales_.ensure(size_t(M) * sizeof(float)));
  act_.sums = static_cast<int32_t*>(act_sums_.ensure(size_t(M) * sizeof(int32_t)));
  // The outlier pair, hi then lo, in one buffer.
  auto* pair =
      w_.r > 0 ? static_cast<__half*>(act_outlier_.ensure(2 * size_t(M) * w_.r * sizeof(__half)))
               : nullptr;
  act_.outlier = pair;
  act_.outlier_lo = pair ? pair + size_t(M) * w_.r : nullptr;
  act_.natural = quad_gemm_natural(M, w_);  // the layout the GEMM at this M reads
}

bool DeviceQuadLinear::quantizes_like(const DeviceQuadLinear& o, int M) const {
  return u_type() && o.u_type() && w_.K == o.w_.K && w_.r == o.w_.r && act_bits_ == o.act_bits_ &&
         clip_ == o.clip_ && quad_gemm_natural(M, w_) == quad_gemm_natural(M, o.w_);
}

void DeviceQuadLinear::forward(const float* x, int M, float* y, cudaStream_t stream,
                               const DeviceQuadLinear* quantized) {
  if (M <= 0) return;
  if (quantized) {
    check(quantized->quantizes_like(*this, M), "cuda",
          "shared activations of a layer that quantizes differently");
    QUAD_CUDA_CHECK(launch_quad_gemm(quantized->act_, M, w_, y, stream));
    return;
  }
  if (u_type())
    quantize_u(const_cast<float*>(x), nullptr, M, 0, 0.0f, stream);  // read only: no update
  else
    quantize_d(x, M, stream);
  gemm(M, y, stream);
}

void DeviceQuadLinear::forward_swiglu(const float* gate, const float* up, int M, float* y,
                                      cudaStream_t stream) {
  check(!u_type(), "cuda", "forward_swiglu: a layer without an online Hadamard");
  if (M <= 0) return;
  grow(M);
  QUAD_CUDA_CHECK(launch_quad_quant_d_swiglu(gate, up, M, w_.K, mix_, K_o_, inner_fwht_, act_bits_,
                                             clip_, act_, stream));
  gemm(M, y, stream);
}

void DeviceQuadLinear::forward(const __nv_bfloat16* x, int M, int divisor, float eps,
                               __nv_bfloat16* y, cudaStream_t stream) {
  if (M <= 0) return;
  grow(M);
  if (u_type())
    QUAD_CUDA_CHECK(
        launch_quad_quant_u(x, M, w_.r, w_.K, divisor, eps, act_bits_, clip_, act_, stream));
  else
    QUAD_CUDA_CHECK(
        launch_quad_quant_d(x, M, w_.K, mix_, K_o_, inner_fwht_, act_bits_, clip_, act_, stream));
  QUAD_CUDA_CHECK(launch_quad_gemm(act_, M, w_, y, stream));
}

void DeviceQuadLinear::quantize_u(float* x, const float* add, int M, int divisor, float eps,
                                  cudaStream_t stream) {
  check(u_type(), "cuda", "quantize_u: a layer with an online transform");
  if (M <= 0) return;
  grow(M);
  if (add)
    QUAD_CUDA_CHECK(launch_quad_add_quant_u(x, add, M, w_.r, w_.K, divisor, eps, act_bits_, clip_,
                                            act_, stream));
  else
    QUAD_CUDA_CHECK(
        launch_quad_quant_u(x, M, w_.r, w_.K, divisor, eps, act_bits_, clip_, act_, stream));
}

void DeviceQuadLinear::gemm(int M, float* y, cudaStream_t stream) const {
  if (M > 0) QUAD_CUDA_CHECK(launch_quad_gemm(act_, M, w_, y, stream));
}
void DeviceQuadLinear::gemm(int M, __nv_bfloat16* y, cudaStream_t stream) const {
  if (M > 0) QUAD_CUDA_CHECK(launch_quad_gemm(act_, M, w_, y, stream));
}

void DeviceQuadLinear::quantize_d(const float* x, int M, cudaStream_t stream) {
  check(!u_type(), "cuda", "quantize_d: a layer without an online transform");
  if (M <= 0) return;
  grow(M);
  QUAD_CUDA_CHECK(
      launch_quad_quant_d(x, M, w_.K, mix_, K_o_, inner_fwht_, act_bits_, clip_, act_, stream));
}

void DeviceQuadLinear::quantize_swiglu(const __nv_bfloat16* gate_up, int M, cudaStream_t stream) {
  check(!u_type(), "cuda", "quantize_swiglu: a layer without an online Hadamard");
  if (M <= 0) return;
  grow(M);
  QUAD_CUDA_CHECK(launch_quad_quant_d_swiglu(gate_up, gate_up + w_.K, 2 * w_.K, M, w_.K, mix_, K_o_,
                                             inner_fwht_, act_bits_, clip_, act_, stream));
}

}  // namespace quad::cuda
