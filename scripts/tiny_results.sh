#!/usr/bin/env bash
# Issue 4's quality check: train configs/tiny.yaml from random initialisation for 20 minutes on
# COCO_Tiny/train2017 + COCO_MINI/train2017, then evaluate on GrabCut and Berkeley (first click at
# the object's centre, the point farthest from its boundary; up to 20 clicks): mIoU of the
# top-ranked mask and oracle at 1 click, mIoU at 5 clicks, NoC@85/90.
# The evaluation is scripts/eval_points.sh.
# Usage: scripts/tiny_results.sh [RUN_DIR] [key=value overrides for sam_train...]
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
bin=${BUILD_DIR:-$root/build}/bin
shared=${SAM_SHARED_DIR:-$root/../shared}
run=${1:-$root/runs/tiny20}
shift || true
cd "$root"
echo "load before: $(cut -d' ' -f1-3 /proc/loadavg)"
"$bin/sam_train" --config configs/tiny.yaml --run-dir "$run" train.time_limit_min=${MINUTES:-20} \
  train.iterations=${ITERATIONS:-100000} "$@" | grep -E "^(step|val|done|time|train|resume)" | awk 'NR % 5 == 1 || /val|done|time|train:/'
"$root/scripts/eval_points.sh" "$run" "$root/configs/model_tiny.json"
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"
