#!/usr/bin/env bash
# On the lent GPU machine: the quantization pipeline on the GPU. Builds quad with CUDA, runs the
# quantization tests of the CUDA suite (calibration statistics, clipping search and GPTQ against
# the CPU) and the unit op harness's cuda rows, then times `quad quantize` with the spec's
# defaults on each carried model on the cpu (all cores) and on cuda, and compares the two
# folders' perplexity. Optional stages (environment):
#   TABLE_MODELS="m1 m2"  scripts/results_table.sh for these models (quantize on cuda),
#                          with TABLE_PPL_DEVICE (default cpu) and TABLE_CHUNKS (default all);
#   RANDOM_SHAPES="llama3.2-1b llama3-8b"  `quad quantize --random` of each shape on cuda (wall
#                          time, each cut at RANDOM_TIMEOUT s), with the tokenizer of
#                          RANDOM_TOKENIZER (a carried model folder) and RANDOM_FLAGS.
#   PARITY=1               each carried model quantized on cuda with the defaults (r 64;
#                          stories260K r 16), then its perplexity over the whole test file on
#                          cuda (also with --dtype bf16) and on the cpu (CPU_THREADS, default
#                          all cores): the issue's 0.2% bound for quantized folders;
#   TIMING_DEVICES         devices of the timing stage (default "cuda"; "cpu cuda" adds the CPU
#                          with CPU_THREADS threads, default 4; "" skips the stage).
# Before the call, here: bash scripts/fetch_gpu_deps.sh; PACK=1 DATA="c4 wikitext2 tinystories"
# bash scripts/stage_gpu_assets.sh MODEL...; then run `bash scripts/gpu_quantize.sh` with carry
# [".gpu-deps", ".gpu-assets.tar.xz"]. Logs go to $LOG_DIR (default /tmp/gpu-quantize).
set -uo pipefail
cd "$(dirname "$0")/.."
LOG="${LOG_DIR:-/tmp/gpu-quantize}"
mkdir -p "$LOG"
export OMP_NUM_THREADS="${OMP_NUM_THREADS:-$(nproc)}"
source scripts/gpu_env.sh
print_gpu_machine
build_gpu "$LOG" quad quad_cuda_tests quad_unit_tests || exit 1
status=0

echo "== quantization tests on the GPU"
build-gpu/tests/quad_cuda_tests --gtest_color=no --gtest_filter='CudaQuantize.*' \
  > "$LOG/cuda_quantize_tests.log" 2>&1 || status=1
grep -E '^\[  (FAILED|SKIPPED|PASSED) |Failure|Expected|Which is|^gram|^gptq' \
  "$LOG/cuda_quantize_tests.log" | head -40
build-gpu/tests/quad_unit_tests --gtest_color=no --gtest_filter='AllBackends/BackendOps.*/cuda' \
  > "$LOG/unit_cuda.log" 2>&1 || status=1
grep -E '^\[  (FAILED|PASSED) |Failure' "$LOG/unit_cuda.log" | head -20

calib="$QUAD_ASSETS/data/c4/c4_validation_2k.jsonl"
if [ -n "${TIMING_DEVICES-cuda}" ]; then
  echo "== quad quantize with the defaults on: ${TIMING_DEVICES-cuda}"
  for model in "$QUAD_ASSETS"/models/*/; do
    name="$(basename "$model")"
    text="$QUAD_ASSETS/data/wikitext2/wiki.test.raw"
    [ "$name" = stories260K ] && text="$QUAD_ASSETS/data/tinystories/tinystories_val.txt"
    rank=64
    [ "$name" = stories260K ] && rank=16
    for dev in ${TIMING_DEVICES-cuda}; do
      out="$LOG/q-$name-$dev"
      rm -rf "$out"
      start=$(date +%s.%N)
      build-gpu/quad quantize -m "$model" -o "$out" --rank $rank --calib "$calib" --device $dev \
        -t "$([ $dev = cpu ] && echo "${CPU_THREADS:-4}" || echo 4)" \
        > "$LOG/q-$name-$dev.log" 2>&1 || { status=1; tail -3 "$LOG/q-$name-$dev.log"; continue; }
      secs=$(awk -v a="$start" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')
      ppl=$(build-gpu/quad ppl -m "$out" --text "$text" --chunks 40 --device cpu --json 2>/dev/null |
        tail -1 | sed -E 's/.*"ppl":([0-9.eE+-]+).*/\1/')
      echo "$name r=$rank quantize --device $dev: ${secs} s, ppl (cpu, 40 chunks) $ppl"
      grep -E "done in" "$LOG/q-$name-$dev.log" | tr '\n' ' '; echo
    done
  done
