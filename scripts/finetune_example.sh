#!/usr/bin/env bash
# The fine-tuning worked example of docs/TRAINING.md on the tiny architecture, end to end on this
# CPU: a base model trained on COCO_Tiny/train2017 (or one given), adapted with LoRA to
# COCO_MINI/train2017's images, evaluated with sam_eval on COCO_MINI/val2017 before and after.
#   1. base    sam_train configs/tiny.yaml on COCO_Tiny alone for BASE_MINUTES (10), or BASE=RUN_DIR
#   2. before  sam_eval points on COCO_MINI val2017 (first click at the object's centre, CLICKS)
#   3. adapt   init.kind=run from the base; rank-8 LoRA on the encoder's qkv and proj plus the mask
#              decoder in full (configs/finetune_vit_b_lora.yaml's choices), ADAPT_MINUTES (5),
#              validated on COCO_MINI val at the start and every 100 steps
#   4. export  the merged weights (official format) and the adapters alone
#   5. after   sam_eval points on COCO_MINI val2017 with the merged weights
# Usage: scripts/finetune_example.sh [OUT_DIR]   (default runs/finetune_example)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
bin=${BUILD_DIR:-$root/build}/bin
shared=${SAM_SHARED_DIR:-$root/../shared}
out=${1:-$root/runs/finetune_example}
clicks=${CLICKS:-5}
if [ ! -d "$shared/data/COCO_MINI" ]; then
  echo "finetune_example: needs $shared/data (COCO_Tiny, COCO_MINI); set SAM_SHARED_DIR" >&2
  exit 2
fi
tiny="coco:$shared/data/COCO_Tiny/annotations/instances_train2017.json:$shared/data/COCO_Tiny/train2017"
mini="coco:$shared/data/COCO_MINI/annotations/instances_train2017.json:$shared/data/COCO_MINI/train2017"
mini_val="coco:$shared/data/COCO_MINI/annotations/instances_val2017.json:$shared/data/COCO_MINI/val2017"
mkdir -p "$out"
cd "$root"
base=${BASE:-$out/base}
if [ -z "${BASE:-}" ] && [ ! -f "$base/model.pth" ]; then
  echo "== 1. base: configs/tiny.yaml on COCO_Tiny for ${BASE_MINUTES:-10} min"
  "$bin/sam_train" --config configs/tiny.yaml --run-dir "$base" "data.train=[\"$tiny\"]" \
    train.time_limit_min=${BASE_MINUTES:-10} train.iterations=100000 optim.decay_steps=[] | grep -E "^(val|done|time)"
fi
evaluate() {  # $1 checkpoint, $2 name
  "$bin/sam_eval" points --model configs/model_tiny.json --checkpoint "$1" --dataset "$mini_val" \
    --clicks "$clicks" --threads 2 --out "$out/eval_$2.json" > /dev/null
  /usr/bin/python3 - "$out/eval_$2.json" "$2" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
k = r["miou_at_k"]
print(f"{sys.argv[2]}: COCO_MINI val2017 n={r['n']} 1-click mIoU {r['miou_1click']:.3f} "
      f"(oracle {r['miou_1click_oracle']:.3f}), {len(k)} clicks {k[-1]:.3f}")
PY
}
echo "== 2. before"
evaluate "$base/model.pth" before
echo "== 3. adapt: LoRA rank 8 on the encoder's attention + the mask decoder, ${ADAPT_MINUTES:-5} min on COCO_MINI train2017"
rm -rf "$out/lora"
"$bin/sam_train" --config configs/tiny.yaml --run-dir "$out/lora" init.kind=run init.checkpoint="$base" \
  "data.train=[\"$mini\"]" "data.val=$mini_val" data.val_max_samples=100 \
  lora.rank=8 lora.alpha=16 'lora.targets=["image_encoder.blocks.*.attn.qkv", "image_encoder.blocks.*.attn.proj"]' \
  'train.trainable=["mask_decoder.*"]' train.time_limit_min=${ADAPT_MINUTES:-5} train.iterations=100000 \
  train.val_at_start=true train.val_every=100 train.ema_decay=0 optim.lr=1e-3 optim.warmup_iters=20 \
  optim.decay_steps=[] | grep -E "^(LoRA|trainable|val|done|time)"
echo "== 4. export"
"$bin/sam_train" export "$out/lora" "$out/merged.pth"
"$bin/sam_train" export --adapters "$out/lora" "$out/adapters.pth"
ls -l "$out/merged.pth" "$out/adapters.pth" | awk '{print $5, $NF}'
echo "== 5. after"
evaluate "$out/merged.pth" after
