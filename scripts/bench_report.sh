#!/usr/bin/env bash
# The end-to-end benchmark matrix of docs/benchmarks.md: `quad bench` (pp512, tg128, 3
# repetitions) at 1 and 2 threads for tiny-llama3-30m (FP and two QUAD folders) and random
# llama3.2-1b weights (FP32, QUAD W4A4, QUAD W4A4/A8), then the kernel micro-benchmarks at 2
# threads, and the W4A4/FP32 decode ratio in interleaved pairs (scripts/decode_ratio.sh). Run it on
# a quiet machine (check `uptime`).
# Usage: bash scripts/bench_report.sh [QUAD_A8_DIR QUAD_A4_DIR]   (tiny-llama3 QUAD folders)
set -euo pipefail
cd "$(dirname "$0")/.."
assets="${QUAD_ASSETS:-$(pwd)/../shared/assets}"
quad="${QUAD:-build/quad}"
micro="${MICRO:-build/bench/quad_bench_micro}"
echo "# $(date -u +%FT%TZ) commit $(git rev-parse --short HEAD) load: $(cut -d' ' -f1-3 /proc/loadavg)"
run() { "$quad" bench "$@" -p 512 -n 128 -r 3 2>/dev/null | grep -v '^| model\|^| ---'; }
for t in 1 2; do
  run -m "$assets/models/tiny-llama3-30m" -t "$t"
  for q in "$@"; do run -m "$q" -t "$t"; done
  for q in fp32 w4a4 w4a8; do run --random llama3.2-1b --quant "$q" -t "$t"; done
done
echo "# kernels, 2 threads, load: $(cut -d' ' -f1-3 /proc/loadavg)"
OMP_NUM_THREADS=2 "$micro" \
  --benchmark_filter='Int4Gemm/kernel:[12]|Sgemm/n:512/out:28672|Sgemv|LinearF16|MemRead|Vnni' \
  --benchmark_min_time=1 --benchmark_repetitions=3 --benchmark_report_aggregates_only=true \
  2>&1 | grep median
bash scripts/decode_ratio.sh 2
echo "# done, load: $(cut -d' ' -f1-3 /proc/loadavg)"
