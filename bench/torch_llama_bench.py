#!/usr/bin/env python3
"""PyTorch bf16 baseline for `quad bench --random SHAPE --dtype bf16` (issue 7's comparison).

A random-weight Llama of the same shape in bf16 on the GPU, timed the way `quad bench` times
itself: ppP = one prefill of P random tokens (logits of the last position only), tgN = N
single-token decode steps from an empty KV cache, each copying its logits to the host.
Rates are tokens/s, mean ± sd over repetitions after one warm-up.

Implementations: "transformers" (LlamaForCausalLM with the sdpa attention, when the package is
importable) and "torch" (a plain bf16 Llama on F.scaled_dot_product_attention with a
preallocated KV cache; always). Prints one JSON object per (implementation, test).
"""
import argparse
import json
import math
import statistics
import time

import torch
import torch.nn.functional as F

SHAPES = {  # as in src/quad/quant/random_model.cpp (Hugging Face config.json values)
    "llama3-8b": dict(d=4096, ff=14336, layers=32, heads=32, kv=8, vocab=128256, theta=500000.0),
    "llama3.2-1b": dict(d=2048, ff=8192, layers=16, heads=32, kv=8, vocab=128256, theta=500000.0),
    "llama2-7b": dict(d=4096, ff=11008, layers=32, heads=32, kv=32, vocab=32000, theta=10000.0),
    "tiny-llama3-30m": dict(d=512, ff=1536, layers=7, heads=8, kv=2, vocab=8192, theta=500000.0),
}


