#!/usr/bin/env bash
# Where a model's quantization loss comes from: QuaRot and QUAD with only the weights quantized
# (W4A16), only the activations (W16A4), and both (W4A4), plus QUAD with P from 4x more
# calibration tokens; quantize jobs side by side, then `quad ppl --kl-base FP` of each folder on
# the first CHUNKS chunks of wiki.test.raw (perplexity, KL divergence from the FP model, top-1
# agreement with it). Prints a markdown table.
# Usage: bash scripts/ablation.sh MODEL [WORK_DIR]   (e.g. tiny-qwen2-27m)
# Environment: NSAMPLES (GPTQ sequences, default 32), CHUNKS (default 40), SEED (default 0),
# JOBS (quantize jobs at once, default 4), THREADS (per job, default 2; PPL_THREADS for ppl), DEVICE (for quantize's
# calibration passes, default cpu; ppl always runs on the cpu), QUAD (default build/quad).
set -euo pipefail
cd "$(dirname "$0")/.."
model="${1:?usage: bash scripts/ablation.sh MODEL [WORK_DIR]}"
work="${2:-/tmp/quad-ablation}"
assets="${QUAD_ASSETS:-$(pwd)/../shared/assets}"
quad="${QUAD:-build/quad}"
dir="$assets/models/$model"
text="$assets/data/wikitext2/wiki.test.raw"
seed="${SEED:-0}"
common="--nsamples ${NSAMPLES:-32} --seed $seed -t ${THREADS:-2} --device ${DEVICE:-cpu} --force"
mkdir -p "$work"
configs=(
  "QuaRot W4A16|--method quarot --a-bits 16 --od-bits 16"
  "QUAD r = 16 W4A16|--rank 16 --a-bits 16 --od-bits 16"
  "QUAD r = 64 W4A16|--rank 64 --a-bits 16 --od-bits 16"
  "QuaRot W16A4|--method quarot --w-bits 16 --od-bits 4"
  "QUAD r = 16 W16A4|--rank 16 --w-bits 16 --od-bits 4"
  "QUAD r = 64 W16A4|--rank 64 --w-bits 16 --od-bits 4"
  "QuaRot W4A4|--method quarot --od-bits 4"
  "QUAD r = 64 W4A4|--rank 64 --od-bits 4"
  "QUAD r = 64 W4A4, P from 128 x 512|--rank 64 --od-bits 4 --p-nsamples 128"
)
name_of() { echo "$1" | tr -c 'A-Za-z0-9' '_'; }
running=0
for c in "${configs[@]}"; do
  label="${c%%|*}" flags="${c#*|}"
  out="$work/$model-$(name_of "$label")"
  ( start=$SECONDS
    "$quad" quantize -m "$dir" -o "$out" $common $flags > "$out.log" 2>&1 &&
      echo "$((SECONDS - start))" > "$out.seconds" ) &
  running=$((running + 1))
  if [ "$running" -ge "${JOBS:-4}" ]; then wait -n || true; running=$((running - 1)); fi
done
wait || true
ppl() {  # folder -> "ppl | KL from FP | top-1 agreement" (table cells)
  "$quad" ppl -m "$1" --kl-base "$dir" --text "$text" --chunks "${CHUNKS:-40}" \
    -t "${PPL_THREADS:-${THREADS:-2}}" --device cpu --json 2> /dev/null | tail -n 1 |
    python3 -c 'import json, sys; j = json.load(sys.stdin)
print("%.2f | %.4f | %.1f%%" % (j["ppl"], j["kl"], 100 * j["top1_agreement"]))'
}
# The perplexity runs side by side too (FP's own perplexity comes with every KL run).
running=0
for c in "${configs[@]}"; do
  label="${c%%|*}"
  out="$work/$model-$(name_of "$label")"
  [ -f "$out.seconds" ] || continue
  ( ppl "$out" > "$out.row" ) &
  running=$((running + 1))
  if [ "$running" -ge "${JOBS:-4}" ]; then wait -n || true; running=$((running - 1)); fi
done
wait || true
fp=$("$quad" ppl -m "$dir" --text "$text" --chunks "${CHUNKS:-40}" -t "${PPL_THREADS:-${THREADS:-2}}" \
  --device cpu --json 2> /dev/null | tail -n 1 | python3 -c 'import json, sys; print("%.2f" % json.load(sys.stdin)["ppl"])')
echo "| $model, seed $seed | ppl (wiki, ${CHUNKS:-40} chunks) | KL from FP | top-1 = FP | vs FP | quantize s |"
echo "|---|---:|---:|---:|---:|---:|"
echo "| FP | $fp | | | | |"
for c in "${configs[@]}"; do
  label="${c%%|*}"
  out="$work/$model-$(name_of "$label")"
  if [ ! -f "$out.seconds" ]; then
    echo "| $label | failed: $(tail -n 1 "$out.log") | | | | |"
    continue
  fi
  cells=$(cat "$out.row")
  p=${cells%% *}
  echo "| $label | $cells | $(awk -v a="$p" -v b="$fp" 'BEGIN { printf "%+.1f%%", 100 * (a - b) / b }') | $(cat "$out.seconds") |"
done
