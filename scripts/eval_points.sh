#!/usr/bin/env bash
# The point-prompt evaluation of docs/RESULTS.md for one model: GrabCut and Berkeley (first click
# at the object's centre, the point farthest from its boundary; up to 20 clicks): mIoU of the
# top-ranked mask and oracle at 1 click, mIoU at 5 and 20 clicks, NoC@85/90. Writes
# RUN/eval_<set>.json and prints one line per set.
# Usage: scripts/eval_points.sh RUN_DIR [ARCH]   (ARCH: configs/model_tiny.json, or RUN/model.json when it exists)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
bin=${BUILD_DIR:-$root/build}/bin
shared=${SAM_SHARED_DIR:-$root/../shared}
run=$1
arch=${2:-}
if [ -z "$arch" ]; then
  if [ -f "$run/model.json" ]; then arch=$run/model.json; else arch=$root/configs/model_tiny.json; fi
fi
for ds in GrabCut Berkeley; do
  spec=$(echo "$ds" | tr 'A-Z' 'a-z'):$shared/data/$ds
  "$bin/sam_eval" points --model "$arch" --checkpoint "$run/model.pth" --dataset "$spec" \
    --clicks 20 --threads 2 --out "$run/eval_$ds.json" > /dev/null
  /usr/bin/python3 - "$run/eval_$ds.json" "$ds" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
k = r["miou_at_k"]
print(f"{sys.argv[2]}: n={r['n']} 1-click mIoU {r['miou_1click']:.3f} (oracle {r['miou_1click_oracle']:.3f}), "
      f"5 clicks {k[4]:.3f}, 20 clicks {k[-1]:.3f}, NoC@85 {r['noc85']:.2f}, NoC@90 {r['noc90']:.2f}")
PY
done