class PlainLlama(torch.nn.Module):
    def __init__(self, s, max_pos):
        super().__init__()
        d, ff, hd = s["d"], s["ff"], s["d"] // s["heads"]
        self.s, self.hd = s, hd
        g = torch.Generator(device="cuda").manual_seed(0)

        def w(o, i):
            return (torch.rand(o, i, device="cuda", generator=g, dtype=torch.bfloat16) * 2 - 1) / math.sqrt(i)

        self.embed = w(s["vocab"], d)
        self.layers = [dict(qkv=w((s["heads"] + 2 * s["kv"]) * hd, d), o=w(d, d), gu=w(2 * ff, d),
                            down=w(d, ff), n1=torch.ones(d, device="cuda", dtype=torch.bfloat16),
                            n2=torch.ones(d, device="cuda", dtype=torch.bfloat16))
                       for _ in range(s["layers"])]
        self.norm = torch.ones(d, device="cuda", dtype=torch.bfloat16)
        self.head = w(s["vocab"], d)
        inv = 1.0 / (s["theta"] ** (torch.arange(0, hd, 2, device="cuda").float() / hd))
        ang = torch.arange(max_pos, device="cuda").float()[:, None] * inv[None, :]
        self.cos, self.sin = ang.cos().to(torch.bfloat16), ang.sin().to(torch.bfloat16)
        self.k = torch.empty(s["layers"], 1, s["kv"], max_pos, hd, device="cuda", dtype=torch.bfloat16)
        self.v = torch.empty_like(self.k)

    def rope(self, x, pos):  # x (1, h, n, hd), half-split
        c, s = self.cos[pos][None, None], self.sin[pos][None, None]
        x1, x2 = x[..., : self.hd // 2], x[..., self.hd // 2:]
        return torch.cat([x1 * c - x2 * s, x2 * c + x1 * s], dim=-1)

    @torch.no_grad()
    def forward(self, ids, pos0):
        s, hd = self.s, self.hd
        n = ids.shape[1]
        pos = torch.arange(pos0, pos0 + n, device="cuda")
        x = self.embed[ids]
        for i, L in enumerate(self.layers):
            h = F.rms_norm(x, (s["d"],), L["n1"], 1e-5)
            q, k, v = (h @ L["qkv"].T).split([s["heads"] * hd, s["kv"] * hd, s["kv"] * hd], -1)
            q = self.rope(q.view(1, n, s["heads"], hd).transpose(1, 2), pos)
            k = self.rope(k.view(1, n, s["kv"], hd).transpose(1, 2), pos)
            self.k[i, :, :, pos0:pos0 + n] = k
            self.v[i, :, :, pos0:pos0 + n] = v.view(1, n, s["kv"], hd).transpose(1, 2)
            kk, vv = self.k[i, :, :, :pos0 + n], self.v[i, :, :, :pos0 + n]
            a = F.scaled_dot_product_attention(q, kk, vv, is_causal=(n > 1 and pos0 == 0),
                                               enable_gqa=True)
            x = x + a.transpose(1, 2).reshape(1, n, -1) @ L["o"].T
            h = F.rms_norm(x, (s["d"],), L["n2"], 1e-5)
            g, u = (h @ L["gu"].T).chunk(2, -1)
            x = x + (F.silu(g) * u) @ L["down"].T
        return F.rms_norm(x[:, -1:], (s["d"],), self.norm, 1e-5) @ self.head.T


def transformers_model(s, max_pos):
    import transformers
    cfg = transformers.LlamaConfig(
        hidden_size=s["d"], intermediate_size=s["ff"], num_hidden_layers=s["layers"],
        num_attention_heads=s["heads"], num_key_value_heads=s["kv"], vocab_size=s["vocab"],
        max_position_embeddings=max(max_pos, 8192), rope_theta=s["theta"], attn_implementation="sdpa")
    torch.set_default_dtype(torch.bfloat16)
    with torch.device("cuda"):
        m = transformers.LlamaForCausalLM(cfg).eval()
    torch.set_default_dtype(torch.float32)
    cache_cls = transformers.DynamicCache

    @torch.no_grad()
    def prefill(ids):
        return m(input_ids=ids, use_cache=True, logits_to_keep=1).logits

    @torch.no_grad()
    def decode(ids):
        cache = cache_cls()
        for i in range(ids.shape[1]):
            out = m(input_ids=ids[:, i:i + 1], past_key_values=cache, use_cache=True, logits_to_keep=1)
            cache = out.past_key_values
            out.logits.float().cpu()

    return "transformers " + transformers.__version__, prefill, decode


def plain_model(s, max_pos):
    m = PlainLlama(s, max_pos)

    def prefill(ids):
        return m(ids, 0)

    def decode(ids):
        for i in range(ids.shape[1]):
            m(ids[:, i:i + 1], i).float().cpu()

    return "torch " + torch.__version__, prefill, decode


def timed(fn, reps):
    fn()  # warm-up
    torch.cuda.synchronize()
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        torch.cuda.synchronize()
        times.append(time.perf_counter() - t0)
    return times


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--shape", default="llama3-8b", choices=sorted(SHAPES))
    ap.add_argument("-p", type=int, default=2048)
    ap.add_argument("-n", type=int, default=128)
    ap.add_argument("-r", type=int, default=3)
    ap.add_argument("--impl", default="all", choices=["all", "torch", "transformers"])
    a = ap.parse_args()
    s = SHAPES[a.shape]
    max_pos = max(a.p, a.n) + 1
    ids = torch.randint(0, s["vocab"], (1, max_pos), device="cuda")
    builders = []
    if a.impl in ("all", "transformers"):
        builders.append(transformers_model)
    if a.impl in ("all", "torch"):
        builders.append(plain_model)
    for build in builders:
        try:
            name, prefill, decode = build(s, max_pos)
        except ImportError as e:
            print(json.dumps({"impl": build.__name__, "skipped": str(e)}), flush=True)
            continue
        torch.cuda.reset_peak_memory_stats()
        for test, fn, count in ((f"pp{a.p}", lambda: prefill(ids[:, :a.p]), a.p),
                                (f"tg{a.n}", lambda: decode(ids[:, :a.n]), a.n)):
            if count == 0:
                continue
            rates = [count / t for t in timed(fn, a.r)]
            print(json.dumps({"impl": name, "shape": a.shape, "dtype": "bf16", "test": test,
                              "tps_mean": statistics.mean(rates),
                              "tps_sd": statistics.stdev(rates) if len(rates) > 1 else 0.0,
                              "peak_mem_mib": torch.cuda.max_memory_allocated() / 2**20,
                              "device": torch.cuda.get_device_name()}), flush=True)
        del prefill, decode
        torch.cuda.empty_cache()


if __name__ == "__main__":
    main()
