// The CUDA backend, phase 1: the Backend interface over host fp32 buffers. Each op copies its
// activations to the GPU, runs there (cuBLAS for the fp32 GEMMs, the kernels of device/ for
// everything else) and copies the result back; weights are uploaded once and kept on the GPU
// (weight_cache.h says when a weight counts as unchanged). One stream, one cuBLAS handle; ops
// are serialized by a mutex, so an instance may be shared between threads but does not run ops
// concurrently.
#include <cublas_v2.h>
#include <cuda_runtime_api.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdlib>
#include <map>
#include <memory>
#include <mutex>
#include <string>

#include "quad/backend/backend.h"
#include "quad/backend/cuda/cuda_check.h"
#include "quad/backend/cuda/device/kernels.h"
#include "quad/backend/cuda/device_buffer.h"
#include "quad/backend/cuda/quad_linear_upload.h"
#include "quad/backend/cuda/weight_cache.h"

namespace quad {

namespace {

using cuda::DeviceBuffer;

void check_launch(cudaError_t err, const char* op) {
  if (err != cudaSuccess)
    fail("cuda", "{} kernel launch failed: {} ({})", op, cudaGetErrorString(err),
         cudaGetErrorName(err));
}

void require_gpu() {
  int count = 0;
  const cudaError_t err = cudaGetDeviceCount(&count);
  if (err != cudaSuccess) {
    (void)cudaGetLastError();
    fail("cuda", "no usable CUDA GPU or driver (cudaGetDeviceCount: {}, {}); run with --device cpu",
         cudaGetErrorString(err), cudaGetErrorName(err));
  }
  check(count > 0, "cuda", "no CUDA GPU found; run with --device cpu");
}

class CudaBackend final : public Backend {
 public:
  CudaBackend() {
    require_gpu();
    QUAD_CUDA_CHECK(cudaSetDevice(0));
    QUAD_CUDA_CHECK(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking));
    if (const cublasStatus_t st = cublasCreate(&blas_); st != CUBLAS_STATUS_SUCCESS) {
      (void)cudaStreamDestroy(stream_);
      cuda::fail_cublas("cublasCreate", st);
    }
    QUAD_CUBLAS_CHECK(cublasSetStream(blas_, stream_));
    // fp32 in, fp32 accumulate, no TF32 (CUBLAS_DEFAULT_MATH keeps sgemm in full fp32).
    QUAD_CUBLAS_CHECK(cublasSetMathMode(blas_, CUBLAS_DEFAULT_MATH));
  }

  ~CudaBackend() override {
    (void)cudaStreamSynchronize(stream_);
    (void)cublasDestroy(blas_);
    (void)cudaStreamDestroy(stream_);
  }

  std::string name() const override { return "cuda"; }

  void linear(const float* x, int n, int in, const float* w, int out, const float* bias,
              float* y) override {
    Op op(*this);
    if (n <= 0 || out <= 0) return;
    float* dy = scratch<float>(kOut, size_t(n) * out);
    const float* db = weights_.get(bias, bias ? size_t(out) : 0, stream_);
    if (in > 0) {
      const float* dx = stage(kIn0, x, size_t(n) * in);
      const float* dw = weights_.get(w, size_t(out) * in, stream_);
      // Row-major y (n, out) = x (n, in) · w (out, in)ᵀ is column-major yᵀ (out, n) =
      // w (in, out)ᵀ · xᵀ (in, n).
      const float one = 1.0f, zero = 0.0f;
      QUAD_CUBLAS_CHECK(cublasSgemm(blas_, CUBLAS_OP_T, CUBLAS_OP_N, out, n, in, &one, dw, in, dx,
                                    in, &zero, dy, out));
    } else {
      QUAD_CUDA_CHECK(cudaMemsetAsync(dy, 0, sizeof(float) * size_t(n) * out, stream_));
    }
    if (db) check_launch(cuda::launch_add_bias(dy, db, n, out, stream_), "add_bias");
    download(y, dy, size_t(n) * out);
  }

