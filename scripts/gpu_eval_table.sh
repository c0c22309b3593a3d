#!/usr/bin/env bash
# On the lent GPU machine: the zero-shot table of docs/zeroshot.md on the full task files.
# Builds quad with CUDA, runs the device-resident forward tests (CudaResident.*, incl. the
# batched eval passes), quantizes tiny-llama3-30m to QuaRot W4A4 and QUAD W4A4 (spec defaults
# otherwise: r = 64, GPTQ on 128 C4 sequences, seed 0), then scores all nine tasks with
# `quad eval --device cuda` for FP (twice, to check that runs repeat exactly), QuaRot and QUAD,
# the four evals side by side. Work is kept in .gpu-eval/ (ignored), so a second call on a
# still-warm machine resumes where a cut-off one stopped.
#
# Before the call, here: bash scripts/fetch_gpu_deps.sh
#   DATA="wikitext2 zeroshot c4" PACK=1 bash scripts/stage_gpu_assets.sh tiny-llama3-30m stories260K
# The call: `bash scripts/gpu_eval_table.sh` with carry [".gpu-deps", ".gpu-assets.tar.xz"].
# The JSON results land in $OUT; here: python3 scripts/eval_table.py FP=fp.json ... > table.md
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT="$(pwd)"
WORK="$ROOT/.gpu-eval"
LOG="${OUT:-$WORK}"
mkdir -p "$WORK" "$LOG"
source scripts/gpu_env.sh
print_gpu_machine
build_gpu "$LOG" quad quad_cuda_tests || exit 1

echo "== device-resident forward tests"
build-gpu/tests/quad_cuda_tests --gtest_color=no --gtest_filter='CudaResident.*' \
  > "$LOG/cuda_resident.log" 2>&1 || { grep -E 'Failure|Expected|FAILED' "$LOG/cuda_resident.log" | head -20; exit 1; }
grep -E '^\[  PASSED' "$LOG/cuda_resident.log"

M="$QUAD_ASSETS/models/tiny-llama3-30m"
for method in quarot quad; do
  [ -f "$WORK/$method/config.json" ] && continue
  echo "== quantize $method W4A4"
  start=$SECONDS
  build-gpu/quad quantize -m "$M" -o "$WORK/$method" --method "$method" --od-bits 4 \
    --device cuda 2> "$LOG/quantize_$method.log" ||
    { tail -5 "$LOG/quantize_$method.log"; exit 1; }
  echo "quantized in $((SECONDS - start)) s"
done

echo "== quad eval --tasks all (full task files), four runs side by side"
threads=$(( $(nproc) / 4 ))
declare -A dirs=([fp]="$M" [fp_again]="$M" [quarot]="$WORK/quarot" [quad]="$WORK/quad")
start=$SECONDS
pids=()
for run in fp fp_again quarot quad; do
  [ -s "$WORK/eval_$run.json" ] && continue
  ( build-gpu/quad eval -m "${dirs[$run]}" --tasks all --json --device cuda -t "$threads" \
      > "$WORK/eval_$run.json.part" 2> "$LOG/eval_$run.err" &&
      mv "$WORK/eval_$run.json.part" "$WORK/eval_$run.json" ) &
  pids+=($!)
done
status=0
for p in "${pids[@]}"; do wait "$p" || status=1; done
echo "evals done in $((SECONDS - start)) s"
for run in fp fp_again quarot quad; do
  [ -s "$WORK/eval_$run.json" ] || { echo "eval $run failed:"; tail -3 "$LOG/eval_$run.err"; status=1; continue; }
  [ "$LOG" = "$WORK" ] || cp "$WORK/eval_$run.json" "$LOG/"
done
[ "$status" = 0 ] || exit 1
cp "$WORK"/quarot/config.json "$LOG/quarot_config.json"
cp "$WORK"/quad/config.json "$LOG/quad_config.json"
python3 scripts/eval_table.py --check-repeat "$WORK/eval_fp.json" "$WORK/eval_fp_again.json"
python3 scripts/eval_table.py "FP=$WORK/eval_fp.json" "QuaRot W4A4=$WORK/eval_quarot.json" \
  "QUAD W4A4 (r = 64)=$WORK/eval_quad.json"
