#!/usr/bin/env bash
# Sets up (dependencies + build) and runs the whole test suite:
#   1. every test (unit + slow end-to-end) on the Release build;
#   2. the fast unit suite again under AddressSanitizer + UBSan.
# Skip the slow tests locally with: QUAD_TEST_FAST=1 bash scripts/test.sh
set -euo pipefail
cd "$(dirname "$0")/.."
export QUAD_ASSETS="${QUAD_ASSETS:-$(pwd)/../shared/assets}"

bash scripts/setup.sh
label_args=()
[ -n "${QUAD_TEST_FAST:-}" ] && label_args=(-LE slow)
ctest --test-dir build --output-on-failure -j"$(nproc)" "${label_args[@]}"

QUAD_BUILD_DIR=build-asan bash scripts/setup.sh -DCMAKE_BUILD_TYPE=RelWithDebInfo -DQUAD_SANITIZE=ON \
  -DQUAD_BUILD_BENCH=OFF
ASAN_OPTIONS=detect_leaks=1 ctest --test-dir build-asan --output-on-failure -j"$(nproc)" -LE slow
echo "test: all suites passed" >&2
