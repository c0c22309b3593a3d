#!/usr/bin/env bash
# Copies shared models and the WikiText-2 test file into .gpu-assets/ (git-ignored), which
# scripts/gpu.sh uses as QUAD_ASSETS on the GPU machine (../shared does not travel there).
# A call carries at most 64 MiB in all: tiny-llama3-30m (57 MiB) or tiny-qwen2-27m (52 MiB) fit
# one at a time, beside stories260K and the default .gpu-deps.
#
# Usage: bash scripts/stage_gpu_assets.sh MODEL...   (e.g. stories260K tiny-qwen2-27m)
set -euo pipefail
cd "$(dirname "$0")/.."
SRC="${QUAD_ASSETS:-$(pwd)/../shared/assets}"
if [ $# -eq 0 ]; then
  echo "usage: bash scripts/stage_gpu_assets.sh MODEL... (from $SRC/models)" >&2
  exit 2
fi
rm -rf .gpu-assets
mkdir -p .gpu-assets/models .gpu-assets/data/wikitext2
cp "$SRC/data/wikitext2/wiki.test.raw" .gpu-assets/data/wikitext2/
for m in "$@"; do
  [ -d "$SRC/models/$m" ] || { echo "stage_gpu_assets: no model $SRC/models/$m" >&2; exit 1; }
  cp -rL "$SRC/models/$m" .gpu-assets/models/
done
chmod -R u+w .gpu-assets
echo "stage_gpu_assets: $* ($(du -sh .gpu-assets | cut -f1))" >&2
