#!/usr/bin/env bash
# The cluster build's libtorch: PyTorch's CUDA wheel from PyPI, unpacked (as site-packages would
# hold it) into a cache outside the repository, with the three NVIDIA libraries that the wheel's
# libtorch_cuda.so needs and a CUDA 13.0 toolkit lacks (cuSPARSELt, NVSHMEM, cuFile). The toolkit's
# own libraries (cudart, cuBLAS, cuFFT, cuRAND, cuSPARSE, CUPTI, NVRTC), cuDNN and NCCL come from
# the system's CUDA toolkit (/usr/local/cuda): the wheel's METADATA names their versions and
# this script checks the CUDA major against the toolkit's.
#
# It also fetches the wheel's pure-Python dependencies into <cache>/pydeps, so that Debian's python3
# imports this torch (PYTHONPATH=<cache>:<cache>/pydeps): the tests read and write .pth files with
# Python's torch.load and torch.save of the same version.
#
# Usage: scripts/libtorch_cuda.sh [--print | --pythonpath]   fetches once (reused afterwards), then
#        with --print writes the CMake prefix (the folder holding share/cmake/Torch) on stdout, with
#        --pythonpath the PYTHONPATH that imports this torch.
# Environment: SAM_CACHE_DIR (default ${XDG_CACHE_HOME:-~/.cache}/sam-cpp), SAM_TORCH_CUDA_VERSION
# (default 2.11.0: what the lent GPU machines run, 2.11.0+cu130), PYTHON (a python3 with pip).
set -euo pipefail
version=${SAM_TORCH_CUDA_VERSION:-2.11.0}
cache=${SAM_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/sam-cpp}
dest=$cache/torch-$version
print=${1:-}

say() { echo "libtorch_cuda: $*" >&2; }
die() { echo "libtorch_cuda: error: $*" >&2; exit 1; }

py=${PYTHON:-python3}
if [ ! -f "$dest/.complete" ] || [ ! -f "$dest/pydeps/.complete" ]; then
  if ! "$py" -m pip --version >/dev/null 2>&1; then
    # Debian's python3 has no pip until python3-pip is installed; `pip download` needs no venv.
    if [ -x /usr/bin/python3 ] && ! /usr/bin/python3 -m pip --version >/dev/null 2>&1; then
      say "installing python3-pip (to download wheels from PyPI)"
      sudo=(); [ "$(id -u)" -ne 0 ] && sudo=(sudo)
      "${sudo[@]}" apt-get install -y -qq --no-install-recommends python3-pip >/dev/null
    fi
    py=/usr/bin/python3
  fi
