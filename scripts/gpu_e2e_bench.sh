#!/usr/bin/env bash
# Issues 7 and 8 end to end on the lent GPU machine, in one call: builds `quad` into build-gpu/,
# then `quad bench` on random Llama-3-8B-shaped models on the GPU — BF16, QUAD W4A4 and QUAD
# W4A4/A8, all with --dtype bf16 (bf16 fp linears, fp16 flash attention) — and the PyTorch bf16
# baseline of the same shape (bench/torch_llama_bench.py: transformers when importable, and a
# plain torch Llama), all prefill of $QUAD_E2E_P tokens (default 2048) and $QUAD_E2E_N decode
# steps (default 128); then `quad bench` of each carried model (decode there is mostly per-op
# overhead).
# Prints every result as a JSON line; logs go to $OUT when set.
#
# Before the call, here: bash scripts/fetch_gpu_deps.sh     (-> .gpu-deps/)
# The call: run `bash scripts/gpu_e2e_bench.sh [SHAPE]` with carry [".gpu-deps"].
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT="$(pwd)"
LOG="${OUT:-$ROOT/build-gpu}"
mkdir -p "$LOG"
SHAPE="${1:-llama3-8b}"
P="${QUAD_E2E_P:-2048}" N="${QUAD_E2E_N:-128}" R="${QUAD_E2E_R:-3}"
export OMP_NUM_THREADS="${OMP_NUM_THREADS:-$(nproc)}"

source scripts/gpu_env.sh
print_gpu_machine

build_gpu "$LOG" quad || exit 1

status=0
echo "== quad bench --random $SHAPE --device cuda -p $P -n $N -r $R"
for variant in "--dtype bf16" "--quant w4a4 --dtype bf16" "--quant w4a8 --dtype bf16"; do
  start=$SECONDS
  timeout 300 build-gpu/quad bench --random "$SHAPE" $variant --device cuda -p "$P" -n "$N" \
    -r "$R" --json 2> "$LOG/bench_${variant// /_}.err" | tee -a "$LOG/e2e.jsonl" ||
    { status=1; tail -3 "$LOG/bench_${variant// /_}.err"; }
  echo "($variant: $((SECONDS - start)) s including building the random model)"
done
echo "== PyTorch bf16 baseline"
timeout 300 python3 bench/torch_llama_bench.py --shape "$SHAPE" -p "$P" -n "$N" -r "$R" \
  2> "$LOG/torch.err" | tee -a "$LOG/e2e.jsonl" || { status=1; tail -5 "$LOG/torch.err"; }
if [ -n "${QUAD_ASSETS:-}" ] && [ -d "$QUAD_ASSETS/models" ]; then
  echo "== quad bench on the carried models (--device cuda --dtype bf16)"
  for model in "$QUAD_ASSETS"/models/*/; do
    timeout 120 build-gpu/quad bench -m "$model" --device cuda --dtype bf16 -p 512 -n 128 -r 3 \
      --json 2> /dev/null | tee -a "$LOG/e2e.jsonl" || status=1
  done
fi
echo "gpu_e2e_bench.sh: $([ $status = 0 ] && echo all ran || echo FAILURES)"
exit $status
