// The CUDA backend: cuBLAS for the GEMMs (fp32 weights in full fp32; fp16/bf16 weights on the
// tensor cores with fp32 accumulation), the kernels of device/ for everything else, and the
// fused QUAD linears. Activations live in GPU memory (memory() = cuda), so a forward pass runs
// without host round trips and ops are asynchronous on one stream; any op also accepts host
// pointers, which it stages (and then waits for its result). Weights are host pointers: each is
// uploaded once and cached (weight_cache.h says when a weight counts as unchanged). One cuBLAS
// handle; ops are serialized by a mutex, so an instance may be shared between threads but does
// not run ops concurrently.
#include <cublas_v2.h>
#include <cuda_runtime_api.h>
#include <cusolverDn.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <memory>
#include <mutex>
#include <numeric>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "quad/backend/backend.h"
#include "quad/backend/cuda/cuda_check.h"
#include "quad/backend/cuda/device/kernels.h"
#include "quad/backend/cuda/device_buffer.h"
#include "quad/backend/cuda/quad_linear_upload.h"
#include "quad/backend/cuda/weight_cache.h"

namespace quad {

namespace {

using cuda::DeviceBuffer;
using cuda::WeightCache;

#define QUAD_CUSOLVER_CHECK(call)                                                      \
  do {                                                                                 \
    if (const cusolverStatus_t quad_st_ = (call); quad_st_ != CUSOLVER_STATUS_SUCCESS) \
      fail("cuda", "{} failed: cuSOLVER status {}", #call, int(quad_st_));             \
  } while (0)

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
    // NVIDIA's recommended cuBLAS workspace for Hopper (PyTorch sets the same), so that cuBLAS
    // may pick its kernels that need one; QUAD_CUBLAS_WORKSPACE_MIB overrides it (0: none set).
    if (const size_t bytes = cublas_workspace_mib() << 20; bytes > 0)
      QUAD_CUBLAS_CHECK(cublasSetWorkspace(blas_, blas_workspace_.ensure(bytes), bytes));
    if (profile_) {
      QUAD_CUDA_CHECK(cudaEventCreate(&event_start_));
      QUAD_CUDA_CHECK(cudaEventCreate(&event_end_));
    }
  }

  ~CudaBackend() override {
    (void)cudaStreamSynchronize(stream_);
    if (profile_) {
      print_profile();
      (void)cudaEventDestroy(event_start_);
      (void)cudaEventDestroy(event_end_);
      for (cudaEvent_t e : step_events_) (void)cudaEventDestroy(e);
    }
    if (solver_) (void)cusolverDnDestroy(solver_);
    (void)cublasDestroy(blas_);
    (void)cudaStreamDestroy(stream_);
  }

  std::string name() const override { return "cuda"; }

  static size_t cublas_workspace_mib() {
    constexpr size_t kDefaultMib = 32;
    const char* v = std::getenv("QUAD_CUBLAS_WORKSPACE_MIB");
    if (!v || !*v) return kDefaultMib;
    char* end = nullptr;
    const long mib = std::strtol(v, &end, 10);
    check(*end == '\0' && mib >= 0 && mib <= 4096, "cuda",
          "QUAD_CUBLAS_WORKSPACE_MIB={} is not a size in MiB (0..4096)", v);
    return size_t(mib);
  }