fi

if [ "${PARITY:-0}" = 1 ]; then
  echo "== quantized perplexity, cuda vs cpu (whole test file)"
  for model in "$QUAD_ASSETS"/models/*/; do
    name="$(basename "$model")"
    text="$QUAD_ASSETS/data/wikitext2/wiki.test.raw"
    rank=64
    if [ "$name" = stories260K ]; then
      text="$QUAD_ASSETS/data/tinystories/tinystories_val.txt"
      rank=16
    fi
    out="$LOG/parity-$name"
    rm -rf "$out"
    build-gpu/quad quantize -m "$model" -o "$out" --rank $rank --calib "$calib" --device cuda       > "$LOG/parity-$name.log" 2>&1 || { status=1; tail -3 "$LOG/parity-$name.log"; continue; }
    declare -A ppl=()
    # cuda-bf16: --dtype bf16 (the QUAD block ops, fp16 flash attention).
    for dev in cuda cuda-bf16 cpu; do
      start=$SECONDS
      flags="--device $dev"
      [ $dev = cuda-bf16 ] && flags="--device cuda --dtype bf16"
      ppl[$dev]=$(build-gpu/quad ppl -m "$out" --text "$text" $flags \
        -t "$([ $dev = cpu ] && echo "${CPU_THREADS:-$(nproc)}" || echo 4)" --json \
        2> "$LOG/parity-$name-ppl-$dev.err" | tail -1 | sed -E 's/.*"ppl":([0-9.eE+-]+).*/\1/')
      echo "$name QUAD W4A4/A8 r=$rank (quantized on cuda): ppl $dev ${ppl[$dev]} ($((SECONDS - start)) s)"
    done
    for dev in cuda cuda-bf16; do
      awk -v a="${ppl[$dev]}" -v b="${ppl[cpu]}" -v n="$name" -v dev="$dev" \
        'BEGIN { d = (a - b) / b; printf "%s: %s vs cpu %+.4f%% %s\n", n, dev, 100 * d, \
          (d < 0.002 && d > -0.002) ? "(within 0.2%)" : "(OUTSIDE 0.2%)" }'
    done
    rm -rf "$out"
  done
fi

if [ -n "${TABLE_MODELS:-}" ]; then
  echo "== results table (quantize on cuda, ppl on ${TABLE_PPL_DEVICE:-cpu})"
  MODELS="$TABLE_MODELS" DEVICE=cuda PPL_DEVICE="${TABLE_PPL_DEVICE:-cpu}" CHUNKS="${TABLE_CHUNKS:-}" \
    JOBS="${TABLE_JOBS:-8}" THREADS=2 QUAD=build-gpu/quad \
    bash scripts/results_table.sh "$LOG/table" 2> "$LOG/table.err" | tee "$LOG/table.md" || status=1
fi

for shape in ${RANDOM_SHAPES:-}; do
  echo "== quad quantize --random $shape --device cuda (defaults: r 64, GPTQ 128 x 2048)"
  start=$SECONDS
  timeout "${RANDOM_TIMEOUT:-400}" build-gpu/quad quantize --random "$shape" \
    -m "$QUAD_ASSETS/models/$RANDOM_TOKENIZER" -o "$LOG/q-random-$shape" --calib "$calib" \
    --device cuda ${RANDOM_FLAGS:-} > "$LOG/q-random-$shape.log" 2>&1 || { status=1; echo "(exit $?)"; }
  tr '\r' '\n' < "$LOG/q-random-$shape.log" | grep -vE '^gptq: model' | tail -8
  echo "wall $((SECONDS - start)) s"
  du -sh "$LOG/q-random-$shape" 2>/dev/null
  rm -rf "$LOG/q-random-$shape"
done
echo "gpu_quantize.sh: $([ $status = 0 ] && echo all passed || echo FAILURES)"
exit $status
