#!/usr/bin/env bash
# Issue 6's decode ratio, QUAD W4A4 over FP32 on random llama3.2-1b weights, measured in
# interleaved pairs (FP32 run, then W4A4 run, PAIRS times) so that the host's memory bandwidth,
# which drifts between runs on a shared machine, moves both sides of each ratio alike. Prints
# each pair's tokens/s and ratio, then the median ratio.
# Usage: bash scripts/decode_ratio.sh [THREADS (default 2)]   env: PAIRS (3), N (64), QUANT (w4a4)
set -euo pipefail
cd "$(dirname "$0")/.."
quad="${QUAD:-build/quad}"
threads="${1:-2}" pairs="${PAIRS:-3}" n="${N:-64}" quant="${QUANT:-w4a4}"
err="$(mktemp)"
trap 'rm -f "$err"' EXIT
tps() {  # decode tokens/s of one quad bench run; quad's own error line on failure
  local json
  json=$("$quad" bench --random llama3.2-1b --quant "$1" -p 0 -n "$n" -r 1 -t "$threads" --json \
    2>"$err") || { echo "decode_ratio: $(tail -1 "$err")" >&2; return 1; }
  echo "$json" | tail -1 | sed -E 's/.*"tps_mean":([0-9.eE+-]+).*/\1/'
}
echo "# decode ratio $quant/fp32, llama3.2-1b random, tg$n, $threads threads, $(date -u +%FT%TZ)," \
  "commit $(git rev-parse --short HEAD), load: $(cut -d' ' -f1-3 /proc/loadavg)"
ratios=()
for i in $(seq "$pairs"); do
  fp=$(tps fp32)
  q=$(tps "$quant")
  r=$(awk -v a="$q" -v b="$fp" 'BEGIN { printf "%.3f", a / b }')
  ratios+=("$r")
  echo "pair $i: fp32 $fp t/s, $quant $q t/s, ratio $r"
done
printf '%s\n' "${ratios[@]}" | sort -g |
  awk '{ v[NR] = $1 } END { printf "median ratio %s over %d pairs\n", v[int((NR + 1) / 2)], NR }'
