#!/usr/bin/env bash
# The fine-tuning experiment of docs/finetune.md: quantize tiny-llama3-30m with QUAD (W4A4/A8
# and the harder W4A4/A4 RTN variant), calibrating on the first half of the C4 file, fine-tune
# on the second half (disjoint), and measure WikiText-2 test perplexity before and after.
# Usage: bash scripts/finetune_experiment.sh [WORK_DIR]   (default /tmp/quad-ft-exp)
# Environment: QUAD (binary, default build/quad), THREADS (default 2), STEPS (default 64),
# LR (default 5e-4), CHUNKS (ppl chunks of 1024 tokens; default: the whole test set).
set -euo pipefail
cd "$(dirname "$0")/.."
assets="${QUAD_ASSETS:-$(pwd)/../shared/assets}"
work="${1:-/tmp/quad-ft-exp}"
quad="${QUAD:-build/quad}"
threads="${THREADS:-2}"
steps="${STEPS:-64}"
lr="${LR:-5e-4}"
chunks="${CHUNKS:+--chunks $CHUNKS}"
model="$assets/models/tiny-llama3-30m"
wiki="$assets/data/wikitext2/wiki.test.raw"
mkdir -p "$work"
head -n 1000 "$assets/data/c4/c4_validation_2k.jsonl" > "$work/c4_calib.jsonl"
tail -n 1000 "$assets/data/c4/c4_validation_2k.jsonl" > "$work/c4_train.jsonl"

ppl() { "$quad" ppl -m "$1" --text "$wiki" --ctx 1024 $chunks -t "$threads" --json | tail -n 1; }

echo "fp: $(ppl "$model")"
for variant in "a8:" "a4rtn:--od-bits 4 --rtn"; do
  name="${variant%%:*}"
  flags="${variant#*:}"
  q="$work/quad-$name"
  [ -d "$q" ] || "$quad" quantize -m "$model" -o "$q" --calib "$work/c4_calib.jsonl" \
    --nsamples 32 -t "$threads" $flags
  echo "quad-$name before: $(ppl "$q")"
  rm -rf "$q-ft" "$q-ft.ckpt"
  /usr/bin/time -f "finetune wall %e s, max RSS %M KiB" "$quad" finetune -m "$q" \
    --data "$work/c4_train.jsonl" -o "$q-ft" --seqlen 256 --batch 16 --micro-batch 4 \
    --max-steps "$steps" --warmup 4 --lr "$lr" --val 16 -t "$threads"
  echo "quad-$name after: $(ppl "$q-ft")"
done
