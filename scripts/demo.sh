#!/usr/bin/env bash
# The main job on the embedded default: installs what is missing, builds, then runs the most
# complete pipeline that exists so far, on data the project makes itself (nothing downloaded).
# Outputs go to ${DEMO_DIR:-runs/demo}.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
"$root/scripts/setup.sh"
"$root/scripts/build.sh"
bin=${BUILD_DIR:-$root/build}/bin
out=${DEMO_DIR:-$root/runs/demo}
mkdir -p "$out"
# Stage so far: the tiny architecture's inference path end to end (embedding, prompts), timed.
"$bin/sam_bench" --model "$root/configs/model_tiny.json" --orig-h 480 --orig-w 640 --embeds 3 \
  --prompts 50 --json "$out/bench_tiny.json"
echo "demo: results in $out"
