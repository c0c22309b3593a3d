#!/usr/bin/env bash
# Sets up quad and runs the main job on the default model: quantize tiny-llama3-30m with QUAD
# W4A4/A8 (paper defaults), then compare WikiText-2 perplexity and a greedy generation of the
# original and the quantized model.
set -euo pipefail
cd "$(dirname "$0")/.."
ASSETS="${QUAD_ASSETS:-$(pwd)/../shared/assets}"
export QUAD_ASSETS="$ASSETS"
MODEL="${QUAD_MODEL:-$ASSETS/models/tiny-llama3-30m}"
OUT="${QUAD_OUT:-out/$(basename "$MODEL")-quad-w4a4a8}"
TEXT="$ASSETS/data/wikitext2/wiki.test.raw"
bash scripts/setup.sh
mkdir -p "$(dirname "$OUT")"
[ -d "$OUT" ] || ./build/quad quantize -m "$MODEL" -o "$OUT"
./build/quad inspect -m "$OUT"
for m in "$MODEL" "$OUT"; do
  ./build/quad generate -m "$m" -p "Once upon a time" -n 24
  ./build/quad ppl -m "$m" --text "$TEXT"
done