  void rmsnorm(const float* x, int n, int width, const float* weight, int divisor, float eps,
               float* y) override {
    Op op(*this);
    check(divisor > 0, "cuda", "rmsnorm: divisor {} must be positive", divisor);
    if (n <= 0 || width <= 0) return;
    const size_t count = size_t(n) * width;
    const float* dx = stage(kIn0, x, count);
    const float* dw = weights_.get(weight, weight ? size_t(width) : 0, stream_);
    float* dy = scratch<float>(kOut, count);
    check_launch(cuda::launch_rmsnorm(dx, n, width, dw, divisor, eps, dy, stream_), "rmsnorm");
    download(y, dy, count);
  }

  void rope(float* x, int n, int heads, int head_dim, const int32_t* pos,
            const RopeTable& table) override {
    Op op(*this);
    if (n <= 0 || heads <= 0) return;
    check(head_dim == table.head_dim, "cuda", "rope: head_dim {} but the table has {}", head_dim,
          table.head_dim);
    for (int i = 0; i < n; ++i)
      check(pos[i] >= 0 && pos[i] < table.max_positions, "rope",
            "position {} outside the table of {} positions", pos[i], table.max_positions);
    const size_t count = size_t(n) * heads * head_dim;
    const size_t table_len = size_t(table.max_positions) * (head_dim / 2);
    float* dx = stage(kIn0, x, count);
    const int32_t* dpos = stage(kIn1, pos, size_t(n));
    const float* dcos = weights_.get(table.cos.data(), table_len, stream_);
    const float* dsin = weights_.get(table.sin.data(), table_len, stream_);
    check_launch(cuda::launch_rope(dx, n, heads, head_dim, dpos, dcos, dsin, stream_), "rope");
    download(x, dx, count);
  }

  void attention(const float* q, int n, int n_heads, int n_kv_heads, int hd, const float* k_cache,
                 const float* v_cache, int pos0, float* out) override {
    Op op(*this);
    if (n <= 0 || n_heads <= 0) return;
    check(n_kv_heads > 0 && n_heads % n_kv_heads == 0, "cuda",
          "attention: {} heads are not a multiple of {} kv heads", n_heads, n_kv_heads);
    check(hd > 0 && hd <= cuda::kMaxAttentionHeadDim, "cuda",
          "attention: head_dim {} is outside 1..{}", hd, cuda::kMaxAttentionHeadDim);
    check(pos0 >= 0, "cuda", "attention: negative start position {}", pos0);
    const size_t q_count = size_t(n) * n_heads * hd;
    const size_t kv_count = size_t(pos0 + n) * n_kv_heads * hd;  // the keys the last token sees
    const float* dq = stage(kIn0, q, q_count);
    const float* dk = stage(kIn1, k_cache, kv_count);
    const float* dv = stage(kIn2, v_cache, kv_count);
    float* dout = scratch<float>(kOut, q_count);
    const float scale = 1.0f / std::sqrt(float(hd));
    check_launch(
        cuda::launch_attention(dq, n, n_heads, n_kv_heads, hd, dk, dv, pos0, scale, dout, stream_),
        "attention");
    download(out, dout, q_count);
  }

  void silu_mul(const float* gate, const float* up, size_t n, float* out) override {
    Op op(*this);
    if (n == 0) return;
    float* dg = stage(kIn0, gate, n);
    const float* du = stage(kIn1, up, n);
    check_launch(cuda::launch_silu_mul(dg, du, n, dg, stream_), "silu_mul");
    download(out, dg, n);
  }

  void add(float* x, const float* y, size_t n) override {
    Op op(*this);
    if (n == 0) return;
    float* dx = stage(kIn0, x, n);
    const float* dy = stage(kIn1, y, n);
    check_launch(cuda::launch_add(dx, dy, n, stream_), "add");
    download(x, dx, n);
  }

