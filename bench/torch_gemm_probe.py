#!/usr/bin/env python3
"""Times PyTorch's bf16 GEMMs (cuBLAS underneath) at the Llama-3-8B linear shapes, for comparing
with `QUAD_CUDA_PROFILE=1 quad bench --dtype bf16`'s per-shape half_linear times in the same call,
and its causal scaled_dot_product_attention at the attention shape (32 heads, head_dim 128), for
comparing with build-gpu/attention_bench.

Prints, per shape (tokens x out x in), the median of CUDA-event timings over many runs of
y = x · wᵀ with bf16 out, and with fp32 out where this torch has `out_dtype` (quad's GEMMs write
fp32), with the TFLOP/s each reaches.

Usage: python3 bench/torch_gemm_probe.py [--tokens 2048] [--reps 30]
"""
import argparse

import torch

SHAPES = [(4096, 4096), (1024, 4096), (6144, 4096), (14336, 4096), (28672, 4096), (4096, 14336),
          (128256, 4096)]  # 6144: fused q|k|v, 28672: fused gate|up (as the plain torch Llama)


def timed(fn, reps):
    for _ in range(3):
        fn()
    torch.cuda.synchronize()
    times = []
    for _ in range(reps):
        a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        a.record()
        fn()
        b.record()
        b.synchronize()
        times.append(a.elapsed_time(b))
    times.sort()
    return times[len(times) // 2]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--tokens", type=int, default=2048)
    ap.add_argument("--reps", type=int, default=30)
    args = ap.parse_args()
    n = args.tokens
    print(f"torch {torch.__version__}, {torch.cuda.get_device_name()}, {n} tokens")
    print(f"{'shape':>22} {'bf16 out ms':>12} {'TFLOP/s':>8} {'fp32 out ms':>12} {'TFLOP/s':>8}")
    for out, inp in SHAPES:
        g = torch.Generator(device="cuda").manual_seed(out + inp)
        x = torch.randn(n, inp, device="cuda", generator=g).to(torch.bfloat16)
        w = (torch.randn(out, inp, device="cuda", generator=g) * 0.02).to(torch.bfloat16)
        flops = 2.0 * n * out * inp
        t16 = timed(lambda: x @ w.t(), args.reps)
        try:
            t32 = timed(lambda: torch.mm(x, w.t(), out_dtype=torch.float32), args.reps)
            f32 = f"{t32:12.3f} {flops / t32 / 1e9:8.0f}"
        except (TypeError, RuntimeError) as e:
            f32 = f"{'n/a':>12} ({type(e).__name__})"
        print(f"{f'{n}x{out}x{inp}':>22} {t16:12.3f} {flops / t16 / 1e9:8.0f} {f32}")
    # SDPA: bf16 q, k, v (1, 32, n, 128), causal; K/V already expanded to the query heads.
    q, k, v = (torch.randn(1, 32, n, 128, device="cuda").to(torch.bfloat16) for _ in range(3))
    sdpa = torch.nn.functional.scaled_dot_product_attention
    t = timed(lambda: sdpa(q, k, v, is_causal=True), args.reps)
    flops = 4.0 * 128 * 32 * n * (n + 1) / 2
    print(f"{'sdpa causal ' + str(n):>22} {t:12.3f} {flops / t / 1e9:8.0f}")


if __name__ == "__main__":
    main()
