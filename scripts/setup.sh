#!/usr/bin/env bash
# Installs the Debian 12 packages the project needs, if any are missing (idempotent, quiet when
# everything is there). Uses sudo when not run as root.
set -euo pipefail
packages=(
  build-essential cmake ninja-build ccache pkg-config
  libtorch-dev libopenblas0-openmp          # libtorch (CPU) and a fast BLAS for it
  libopencv-dev nlohmann-json3-dev libyaml-cpp-dev libspdlog-dev catch2 libcli11-dev
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
