#!/usr/bin/env bash
# Training throughput of sam_train (issue 4): seconds per step, images/s and peak memory, for
#   ref    the configuration of the plain PyTorch loop we compare with (tiny architecture, 8 images
#          per step, one mask per image, one point, one round, 2 threads; it takes 0.34 s/step here)
#   recipe the tiny run's configuration (configs/tiny.yaml: 8 images x 1 mask x 5 rounds)
#   rounds11 the paper's schedule at CPU scale: 4 images x 8 masks x 11 rounds (2 without a click)
#   vit_b  ViT-B at 1024 px, one image with 16 masks and 11 rounds per step, activation checkpointing
#          (3 steps; the first is the warm-up); vit_b_nockpt without checkpointing; vit_b_frozen and
#          vit_b_lora (each also _nockpt): the encoder frozen, or LoRA rank 8 on its attention with the
#          mask decoder trained (issue 21)
# on COCO_Tiny/train2017. Steady-state figures skip the first logging window (warm-up).
# Usage: scripts/bench_train.sh [ref|recipe|rounds11|vit_b|vit_b_nockpt|vit_b_frozen|vit_b_lora ...]   (default: ref recipe)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
bin=${BUILD_DIR:-$root/build}/bin
shared=${SAM_SHARED_DIR:-$root/../shared}
coco="coco:$shared/data/COCO_Tiny/annotations/instances_train2017.json:$shared/data/COCO_Tiny/train2017"
out=${BENCH_DIR:-$root/runs/bench_train}
mkdir -p "$out"
cases=("$@")
[ ${#cases[@]} -eq 0 ] && cases=(ref recipe)
common=(--config "$root/configs/tiny.yaml" "data.train=[$coco]" 'data.val=""' train.ckpt_every=0 train.val_every=0
        train.threads=2 optim.warmup_iters=10)
for c in "${cases[@]}"; do
  dir="$out/$c"
  rm -rf "$dir"
  case $c in
    ref) args=("${common[@]}" train.batch_size=8 data.max_masks=1 data.min_mask_area_frac=0 prompt.rounds=1 prompt.mask_only_rounds=0
               prompt.prob_box=0 train.iterations=60 train.log_every=20) ;;
    recipe) args=("${common[@]}" train.iterations=60 train.log_every=20) ;;
    rounds11) args=("${common[@]}" train.batch_size=4 data.max_masks=8 data.min_mask_area_frac=0 prompt.rounds=11
                    prompt.mask_only_rounds=2 prompt.prob_box=0.5 train.iterations=12 train.log_every=4) ;;
    vit_b) args=("${common[@]}" model.arch=vit_b train.batch_size=1 data.max_masks=16 data.min_mask_area_frac=0
                 prompt.rounds=11 prompt.mask_only_rounds=2 prompt.prob_box=0.5 train.iterations=3
                 train.log_every=1 train.activation_checkpointing=true) ;;
    # Issue 21's fine-tuning variants of the vit_b case (random weights: the cost does not depend on
    # them): the image encoder frozen; LoRA rank 8 on the encoder's qkv and proj with the mask
    # decoder trained; each also without activation checkpointing (suffix _nockpt).
    vit_b_frozen|vit_b_frozen_nockpt|vit_b_lora|vit_b_lora_nockpt|vit_b_nockpt)
      args=("${common[@]}" model.arch=vit_b train.batch_size=1 data.max_masks=16 data.min_mask_area_frac=0
            prompt.rounds=11 prompt.mask_only_rounds=2 prompt.prob_box=0.5 train.iterations=3 train.log_every=1)
      case $c in *_nockpt) ;; *) args+=(train.activation_checkpointing=true) ;; esac
      case $c in
        vit_b_frozen*) args+=('train.freeze=["image_encoder.*"]') ;;
        vit_b_lora*) args+=(lora.rank=8 lora.alpha=16 'train.trainable=["mask_decoder.*"]'
                            'lora.targets=["image_encoder.blocks.*.attn.qkv", "image_encoder.blocks.*.attn.proj"]') ;;
      esac ;;
    *) echo "unknown case $c (ref, recipe, rounds11, vit_b, vit_b_nockpt, vit_b_frozen[_nockpt], vit_b_lora[_nockpt])" >&2; exit 2 ;;
  esac
  echo "== $c: load $(cut -d' ' -f1-3 /proc/loadavg)"
  "$bin/sam_train" --run-dir "$dir" "${args[@]}" | grep -E "^step|^done"
  /usr/bin/python3 - "$dir/metrics.jsonl" "$c" <<'EOF'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
train = [r for r in rows if r.get("event") == "train"][1:]  # skip the warm-up window
end = [r for r in rows if r.get("event") == "end"][-1]
sps = sum(r["sec_per_step"] for r in train) / len(train)
ips = sum(r["images_per_s"] for r in train) / len(train)
print(json.dumps({"case": sys.argv[2], "sec_per_step": round(sps, 4), "images_per_s": round(ips, 3),
                  "ref_over_ours": round(0.34 / sps, 3) if sys.argv[2] == "ref" else None,
                  "peak_rss_mib": round(end["peak_rss_mib"], 1)}))
EOF
done