  void act_quant(float* x, int n, int width, const ActQuantSpec& spec) override {
    Op op(*this);
    if (!spec.enabled() || n <= 0) return;
    check(spec.bits >= 2, "cuda", "act_quant: {} bits (need 2..15)", spec.bits);
    check(spec.skip_first >= 0 && spec.skip_first <= width, "cuda",
          "act_quant: skip_first {} outside 0..{}", spec.skip_first, width);
    const size_t count = size_t(n) * width;
    float* dx = stage(kIn0, x, count);
    check_launch(
        cuda::launch_act_quant(dx, n, width, spec.bits, spec.skip_first, spec.clip, stream_),
        "act_quant");
    download(x, dx, count);
  }

  void quantize_rows(const float* x, int n, int width, int ld, int bits, float clip, int8_t* codes,
                     float* scales) override {
    Op op(*this);
    if (n <= 0) return;
    check(bits >= 2 && bits <= 8, "cuda", "quantize_rows: {} bits (need 2..8)", bits);
    check(width >= 0 && ld >= width, "cuda", "quantize_rows: width {} with row stride {}", width,
          ld);
    const size_t span = size_t(n - 1) * ld + width;  // x's rows with their stride
    const float* dx = stage(kIn0, x, span);
    int8_t* dcodes = scratch<int8_t>(kOut, size_t(n) * width);
    float* dscales = scratch<float>(kOut2, size_t(n));
    check_launch(cuda::launch_quantize_rows(dx, n, width, ld, bits, clip, dcodes, dscales, stream_),
                 "quantize_rows");
    QUAD_CUDA_CHECK(
        cudaMemcpyAsync(scales, dscales, sizeof(float) * n, cudaMemcpyDeviceToHost, stream_));
    download(codes, dcodes, size_t(n) * width);
  }

  void int_gemm(const int8_t* xq, const float* sx, int n, int k, const int8_t* wq, const float* sw,
                int out, float* y) override {
    Op op(*this);
    if (n <= 0 || out <= 0) return;
    check(k >= 0, "cuda", "int_gemm: negative k {}", k);
    const int8_t* dx = stage(kIn0, xq, size_t(n) * k);
    const float* dsx = stage(kIn1, sx, size_t(n));
    const int8_t* dw = weights_.get(wq, size_t(out) * k, stream_);
    const float* dsw = weights_.get(sw, size_t(out), stream_);
    float* dy = scratch<float>(kOut, size_t(n) * out);
    check_launch(cuda::launch_int_gemm(dx, dsx, n, k, dw, dsw, out, dy, stream_), "int_gemm");
    download(y, dy, size_t(n) * out);
  }

  void int4_gemm(const int8_t* xq, const float* sx, int n, int k, const uint8_t* w4,
                 const float* sw, int out, float* y) override {
    Op op(*this);
    if (n <= 0 || out <= 0) return;
    check(k >= 0 && k % 2 == 0, "cuda", "int4_gemm: k = {} must be even", k);
    const int8_t* dx = stage(kIn0, xq, size_t(n) * k);
    const float* dsx = stage(kIn1, sx, size_t(n));
    const uint8_t* dw = weights_.get(w4, size_t(out) * (k / 2), stream_);
    const float* dsw = weights_.get(sw, size_t(out), stream_);
    float* dy = scratch<float>(kOut, size_t(n) * out);
    check_launch(cuda::launch_int4_gemm(dx, dsx, n, k, dw, dsw, out, dy, stream_), "int4_gemm");
    download(y, dy, size_t(n) * out);
  }

  // Quantized linears through the fused QUAD kernels (device/quad_linear.h): the layer uploaded
  // once into the kernels' form (cached per Linear, re-uploaded when its weights change), the
  // input staged as fp32, quantized and multiplied on the GPU, fp32 out.
  bool fused_linear(const Linear& lin, const float* x, int n, float* y) override {
    if (!fused_enabled_ || !cuda::DeviceQuadLinear::supports(lin)) return false;
    Op op(*this);
    if (n <= 0) return true;
    cuda::DeviceQuadLinear& d = fused_layer(lin);
    const float* dx = stage(kIn0, x, size_t(n) * lin.in);
    float* dy = scratch<float>(kOut, size_t(n) * lin.out);
    d.forward(dx, n, dy, stream_);
    download(y, dy, size_t(n) * lin.out);
    return true;
  }

