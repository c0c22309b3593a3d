#!/usr/bin/env bash
# Sets up quad and runs the main job on the default model: a greedy generation and the
# WikiText-2 test perplexity of tiny-llama3-30m.
set -euo pipefail
cd "$(dirname "$0")/.."
ASSETS="${QUAD_ASSETS:-$(pwd)/../shared/assets}"
MODEL="${QUAD_MODEL:-$ASSETS/models/tiny-llama3-30m}"
bash scripts/setup.sh
./build/quad inspect -m "$MODEL"
./build/quad generate -m "$MODEL" -p "Once upon a time" -n 32
./build/quad ppl -m "$MODEL" --text "$ASSETS/data/wikitext2/wiki.test.raw"
