#!/usr/bin/env bash
# Sets up (dependencies + build) and runs the whole test suite:
#   1. the unit suite and the CUDA tests (label `cuda`: they skip without a GPU; built when
#      nvcc is found) (parallel, one thread per test process);
#   2. the slow end-to-end suite (label `slow`: full perplexity runs, quantization), serially
#      with every core;
#   3. the unit suite again under AddressSanitizer + UBSan.
# Skip the slow suite locally with: QUAD_TEST_FAST=1 bash scripts/test.sh
set -euo pipefail
cd "$(dirname "$0")/.."
export QUAD_ASSETS="${QUAD_ASSETS:-$(pwd)/../shared/assets}"
jobs="$(nproc)"

bash scripts/setup.sh
OMP_NUM_THREADS=1 ctest --test-dir build --output-on-failure -j"$jobs" -LE slow
if [ -z "${QUAD_TEST_FAST:-}" ]; then
  ctest --test-dir build --output-on-failure -L slow
fi

# Sanitized host code only: the CUDA backend is compiled (and its tests skip) in the build above.
QUAD_BUILD_DIR=build-asan bash scripts/setup.sh -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DQUAD_SANITIZE=ON -DQUAD_BUILD_BENCH=OFF -DQUAD_CUDA=OFF
OMP_NUM_THREADS=1 ASAN_OPTIONS=detect_leaks=1 \
  ctest --test-dir build-asan --output-on-failure -j"$jobs" -LE slow
echo "test: all suites passed" >&2
