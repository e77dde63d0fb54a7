#!/usr/bin/env bash
# Our programs beside Meta's reference (segment_anything from PyPI: scripts/peers.sh) on this machine
# in the same minutes, so that every ratio divides two figures of one host and one load:
#   gemm    the 2048^3 fp32 matmul rate of libtorch in both processes (the embedding's floor)
#   embed   ViT-B image encoder, 1024x1024, random weights (sam_bench / the reference's encoder)
#   prompt  one point at a 1024x768 original, 3 masks, post-processed and thresholded
#           (sam_bench / SamPredictor.predict)
#   amg     the automatic mask generator, golden tiny model and image (../shared/golden/tiny), 32x32
#           points, no crops (sam_amg --timings / SamAutomaticMaskGenerator.generate)
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
"$bin/sam_bench" --model vit_b --threads "$threads" --gemm --embed-warmup 1 --embeds 2 --prompts 50 --orig-h 768 --orig-w 1024 \
  --json "$out/ours_infer.json" >/dev/null
# The same GEMM kernels on both sides: our programs fix OpenBLAS's core where its own choice does
# not use the CPU (tools/process_env.h); the reference, Debian's torch over the same OpenBLAS, gets
# the core ours ran with.
if [ -z "${OPENBLAS_CORETYPE:-}" ]; then
  core=$(/usr/bin/python3 -c 'import json,sys; print(json.load(open(sys.argv[1])).get("blas_core", ""))' "$out/ours_infer.json")
  [ -n "$core" ] && export OPENBLAS_CORETYPE=$core
fi
echo "== OpenBLAS core: ${OPENBLAS_CORETYPE:-as OpenBLAS chose}"
ref gemm > "$out/ref_gemm.json"
ref embed --embed-warmup 1 --embeds 2 > "$out/ref_embed.json"
ref prompt --prompts 50 > "$out/ref_prompt.json"
# The prompt again with OpenMP's idle threads spinning long between parallel regions (a setting for
# a dedicated machine; our programs otherwise set OMP_WAIT_POLICY=PASSIVE GOMP_SPINCOUNT=300, see
# tools/tool_common.h), both sides.
spin=1000000
GOMP_SPINCOUNT=$spin "$bin/sam_bench" --model vit_b --threads "$threads" --embeds 1 --prompts 50 --orig-h 768 \
  --orig-w 1024 --json "$out/ours_prompt_spin.json" >/dev/null
GOMP_SPINCOUNT=$spin ref prompt --prompts 50 > "$out/ref_prompt_spin.json"
golden=${SAM_SHARED_DIR:-$root/../shared}/golden/tiny
amg_flags=(--points-per-side 32 --points-per-batch 64 --pred-iou-thresh 0 --stability-score-thresh 0.5
           --crop-n-layers 0 --min-mask-region-area 0 --max-area-frac 0)
for run in 1 2; do
  "$bin/sam_amg" --model "$golden/config.json" --checkpoint "$golden/sam.pth" --input "$golden/image.jpg" \
    --output "$out/amg" "${amg_flags[@]}" --threads "$threads" --timings "$out/ours_amg_$run.json" >/dev/null
done
ref amg --golden "$golden" > "$out/ref_amg.json"
BENCH_DIR=$out/train "$root/scripts/bench_train.sh" ref | tail -1 > "$out/ours_train.json"
ref train --steps 40 > "$out/ref_train.json"
echo "== done $(date -u +%FT%TZ) load $(cut -d' ' -f1-3 /proc/loadavg)"
/usr/bin/python3 - "$out" <<'PY'
import json, sys, os
d = sys.argv[1]
j = lambda n: json.load(open(os.path.join(d, n)))
oi, rg, re_, rp, ot, rt, ra = (j(n) for n in ("ours_infer.json", "ref_gemm.json", "ref_embed.json",
                                               "ref_prompt.json", "ours_train.json", "ref_train.json",
                                               "ref_amg.json"))
osp, rsp = j("ours_prompt_spin.json"), j("ref_prompt_spin.json")
oa = sorted(j(f"ours_amg_{r}.json")[0]["total_s"] for r in (1, 2))
oa_masks = len(json.load(open(os.path.join(d, "amg", "image.json")))["annotations"])
gemm = oi["gemm_tflops"] * 1e3
floor = oi["embed_gemm_floor_s"]
print(f"GEMM 2048^3 fp32: ours' libtorch {gemm:.0f} GFLOP/s, the reference's {rg['gemm_gflops']:.0f} GFLOP/s; "
      f"ViT-B embedding floor ({oi['embed_tflop'] * 1e3:.0f} GFLOP at our GEMM rate) {floor:.2f} s: "
      f"ours {oi['embed_s_median'] / floor:.2f}x the floor; each embedding against the GEMM rate measured just "
      f"before it: {', '.join(f'{x:.2f}x' for x in oi['embed_floor_ratio'])} (median "
      f"{oi['embed_floor_ratio_median']:.2f}x)")
print("| what | Meta's reference | ours | reference / ours |")
print("|---|---|---|---|")
print(f"| ViT-B embedding 1024x1024 (median of 2, after 1 untimed) | {re_['embed_s_median']:.2f} s | {oi['embed_s_median']:.2f} s | "
      f"{re_['embed_s_median'] / oi['embed_s_median']:.2f}x |")
print(f"| point prompt, 1024x768, 3 masks (median of 50) | {rp['prompt_ms_median']:.1f} ms | "
      f"{oi['prompt_ms_median']:.1f} ms | {rp['prompt_ms_median'] / oi['prompt_ms_median']:.2f}x |")
print(f"| the same prompt, both with GOMP_SPINCOUNT=1000000 | {rsp['prompt_ms_median']:.1f} ms | "
      f"{osp['prompt_ms_median']:.1f} ms | {rsp['prompt_ms_median'] / osp['prompt_ms_median']:.2f}x "
      f"(against the reference's default: {rp['prompt_ms_median'] / osp['prompt_ms_median']:.2f}x) |")
print(f"| generator, golden tiny, 640x480, 32x32 points, no crops (median of 2) | {ra['amg_s_median']:.2f} s "
      f"({ra['amg_masks']} masks) | {(oa[0] + oa[1]) / 2:.2f} s ({oa_masks} masks) | "
      f"{ra['amg_s_median'] / ((oa[0] + oa[1]) / 2):.2f}x |")
print(f"| tiny training step, 8 images (median of 40 / steady-state mean) | {rt['sec_per_step_median']:.3f} s | "
      f"{ot['sec_per_step']:.3f} s | {rt['sec_per_step_median'] / ot['sec_per_step']:.2f}x |")
PY
