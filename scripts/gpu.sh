#!/usr/bin/env bash
# On the lent GPU machine (nvcc, CMake, ninja; no package registry): builds quad with the CUDA
# backend into build-gpu/, runs the CUDA tests (op harness, availability, CPU-vs-GPU perplexity
# and greedy generation), the unit op harness and forward tests over every backend, then `quad
# ppl` on each carried model with --device cpu and --device cuda, and prints a summary table.
#
# Before the call, here: bash scripts/fetch_gpu_deps.sh                 (-> .gpu-deps/)
#                        bash scripts/stage_gpu_assets.sh stories260K ...  (-> .gpu-assets/)
# The call: run `bash scripts/gpu.sh` with carry [".gpu-deps", ".gpu-assets"]. Logs go to
# $OUT when it is set. Environment: QUAD_GPU_CHUNKS (ppl chunks per model, default 8),
# CUDA_ARCH (default 90a), QUAD_ASSETS (default .gpu-assets if present, else ../shared/assets).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT="$(pwd)"
LOG="${OUT:-$ROOT/build-gpu}"
mkdir -p "$LOG"
export OMP_NUM_THREADS="${OMP_NUM_THREADS:-$(nproc)}"


source scripts/gpu_env.sh
print_gpu_machine

start=$SECONDS
build_gpu "$LOG" quad quad_cuda_tests || exit 1
# The unit suite also holds the op harness over every backend; optional, so that another
# feature's unfinished unit tests cannot stop the CUDA checks.
unit=1
ninja -C build-gpu quad_unit_tests >> "$LOG/build.log" 2>&1 || { unit=0; echo "(unit tests did not build; see build.log)"; }
echo "built with the unit tests in $((SECONDS - start)) s"

status=0
echo "== CUDA tests (label cuda)"
build-gpu/tests/quad_cuda_tests --gtest_color=no > "$LOG/cuda_tests.log" 2>&1 || status=1
grep -E '^\[  (FAILED|SKIPPED) |^\[  PASSED|^[^[].*(ppl cpu|Failure|Expected|Which is|error)' \
  "$LOG/cuda_tests.log" | head -80 || true
ctest --test-dir build-gpu -L cuda -N | tail -1
if [ "$unit" = 1 ]; then
  echo "== unit op harness and forward over every backend (cuda included)"
  build-gpu/tests/quad_unit_tests --gtest_color=no \
    --gtest_filter='AllBackends/BackendOps.*:Forward.*:BackendSelect.*' > "$LOG/unit_tests.log" 2>&1 || status=1
  grep -E '^\[  (FAILED|SKIPPED|PASSED) |Failure' "$LOG/unit_tests.log" | head -40 || true
fi

echo "== quad ppl, cpu vs cuda (WikiText-2 test, ${QUAD_GPU_CHUNKS:-8} chunks of the default context)"
text="$QUAD_ASSETS/data/wikitext2/wiki.test.raw"
table="$LOG/ppl_table.txt"
printf '%-18s %6s %12s %12s %10s %8s %8s\n' model ctx ppl_cpu ppl_cuda rel_diff cpu_s cuda_s > "$table"
for model in "$QUAD_ASSETS"/models/*/; do
  name="$(basename "$model")"
  for dev in cpu cuda; do
    build-gpu/quad ppl -m "$model" --text "$text" --chunks "${QUAD_GPU_CHUNKS:-8}" --json \
      --device "$dev" 2> "$LOG/ppl_${name}_$dev.err" | tail -1 > "$LOG/ppl_${name}_$dev.json" ||
      { status=1; tail -3 "$LOG/ppl_${name}_$dev.err"; }
  done
  # bf16 storage on the GPU (FP folders only): reported beside the fp32 figures, not checked.
  if ! grep -q quantization_config "$model/config.json"; then
    build-gpu/quad ppl -m "$model" --text "$text" --chunks "${QUAD_GPU_CHUNKS:-8}" --json \
      --device cuda --dtype bf16 2> "$LOG/ppl_${name}_bf16.err" | tail -1 > "$LOG/ppl_${name}_bf16.json" ||
      { status=1; tail -3 "$LOG/ppl_${name}_bf16.err"; }
  fi
  python3 - "$LOG/ppl_${name}_cpu.json" "$LOG/ppl_${name}_cuda.json" "$name" "$LOG/ppl_${name}_bf16.json" >> "$table" <<'PY' || status=1
import json, os, sys
a, b = (json.load(open(p)) for p in sys.argv[1:3])
rel = abs(b["ppl"] - a["ppl"]) / a["ppl"]
bf = ""
if os.path.exists(sys.argv[4]) and os.path.getsize(sys.argv[4]):
    c = json.load(open(sys.argv[4]))
    bf = f'   cuda --dtype bf16 {c["ppl"]:.4f} ({(c["ppl"] - a["ppl"]) / a["ppl"]:+.2e}, {c["seconds"]:.2f} s)'
print(f'{sys.argv[3]:<18} {a["ctx"]:6d} {a["ppl"]:12.4f} {b["ppl"]:12.4f} {rel:10.2e} '
      f'{a["seconds"]:8.2f} {b["seconds"]:8.2f}{"" if rel <= 2e-3 else "  OVER 0.2%"}{bf}')
sys.exit(0 if rel <= 2e-3 else 1)
PY
done
echo "== summary"
grep -hE '^\[  PASSED|^\[  FAILED  \] [0-9]+ test' "$LOG/cuda_tests.log" | sed 's/^/cuda tests: /'
[ "$unit" = 1 ] && grep -hE '^\[  PASSED|^\[  FAILED  \] [0-9]+ test' "$LOG/unit_tests.log" | sed 's/^/unit harness: /'
cat "$table"
echo "gpu.sh: $([ $status = 0 ] && echo all passed || echo FAILURES)"
exit $status
