#!/usr/bin/env bash
# Our programs beside Meta's reference (segment_anything from PyPI: scripts/peers.sh) on this machine
# in the same minutes, so that every ratio divides two figures of one host and one load:
#   gemm    the 2048^3 fp32 matmul rate of libtorch in both processes (the embedding's floor)
#   embed   ViT-B image encoder, 1024x1024, random weights (sam_bench / the reference's encoder)
#   prompt  one point at a 1024x768 original, 3 masks, post-processed and thresholded
#           (sam_bench / SamPredictor.predict)
#   train   the tiny architecture's step: 8 images, one mask each, one point, one round
#           (scripts/bench_train.sh ref / a plain PyTorch loop over Meta's modules)
# Usage: scripts/bench_peer.sh [--threads N] [--out DIR]   (DIR default runs/bench_peer)
# Writes DIR/*.json and prints a Markdown table for docs/PERFORMANCE.md. Needs ../shared (the
# training case reads COCO_Tiny). Run it on an otherwise idle machine: OpenMP threads that share
# cores with other work slow down far beyond their share.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
threads=2
out=$root/runs/bench_peer
while [ $# -gt 0 ]; do
  case $1 in
    --threads) threads=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    *) echo "usage: $0 [--threads N] [--out DIR]" >&2; exit 2 ;;
  esac
done
bin=${BUILD_DIR:-$root/build}/bin
mkdir -p "$out"
site=$("$root/scripts/peers.sh" --print)
ref() { PYTHONPATH=$site OMP_NUM_THREADS=$threads /usr/bin/python3 "$root/scripts/peer_bench.py" "$@" --threads "$threads"; }
echo "== $(date -u +%FT%TZ) load $(cut -d' ' -f1-3 /proc/loadavg), $(git -C "$root" rev-parse --short HEAD)"
"$bin/sam_bench" --model vit_b --threads "$threads" --gemm --embeds 2 --prompts 50 --orig-h 768 --orig-w 1024 \
  --json "$out/ours_infer.json" >/dev/null
ref gemm > "$out/ref_gemm.json"
ref embed --embeds 2 > "$out/ref_embed.json"
ref prompt --prompts 50 > "$out/ref_prompt.json"
BENCH_DIR=$out/train "$root/scripts/bench_train.sh" ref | tail -1 > "$out/ours_train.json"
ref train --steps 40 > "$out/ref_train.json"
echo "== done $(date -u +%FT%TZ) load $(cut -d' ' -f1-3 /proc/loadavg)"
/usr/bin/python3 - "$out" <<'PY'
import json, sys, os
d = sys.argv[1]
j = lambda n: json.load(open(os.path.join(d, n)))
oi, rg, re_, rp, ot, rt = (j(n) for n in ("ours_infer.json", "ref_gemm.json", "ref_embed.json",
                                           "ref_prompt.json", "ours_train.json", "ref_train.json"))
gemm = oi["gemm_tflops"] * 1e3
floor = oi["embed_gemm_floor_s"]
print(f"GEMM 2048^3 fp32: ours' libtorch {gemm:.0f} GFLOP/s, the reference's {rg['gemm_gflops']:.0f} GFLOP/s; "
      f"ViT-B embedding floor ({oi['embed_tflop'] * 1e3:.0f} GFLOP at our GEMM rate) {floor:.2f} s: "
      f"ours {oi['embed_s_median'] / floor:.2f}x the floor")
print("| what | Meta's reference | ours | reference / ours |")
print("|---|---|---|---|")
print(f"| ViT-B embedding 1024x1024 (median of 2) | {re_['embed_s_median']:.2f} s | {oi['embed_s_median']:.2f} s | "
      f"{re_['embed_s_median'] / oi['embed_s_median']:.2f}x |")
print(f"| point prompt, 1024x768, 3 masks (median of 50) | {rp['prompt_ms_median']:.1f} ms | "
      f"{oi['prompt_ms_median']:.1f} ms | {rp['prompt_ms_median'] / oi['prompt_ms_median']:.2f}x |")
print(f"| tiny training step, 8 images (median of 40 / steady-state mean) | {rt['sec_per_step_median']:.3f} s | "
      f"{ot['sec_per_step']:.3f} s | {rt['sec_per_step_median'] / ot['sec_per_step']:.2f}x |")
PY
