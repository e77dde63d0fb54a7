#!/usr/bin/env bash
# The tests' Python peers from PyPI: Meta's `segment-anything` (the reference SAM), `pycocotools`
# (COCO's RLE and COCOeval), `tensorboard` (its event-file reader, with protobuf and absl-py),
# `onnx` (its checker) and `onnxruntime` (the runtime the exported ONNX files are checked in),
# unpacked as site-packages into a cache outside the repository. They run on Debian's python3
# (3.11) with Debian's torch 1.13, torchvision 0.14 and numpy (scripts/setup.sh installs those);
# the tests start them with PYTHONPATH=<cache>/site.
#
# Usage: scripts/peers.sh [--print]   fetches once (reused afterwards); --print writes the site
#        folder on stdout.
# Environment: SAM_CACHE_DIR (default ${XDG_CACHE_HOME:-~/.cache}/sam-cpp), PYTHON (a python3 with pip).
set -euo pipefail
cache=${SAM_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/sam-cpp}
dest=$cache/peers
# Pinned: the tests' tolerances were checked with these.
wheels=(segment-anything==1.0 pycocotools==2.0.11 tensorboard==2.21.0 protobuf==6.33.1 absl-py==2.5.1
        onnx==1.17.0 onnxruntime==1.20.1)
die() { echo "peers: error: $*" >&2; exit 1; }

stamp="${wheels[*]}"
if [ ! -f "$dest/.complete" ] || [ "$(cat "$dest/.complete")" != "$stamp" ]; then
  py=${PYTHON:-python3}
  if ! "$py" -m pip --version >/dev/null 2>&1; then
    py=/usr/bin/python3
    if ! "$py" -m pip --version >/dev/null 2>&1; then
      echo "peers: installing python3-pip (to download wheels from PyPI)" >&2
      sudo=(); [ "$(id -u)" -ne 0 ] && sudo=(sudo)
      "${sudo[@]}" apt-get install -y -qq --no-install-recommends python3-pip >/dev/null
    fi
  fi
  echo "peers: fetching ${wheels[*]} into $dest" >&2
  rm -rf "$dest"
  mkdir -p "$dest/wheels" "$dest/site"
  # Wheels for Debian 12's CPython 3.11, whatever Python runs pip.
  "$py" -m pip download -q --no-deps --only-binary=:all: --python-version 3.11 --implementation cp \
    --platform manylinux2014_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux_2_27_x86_64 \
    --platform manylinux_2_28_x86_64 --platform any \
    -d "$dest/wheels" "${wheels[@]}" || die "pip download ${wheels[*]} failed (is PyPI reachable?)"
  for w in "$dest"/wheels/*.whl; do
    "$py" -m zipfile -e "$w" "$dest/site" || die "cannot unpack $w"
  done
  echo "$stamp" > "$dest/.complete"
fi
if [ "${1:-}" = "--print" ]; then
  echo "$dest/site"
fi
