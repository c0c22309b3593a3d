#!/usr/bin/env bash
# Prepares .gpu-deps/ (git-ignored): Debian 12 packages of the build dependencies that the lent
# GPU machine lacks, downloaded here with `apt-get download` and unpacked with `dpkg -x` into
# .gpu-deps/root. scripts/gpu.sh finds them there. The GPU image (Ubuntu 24.04, glibc 2.39, seen
# 2026-11) has cmake, ninja, nvcc, OpenBLAS, LAPACKE, fmt, CLI11, nlohmann-json and GoogleTest but
# not the PCRE2 and utf8proc development files, so by default only those travel (~1 MiB). With
# `all`, every library dependency travels (~50 MiB unpacked: OpenBLAS is most of it), for an
# image without them; that leaves no room for a model in the same call (64 MiB per call).
#
# Usage: bash scripts/fetch_gpu_deps.sh [all]     (needs apt lists: apt-get update once)
# Then:  pass carry [".gpu-deps", ".gpu-assets"] to the GPU call and run `bash scripts/gpu.sh`.
set -euo pipefail
cd "$(dirname "$0")/.."

PACKAGES=(libpcre2-dev libpcre2-8-0 libutf8proc-dev libutf8proc2)
if [ "${1:-}" = all ]; then
  PACKAGES+=(libopenblas0-openmp libopenblas-openmp-dev libopenblas-dev libopenblas0 liblapacke
             liblapacke-dev libtmglib3 libtmglib-dev nlohmann-json3-dev libcli11-dev libfmt9
             libfmt-dev libgtest-dev libgmock-dev)
elif [ -n "${1:-}" ]; then
  echo "usage: bash scripts/fetch_gpu_deps.sh [all]" >&2
  exit 2
fi

rm -rf .gpu-deps
mkdir -p .gpu-deps/debs .gpu-deps/root
# apt-get download writes into the current folder; _apt may not be able to, which only warns.
(cd .gpu-deps/debs && apt-get download "${PACKAGES[@]}" 2>&1 | grep -v "unsandboxed" || true)
count=$(find .gpu-deps/debs -name '*.deb' | wc -l)
if [ "$count" -ne "${#PACKAGES[@]}" ]; then
  echo "fetch_gpu_deps: got $count of ${#PACKAGES[@]} packages (run apt-get update first?)" >&2
  exit 1
fi
for deb in .gpu-deps/debs/*.deb; do dpkg -x "$deb" .gpu-deps/root; done
# Only shared libraries, headers, pkg-config and CMake files are needed; static libraries would
# also be picked over the shared ones by the linker.
find .gpu-deps/root \( -name '*.a' -o -path '*/share/doc*' -o -path '*/share/man*' \) -delete
find .gpu-deps/root -type d -empty -delete
rm -rf .gpu-deps/debs
echo "fetch_gpu_deps: ${#PACKAGES[@]} packages in .gpu-deps/root ($(du -sh .gpu-deps | cut -f1))" >&2