fi
if [ ! -f "$dest/.complete" ]; then
  cuda_home=${CUDA_HOME:-/usr/local/cuda}
  [ -x "$cuda_home/bin/nvcc" ] || die "no CUDA toolkit at $cuda_home (set CUDA_HOME); the CUDA build needs one (13.x)"
  toolkit_major=$("$cuda_home/bin/nvcc" --version | sed -n 's/.*release \([0-9]*\)\..*/\1/p')
  mkdir -p "$cache"
  tmp=$(mktemp -d "$cache/.fetch.XXXXXX")
  trap 'rm -rf "$tmp"' EXIT
  # The manylinux x86-64 wheel for CPython 3.11 (Debian 12's python3): its Python part then also
  # imports as `torch` with PYTHONPATH=$dest, for the tests that read our files with torch.load.
  pip_dl=("$py" -m pip download --quiet --no-deps --only-binary=:all: --platform manylinux_2_28_x86_64
          --python-version 3.11 --implementation cp -d "$tmp/whl")
  say "downloading torch==$version from PyPI (about 530 MB) into $cache"
  "${pip_dl[@]}" "torch==$version" || die "pip could not download torch==$version (is PyPI reachable?)"
  whl=$(ls "$tmp"/whl/torch-*.whl)
  meta=$(unzip -p "$whl" "torch-$version.dist-info/METADATA")
  # What the wheel was built for: cuda-toolkit[...]==<major>.x and the -cu<major> NVIDIA packages.
  wheel_cuda=$(sed -n 's/^Requires-Dist: cuda-toolkit\[[^]]*\]==\([0-9]*\)\..*/\1/p' <<<"$meta" | head -1)
  [ -n "$wheel_cuda" ] || die "$whl: its METADATA names no cuda-toolkit requirement: not a CUDA wheel"
  [ "$wheel_cuda" = "$toolkit_major" ] ||
    die "$whl needs CUDA $wheel_cuda, the toolkit at $cuda_home is CUDA $toolkit_major: pick another SAM_TORCH_CUDA_VERSION"
  pins=()
  for pkg in nvidia-cusparselt-cu$wheel_cuda nvidia-nvshmem-cu$wheel_cuda; do
    v=$(sed -n "s/^Requires-Dist: $pkg==\([^;]*\);.*/\1/p" <<<"$meta" | tr -d ' ' | head -1)
    [ -n "$v" ] || die "$whl: its METADATA does not pin $pkg"
    pins+=("$pkg==$v")
  done
  toolkit_pin=$(sed -n 's/^Requires-Dist: cuda-toolkit\[[^]]*\]==\([^;]*\);.*/\1/p' <<<"$meta" | tr -d ' ' | head -1)
  "$py" -m pip download --quiet --no-deps -d "$tmp/meta" "cuda-toolkit==$toolkit_pin" ||
    die "pip could not download cuda-toolkit==$toolkit_pin (its METADATA pins cuFile)"
  cufile=$(unzip -p "$tmp"/meta/cuda_toolkit-*.whl '*/METADATA' |
           sed -n "s/^Requires-Dist: nvidia-cufile==\([^;]*\);.*extra == 'cufile'.*/\1/p" | tr -d ' *' | sed 's/\.$//' | head -1)
  [ -n "$cufile" ] || die "cuda-toolkit==$toolkit_pin: no nvidia-cufile pin in its METADATA"
  pins+=("nvidia-cufile==$cufile")
  say "downloading ${pins[*]}"
  "$py" -m pip download --quiet --no-deps -d "$tmp/whl" "${pins[@]}" || die "pip could not download ${pins[*]}"
  mkdir -p "$tmp/site"
  for w in "$tmp"/whl/*.whl; do unzip -q -o "$w" -d "$tmp/site"; done
  find "$tmp/site/torch/bin" -type f ! -name torch_shm_manager -delete  # protoc, ptxas: not needed
  rm -f "$tmp"/site/*.dist-info/RECORD
  printf 'torch %s (CUDA %s wheel from PyPI)\n%s\n' "$version" "$wheel_cuda" "${pins[*]}" >"$tmp/site/SOURCES"
  rm -rf "$dest"
  mv "$tmp/site" "$dest"
  touch "$dest/.complete"
  say "ready: $dest ($(du -sh "$dest" | cut -f1))"
fi
if [ ! -f "$dest/pydeps/.complete" ]; then
  # torch's Requires-Dist without the NVIDIA packages (the system toolkit stands in) and triton,
  # for CPython 3.11 (Debian 12's python3); numpy is Debian's.
  deps=$(cat "$dest"/torch-*.dist-info/METADATA)
  reqs=$(sed -n 's/^Requires-Dist: \([A-Za-z0-9_.-]*[^;]*\)$/\1/p' <<<"$deps" | tr -d ' ' |
         grep -viE '^(nvidia|cuda|triton|setuptools)' || true)
  rm -rf "$dest/pydeps.tmp"
  say "fetching torch's Python dependencies: $(tr '\n' ' ' <<<"$reqs")"
  # shellcheck disable=SC2086
  "$py" -m pip install --quiet --no-compile --only-binary=:all: --platform manylinux_2_28_x86_64 \
    --python-version 3.11 --implementation cp --target "$dest/pydeps.tmp" $reqs mpmath markupsafe ||
    die "pip could not fetch torch's Python dependencies ($reqs)"
  rm -rf "$dest/pydeps" && mv "$dest/pydeps.tmp" "$dest/pydeps" && touch "$dest/pydeps/.complete"
fi
case "$print" in
  --print) echo "$dest/torch" ;;
  --pythonpath) echo "$dest:$dest/pydeps" ;;
esac
exit 0
