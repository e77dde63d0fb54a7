#!/usr/bin/env bash
# Installs the Debian 12 packages the project needs, if any are missing (idempotent, quiet when
# everything is there). Uses sudo when not run as root.
# --cuda: also brings the cluster build's libtorch (PyTorch's CUDA wheel from PyPI, unpacked into a
# cache outside the repository: scripts/libtorch_cuda.sh), for scripts/build.sh --cuda.
set -euo pipefail
cuda=0
[ "${1:-}" = "--cuda" ] && cuda=1
packages=(
  build-essential cmake ninja-build ccache pkg-config
  libtorch-dev libopenblas0-openmp          # libtorch (CPU) and a fast BLAS for it
  libopencv-dev libjpeg-dev libpng-dev nlohmann-json3-dev libyaml-cpp-dev libspdlog-dev catch2 libcli11-dev
  libcpp-httplib-dev libsqlite3-dev libgloo-dev
  python3-torch python3-numpy               # torchrun, and interop checks with torch.load
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
# The annotation tool's browser test (tests/e2e) needs playwright-core from npm, driving Debian's
# chromium. Fetched once when node, npm and chromium are there; optional: without it that one test
# reports itself skipped, and a failure here (no registry) only warns.
root=$(cd "$(dirname "$0")/.." && pwd)
if [ ! -d "$root/tests/e2e/node_modules/playwright-core" ] && command -v npm >/dev/null &&
   command -v node >/dev/null && [ -x /usr/bin/chromium ]; then
  echo "setup: npm ci --prefix tests/e2e (playwright-core for the browser test)"
  timeout 300 npm ci --prefix "$root/tests/e2e" --no-audit --no-fund --loglevel=error >/dev/null 2>&1 ||
    echo "setup: warning: npm ci failed; the browser test will be skipped" >&2
fi
if [ "$cuda" = 1 ]; then
  "$root/scripts/libtorch_cuda.sh"
fi
