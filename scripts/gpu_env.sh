#!/usr/bin/env bash
# Sourced by the scripts that run on the lent GPU machine (gpu.sh, gpu_linear_bench.sh) from the
# repository root: points pkg-config, CMake and the loader at the libraries carried in .gpu-deps
# (scripts/fetch_gpu_deps.sh) and sets QUAD_ASSETS (.gpu-assets when carried).
ROOT="$(pwd)"
# Carried libraries: point pkg-config, CMake and the loader at them (ahead of the system's).
DEPS="$ROOT/.gpu-deps/root"
if [ -d "$DEPS" ]; then
  multiarch="$DEPS/usr/lib/x86_64-linux-gnu"
  while IFS= read -r pc; do sed -i "s|^prefix=.*|prefix=$DEPS/usr|" "$pc"; done \
    < <(find "$DEPS" -name '*.pc')
  export PKG_CONFIG_PATH="$multiarch/pkgconfig:$multiarch/openblas-openmp/pkgconfig:$DEPS/usr/share/pkgconfig${PKG_CONFIG_PATH:+:$PKG_CONFIG_PATH}"
  export CMAKE_PREFIX_PATH="$DEPS/usr${CMAKE_PREFIX_PATH:+:$CMAKE_PREFIX_PATH}"
  export LD_LIBRARY_PATH="$multiarch:$multiarch/openblas-openmp${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
  export CPATH="$DEPS/usr/include${CPATH:+:$CPATH}"
  echo "deps: carried $(ls "$multiarch" | grep -c '\.so') libraries from .gpu-deps"
fi
# Packed assets (stage_gpu_assets.sh with PACK=1): unpacked once into .gpu-assets.
if [ ! -d "$ROOT/.gpu-assets" ] && [ -f "$ROOT/.gpu-assets.tar.xz" ]; then
  python3 -c 'import sys, tarfile; tarfile.open(sys.argv[1]).extractall(sys.argv[2])' \
    "$ROOT/.gpu-assets.tar.xz" "$ROOT"
fi
if [ -z "${QUAD_ASSETS:-}" ]; then
  if [ -d "$ROOT/.gpu-assets" ]; then export QUAD_ASSETS="$ROOT/.gpu-assets"
  else export QUAD_ASSETS="$ROOT/../shared/assets"; fi
fi
echo "assets: $QUAD_ASSETS ($(ls "$QUAD_ASSETS/models" 2>/dev/null | tr '\n' ' '))"


# configure_gpu_build LOG_DIR: configures build-gpu/ (Release, CUDA on, $CUDA_ARCH or 90a).
configure_gpu_build() {
  cmake -S . -B build-gpu -G Ninja -DCMAKE_BUILD_TYPE=Release -DQUAD_CUDA=ON \
    -DCMAKE_CUDA_ARCHITECTURES="${CUDA_ARCH:-90a}" -DQUAD_BUILD_BENCH=OFF > "$1/configure.log" 2>&1 ||
    { tail -30 "$1/configure.log"; return 1; }
}

# build_gpu LOG_DIR TARGET...: configures build-gpu/ and builds the targets (log in LOG_DIR),
# printing the first errors on failure; returns non-zero then.
build_gpu() {
  local log="$1" start=$SECONDS
  shift
  echo "== build"
  configure_gpu_build "$log" || return 1
  ninja -C build-gpu "$@" > "$log/build.log" 2>&1 ||
    { grep -B2 -A12 -m3 'error' "$log/build.log" | head -60; return 1; }
  echo "built in $((SECONDS - start)) s"
}

# print_gpu_machine: GPU, driver, memory and clocks, nvcc, and the commit of this tree.
print_gpu_machine() {
  echo "== machine"
  nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.sm,clocks.max.sm \
    --format=csv,noheader || true
  nvcc --version | tail -1
  echo "commit $(git rev-parse --short HEAD 2>/dev/null || echo '?') ($(git status --porcelain 2>/dev/null | wc -l) files changed)"
}
