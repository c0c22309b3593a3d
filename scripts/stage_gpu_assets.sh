#!/usr/bin/env bash
# Copies shared models and the WikiText-2 test file into .gpu-assets/ (git-ignored), which
# scripts/gpu.sh uses as QUAD_ASSETS on the GPU machine (../shared does not travel there).
# A call carries at most 64 MiB in all: tiny-llama3-30m (57 MiB) or tiny-qwen2-27m (52 MiB) fit
# one at a time, beside stories260K and the default .gpu-deps.
#
# Usage: bash scripts/stage_gpu_assets.sh MODEL...   (e.g. stories260K tiny-qwen2-27m)
# Environment: DATA (folders of $QUAD_ASSETS/data to copy, default "wikitext2"); PACK=1 packs
# everything into .gpu-assets.tar.xz instead (gpu_env.sh unpacks it there), which lets a model
# travel with the zero-shot task files: tiny-llama3-30m + zeroshot + c4 = 77 MB, 50 MB packed.
set -euo pipefail
cd "$(dirname "$0")/.."
SRC="${QUAD_ASSETS:-$(pwd)/../shared/assets}"
if [ $# -eq 0 ]; then
  echo "usage: bash scripts/stage_gpu_assets.sh MODEL... (from $SRC/models)" >&2
  exit 2
fi
rm -rf .gpu-assets .gpu-assets.tar.xz
mkdir -p .gpu-assets/models .gpu-assets/data
for d in ${DATA:-wikitext2}; do
  [ -d "$SRC/data/$d" ] || { echo "stage_gpu_assets: no data folder $SRC/data/$d" >&2; exit 1; }
  cp -rL "$SRC/data/$d" .gpu-assets/data/
done
for m in "$@"; do
  [ -d "$SRC/models/$m" ] || { echo "stage_gpu_assets: no model $SRC/models/$m" >&2; exit 1; }
  cp -rL "$SRC/models/$m" .gpu-assets/models/
done
chmod -R u+w .gpu-assets
echo "stage_gpu_assets: $* ($(du -sh .gpu-assets | cut -f1))" >&2
if [ "${PACK:-0}" = 1 ]; then
  tar -cf - .gpu-assets | xz -6 -T0 > .gpu-assets.tar.xz
  rm -rf .gpu-assets
  echo "stage_gpu_assets: packed into .gpu-assets.tar.xz ($(du -sh .gpu-assets.tar.xz | cut -f1))" >&2
fi
