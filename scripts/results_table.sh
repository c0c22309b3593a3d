#!/usr/bin/env bash
# Regenerates the quantization results table of docs/results.md: for each model, perplexity of
# FP, RTN W4A4, QuaRot W4A4, QUAD W4A4 and QUAD W4A4/A8 at r = 16 and 64, and GPTQ W4A16, with
# each `quad quantize` wall time. W4A4 = 4-bit inputs to every linear (--od-bits 4); W4A4/A8 =
# the paper's default (8-bit o_proj/down_proj inputs). Prints markdown rows on stdout.
# Usage: bash scripts/results_table.sh [WORK_DIR]   (default /tmp/quad-results)
# Environment: MODELS (default "tiny-llama3-30m tiny-qwen2-27m stories260K"), NSAMPLES (GPTQ
# calibration sequences, default the spec's 128), CHUNKS (ppl chunks, default all), THREADS
# (default 2), QUAD (binary, default build/quad).
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

ppl() {  # model dir, text -> perplexity
  "$quad" ppl -m "$1" --text "$2" $chunks -t "$threads" --json | tail -n 1 |
    sed -E 's/.*"ppl":([0-9.eE+-]+).*/\1/'
}

echo "| model | text | configuration | ppl | quantize s |"
echo "|---|---|---|---:|---:|"
for model in $models; do
  dir="$assets/models/$model"
  text="$assets/data/wikitext2/wiki.test.raw"
  [ "$model" = stories260K ] && text="$assets/data/tinystories/tinystories_val.txt"
  tname="$(basename "$text")"
  echo "| $model | $tname | FP | $(ppl "$dir" "$text") | |"
  while IFS='|' read -r label flags; do
    out="$work/$model-$(echo "$label" | tr -c 'A-Za-z0-9' '_')"
    rm -rf "$out"
    t0=$(date +%s.%N)
    if ! "$quad" quantize -m "$dir" -o "$out" --nsamples "$nsamples" -t "$threads" $flags \
      2> "$out.log"; then
      echo "| $model | $tname | $label | refused: $(tail -n 1 "$out.log") | |"
      continue
    fi
    secs=$(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { print b - a }')
    printf '| %s | %s | %s | %s | %.0f |\n' "$model" "$tname" "$label" "$(ppl "$out" "$text")" "$secs"
  done <<'CONFIGS'
RTN W4A4 (no rotation, RTN weights)|--method rtn --od-bits 4
QuaRot W4A4 (GPTQ)|--method quarot --od-bits 4
QUAD W4A4 r = 16 (GPTQ)|--rank 16 --od-bits 4
QUAD W4A4 r = 64 (GPTQ)|--rank 64 --od-bits 4
QUAD W4A4/A8 r = 16 (GPTQ)|--rank 16
QUAD W4A4/A8 r = 64 (GPTQ)|--rank 64
GPTQ W4A16 (no rotation)|--method rtn --gptq --a-bits 16 --od-bits 16
CONFIGS
done