  MemoryKind memory() const override { return MemoryKind::cuda; }
  bool host_accessible(const void* p) const override { return !on_device(p); }
  void copy(void* dst, const void* src, size_t bytes) override {
    Op op(*this, "copy");
    if (bytes == 0) return;
    QUAD_CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDefault, stream_));
    // Device to device stays ordered on the stream; host memory must hold the data on return.
    if (!on_device(dst) || !on_device(src)) QUAD_CUDA_CHECK(cudaStreamSynchronize(stream_));
  }

  // Inference (weights frozen) gathers on the GPU from a cached copy of the table: a prefill's
  // rows then cost no host gather and no pageable upload (32 MB for 2048 tokens of an 8B model).
  // Elsewhere (the quantization pipeline releases its weights every layer) rows are gathered on
  // the host and copied.
  void embed(const float* table, int vocab, int width, const int32_t* tokens, int n,
             float* x) override {
    if (!fused_frozen_ || n < kDeviceEmbedMinTokens)
      return Backend::embed(table, vocab, width, tokens, n, x);
    Op op(*this, "embed");
    const float* dt = weights_.get(table, size_t(vocab) * width, stream_);
    const int32_t* dtok = input(kIn1, tokens, size_t(n));
    float* dx = output(kOut, x, size_t(n) * width);
    check_launch(cuda::launch_embed(dt, width, dtok, n, dx, stream_), "embed");
    finish(x, dx, size_t(n) * width);
  }

  void zero(void* dst, size_t bytes) override {
    Op op(*this, "zero");
    if (bytes == 0) return;
    if (!on_device(dst)) {
      QUAD_CUDA_CHECK(cudaStreamSynchronize(stream_));  // ordered after the ops before it
      std::memset(dst, 0, bytes);
      return;
    }
    QUAD_CUDA_CHECK(cudaMemsetAsync(dst, 0, bytes, stream_));
  }

  void allow_reduced_precision() override { reduced_precision_ = true; }

  // Without this the cache would hold every layer the pipeline has seen until an upload of its
  // own ran out of memory, while other allocations (the Hessian accumulators) would just fail.
  void release_weights() override {
    Op op(*this, "release_weights");
    weights_.clear();
    fused_.clear();
    last_quant_ = {};
    last_half_ = {};
  }

  void assume_weights_frozen() override {
    Op op(*this, "assume_weights_frozen");
    weights_.freeze();
    fused_frozen_ = true;
  }

  size_t device_memory_used() const override {
    size_t free_b = 0, total_b = 0;
    if (cudaMemGetInfo(&free_b, &total_b) != cudaSuccess) {
      (void)cudaGetLastError();
      return 0;
    }
    return total_b - free_b;
  }

  void linear(const float* x, int n, int in, const float* w, int out, const float* bias,
              float* y) override {
    Op op(*this, "linear");
    if (n <= 0 || out <= 0) return;
    float* dy = output(kOut, y, size_t(n) * out);
    const float* db = weights_.get(bias, bias ? size_t(out) : 0, stream_);
    if (in > 0) {
      const float* dx = input(kIn0, x, size_t(n) * in);
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
    finish(y, dy, size_t(n) * out);
  }

  void linear_f16(const float* x, int n, int in, const uint16_t* w16, int out, const float* bias,
                  float* y) override {
    half_linear(x, n, in, w16, out, bias, y, /*bf16=*/false);
  }
  void linear_bf16(const float* x, int n, int in, const uint16_t* w16, int out, const float* bias,
                   float* y) override {
    half_linear(x, n, in, w16, out, bias, y, /*bf16=*/true);
  }
  // The choice runs on the GPU (device/sampling.cu); only the token comes back, not the
  // vocabulary-sized row (513 KB per decode step of a Llama-3 model).
  int32_t sample_token(const float* logits, int vocab, float temperature, float top_p,
                       double canonical) override {
    Op op(*this, "sample_token");
    check(vocab > 0, "cuda", "sample_token: empty vocabulary");
    const float* dl = input(kIn0, logits, size_t(vocab));
    auto* dtoken = static_cast<int32_t*>(sample_token_.ensure(sizeof(int32_t)));
    if (temperature == 0) {
      check_launch(cuda::launch_argmax(dl, vocab, dtoken, stream_), "argmax");
    } else {
      void* ws = sample_workspace_.ensure(cuda::nucleus_sample_workspace_bytes(vocab));
      check_launch(cuda::launch_nucleus_sample(dl, vocab, temperature, top_p, canonical, ws, dtoken,
                                               stream_),
                   "nucleus_sample");
    }
    int32_t token = 0;
    QUAD_CUDA_CHECK(
        cudaMemcpyAsync(&token, dtoken, sizeof(int32_t), cudaMemcpyDeviceToHost, stream_));
    QUAD_CUDA_CHECK(cudaStreamSynchronize(stream_));
    return token;
  }

  // x as the fp16 pair hi = fp16(x), lo = fp16(x − hi) (~22 bits), two tensor-core GEMMs into y:
  // fp16 alone moved quantized models' argmax at 3× the rate of the CPU's fp32 reorderings
  // (docs/gpu.md). The fused QUAD kernels carry their outlier activations the same way.
  void outlier_linear_f16(const float* x, int n, int in, const uint16_t* w16, int out,
                          float* y) override {
    Op op(*this, "outlier_linear_f16");
    if (profile_) op.shape = gemm_shape(n, out, in);
    if (n <= 0 || out <= 0) return;
    if (in <= 0) return linear_f16(x, n, in, w16, out, nullptr, y);
    const size_t count = size_t(n) * in;
    const float* dx = input(kIn0, x, count);
    uint16_t* pair = scratch<uint16_t>(kIn1, 2 * count);
    check_launch(cuda::launch_split_half(dx, count, pair, pair + count, stream_), "split_half");
    float* dy = output(kOut, y, size_t(n) * out);
    const uint16_t* dw = weights_.get(w16, size_t(out) * in, stream_);
    device_gemm16(pair, n, in, dw, out, dy, /*out16=*/false, /*bf16=*/false);
    device_gemm16(pair + count, n, in, dw, out, dy, false, false, /*accumulate=*/true);
    finish(y, dy, size_t(n) * out);
  }

  void rmsnorm(const float* x, int n, int width, const float* weight, int divisor, float eps,
               float* y) override {
    Op op(*this, "rmsnorm");
    check(divisor > 0, "cuda", "rmsnorm: divisor {} must be positive", divisor);
    if (n <= 0 || width <= 0) return;
    const size_t count = size_t(n) * width;
    const float* dx = input(kIn0, x, count);
    const float* dw = weights_.get(weight, weight ? size_t(width) : 0, stream_);
    float* dy = output(kOut, y, count);
    check_launch(cuda::launch_rmsnorm(dx, n, width, dw, divisor, eps, dy, stream_), "rmsnorm");
    finish(y, dy, count);
  }

  void add_rmsnorm(float* x, const float* r, int n, int width, const float* weight, int divisor,
                   float eps, float* y) override {
    Op op(*this, "add_rmsnorm");
    check(divisor > 0, "cuda", "rmsnorm: divisor {} must be positive", divisor);
    if (n <= 0 || width <= 0) return;
    const size_t count = size_t(n) * width;
    float* dx = in_place(kIn0, x, count);
    const float* dr = input(kIn1, r, count);
    const float* dw = weights_.get(weight, weight ? size_t(width) : 0, stream_);
    float* dy = output(kOut, y, count);
    check_launch(cuda::launch_add_rmsnorm(dx, dr, n, width, dw, divisor, eps, dy, stream_),
                 "add_rmsnorm");
    finish(x, dx, count);
    finish(y, dy, count);
  }

  void rope(float* x, int n, int heads, int head_dim, const int32_t* pos,
            const RopeTable& table) override {
    Op op(*this, "rope");
    if (n <= 0 || heads <= 0) return;
    check(head_dim == table.head_dim, "cuda", "rope: head_dim {} but the table has {}", head_dim,
          table.head_dim);
    for (int i = 0; i < n; ++i)
      check(pos[i] >= 0 && pos[i] < table.max_positions, "rope",
            "position {} outside the table of {} positions", pos[i], table.max_positions);
    const size_t count = size_t(n) * heads * head_dim;
    float* dx = in_place(kIn0, x, count);
    // Consecutive positions (every forward pass) go as their start: no copy, and no stream
    // synchronization, which a copy from pageable host memory would cost.
    bool consecutive = true;
    for (int i = 1; i < n && consecutive; ++i) consecutive = pos[i] == pos[0] + i;
    const int32_t* dpos = consecutive ? nullptr : input(kIn1, pos, size_t(n));
    const auto [dcos, dsin] = rope_tables(table);
    check_launch(cuda::launch_rope(dx, n, heads, head_dim, dpos, pos[0], dcos, dsin, stream_),
                 "rope");
    finish(x, dx, count);
  }

  void attention(const float* q, int n, int n_heads, int n_kv_heads, int hd, const float* k_cache,
                 const float* v_cache, int pos0, float* out) override {
    run_attention(q, n, n_heads, n_kv_heads, hd, k_cache, v_cache, pos0, nullptr, out);
  }

  // A prefill on the flash kernel rotates q as it loads it (one pass over q fewer); the rest
  // runs the three ops.
  void rope_attention(float* q, int n, int n_heads, int n_kv_heads, int hd, float* k_cache,
                      const float* v_cache, int pos0, const int32_t* pos, const RopeTable& table,
                      float* out) override {
    bool consecutive = pos0 >= 0;
    for (int i = 0; i < n && consecutive; ++i) consecutive = pos[i] == pos0 + i;
    if (!flash_prefill(n, hd) || table.head_dim != hd || !consecutive ||
        pos0 + n > table.max_positions)
      return Backend::rope_attention(q, n, n_heads, n_kv_heads, hd, k_cache, v_cache, pos0, pos,
                                     table, out);
    rope(k_cache + size_t(pos0) * n_kv_heads * hd, n, n_kv_heads, hd, pos, table);
    run_attention(q, n, n_heads, n_kv_heads, hd, k_cache, v_cache, pos0, &table, out);
  }

  void silu_mul(const float* gate, const float* up, size_t n, float* out) override {
    Op op(*this, "silu_mul");
    if (n == 0) return;
    const float* dg = input(kIn0, gate, n);
    const float* du = input(kIn1, up, n);
    float* dout = output(kOut, out, n);
    check_launch(cuda::launch_silu_mul(dg, du, n, dout, stream_), "silu_mul");
    finish(out, dout, n);
  }

  void add(float* x, const float* y, size_t n) override {
    Op op(*this, "add");
    if (n == 0) return;
    float* dx = in_place(kIn0, x, n);
    const float* dy = input(kIn1, y, n);
    check_launch(cuda::launch_add(dx, dy, n, stream_), "add");
    finish(x, dx, n);
  }

  void act_quant(float* x, int n, int width, const ActQuantSpec& spec) override {
    Op op(*this, "act_quant");
    if (!spec.enabled() || n <= 0) return;
    check(spec.bits >= 2, "cuda", "act_quant: {} bits (need 2..15)", spec.bits);
    check(spec.skip_first >= 0 && spec.skip_first <= width, "cuda",
          "act_quant: skip_first {} outside 0..{}", spec.skip_first, width);
    const size_t count = size_t(n) * width;
    float* dx = in_place(kIn0, x, count);
    check_launch(
        cuda::launch_act_quant(dx, n, width, spec.bits, spec.skip_first, spec.clip, stream_),
        "act_quant");
    finish(x, dx, count);
  }

  void quantize_rows(const float* x, int n, int width, int ld, int bits, float clip, int8_t* codes,
                     float* scales) override {
    Op op(*this, "quantize_rows");
    if (n <= 0) return;
    check(bits >= 2 && bits <= 8, "cuda", "quantize_rows: {} bits (need 2..8)", bits);
    check(width >= 0 && ld >= width, "cuda", "quantize_rows: width {} with row stride {}", width,
          ld);
    const size_t span = size_t(n - 1) * ld + width;  // x's rows with their stride
    const float* dx = input(kIn0, x, span);
    int8_t* dcodes = output(kOut, codes, size_t(n) * width);
    float* dscales = output(kOut2, scales, size_t(n));
    check_launch(cuda::launch_quantize_rows(dx, n, width, ld, bits, clip, dcodes, dscales, stream_),
                 "quantize_rows");
    finish(scales, dscales, size_t(n));
    finish(codes, dcodes, size_t(n) * width);
  }

  void kron_transform(float* x, int rows, int outer, const float* a, int inner,
                      const float* b) override {
    Op op(*this, "kron_transform");
    check(rows >= 0 && outer > 0 && inner > 0 && a, "cuda", "kron_transform: {} x ({} x {})", rows,
          outer, inner);
    if (rows == 0) return;
    const size_t count = size_t(rows) * outer * inner;
    float* dx = in_place(kIn0, x, count);
    float* z = scratch<float>(kIn1, count);
    const float one = 1.0f, zero = 0.0f;
    if (b) {
      // Row-major Z (rows·outer, inner) = X · Bᵀ: column-major Zᵀ = B · Xᵀ, and B's buffer read
      // column-major is Bᵀ, hence op T.
      const float* db = weights_.get(b, size_t(inner) * inner, stream_);
      QUAD_CUBLAS_CHECK(cublasSgemm(blas_, CUBLAS_OP_T, CUBLAS_OP_N, inner, rows * outer, inner,
                                    &one, db, inner, dx, inner, &zero, z, inner));
    } else {
      QUAD_CUDA_CHECK(
          cudaMemcpyAsync(z, dx, sizeof(float) * count, cudaMemcpyDeviceToDevice, stream_));
    }
    // Per row, X = A · Z (outer, inner): column-major Xᵀ = Zᵀ · Aᵀ, A's buffer being Aᵀ.
    const float* da = weights_.get(a, size_t(outer) * outer, stream_);
    const long long stride = (long long)outer * inner;
    QUAD_CUBLAS_CHECK(cublasSgemmStridedBatched(blas_, CUBLAS_OP_N, CUBLAS_OP_N, inner, outer,
                                                outer, &one, z, inner, stride, da, outer, 0, &zero,
                                                dx, inner, stride, rows));
    finish(x, dx, count);
  }

  void gram_accumulate(const float* x, int n, int ld, int col, int k, double* acc) override {
    Op op(*this, "gram_accumulate");
    check(n >= 0 && k >= 0 && col >= 0 && ld >= col + k, "cuda",
          "gram_accumulate: columns [{}, {}) of rows with stride {}", col, col + k, ld);
    check(on_device(acc), "cuda", "gram_accumulate: the accumulator must be in GPU memory");
    if (n == 0 || k == 0) return;
    const float* dx = input(kIn0, x, size_t(n - 1) * ld + col + k);
    // Rows in chunks, so the fp64 copy stays within 256 MiB.
    const int chunk = int(std::clamp<size_t>((size_t(256) << 20) / (sizeof(double) * k), 1, n));
    double* wide = scratch<double>(kIn1, size_t(chunk) * k);
    const double one = 1.0;
    for (int t0 = 0; t0 < n; t0 += chunk) {
      const int rows = std::min(chunk, n - t0);
      check_launch(
          cuda::launch_widen_columns(dx + size_t(t0) * ld, rows, ld, col, k, wide, stream_),
          "widen_columns");
      // Row-major wide (rows, k) is column-major A (k, rows); A·Aᵀ's column-major lower
      // triangle is the row-major upper one.
      QUAD_CUBLAS_CHECK(cublasDsyrk(blas_, CUBLAS_FILL_MODE_LOWER, CUBLAS_OP_N, k, rows, &one, wide,
                                    k, &one, acc, k));
    }
  }

  void finish_gram(double* acc, int k, double scale, double* diag) override {
    Op op(*this, "finish_gram");
    check(k >= 0 && on_device(acc), "cuda", "finish_gram: a {}x{} accumulator in GPU memory", k, k);
    if (k == 0) return;
    check_launch(cuda::launch_finish_gram(acc, k, scale, stream_), "finish_gram");
    // The diagonal is every (k + 1)-th entry: one strided copy.
    QUAD_CUDA_CHECK(cudaMemcpy2DAsync(diag, sizeof(double), acc, sizeof(double) * (size_t(k) + 1),
                                      sizeof(double), k, cudaMemcpyDeviceToHost, stream_));
    QUAD_CUDA_CHECK(cudaStreamSynchronize(stream_));
  }

  bool weight_scales(const float* w, int rows, int cols, int bits, bool clip_search,
                     float* scales) override {
    Op op(*this, "weight_scales");
    check(bits >= 2 && bits <= 8 && rows >= 0 && cols >= 0, "cuda",
          "weight_scales: {} bits for {}x{}", bits, rows, cols);
    const float* dw = input(kIn0, w, size_t(rows) * cols);
    float* ds = output(kOut, scales, size_t(rows));
    check_launch(cuda::launch_weight_scales(dw, rows, cols, bits, clip_search, ds, stream_),
                 "weight_scales");
    finish(scales, ds, size_t(rows));
    return true;
  }

  bool transform_weight(bool t_left, const float* w, int w_rows, int w_cols, const double* t, int d,
                        int D, float* out) override {
    Op op(*this, "transform_weight");
    check(w_rows >= 0 && w_cols >= 0 && d > 0 && D >= d && (t_left ? w_rows : w_cols) == d, "cuda",
          "transform_weight: {}x{} weight, {}x{} transform", w_rows, w_cols, d, D);
    const double* dt = weights_.get(t, size_t(d) * D, stream_);
    const double one = 1.0, zero = 0.0;
    // Row-major t (d, D) is column-major tᵀ (D, d) with leading dimension D.
    if (t_left) {  // out (D, cols) = tᵀ·w: column-major outᵀ (cols, D) = wᵀ (cols, d) · t (d, D)
      const int cols = w_cols;
      const size_t in = size_t(d) * cols, res = size_t(D) * cols;
      if (res == 0) return true;
      double* wide = static_cast<double*>(gptq_.w.ensure(sizeof(double) * in));
      double* prod = static_cast<double*>(gptq_.err.ensure(sizeof(double) * res));
      widen_upload(w, d, cols, wide);
      QUAD_CUBLAS_CHECK(cublasDgemm(blas_, CUBLAS_OP_N, CUBLAS_OP_T, cols, D, d, &one, wide, cols,
                                    dt, D, &zero, prod, cols));
      narrow_download(prod, res, out);
      return true;
    }
    // out (rows, D) = w·t in row blocks (the embedding is 128256 rows): column-major
    // outᵀ (D, rows) = tᵀ·wᵀ, t's buffer being tᵀ column-major (D, d) and w's wᵀ (d, rows).
    const int chunk =
        int(std::clamp<size_t>((size_t(1) << 30) / (12 * (size_t(d) + D)), 1, std::max(w_rows, 1)));
    for (int r0 = 0; r0 < w_rows; r0 += chunk) {
      const int rows = std::min(chunk, w_rows - r0);
      double* wide = static_cast<double*>(gptq_.w.ensure(sizeof(double) * rows * d));
      double* prod = static_cast<double*>(gptq_.err.ensure(sizeof(double) * rows * D));
      widen_upload(w + size_t(r0) * d, rows, d, wide);
      QUAD_CUBLAS_CHECK(cublasDgemm(blas_, CUBLAS_OP_N, CUBLAS_OP_N, D, rows, d, &one, dt, D, wide,
                                    d, &zero, prod, D));
      narrow_download(prod, size_t(rows) * D, out + size_t(r0) * D);
    }
    return true;
  }

  bool quantization_error(const float* w, const int8_t* codes, const float* scales, int rows, int k,
                          const double* h, double* result) override {
    Op op(*this, "quantization_error");
    check(rows >= 0 && k >= 0, "cuda", "quantization_error: {}x{}", rows, k);
    *result = 0;
    if (rows == 0 || k == 0) return true;
    const size_t rk = size_t(rows) * k, kk = size_t(k) * k;
    float* dwf = static_cast<float*>(gptq_.wf.ensure(sizeof(float) * rk));
    int8_t* dc = static_cast<int8_t*>(gptq_.codes.ensure(rk));
    float* ds = static_cast<float*>(gptq_.scales.ensure(sizeof(float) * rows));
    QUAD_CUDA_CHECK(cudaMemcpyAsync(dwf, w, sizeof(float) * rk, cudaMemcpyHostToDevice, stream_));
    QUAD_CUDA_CHECK(cudaMemcpyAsync(dc, codes, rk, cudaMemcpyHostToDevice, stream_));
    QUAD_CUDA_CHECK(
        cudaMemcpyAsync(ds, scales, sizeof(float) * rows, cudaMemcpyHostToDevice, stream_));
    double* dd = static_cast<double*>(gptq_.w.ensure(sizeof(double) * rk));
    check_launch(cuda::launch_weight_residual(dwf, dc, ds, rows, k, dd, stream_),
                 "weight_residual");
    double* prod = static_cast<double*>(gptq_.err.ensure(sizeof(double) * rk));
    // A host H stays cached between the calls for one linear (GPTQ's and round-to-nearest's
    // errors).
    const double* dh = on_device(h) ? h : weights_.get(h, kk, stream_);
    // Row-major P = ΔW·H is column-major Pᵀ = Hᵀ·ΔWᵀ = H·ΔWᵀ (H symmetric).
    const double one = 1.0, zero = 0.0;
    QUAD_CUBLAS_CHECK(cublasDgemm(blas_, CUBLAS_OP_N, CUBLAS_OP_N, k, rows, k, &one, dh, k, dd, k,
                                  &zero, prod, k));
    QUAD_CUBLAS_CHECK(cublasSetPointerMode(blas_, CUBLAS_POINTER_MODE_HOST));
    QUAD_CUBLAS_CHECK(cublasDdot(blas_, int(rk), dd, 1, prod, 1, result));  // waits for the sum
    return true;
  }

  // wide (rows, cols) ← the fp32 host matrix w, widened to fp64 on the GPU.
  void widen_upload(const float* w, int rows, int cols, double* wide) {
    const size_t count = size_t(rows) * cols;
    float* staged = static_cast<float*>(gptq_.wf.ensure(sizeof(float) * count));
    QUAD_CUDA_CHECK(
        cudaMemcpyAsync(staged, w, sizeof(float) * count, cudaMemcpyHostToDevice, stream_));
    check_launch(cuda::launch_widen_columns(staged, rows, cols, 0, cols, wide, stream_),
                 "widen_columns");
  }
  // out (count, host) ← the fp64 device values x rounded to fp32 on the GPU; waits for them.
  void narrow_download(const double* x, size_t count, float* out) {
    float* staged = static_cast<float*>(gptq_.wf.ensure(sizeof(float) * count));
    check_launch(cuda::launch_narrow(x, count, staged, stream_), "narrow");
    QUAD_CUDA_CHECK(
        cudaMemcpyAsync(out, staged, sizeof(float) * count, cudaMemcpyDeviceToHost, stream_));
    QUAD_CUDA_CHECK(cudaStreamSynchronize(stream_));
  }

  bool gptq_supported(int block_size) const override {
    return block_size >= 1 && block_size <= cuda::kMaxGptqBlock;
  }

  // Upper Cholesky factor U of (H + damp·I)⁻¹ by cuSOLVER (potrf, potri, potrf on the row-major
  // upper triangle, which is column-major lower, as quant/gptq.cpp does with LAPACK), then the
  // column blocks: each quantized by a kernel, the later columns updated by one dgemm.
  bool gptq(const float* w, int rows, int cols, const double* h, double damp, const float* scales,
            int bits, int block_size, int8_t* codes) override {
    Op op(*this, "gptq");
    check(gptq_supported(block_size) && bits >= 2 && bits <= 8 && rows > 0 && cols > 0, "cuda",
          "gptq: {}x{}, {} bits, block {}", rows, cols, bits, block_size);
    const size_t nn = size_t(cols) * cols, rc = size_t(rows) * cols;
    double* U = static_cast<double*>(gptq_.u.ensure(sizeof(double) * nn));
    QUAD_CUDA_CHECK(cudaMemcpyAsync(U, h, sizeof(double) * nn, cudaMemcpyDefault, stream_));
    check_launch(cuda::launch_damp_diagonal(U, cols, damp, stream_), "damp_diagonal");
    if (!inverse_cholesky(U, cols)) return false;

    float* wf = static_cast<float*>(gptq_.wf.ensure(sizeof(float) * rc));
    double* W = static_cast<double*>(gptq_.w.ensure(sizeof(double) * rc));
    QUAD_CUDA_CHECK(cudaMemcpyAsync(wf, w, sizeof(float) * rc, cudaMemcpyHostToDevice, stream_));
    check_launch(cuda::launch_widen_columns(wf, rows, cols, 0, cols, W, stream_), "widen_columns");
    float* ds = static_cast<float*>(gptq_.scales.ensure(sizeof(float) * rows));
    QUAD_CUDA_CHECK(
        cudaMemcpyAsync(ds, scales, sizeof(float) * rows, cudaMemcpyHostToDevice, stream_));
    int8_t* dc = static_cast<int8_t*>(gptq_.codes.ensure(rc));
    double* errT = static_cast<double*>(gptq_.err.ensure(sizeof(double) * block_size * rows));
    const double minus_one = -1.0, one = 1.0;
    for (int b0 = 0; b0 < cols; b0 += block_size) {
      const int b1 = std::min(b0 + block_size, cols), width = b1 - b0;
      check_launch(
          cuda::launch_gptq_block(W, U, ds, rows, cols, b0, width, bits, dc, errT, stream_),
          "gptq_block");
      if (b1 == cols) break;
      // Row-major W[:, b1:] −= Err (rows, width) · U[b0:b1, b1:]: column-major
      // C (cols − b1, rows) −= A (cols − b1, width) · errTᵀ, errT being (width, rows) row-major.
      QUAD_CUBLAS_CHECK(cublasDgemm(blas_, CUBLAS_OP_N, CUBLAS_OP_T, cols - b1, rows, width,
                                    &minus_one, U + size_t(b0) * cols + b1, cols, errT, rows, &one,
                                    W + b1, cols));
    }
    QUAD_CUDA_CHECK(cudaMemcpyAsync(codes, dc, rc, cudaMemcpyDeviceToHost, stream_));
    QUAD_CUDA_CHECK(cudaStreamSynchronize(stream_));
    return true;
  }

  void int_gemm(const int8_t* xq, const float* sx, int n, int k, const int8_t* wq, const float* sw,
                int out, float* y) override {
    Op op(*this, "int_gemm");
    if (n <= 0 || out <= 0) return;
    check(k >= 0, "cuda", "int_gemm: negative k {}", k);
    const int8_t* dx = input(kIn0, xq, size_t(n) * k);
    const float* dsx = input(kIn1, sx, size_t(n));
    const int8_t* dw = weights_.get(wq, size_t(out) * k, stream_);
    const float* dsw = weights_.get(sw, size_t(out), stream_);
    float* dy = output(kOut, y, size_t(n) * out);
    check_launch(cuda::launch_int_gemm(dx, dsx, n, k, dw, dsw, out, dy, stream_), "int_gemm");
    finish(y, dy, size_t(n) * out);
  }

  void int4_gemm(const int8_t* xq, const float* sx, int n, int k, const uint8_t* w4,
                 const float* sw, int out, float* y) override {
    Op op(*this, "int4_gemm");
    if (n <= 0 || out <= 0) return;
    check(k >= 0 && k % 2 == 0, "cuda", "int4_gemm: k = {} must be even", k);
    const int8_t* dx = input(kIn0, xq, size_t(n) * k);
    const float* dsx = input(kIn1, sx, size_t(n));
    const uint8_t* dw = weights_.get(w4, size_t(out) * (k / 2), stream_);
    const float* dsw = weights_.get(sw, size_t(out), stream_);
    float* dy = output(kOut, y, size_t(n) * out);
    check_launch(cuda::launch_int4_gemm(dx, dsx, n, k, dw, dsw, out, dy, stream_), "int4_gemm");
    finish(y, dy, size_t(n) * out);
  }

  // Quantized linears through the fused QUAD kernels (device/quad_linear.h): the layer uploaded
  // once into the kernels' form (cached per Linear, re-uploaded when its weights change), the
  // fp32 input quantized and multiplied on the GPU, fp32 out.
  bool fused_swiglu_linear(const Linear& down, const float* gate, const float* up, int n,
                           float* y) override {
    if (!fused_enabled_ || n <= 0 || !down.integer_path() || !down.input_transform ||
        !cuda::DeviceQuadLinear::supports(down) || !on_device(gate) || !on_device(up) ||
        !on_device(y))
      return false;
    Op op(*this, "fused_swiglu_linear");
    cuda::DeviceQuadLinear& d = fused_layer(down);
    if (d.u_type()) return false;
    d.forward_swiglu(gate, up, n, y, stream_);
    last_quant_ = {};  // no U-type layer reads these codes
    return true;
  }

  bool fused_linear(const Linear& lin, const float* x, int n, float* y) override {
    if (!fused_enabled_ || !cuda::DeviceQuadLinear::supports(lin)) return false;
    Op op(*this, "fused_linear");
    if (n <= 0) return true;
    cuda::DeviceQuadLinear& d = fused_layer(lin);
    const float* dx = input(kIn0, x, size_t(n) * lin.in);
    float* dy = output(kOut, y, size_t(n) * lin.out);
    // q/k/v (and gate/up) read the same normalized rows: the first quantizes them, the next
    // ones reuse that while no other op has run in between and x is device memory (which only
    // ops write) that the previous layer's output did not overlap.
    const cuda::DeviceQuadLinear* shared = nullptr;
    const SharedQuant& last = last_quant_;
    if (share_quant_ && last.layer &&
        last.input.same_rows(op_count_, x, dx, n, sizeof(float) * size_t(n) * lin.in) &&
        last.layer->quantizes_like(d, n))
      shared = last.layer;
    d.forward(dx, n, dy, stream_, shared);
    last_quant_ = {shared ? shared : &d, {op_count_, x, n, y, sizeof(float) * size_t(n) * lin.out}};
    finish(y, dy, size_t(n) * lin.out);
    return true;
  }

 private:
  // The device copies of the RoPE table's cos and sin (positions, head_dim / 2).
  std::pair<const float*, const float*> rope_tables(const RopeTable& table) {
    const size_t len = size_t(table.max_positions) * (table.head_dim / 2);
    return {weights_.get(table.cos.data(), len, stream_),
            weights_.get(table.sin.data(), len, stream_)};
  }

  // Whether attention of n tokens runs the fp16 flash kernel.
  bool flash_prefill(int n, int hd) const {
    return n > 1 && reduced_precision_ && cuda::flash_attention_supported(hd);
  }

  // attention(), or with `rope` (flash prefills only) the flash kernel rotating q on its load.
  void run_attention(const float* q, int n, int n_heads, int n_kv_heads, int hd,
                     const float* k_cache, const float* v_cache, int pos0, const RopeTable* rope,
                     float* out) {
    Op op(*this, "attention");
    if (n <= 0 || n_heads <= 0) return;
    check(n_kv_heads > 0 && n_heads % n_kv_heads == 0, "cuda",
          "attention: {} heads are not a multiple of {} kv heads", n_heads, n_kv_heads);
    check(hd > 0 && hd <= cuda::kMaxAttentionHeadDim, "cuda",
          "attention: head_dim {} is outside 1..{}", hd, cuda::kMaxAttentionHeadDim);
    check(pos0 >= 0, "cuda", "attention: negative start position {}", pos0);
    const size_t q_count = size_t(n) * n_heads * hd;
    const size_t kv_count = size_t(pos0 + n) * n_kv_heads * hd;  // the keys the last token sees
    const float* dq = input(kIn0, q, q_count);
    const float* dk = input(kIn1, k_cache, kv_count);
    const float* dv = input(kIn2, v_cache, kv_count);
    float* dout = output(kOut, out, q_count);
    const float scale = 1.0f / std::sqrt(float(hd));
    if (flash_prefill(n, hd)) {
      const auto [dcos, dsin] = rope ? rope_tables(*rope) : std::pair<const float*, const float*>{};
      check_launch(
          cuda::launch_flash_attention(
              dq, n, n_heads, n_kv_heads, hd, dk, dv, pos0, scale, dout,
              scratch<uint16_t>(kScores, cuda::flash_attention_scratch(pos0 + n, n_kv_heads, hd)),
              stream_, dcos, dsin),
          "flash_attention");
    } else if (n >= kGemmAttentionMinTokens) {
      gemm_attention(dq, n, n_heads, n_kv_heads, hd, dk, dv, pos0, scale, dout);
    } else {
      check_launch(cuda::launch_attention(dq, n, n_heads, n_kv_heads, hd, dk, dv, pos0, scale, dout,
                                          stream_),
                   "attention");
    }
    finish(out, dout, q_count);
  }

  // Prefills of at least this many tokens run attention as GEMMs (the per-token kernel is for
  // decode).
  static constexpr int kGemmAttentionMinTokens = 32;
  // Fewer tokens (decode) are gathered on the host: the copy is a few KB.
  static constexpr int kDeviceEmbedMinTokens = 32;
  // Causal GQA attention as two batched fp32 GEMMs per chunk of query rows, S = scale · Q Kᵀ
  // (one matrix per head, keys up to the chunk's last position), softmax in place (masked keys
  // get 0), O = S V. Chunks keep S within kScoreBytes. Full fp32 like the reference; the masked
  // upper triangle is computed and discarded (a fused flash-attention kernel would skip it).
  void gemm_attention(const float* q, int n, int H, int Hkv, int hd, const float* k, const float* v,
                      int pos0, float scale, float* out) {
    constexpr size_t kScoreBytes = size_t(512) << 20;
    constexpr int kMaxChunk = 512;
    const int group = H / Hkv;
    const size_t q_row = size_t(H) * hd, kv_row = size_t(Hkv) * hd;
    for (int i0 = 0; i0 < n;) {
      const int L_max = pos0 + n;
      int rows = int(std::min<size_t>(kMaxChunk, kScoreBytes / (sizeof(float) * H * L_max)));
      rows = std::max(1, std::min(rows, n - i0));
      const int L = pos0 + i0 + rows;  // keys the chunk's last row sees
      float* S = scratch<float>(kScores, size_t(H) * rows * L);
      std::vector<const void*> ptrs(size_t(5) * H);  // Kh, Qh, Sh (scores), Vh, Oh
      for (int h = 0; h < H; ++h) {
        const int g = h / group;
        ptrs[h] = k + size_t(g) * hd;
        ptrs[H + h] = q + size_t(i0) * q_row + size_t(h) * hd;
        ptrs[2 * H + h] = S + size_t(h) * rows * L;
        ptrs[3 * H + h] = v + size_t(g) * hd;
        ptrs[4 * H + h] = out + size_t(i0) * q_row + size_t(h) * hd;
      }
      void** dptrs = scratch<void*>(kPointers, ptrs.size());
      QUAD_CUDA_CHECK(cudaMemcpyAsync(dptrs, ptrs.data(), sizeof(void*) * ptrs.size(),
                                      cudaMemcpyHostToDevice, stream_));
      const float one = 1.0f, zero = 0.0f;
      auto F = [&](int slot) { return reinterpret_cast<const float* const*>(dptrs + slot * H); };
      auto W = [&](int slot) { return reinterpret_cast<float* const*>(dptrs + slot * H); };
      // Column-major: S_hᵀ (L × rows, ld L) = K_h (hd × L, ld kv_row)ᵀ · Q_h (hd × rows).
      QUAD_CUBLAS_CHECK(cublasSgemmBatched(blas_, CUBLAS_OP_T, CUBLAS_OP_N, L, rows, hd, &scale,
                                           F(0), int(kv_row), F(1), int(q_row), &zero, W(2), L, H));
      check_launch(cuda::launch_causal_softmax(S, H, rows, L, pos0 + i0 + 1, stream_),
                   "causal_softmax");
      // O_hᵀ (hd × rows, ld q_row) = V_h (hd × L, ld kv_row) · S_hᵀ (L × rows, ld L).
      QUAD_CUBLAS_CHECK(cublasSgemmBatched(blas_, CUBLAS_OP_N, CUBLAS_OP_N, hd, rows, L, &one, F(3),
                                           int(kv_row), F(2), L, &zero, W(4), int(q_row), H));
      i0 += rows;
    }
  }

  // y = x · wᵀ (+ bias) with 16-bit weights: x rounded to the same type, tensor-core GEMM with
  // fp32 accumulation and fp32 out.
  void half_linear(const float* x, int n, int in, const uint16_t* w16, int out, const float* bias,
                   float* y, bool bf16) {
    Op op(*this, "half_linear");
    if (profile_) op.shape = gemm_shape(n, out, in);
    if (n <= 0 || out <= 0) return;
    const uint16_t* dx16 = nullptr;
    if (in > 0) {
      const float* dx = input(kIn0, x, size_t(n) * in);
      // q/k/v (and gate/up) read the same rows: the first rounds them, the next ones reuse that
      // while no other op has run in between (the same rule as the fused linears' shared
      // quantization).
      const SharedHalf& last = last_half_;
      const bool shared = last.in == in && last.bf16 == bf16 &&
                          last.input.same_rows(op_count_, x, dx, n, sizeof(float) * size_t(n) * in);
      uint16_t* rounded = scratch<uint16_t>(kIn1, size_t(n) * in);
      if (!shared)
        check_launch(cuda::launch_to_half(dx, size_t(n) * in, rounded, bf16, stream_), "to_half");
      last_half_ = {{op_count_, x, n, y, sizeof(float) * size_t(n) * out}, in, bf16};
      dx16 = rounded;
    }
    half_gemm(dx16, n, in, w16, out, bias, y, bf16);
  }

  // 16-bit weights of one type (weight_f16 before weight_bf16, as the model picks them).
  static const std::vector<uint16_t>& weights16(const Linear& lin) {
    return lin.weight_f16.empty() ? lin.weight_bf16 : lin.weight_f16;
  }
  // lin's 16-bit weights as one part of a joined weight (WeightCache::get_joined).
  static WeightCache::Part weights16_part(const Linear& lin) {
    return {weights16(lin).data(), sizeof(uint16_t) * weights16(lin).size()};
  }
  static const float* bias_of(const Linear& lin) {
    return lin.has_bias() ? lin.bias.data() : nullptr;
  }
  // Whether lin is an fp linear with 16-bit weights of the given type reading its input as is.
  static bool sixteen_bit(const Linear& lin, bool bf16) {
    return lin.weight.empty() && !weights16(lin).empty() && lin.weight_f16.empty() == bf16 &&
           lin.reads_input_as_is();
  }
  bool norm_takes(const RmsNorm& norm, int width) const {
    return norm.divisor > 0 && (norm.weight.empty() || norm.weight.size() == size_t(width));
  }
  // x += r (r may be null), x16 (n, width) = norm(x) in 16 bits.
  void add_norm_to_half(const RmsNorm& norm, float* x, const float* r, int n, int width,
                        uint16_t* x16, bool bf16) {
    const float* dw = weights_.get(norm.weight.empty() ? nullptr : norm.weight.data(),
                                   norm.weight.size(), stream_);
    check_launch(cuda::launch_add_rmsnorm_to_half(x, r, n, width, dw, norm.divisor, norm.eps, x16,
                                                  bf16, stream_),
                 "add_rmsnorm_to_half");
  }

  // The attention of a block op from its joined rows qkv (n, q | k | v): the new keys (rotated)
  // and values into the cache rows pos0 .., causal attention with RoPE on q; out (n, n_heads·hd)
  // fp32, or with out16 the 16-bit rows (bf16 when bf16) instead. Decode steps (n = 1) run as
  // one kernel where the head size allows, prefills on the flash kernel (q read with qkv's row
  // stride, rotated on load).
  void block_attention(float* qkv, int n, int n_heads, int n_kv_heads, int hd, float* k_cache,
                       float* v_cache, int pos0, const RopeTable& rope, float* out, uint16_t* out16,
                       bool bf16) {
    const size_t q_width = size_t(n_heads) * hd, kv_row = size_t(n_kv_heads) * hd;
    const int qkv_width = int(q_width + 2 * kv_row);
    const auto [dcos, dsin] = rope_tables(rope);
    const float scale = 1.0f / std::sqrt(float(hd));
    const size_t kv_at = size_t(pos0) * kv_row;
    if (n == 1) {
      float* attn = out ? out : scratch<float>(kOut, q_width);
      if (cuda::decode_attention_supported(hd)) {
        check_launch(
            cuda::launch_decode_attention(qkv, int(q_width), n_heads, n_kv_heads, hd, k_cache,
                                          v_cache, pos0, dcos, dsin, scale, attn, stream_),
            "decode_attention");
      } else {
        check_launch(
            cuda::launch_split_kv_rope(qkv, 1, qkv_width, int(q_width), n_kv_heads, hd, pos0, dcos,
                                       dsin, k_cache + kv_at, v_cache + kv_at, n_heads, stream_),
            "split_kv_rope");
        check_launch(cuda::launch_attention(qkv, 1, n_heads, n_kv_heads, hd, k_cache, v_cache, pos0,
                                            scale, attn, stream_),
                     "attention");
      }
      if (out16) check_launch(cuda::launch_to_half(attn, q_width, out16, bf16, stream_), "to_half");
      return;
    }
    check_launch(
        cuda::launch_split_kv_rope(qkv, n, qkv_width, int(q_width), n_kv_heads, hd, pos0, dcos,
                                   dsin, k_cache + kv_at, v_cache + kv_at, 0, stream_),
        "split_kv_rope");
    check_launch(
        cuda::launch_flash_attention(
            qkv, n, n_heads, n_kv_heads, hd, k_cache, v_cache, pos0, scale, out,
            scratch<uint16_t>(kScores, cuda::flash_attention_scratch(pos0 + n, n_kv_heads, hd)),
            stream_, dcos, dsin, out16, bf16, qkv_width),
        "flash_attention");
  }

  // Whether the attention block's arguments fit together (widths, heads, RoPE table, buffers in
  // GPU memory) and n tokens run on its kernels: prefills on the flash kernel, one-token decode
  // steps on the attention kernel of attention() (their q, row 0 of the joined output,
  // contiguous). Both need reduced precision allowed.
  bool attention_block_takes(const RmsNorm& norm, const Linear& q, const Linear& k, const Linear& v,
                             const Linear& o, const float* x, const float* r, int n, int n_heads,
                             int n_kv_heads, int hd, const float* k_cache, const float* v_cache,
                             int pos0, const RopeTable& rope, const float* y) const {
    const int width = q.in;
    const size_t q_width = size_t(n_heads) * hd, kv_row = size_t(n_kv_heads) * hd;
    const bool decode = n == 1 && reduced_precision_ && hd <= cuda::kMaxAttentionHeadDim;
    return (flash_prefill(n, hd) || decode) && n_heads > 0 && n_kv_heads > 0 &&
           n_heads % n_kv_heads == 0 && width > 0 && k.in == width && v.in == width &&
           size_t(q.out) == q_width && size_t(k.out) == kv_row && size_t(v.out) == kv_row &&
           size_t(o.in) == q_width && norm_takes(norm, width) && rope.head_dim == hd && pos0 >= 0 &&
           pos0 + n <= rope.max_positions && on_device(x) && (!r || on_device(r)) &&
           on_device(k_cache) && on_device(v_cache) && on_device(y);
  }

  bool attention_block(const RmsNorm& norm, const Linear& q, const Linear& k, const Linear& v,
                       const Linear& o, float* x, const float* r, int n, int n_heads,
                       int n_kv_heads, int hd, float* k_cache, float* v_cache, int pos0,
                       const RopeTable& rope, float* y) override {
    if (q.integer_path())
      return quad_attention_block(norm, q, k, v, o, x, r, n, n_heads, n_kv_heads, hd, k_cache,
                                  v_cache, pos0, rope, y);
    const bool bf16 = o.weight_f16.empty();
    for (const Linear* lin : {&q, &k, &v, &o})
      if (!sixteen_bit(*lin, bf16)) return false;
    if (!attention_block_takes(norm, q, k, v, o, x, r, n, n_heads, n_kv_heads, hd, k_cache, v_cache,
                               pos0, rope, y))
      return false;
    const int width = q.in;
    const size_t q_width = size_t(n_heads) * hd, kv_row = size_t(n_kv_heads) * hd;
    const bool biased = q.has_bias();
    if (k.has_bias() != biased || v.has_bias() != biased) return false;
    Op op(*this, "attention_block");
    if (profile_) op.shape = std::to_string(n) + "x" + std::to_string(width);
    // The normalized rows, then (once q, k and v are computed) the attention output.
    uint16_t* x16 = scratch<uint16_t>(kIn1, size_t(n) * std::max<size_t>(width, q_width));
    last_half_ = {};  // kIn1's rows are no op's input
    add_norm_to_half(norm, x, r, n, width, x16, bf16);
    // q, k and v as one GEMM of the joined weights (a wider GEMM runs closer to the tensor
    // cores' peak than three), rows q | k | v.
    const int qkv_width = int(q_width + 2 * kv_row);
    const auto* dw = static_cast<const uint16_t*>(
        weights_.get_joined({weights16_part(q), weights16_part(k), weights16_part(v)}, stream_));
    float* qkv = scratch<float>(kOut2, size_t(n) * qkv_width);
    device_gemm16(x16, n, width, dw, qkv_width, qkv, /*out16=*/false, bf16);
    if (biased) {
      auto bias_part = [](const Linear& lin) {
        return WeightCache::Part{lin.bias.data(), sizeof(float) * lin.bias.size()};
      };
      const auto* db = static_cast<const float*>(
          weights_.get_joined({bias_part(q), bias_part(k), bias_part(v)}, stream_));
      check_launch(cuda::launch_add_bias(qkv, db, n, qkv_width, stream_), "add_bias");
    }
    block_attention(qkv, n, n_heads, n_kv_heads, hd, k_cache, v_cache, pos0, rope, nullptr, x16,
                    bf16);
    half_gemm(x16, n, o.in, weights16(o).data(), o.out, bias_of(o), y, bf16);
    return true;
  }

  bool mlp_block(const RmsNorm& norm, const Linear& gate, const Linear& up, const Linear& down,
                 float* x, const float* r, int n, float* gate_buf, float* up_buf,
                 float* y) override {
    if (gate.integer_path()) return quad_mlp_block(norm, gate, up, down, x, r, n, up_buf, y);
    const bool bf16 = down.weight_f16.empty();
    for (const Linear* lin : {&gate, &up, &down})
      if (!sixteen_bit(*lin, bf16)) return false;
    const int d = gate.in, ff = gate.out;
    if (n <= 0 || d <= 0 || ff <= 0 || up.in != d || up.out != ff || down.in != ff ||
        !norm_takes(norm, d) || !on_device(x) || (r && !on_device(r)) || !on_device(gate_buf) ||
        !on_device(up_buf) || !on_device(y))
      return false;
    Op op(*this, "mlp_block");
    if (profile_) op.shape = gemm_shape(n, ff, d);
    const size_t count = size_t(n) * ff;
    uint16_t* x16 = scratch<uint16_t>(kIn1, std::max(size_t(n) * d, count));
    last_half_ = {};  // kIn1's rows are no op's input
    add_norm_to_half(norm, x, r, n, d, x16, bf16);
    if (reduced_precision_ && !gate.has_bias() && !up.has_bias()) {
      // gate(xn) | up(xn) in 16 bits by one GEMM of the joined weights (rows (n, 2·ff), in
      // up_buf), their product (n, ff) in gate_buf.
      const auto* dw = static_cast<const uint16_t*>(
          weights_.get_joined({weights16_part(gate), weights16_part(up)}, stream_));
      auto* gu16 = reinterpret_cast<uint16_t*>(up_buf);
      auto* p16 = reinterpret_cast<uint16_t*>(gate_buf);
      device_gemm16(x16, n, d, dw, 2 * ff, gu16, /*out16=*/true, bf16);
      check_launch(cuda::launch_silu_mul_of_joined_half(gu16, n, ff, p16, bf16, stream_),
                   "silu_mul_of_joined_half");
      half_gemm(p16, n, ff, weights16(down).data(), down.out, bias_of(down), y, bf16);
      return true;
    }
    // The steps' values: fp32 gate(xn) and up(xn), their product rounded once for down.
    half_gemm(x16, n, d, weights16(gate).data(), ff, bias_of(gate), gate_buf, bf16);
    half_gemm(x16, n, d, weights16(up).data(), ff, bias_of(up), up_buf, bf16);
    check_launch(cuda::launch_silu_mul_to_half(gate_buf, up_buf, count, x16, bf16, stream_),
                 "silu_mul_to_half");
    half_gemm(x16, n, ff, weights16(down).data(), down.out, bias_of(down), y, bf16);
    return true;
  }

  // The blocks of a QUAD model on the fused kernels (with reduced precision allowed, like the fp
  // blocks): the residual add, the weightless RMSNorm and the U-type quantization in one kernel,
  // q|k|v (gate|up) as one joined layer.
  bool quad_norm_takes(const RmsNorm& norm, std::span<const Linear* const> joined,
                       const Linear& d_type) const {
    return fused_enabled_ && reduced_precision_ && norm.weight.empty() && norm.divisor > 0 &&
           cuda::DeviceQuadLinear::unsupported_joined(joined).empty() &&
           cuda::DeviceQuadLinear::supports(d_type) && d_type.input_transform;
  }

  // The attention block: q|k|v's GEMM writes fp32 rows, k (rotated) and v go to the cache, the
  // attention reads q from those rows and writes fp32 rows for o's quantization: the values of
  // the steps (rope_attention and the fused linears) apart from the fused add and RMSNorm.
  bool quad_attention_block(const RmsNorm& norm, const Linear& q, const Linear& k, const Linear& v,
                            const Linear& o, float* x, const float* r, int n, int n_heads,
                            int n_kv_heads, int hd, float* k_cache, float* v_cache, int pos0,
                            const RopeTable& rope, float* y) {
    const std::array<const Linear*, 3> qkv_parts{&q, &k, &v};
    if (!quad_norm_takes(norm, qkv_parts, o) ||
        !attention_block_takes(norm, q, k, v, o, x, r, n, n_heads, n_kv_heads, hd, k_cache, v_cache,
                               pos0, rope, y))
      return false;
    Op op(*this, "attention_block");
    if (profile_) op.shape = std::to_string(n) + "x" + std::to_string(q.in);
    const size_t q_width = size_t(n_heads) * hd, kv_row = size_t(n_kv_heads) * hd;
    const int qkv_width = int(q_width + 2 * kv_row);
    cuda::DeviceQuadLinear& qkv_layer = joined_layer(qkv_parts);
    qkv_layer.quantize_u(x, r, n, norm.divisor, norm.eps, stream_);
    op.step("add+norm+quant_u");
    float* qkv = scratch<float>(kOut2, size_t(n) * qkv_width);
    qkv_layer.gemm(n, qkv, stream_);
    op.step("qkv gemm");
    float* attn = scratch<float>(kIn0, size_t(n) * q_width);
    block_attention(qkv, n, n_heads, n_kv_heads, hd, k_cache, v_cache, pos0, rope, attn, nullptr,
                    false);
    op.step("rope+attention");
    cuda::DeviceQuadLinear& o_layer = fused_layer(o);
    o_layer.quantize_d(attn, n, stream_);
    op.step("quant_d (o)");
    o_layer.gemm(n, y, stream_);
    op.step("o gemm");
    last_quant_ = {};
    return true;
  }

  // The MLP block: gate|up's GEMM writes bf16 rows gate | up into up_buf (as the fp block keeps
  // them in 16 bits), down_proj's quantization forms silu(gate) ⊙ up from them.
  bool quad_mlp_block(const RmsNorm& norm, const Linear& gate, const Linear& up, const Linear& down,
                      float* x, const float* r, int n, float* up_buf, float* y) {
    const std::array<const Linear*, 2> gu_parts{&gate, &up};
    const int width = gate.in, ff = gate.out;
    if (!quad_norm_takes(norm, gu_parts, down) || n <= 0 || up.out != ff || down.in != ff ||
        ff % 8 != 0 || !on_device(x) || (r && !on_device(r)) || !on_device(up_buf) || !on_device(y))
      return false;
    Op op(*this, "mlp_block");
    if (profile_) op.shape = gemm_shape(n, ff, width);
    cuda::DeviceQuadLinear& gu_layer = joined_layer(gu_parts);
    gu_layer.quantize_u(x, r, n, norm.divisor, norm.eps, stream_);
    op.step("add+norm+quant_u");
    auto* gu16 = reinterpret_cast<__nv_bfloat16*>(up_buf);  // (n, 2·ff) bf16 in (n, ff) floats
    gu_layer.gemm(n, gu16, stream_);
    op.step("gate|up gemm");
    cuda::DeviceQuadLinear& down_layer = fused_layer(down);
    down_layer.quantize_swiglu(gu16, n, stream_);
    op.step("quant_d swiglu (down)");
    down_layer.gemm(n, y, stream_);
    op.step("down gemm");
    last_quant_ = {};
    return true;
  }

  // y (n, out; GPU memory, fp32 or, with out16, the weights' 16-bit type) = x16 (n, in) · w16ᵀ
  // (out, in; a host weight, cached) on tensor cores with fp32 accumulation.
  void gemm16(const uint16_t* x16, int n, int in, const uint16_t* w16, int out, void* y, bool out16,
              bool bf16) {
    device_gemm16(x16, n, in, weights_.get(w16, size_t(out) * in, stream_), out, y, out16, bf16);
  }
  // The same with the weights dw (out, in) already in GPU memory.
  // accumulate: y += the product instead of y = it.
  void device_gemm16(const uint16_t* x16, int n, int in, const uint16_t* dw, int out, void* y,
                     bool out16, bool bf16, bool accumulate = false) {
    const cudaDataType type = bf16 ? CUDA_R_16BF : CUDA_R_16F;
    const float one = 1.0f, beta = accumulate ? 1.0f : 0.0f;
    // Row-major y (n, out) = x (n, in) · w (out, in)ᵀ is column-major yᵀ = w (in, out)ᵀ · xᵀ.
    QUAD_CUBLAS_CHECK(cublasGemmEx(blas_, CUBLAS_OP_T, CUBLAS_OP_N, out, n, in, &one, dw, type, in,
                                   x16, type, in, &beta, y, out16 ? type : CUDA_R_32F, out,
                                   CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
  }

  static std::string gemm_shape(int n, int out, int in) {
    return std::to_string(n) + "x" + std::to_string(out) + "x" + std::to_string(in);
  }

  // y (n, out) = x16 (n, in; 16-bit, in GPU memory; null when in is 0) · w16ᵀ (+ bias), fp32
  // accumulation and output: the GEMM of half_linear and the block ops.
  void half_gemm(const uint16_t* dx16, int n, int in, const uint16_t* w16, int out,
                 const float* bias, float* y, bool bf16) {
    float* dy = output(kOut, y, size_t(n) * out);
    const float* db = weights_.get(bias, bias ? size_t(out) : 0, stream_);
    if (in > 0) {
      gemm16(dx16, n, in, w16, out, dy, /*out16=*/false, bf16);
    } else {
      QUAD_CUDA_CHECK(cudaMemsetAsync(dy, 0, sizeof(float) * size_t(n) * out, stream_));
    }
    if (db) check_launch(cuda::launch_add_bias(dy, db, n, out, stream_), "add_bias");
    finish(y, dy, size_t(n) * out);
  }

  // What identifies a layer's weights: the buffers' addresses, and a hash of sampled scales and
  // code bytes (fine-tuning rewrites both in place, every scale changes).
  static uint64_t fused_fingerprint(const Linear& lin) {
    const QuantizedWeight& q = *lin.qweight;
    uint64_t h = 1469598103934665603ull;
    auto mix = [&h](const void* p, size_t bytes) {
      const auto* b = static_cast<const unsigned char*>(p);
      for (size_t i = 0; i < bytes; ++i) h = (h ^ b[i]) * 1099511628211ull;
    };
    const void* ptrs[3] = {lin.qweight.get(), q.packed.data(), q.scales.data()};
    mix(ptrs, sizeof(ptrs));
    // Sampled, so the check costs well under a microsecond on every call.
    const size_t scale_step = std::max<size_t>(1, q.scales.size() / 64);
    for (size_t i = 0; i < q.scales.size(); i += scale_step) mix(&q.scales[i], sizeof(float));
    const size_t step = std::max<size_t>(1, q.packed.size() / 256);
    for (size_t i = 0; i < q.packed.size(); i += step) mix(&q.packed[i], 1);
    if (!q.w_outlier.empty()) mix(q.w_outlier.data(), std::min<size_t>(q.w_outlier.size(), 64) * 4);
    if (!q.w_outlier_f16.empty())
      mix(q.w_outlier_f16.data(), std::min<size_t>(q.w_outlier_f16.size(), 64) * 2);
    return h;
  }
  // QUAD layers on the fused kernels, cached by their parts: one layer, or joined U-type layers
  // (q|k|v, gate|up) side by side.
  cuda::DeviceQuadLinear& joined_layer(std::span<const Linear* const> parts) {
    auto& entry = fused_[std::vector<const Linear*>(parts.begin(), parts.end())];
    if (fused_frozen_ && entry.second) return *entry.second;
    uint64_t fp = 0;
    for (const Linear* part : parts) fp = (fp ^ fused_fingerprint(*part)) * 1099511628211ull;
    if (!entry.second || entry.first != fp) {
      last_quant_ = {};  // it may point at the layer being replaced
      entry = {fp, parts.size() == 1 ? std::make_unique<cuda::DeviceQuadLinear>(*parts[0])
                                     : std::make_unique<cuda::DeviceQuadLinear>(parts)};
    }
    return *entry.second;
  }
  cuda::DeviceQuadLinear& fused_layer(const Linear& lin) {
    const Linear* const part = &lin;
    return joined_layer(std::span<const Linear* const>(&part, 1));
  }
  // The op that last prepared its input (quantized or rounded it): which op it was, the rows it
  // read and what it wrote.
  struct LastInput {
    uint64_t op = 0;
    const float* x = nullptr;
    int n = 0;
    const void* y = nullptr;
    size_t y_bytes = 0;
    // Whether op `op_count` reads the same rows, still unchanged: it comes right after, its x
    // (x_bytes) is the same device memory (which only ops write), and the last output did not
    // overlap it.
    bool same_rows(uint64_t op_count, const float* x_now, const float* dx, int n_now,
                   size_t x_bytes) const {
      return op + 1 == op_count && x == x_now && dx == x_now && n == n_now &&
             !overlaps(y, y_bytes, x_now, x_bytes);
    }
  };
  // The last fused linear's quantized input, for the next one (fused_linear).
  struct SharedQuant {
    const cuda::DeviceQuadLinear* layer = nullptr;
    LastInput input;
  };
  // The last half_linear's rounded input (in slot kIn1), for the next one.
  struct SharedHalf {
    LastInput input;
    int in = 0;
    bool bf16 = false;
  };
  static bool overlaps(const void* a, size_t a_bytes, const void* b, size_t b_bytes) {
    const auto pa = reinterpret_cast<uintptr_t>(a), pb = reinterpret_cast<uintptr_t>(b);
    return pa < pb + b_bytes && pb < pa + a_bytes;
  }

  // Scratch slots for staged activations, reused by every op.
  enum Slot { kIn0, kIn1, kIn2, kOut, kOut2, kScores, kPointers, kSlots };

  // Serializes ops and marks their start for the weight cache.
  // With QUAD_CUDA_PROFILE=1, each op's host time (its whole call) and GPU time (events around
  // the work it enqueued) are summed per op name and printed when the backend is destroyed.
  struct Op {
    Op(CudaBackend& b, const char* name) : lock(b.mu_), backend(b), name(name) {
      b.weights_.begin_op();
      ++b.op_count_;
      if (b.profile_) {
        start = std::chrono::steady_clock::now();
        QUAD_CUDA_CHECK(cudaEventRecord(b.event_start_, b.stream_));
      }
    }
    ~Op() {
      if (!backend.profile_) return;
      float gpu_ms = 0;
      const std::string key = shape.empty() ? std::string(name) : name + (" " + shape);
      if (cudaEventRecord(backend.event_end_, backend.stream_) == cudaSuccess &&
          cudaEventSynchronize(backend.event_end_) == cudaSuccess) {
        (void)cudaEventElapsedTime(&gpu_ms, backend.event_start_, backend.event_end_);
        // The steps: each from the previous mark (or the op's start) to its own.
        cudaEvent_t prev = backend.event_start_;
        for (size_t i = 0; i < steps.size(); ++i) {
          float ms = 0;
          (void)cudaEventElapsedTime(&ms, prev, backend.step_events_[i]);
          backend.stats_[key + " / " + steps[i]].gpu_us.push_back(1e3 * ms);
          prev = backend.step_events_[i];
        }
      }
      OpStats& st = backend.stats_[key];
      st.gpu_us.push_back(1e3 * gpu_ms);
      st.host_us.push_back(
          1e6 * std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
    }
    // With QUAD_CUDA_PROFILE=1, marks the end of a named step of this op (the GPU work enqueued
    // since the previous mark), profiled on its own line.
    void step(const char* what) {
      if (!backend.profile_) return;
      if (steps.size() == backend.step_events_.size()) {
        cudaEvent_t e = nullptr;
        QUAD_CUDA_CHECK(cudaEventCreate(&e));
        backend.step_events_.push_back(e);
      }
      QUAD_CUDA_CHECK(cudaEventRecord(backend.step_events_[steps.size()], backend.stream_));
      steps.push_back(what);
    }
    std::vector<const char*> steps;
    std::lock_guard<std::mutex> lock;
    CudaBackend& backend;
    const char* name;
    std::string shape;  // profiled separately per shape where an op sets it
    std::chrono::steady_clock::time_point start;
  };
  struct OpStats {
    std::vector<double> host_us, gpu_us;
  };
  static double median(std::vector<double> v) {
    if (v.empty()) return std::nan("");  // an op's steps have GPU times only
    std::nth_element(v.begin(), v.begin() + v.size() / 2, v.end());
    return v[v.size() / 2];
  }
  // Medians, so that the first calls (weight uploads, buffer growth) do not dominate.
  void print_profile() const {
    std::fprintf(stderr,
                 "cuda op profile (QUAD_CUDA_PROFILE=1; medians; host = whole call incl. the "
                 "event wait, gpu = between events around the enqueued work; 'op / step' rows: "
                 "the GPU time of one step of a block op):\n%-50s %8s %14s "
                 "%14s %14s\n",
                 "op", "calls", "host us/call", "gpu us/call", "gpu ms total");
    for (const auto& [name, st] : stats_)
      std::fprintf(stderr, "%-50s %8zu %14.2f %14.2f %14.3f\n", name.c_str(), st.gpu_us.size(),
                   median(st.host_us), median(st.gpu_us),
                   1e-3 * std::accumulate(st.gpu_us.begin(), st.gpu_us.end(), 0.0));
  }

  // In place on a (n, n, device): the upper Cholesky factor of a⁻¹ in the row-major upper
  // triangle; false when a factorization meets a non-positive pivot.
  bool inverse_cholesky(double* a, int n) {
    if (!solver_) {
      if (cusolverDnCreate(&solver_) != CUSOLVER_STATUS_SUCCESS)
        fail("cuda", "cusolverDnCreate failed");
      QUAD_CUSOLVER_CHECK(cusolverDnSetStream(solver_, stream_));
    }
    const cublasFillMode_t lower = CUBLAS_FILL_MODE_LOWER;  // column-major lower = row-major upper
    int lwork = 0, lwork_inv = 0;
    QUAD_CUSOLVER_CHECK(cusolverDnDpotrf_bufferSize(solver_, lower, n, a, n, &lwork));
    QUAD_CUSOLVER_CHECK(cusolverDnDpotri_bufferSize(solver_, lower, n, a, n, &lwork_inv));
    lwork = std::max(lwork, lwork_inv);
    double* work = static_cast<double*>(gptq_.work.ensure(sizeof(double) * size_t(lwork)));
    int* info = static_cast<int*>(gptq_.info.ensure(sizeof(int)));
    auto ok = [&] {
      int host_info = 0;
      QUAD_CUDA_CHECK(
          cudaMemcpyAsync(&host_info, info, sizeof(int), cudaMemcpyDeviceToHost, stream_));
      QUAD_CUDA_CHECK(cudaStreamSynchronize(stream_));
      return host_info == 0;
    };
    QUAD_CUSOLVER_CHECK(cusolverDnDpotrf(solver_, lower, n, a, n, work, lwork, info));
    if (!ok()) return false;
    QUAD_CUSOLVER_CHECK(cusolverDnDpotri(solver_, lower, n, a, n, work, lwork, info));
    if (!ok()) return false;
    QUAD_CUSOLVER_CHECK(cusolverDnDpotrf(solver_, lower, n, a, n, work, lwork, info));
    return ok();
  }

  template <typename T>
  T* scratch(Slot slot, size_t count) {
    return static_cast<T*>(slots_[slot].ensure(sizeof(T) * count));
  }
  // Whether p is GPU memory (host, pinned and managed memory count as host).
  static bool on_device(const void* p) {
    if (cuda::owns_device_memory(p)) return true;  // activations: no driver call
    cudaPointerAttributes a{};
    if (cudaPointerGetAttributes(&a, p) != cudaSuccess) {
      (void)cudaGetLastError();
      return false;
    }
    return a.type == cudaMemoryTypeDevice;
  }
  // An op's input [src, src + count): src itself in GPU memory, else a staged copy in `slot`.
  template <typename T>
  const T* input(Slot slot, const T* src, size_t count) {
    if (on_device(src)) return src;
    T* d = scratch<T>(slot, count);
    QUAD_CUDA_CHECK(cudaMemcpyAsync(d, src, sizeof(T) * count, cudaMemcpyHostToDevice, stream_));
    return d;
  }
  template <typename T>
  T* in_place(Slot slot, T* x, size_t count) {
    return const_cast<T*>(input(slot, static_cast<const T*>(x), count));
  }
  // Where an op writes its output dst: dst itself in GPU memory, else a scratch slot.
  template <typename T>
  T* output(Slot slot, T* dst, size_t count) {
    return on_device(dst) ? dst : scratch<T>(slot, count);
  }
  // Ends an op: a result computed in scratch is copied to its host destination (waiting for the
  // op); one written in place stays on the stream, asynchronous.
  template <typename T>
  void finish(T* dst, const T* result, size_t count) {
    if (dst == result) return;
    QUAD_CUDA_CHECK(
        cudaMemcpyAsync(dst, result, sizeof(T) * count, cudaMemcpyDeviceToHost, stream_));
    QUAD_CUDA_CHECK(cudaStreamSynchronize(stream_));
  }

  std::mutex mu_;
  bool profile_ = [] {
    const char* v = std::getenv("QUAD_CUDA_PROFILE");
    return v && std::string(v) == "1";
  }();
  cudaEvent_t event_start_ = nullptr, event_end_ = nullptr;
  std::vector<cudaEvent_t> step_events_;  // Op::step's marks, reused by every op
  std::map<std::string, OpStats> stats_;
  cudaStream_t stream_ = nullptr;
  cublasHandle_t blas_ = nullptr;
  cusolverDnHandle_t solver_ = nullptr;  // created by the first gptq call
  struct GptqBuffers {
    DeviceBuffer u, wf, w, scales, codes, err, work, info;
  } gptq_;
  cuda::WeightCache weights_;
  std::array<DeviceBuffer, kSlots> slots_;
  DeviceBuffer blas_workspace_;                   // cuBLAS's workspace (cublasSetWorkspace)
  DeviceBuffer sample_token_, sample_workspace_;  // sample_token's result and its sort/scan space
  std::map<std::vector<const Linear*>, std::pair<uint64_t, std::unique_ptr<cuda::DeviceQuadLinear>>>
      fused_;
  // QUAD_CUDA_FUSED=0 turns the fused QUAD linears off (op-by-op integer path, bit-identical to
  // the CPU backend's integer ops).
  uint64_t op_count_ = 0;  // ops started so far
  SharedQuant last_quant_;
  SharedHalf last_half_;
  // QUAD_CUDA_SHARE_QUANT=0 quantizes every fused linear's input itself.
  bool share_quant_ = [] {
    const char* v = std::getenv("QUAD_CUDA_SHARE_QUANT");
    return !(v && std::string(v) == "0");
  }();
  bool fused_frozen_ = false;       // assume_weights_frozen: no fingerprint checks
  bool reduced_precision_ = false;  // allow_reduced_precision: fp16 flash attention
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
