#!/usr/bin/env bash
# Issue 22's MAE measurement on the tiny architecture: does MAE pre-training help SAM training at
# this scale? Arm A: configs/mae_tiny.yaml for MAE_ITERATIONS steps (its cosine schedule ends
# there; on the images of COCO_Tiny + COCO_MINI train2017, no masks), then SAM training from its
# encoder (init.kind mae) for the rest of TOTAL minutes; arm B: SAM training from random weights
# for TOTAL minutes (scripts/tiny_results.sh, configs/tiny.yaml). Both evaluated as
# docs/RESULTS.md does (GrabCut and Berkeley: 1-click mIoU and oracle, 5 and 20 clicks, NoC@85/90).
# The lr decay step of configs/tiny.yaml (1700 of a 20-minute run) is scaled to arm A's minutes.
# Also writes the MAE run's reconstructions of 4 COCO val2017 images (never trained on) and its
# loss curve (RUN/mae/loss.svg).
# Usage: scripts/mae_results.sh [OUT_DIR]   (env: MAE_ITERATIONS=700, TOTAL=20, ARMS="mae random")
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
bin=${BUILD_DIR:-$root/build}/bin
shared=${SAM_SHARED_DIR:-$root/../shared}
out=${1:-$root/runs/mae_results}
total=${TOTAL:-20}
mkdir -p "$out"
cd "$root"
for arm in ${ARMS:-mae random}; do
  if [ "$arm" = mae ]; then
    echo "== A: MAE pre-training, ${MAE_ITERATIONS:-700} steps (load $(cut -d' ' -f1-3 /proc/loadavg))"
    "$bin/sam_train" --config configs/mae_tiny.yaml --run-dir "$out/mae" train.iterations=${MAE_ITERATIONS:-700} \
      "data.train=[images:$shared/data/COCO_Tiny/train2017,images:$shared/data/COCO_MINI/train2017]" |
      grep -E "^(step|done|train)" | awk 'NR % 5 == 1 || /done|train:/'
    mae_min=$(/usr/bin/python3 -c "
import json
for l in open('$out/mae/metrics.jsonl'):
    j = json.loads(l)
    if j.get('event') == 'end': e = j['elapsed_s']
print(round(e / 60, 2))")
    sam_min=$(/usr/bin/python3 -c "print(round($total - $mae_min, 2))")
    decay=$(/usr/bin/python3 -c "print(int(1700 * $sam_min / 20))")
    echo "MAE took $mae_min min; SAM training from it for $sam_min min (lr decay at step $decay)"
    imgs=$(ls "$shared/data/COCO_Tiny/val2017/"*.jpg | head -4)
    # shellcheck disable=SC2086
    "$bin/sam_train" reconstruct "$out/mae" $imgs --out "$out/mae/reconstructions.png" --seed 1
    MINUTES=$sam_min "$root/scripts/tiny_results.sh" "$out/sam_from_mae" init.kind=mae init.checkpoint="$out/mae" \
      "optim.decay_steps=[$decay]"
  else
    echo "== B: SAM training from random weights, $total min"
    MINUTES=$total "$root/scripts/tiny_results.sh" "$out/sam_random"
  fi
done
