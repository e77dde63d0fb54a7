#!/usr/bin/env bash
# Installs the Debian 12 packages the project needs, if any are missing (idempotent, quiet when
# everything is there). Uses sudo when not run as root.
# It also fetches the tests' Python peers from PyPI (scripts/peers.sh, into a cache).
# --cuda: also brings the cluster build's libtorch (PyTorch's CUDA wheel from PyPI, unpacked into a
# cache outside the repository: scripts/libtorch_cuda.sh), for scripts/build.sh --cuda.
set -euo pipefail
cuda=0
[ "${1:-}" = "--cuda" ] && cuda=1
packages=(
  build-essential cmake ninja-build ccache pkg-config
  libtorch-dev libopenblas0-openmp          # libtorch (CPU) and a fast BLAS for it
  libopencv-dev libjpeg-dev libpng-dev zlib1g-dev nlohmann-json3-dev libyaml-cpp-dev libspdlog-dev catch2 libcli11-dev
  libcpp-httplib-dev libsqlite3-dev libgloo-dev
  libonnx-dev                               # sam_export onnx (sam/onnx)
  python3-torch python3-numpy               # torchrun, and interop checks with torch.load
  python3-torchvision                       # the reference SAM's generator (scripts/peers.sh)
  python3-scipy                             # scipy.io.savemat: the MAT-files of tests/data/test_matfile
  chromium chromium-driver python3-selenium # the annotation tool's browser test (tests/e2e)
)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]}"
  sudo=()
  [ "$(id -u)" -ne 0 ] && sudo=(sudo)
  "${sudo[@]}" apt-get update -qq
  DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
root=$(cd "$(dirname "$0")/.." && pwd)
# The tests' Python peers from PyPI (Meta's segment-anything, pycocotools) into a cache.
"$root/scripts/peers.sh"
if [ "$cuda" = 1 ]; then
  "$root/scripts/libtorch_cuda.sh"
fi
