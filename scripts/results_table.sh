#!/usr/bin/env bash
# Regenerates the quantization results table of docs/results.md: for each model, perplexity of
# FP, RTN W4A4, QuaRot W4A4, QUAD W4A4 and QUAD W4A4/A8 at r = 16 and 64, and GPTQ W4A16, with
# each `quad quantize` wall time. W4A4 = 4-bit inputs to every linear (--od-bits 4); W4A4/A8 =
# the paper's default (8-bit o_proj/down_proj inputs). Prints markdown rows on stdout.
# Usage: bash scripts/results_table.sh [WORK_DIR]   (default /tmp/quad-results)
# Environment: MODELS (default "tiny-llama3-30m tiny-qwen2-27m stories260K"), NSAMPLES (GPTQ
# calibration sequences, default the spec's 128), CHUNKS (ppl chunks, default all), THREADS
# (per job, default 2), JOBS (quantize and ppl jobs run side by side, default 1), DEVICE (for
# quantize, default cpu), PPL_DEVICE (for ppl, default cpu), QUAD (default build/quad).
set -euo pipefail
cd "$(dirname "$0")/.."
assets="${QUAD_ASSETS:-$(pwd)/../shared/assets}"
work="${1:-/tmp/quad-results}"
quad="${QUAD:-build/quad}"
threads="${THREADS:-2}"
nsamples="${NSAMPLES:-128}"
chunks="${CHUNKS:+--chunks $CHUNKS}"
models="${MODELS:-tiny-llama3-30m tiny-qwen2-27m stories260K}"
mkdir -p "$work"
configs=(
  "RTN W4A4 (no rotation, RTN weights)|--method rtn --od-bits 4"
  "QuaRot W4A4 (GPTQ)|--method quarot --od-bits 4"
  "QUAD W4A4 r = 16 (GPTQ)|--rank 16 --od-bits 4"
  "QUAD W4A4 r = 64 (GPTQ)|--rank 64 --od-bits 4"
  "QUAD W4A4/A8 r = 16 (GPTQ)|--rank 16"
  "QUAD W4A4/A8 r = 64 (GPTQ)|--rank 64"
  "GPTQ W4A16 (no rotation)|--method rtn --gptq --a-bits 16 --od-bits 16"
)

running=0
throttle() {  # at most JOBS background jobs
  running=$((running + 1))
  if [ "$running" -ge "${JOBS:-1}" ]; then wait -n || true; running=$((running - 1)); fi
}
ppl() {  # model dir, text -> perplexity
  "$quad" ppl -m "$1" --text "$2" $chunks -t "$threads" --device "${PPL_DEVICE:-cpu}" --json 2> /dev/null |
    tail -n 1 | sed -E 's/.*"ppl":([0-9.eE+-]+).*/\1/'
}

echo "| model | text | configuration | ppl | quantize s |"
echo "|---|---|---|---:|---:|"
for model in $models; do
  dir="$assets/models/$model"
  text="$assets/data/wikitext2/wiki.test.raw"
  [ "$model" = stories260K ] && text="$assets/data/tinystories/tinystories_val.txt"
  tname="$(basename "$text")"
  for c in "${configs[@]}"; do
    label="${c%%|*}" flags="${c#*|}"
    out="$work/$model-$(echo "$label" | tr -c 'A-Za-z0-9' '_')"
    rm -rf "$out" "$out.seconds" "$out.ppl"
    ( start=$(date +%s.%N)
      "$quad" quantize -m "$dir" -o "$out" --nsamples "$nsamples" -t "$threads" \
        --device "${DEVICE:-cpu}" $flags 2> "$out.log" &&
        awk -v a="$start" -v b="$(date +%s.%N)" 'BEGIN { printf "%.0f", b - a }' > "$out.seconds" ) &
    throttle
  done
  wait || true
  running=0
  ( ppl "$dir" "$text" > "$work/$model-FP.ppl" ) &
  throttle
  for c in "${configs[@]}"; do
    label="${c%%|*}"
    out="$work/$model-$(echo "$label" | tr -c 'A-Za-z0-9' '_')"
    [ -f "$out.seconds" ] && { ( ppl "$out" "$text" > "$out.ppl" ) & throttle; }
  done
  wait || true
  running=0
  echo "| $model | $tname | FP | $(cat "$work/$model-FP.ppl") | |"
  for c in "${configs[@]}"; do
    label="${c%%|*}"
    out="$work/$model-$(echo "$label" | tr -c 'A-Za-z0-9' '_')"
    if [ -f "$out.seconds" ]; then
      echo "| $model | $tname | $label | $(cat "$out.ppl") | $(cat "$out.seconds") |"
    else
      echo "| $model | $tname | $label | refused: $(tail -n 1 "$out.log") | |"
    fi
  done
done
