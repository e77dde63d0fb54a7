#!/usr/bin/env bash
# Issue 4's quality check: train configs/tiny.yaml from random initialisation for 20 minutes on
# COCO_Tiny/train2017 + COCO_MINI/train2017, then evaluate on GrabCut and Berkeley (first click at
# the object's centre, the point farthest from its boundary; up to 20 clicks): mIoU of the
# top-ranked mask and oracle at 1 click, mIoU at 5 clicks, NoC@85/90.
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
for ds in GrabCut Berkeley; do
  spec=$(echo "$ds" | tr 'A-Z' 'a-z'):$shared/data/$ds
  "$bin/sam_eval" points --model configs/model_tiny.json --checkpoint "$run/model.pth" --dataset "$spec" \
    --clicks 20 --threads 2 --out "$run/eval_$ds.json" > /dev/null
  /usr/bin/python3 - "$run/eval_$ds.json" "$ds" <<'EOF'
import json, sys
r = json.load(open(sys.argv[1]))
k = r["miou_at_k"]
print(f"{sys.argv[2]}: n={r['n']} 1-click mIoU {r['miou_1click']:.3f} (oracle {r['miou_1click_oracle']:.3f}), "
      f"5 clicks {k[4]:.3f}, 20 clicks {k[-1]:.3f}, NoC@85 {r['noc85']:.2f}, NoC@90 {r['noc90']:.2f}")
EOF
done
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"