 private:
  // What identifies a layer's weights: the buffers' addresses and sizes, and a hash of the
  // scales and of sampled code bytes (fine-tuning rewrites both in place).
  static uint64_t fused_fingerprint(const Linear& lin) {
    const QuantizedWeight& q = *lin.qweight;
    uint64_t h = 1469598103934665603ull;
    auto mix = [&h](const void* p, size_t bytes) {
      const auto* b = static_cast<const unsigned char*>(p);
      for (size_t i = 0; i < bytes; ++i) h = (h ^ b[i]) * 1099511628211ull;
    };
    const void* ptrs[3] = {lin.qweight.get(), q.packed.data(), q.scales.data()};
    mix(ptrs, sizeof(ptrs));
    mix(q.scales.data(), q.scales.size() * sizeof(float));
    const size_t step = std::max<size_t>(1, q.packed.size() / 256);
    for (size_t i = 0; i < q.packed.size(); i += step) mix(&q.packed[i], 1);
    if (!q.w_outlier.empty()) mix(q.w_outlier.data(), std::min<size_t>(q.w_outlier.size(), 64) * 4);
    return h;
  }
  cuda::DeviceQuadLinear& fused_layer(const Linear& lin) {
    const uint64_t fp = fused_fingerprint(lin);
    auto& entry = fused_[&lin];
    if (!entry.second || entry.first != fp)
      entry = {fp, std::make_unique<cuda::DeviceQuadLinear>(lin)};
    return *entry.second;
  }

  // Scratch slots for staged activations, reused by every op.
  enum Slot { kIn0, kIn1, kIn2, kOut, kOut2, kSlots };

  // Serializes ops and marks their start for the weight cache.
  struct Op {
    explicit Op(CudaBackend& b) : lock(b.mu_) { b.weights_.begin_op(); }
    std::lock_guard<std::mutex> lock;
  };

  template <typename T>
  T* scratch(Slot slot, size_t count) {
    return static_cast<T*>(slots_[slot].ensure(sizeof(T) * count));
  }
  // Copies host [src, src + count) into a scratch slot.
  template <typename T>
  T* stage(Slot slot, const T* src, size_t count) {
    T* d = scratch<T>(slot, count);
    QUAD_CUDA_CHECK(cudaMemcpyAsync(d, src, sizeof(T) * count, cudaMemcpyHostToDevice, stream_));
    return d;
  }
  // Copies a device result back to the host and waits for the op to finish.
  template <typename T>
  void download(T* dst, const T* src, size_t count) {
    QUAD_CUDA_CHECK(cudaMemcpyAsync(dst, src, sizeof(T) * count, cudaMemcpyDeviceToHost, stream_));
    QUAD_CUDA_CHECK(cudaStreamSynchronize(stream_));
  }

  std::mutex mu_;
  cudaStream_t stream_ = nullptr;
  cublasHandle_t blas_ = nullptr;
  cuda::WeightCache weights_;
  std::array<DeviceBuffer, kSlots> slots_;
  std::map<const Linear*, std::pair<uint64_t, std::unique_ptr<cuda::DeviceQuadLinear>>> fused_;
  // QUAD_CUDA_FUSED=0 turns the fused QUAD linears off (op-by-op integer path, bit-identical to
  // the CPU backend's integer ops).
  bool fused_enabled_ = [] {
    const char* v = std::getenv("QUAD_CUDA_FUSED");
    return !(v && std::string(v) == "0");
  }();
};

}  // namespace

std::unique_ptr<Backend> make_cuda_backend() {
  return std::make_unique<CudaBackend>();
}

bool cuda_compiled() {
  return true;
}

int cuda_device_count() {
  int count = 0;
  if (cudaGetDeviceCount(&count) != cudaSuccess) {
    (void)cudaGetLastError();
    return 0;
  }
  return count;
}

}  // namespace quad
