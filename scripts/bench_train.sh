#!/usr/bin/env bash
# Training throughput of sam_train (issue 4): seconds per step, images/s and peak memory, for
#   ref    the configuration of the plain PyTorch loop we compare with (tiny architecture, 8 images
#          per step, one mask per image, one point, one round, 2 threads; it takes 0.34 s/step here)
#   recipe the tiny run's configuration (configs/tiny.yaml: 8 images x 1 mask x 5 rounds)
#   rounds11 the paper's schedule at CPU scale: 4 images x 8 masks x 11 rounds (2 without a click)
#   vit_b  ViT-B at 1024 px, one image with 16 masks and 11 rounds per step, activation checkpointing
#          (3 steps; the first is the warm-up); vit_b_nockpt without checkpointing; vit_b_frozen and
#          vit_b_lora (each also _nockpt): the encoder frozen, or LoRA rank 8 on its attention with the
#          mask decoder trained (issue 21); vit_b_cached: the encoder's embeddings read from a store
#          (sam_data embed, fp16, made once into $out/embeddings_vit_b and reused; its time per image
#          is printed) instead of running the encoder, flips off; vit_h, vit_h_* the same with ViT-H
# on COCO_Tiny/train2017. Steady-state figures skip the first logging window (warm-up).
#   zero_vit_b, zero_vit_h  the optimiser state per rank over 2 processes, without and with
#          train.shard_optimizer (issue 21)
# Usage: scripts/bench_train.sh [ref|recipe|rounds11|vit_b|vit_b_nockpt|vit_b_frozen|vit_b_lora|vit_b_cached|zero_vit_b ...]
#        (default: ref recipe)
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
# One JSON line of a run's steady state (the first logging window skipped: warm-up).
summarize() {
  /usr/bin/python3 - "$1" "$2" <<'EOF'
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
}
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
    vit_[bh]_frozen|vit_[bh]_frozen_nockpt|vit_[bh]_lora|vit_[bh]_lora_nockpt|vit_[bh]_nockpt|vit_h)
      args=("${common[@]}" model.arch=${c:0:5} train.batch_size=1 data.max_masks=16 data.min_mask_area_frac=0
            prompt.rounds=11 prompt.mask_only_rounds=2 prompt.prob_box=0.5 train.iterations=3 train.log_every=1)
      case $c in *_nockpt) ;; *) args+=(train.activation_checkpointing=true) ;; esac
      case $c in
        vit_?_frozen*) args+=('train.freeze=["image_encoder.*"]') ;;
        vit_?_lora*) args+=(lora.rank=8 lora.alpha=16 'train.trainable=["mask_decoder.*"]'
                            'lora.targets=["image_encoder.blocks.*.attn.qkv", "image_encoder.blocks.*.attn.proj"]') ;;
      esac ;;
    vit_b_cached|vit_h_cached)
      # Both runs on the first 4 images of COCO_Tiny train2017 (a subset file written here: embedding
      # all 80 at ViT-B would take half an hour on this CPU): the frozen encoder in the loop
      # (<arch>_cached_ref), then the store's embeddings (<arch>_cached).
      subset="$out/coco_tiny_first4.json"
      /usr/bin/python3 - "$shared/data/COCO_Tiny/annotations/instances_train2017.json" "$subset" <<'EOF'
import json, sys
d = json.load(open(sys.argv[1]))
d["images"] = sorted(d["images"], key=lambda i: i["id"])[:4]
ids = {i["id"] for i in d["images"]}
d["annotations"] = [a for a in d["annotations"] if a["image_id"] in ids]
json.dump(d, open(sys.argv[2], "w"))
EOF
      args=("${common[@]}" "data.train=[coco:$subset:$shared/data/COCO_Tiny/train2017]" model.arch=${c:0:5}
            train.batch_size=1 data.max_masks=16 data.min_mask_area_frac=0 prompt.rounds=11 prompt.mask_only_rounds=2
            prompt.prob_box=0.5 train.iterations=3 train.log_every=1 data.hflip=false)
      store="$out/embeddings_${c:0:5}"
      if [ ! -f "$store/manifest.json" ] || ! grep -q '"complete"' "$store/manifest.json"; then
        t0=$(date +%s.%N)
        "$bin/sam_data" embed "${args[@]}" --out "$store" --dtype fp16 | tail -1
        echo "embed: $(echo "($(date +%s.%N) - $t0) / 4" | bc -l | cut -c1-6) s per image (the store's one-off cost)"
      fi
      rm -rf "$out/${c}_ref"
      echo "== ${c}_ref: load $(cut -d' ' -f1-3 /proc/loadavg)"
      "$bin/sam_train" --run-dir "$out/${c}_ref" "${args[@]}" 'train.freeze=["image_encoder.*"]' | grep -E "^step|^done"
      summarize "$out/${c}_ref/metrics.jsonl" "${c}_ref"
      args+=("data.embeddings=$store") ;;
    zero_vit_b|zero_vit_h)
      # The AdamW state per rank over 2 Gloo processes (torchrun), without and with
      # train.shard_optimizer: the setup and checkpoint of a run of no step (the moments exist from
      # the start; a step of ViT-H takes minutes here). Prints the state on rank 0 and rank 0's peak RSS.
      arch=${c#zero_}
      for shard in false true; do
        d="$out/${c}_shard_$shard"
        rm -rf "$d"
        echo "== $c shard_optimizer=$shard: load $(cut -d' ' -f1-3 /proc/loadavg)"
        OMP_NUM_THREADS=1 /usr/bin/python3 -m torch.distributed.run --nproc_per_node=2 --no_python -r 1 -t 1 \
          --master_port=29650 "$bin/sam_train" --run-dir "$d" "${common[@]}" model.arch=$arch train.iterations=0 \
          train.threads=1 train.shard_optimizer=$shard 2>&1 | grep -E "optimizer state|^done"
        /usr/bin/python3 - "$d/metrics.jsonl" "$c" "$shard" <<'EOF'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
st = [r for r in rows if r.get("event") == "optimizer_state"][-1]
end = [r for r in rows if r.get("event") == "end"][-1]
print(json.dumps({"case": sys.argv[2], "shard_optimizer": sys.argv[3] == "true",
                  "optimizer_state_mib_rank0": round(st["mib_rank0"], 1), "peak_rss_mib_rank0": round(end["peak_rss_mib"], 1)}))
EOF
      done
      continue ;;
    *) echo "unknown case $c (ref, recipe, rounds11, vit_b, vit_b_nockpt, vit_b_frozen[_nockpt], vit_b_lora[_nockpt], vit_b_cached, the vit_h_ forms of these, zero_vit_b, zero_vit_h)" >&2; exit 2 ;;
  esac
  echo "== $c: load $(cut -d' ' -f1-3 /proc/loadavg)"
  "$bin/sam_train" --run-dir "$dir" "${args[@]}" | grep -E "^step|^done"
  summarize "$dir/metrics.jsonl" "$c"
done
