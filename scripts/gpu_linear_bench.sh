#!/usr/bin/env bash
# Issue 8 on the lent GPU machine, in one call: builds quad_cuda_tests and quad_linear_bench into
# build-gpu/, checks the QUAD linear kernels against their host references (tests Quad*), then
# times the full QUAD linear against cuBLAS bf16 on Llama-3-8B shapes with r = 64 and prints the
# table. Logs and bench JSON go to $OUT when set.
#
# Before the call, here: bash scripts/fetch_gpu_deps.sh     (-> .gpu-deps/)
# The call: run `bash scripts/gpu_linear_bench.sh [--quick]` with carry [".gpu-deps"].
# Environment: CUDA_ARCH (default 90a); QUAD_NCU=1 adds an ncu pass over one launch of each
# kernel (ncu.txt).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT="$(pwd)"
LOG="${OUT:-$ROOT/build-gpu}"
mkdir -p "$LOG"

source scripts/gpu_env.sh
print_gpu_machine

build_gpu "$LOG" quad_cuda_tests quad_linear_bench || exit 1

status=0
echo "== kernel checks (quad_cuda_tests --gtest_filter='Quad*:*QuadLinearModel*')"
build-gpu/tests/quad_cuda_tests --gtest_color=no --gtest_filter='Quad*:*QuadLinearModel*' > "$LOG/quad_tests.log" 2>&1 || status=1
grep -E '^\[  (FAILED|SKIPPED|PASSED) |Failure|y\[|Expected|Which is|Value of' "$LOG/quad_tests.log" | head -40 || true

echo "== benchmark"
build-gpu/quad_linear_bench "$@" --json "$LOG/quad_linear_bench.json" | tee "$LOG/quad_linear_bench.txt" || status=1
if [ -n "${QUAD_NCU:-}" ] && command -v ncu > /dev/null; then
  echo "== ncu (tiled and gemv kernels, one launch each)"
  ncu --clock-control none --section SpeedOfLight --section WarpStateStats --section Occupancy \
    -k regex:"${QUAD_NCU_KERNELS:-quad_(tiled|gemv)|quant_}" -c ${QUAD_NCU_COUNT:-12} build-gpu/quad_linear_bench --profile > "$LOG/ncu.txt" 2>&1 || true
  grep -E 'quad_tiled|quad_gemv|quant_|Duration|Memory Throughput|Compute \(SM\)|Registers|Achieved Occupancy|Stall|Warp Cycles Per Issued' "$LOG/ncu.txt" | head -80
fi
echo "gpu_linear_bench.sh: $([ $status = 0 ] && echo all passed || echo FAILURES)"
exit $status
