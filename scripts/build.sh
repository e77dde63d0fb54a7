#!/usr/bin/env bash
# Configure and build Release binaries into build/bin/ (or $BUILD_DIR/bin).
# Usage: scripts/build.sh [--cuda] [extra cmake -D options]
#   (default)  Debian's libtorch 1.13, CPU: build/
#   --cuda     the cluster build: PyTorch's libtorch 2.x with CUDA, SAM_WITH_CUDA on: build-cuda/.
#              libtorch from $TORCH_DIR (a libtorch folder: pytorch.org's archive, or an installed
#              PyTorch's torch/ folder), from $CMAKE_PREFIX_PATH, or else the cached wheel of
#              scripts/libtorch_cuda.sh (fetched on first use).
# TARGETS="a b" builds only those targets; JOBS sets the parallel jobs.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cuda=0
args=()
for a in "$@"; do
  if [ "$a" = "--cuda" ]; then cuda=1; else args+=("$a"); fi
done
extra=()
if [ "$cuda" = 1 ]; then
  build=${BUILD_DIR:-$root/build-cuda}
  if [ -n "${TORCH_DIR:-}" ]; then
    extra+=("-DCMAKE_PREFIX_PATH=$TORCH_DIR")
  elif [ -z "${CMAKE_PREFIX_PATH:-}" ]; then
    extra+=("-DCMAKE_PREFIX_PATH=$("$root/scripts/libtorch_cuda.sh" --print)")
  fi
  # No GPU is needed to compile: name the architectures instead of detecting them (Hopper by
  # default; only CUDA sources use them, and the project's code is C++ against libtorch).
  extra+=(-DSAM_WITH_CUDA=ON "-DTORCH_CUDA_ARCH_LIST=${TORCH_CUDA_ARCH_LIST:-9.0}")
  # The toolkit itself, not what PATH's first nvcc suggests (a wrapper script in /usr/local/bin
  # makes CMake take /usr/local for it): $CUDA_HOME, else /usr/local/cuda.
  cuda_home=${CUDA_HOME:-${CUDA_PATH:-/usr/local/cuda}}
  if [ -x "$cuda_home/bin/nvcc" ]; then
    extra+=("-DCUDAToolkit_ROOT=$cuda_home" "-DCUDA_TOOLKIT_ROOT_DIR=$cuda_home"
            "-DCMAKE_CUDA_COMPILER=$cuda_home/bin/nvcc")
  fi
else
  build=${BUILD_DIR:-$root/build}
fi
gen=()
command -v ninja >/dev/null && gen=(-G Ninja)
launcher=()
command -v ccache >/dev/null && launcher=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache)
if [ ! -f "$build/CMakeCache.txt" ]; then
  cmake -S "$root" -B "$build" "${gen[@]}" "${launcher[@]}" -DCMAKE_BUILD_TYPE=Release "${extra[@]}" "${args[@]}"
else
  cmake -S "$root" -B "$build" "${extra[@]}" "${args[@]}" >/dev/null
fi
cmake --build "$build" -j "${JOBS:-$(nproc)}" ${TARGETS:+--target $TARGETS}
