#!/usr/bin/env bash
# scripts/gpu_check.sh: the one-shot check of the GPU path, for a machine with an NVIDIA GPU, a
# python3 with PyTorch 2.x (its libtorch is the one built against), CMake, ninja and nvcc, and no
# network: everything else comes in the bundle of scripts/gpu_bundle.sh. It
#   1. builds, against that PyTorch, only the targets the check needs (build-gpu/);
#   2. runs the suites where the GPU path differs, their [cuda] cases included (CUDA against CPU
#      parity on the golden tiny model, bf16, checkpointing with drop path, exact resume on CUDA,
#      a 1-rank NCCL group, 2 Gloo ranks on CUDA tensors, the gradient reducer);
#   3. runs the GPU benchmarks (sam_bench, sam_amg_bench with --device cuda): the bf16 GEMM rate,
#      ViT-H training steps at the paper's load with and without activation checkpointing (images/s,
#      peak memory, MFU), ViT-H and ViT-B encoder throughput, the decoder on 64 prompts, the
#      automatic mask generator;
#   4. writes gpu_check.json and gpu_check.md (a table) into $OUT (the device tool's output folder)
#      or gpu_check_out/.
# Without a GPU (torch.cuda.is_available() false) it does the same on the CPU with the tiny model:
# the [cuda] cases report themselves skipped and the benchmarks run as a smoke test (scripts/
# gpu_check_chroot.sh runs it so in a bare Debian chroot).
# Usage: scripts/gpu_check.sh [--bundle DIR] [--no-bench]
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
bundle=${SAM_GPU_BUNDLE:-$root/gpu_bundle}
bench=1
while [ $# -gt 0 ]; do
  case $1 in
    --bundle) bundle=$2; shift 2 ;;
    --no-bench) bench=0; shift ;;
    *) echo "usage: $0 [--bundle DIR] [--no-bench]" >&2; exit 2 ;;
  esac
done
out=${OUT:-$root/gpu_check_out}
build=${BUILD_DIR:-$root/build-gpu}
py=${PYTHON:-python3}
mkdir -p "$out"
: >"$out/gpu_check.log"
t_start=$(date +%s)
log() { echo "[gpu_check $(($(date +%s) - t_start)) s] $*" | tee -a "$out/gpu_check.log"; }
bundle=$(cd "$bundle" && pwd)
lib=$bundle/usr/lib/x86_64-linux-gnu
[ -d "$lib" ] || { echo "gpu_check: no bundle at $bundle (scripts/gpu_bundle.sh DIR makes one)" >&2; exit 1; }

# -- What this machine has.
read -r prefix torch_version site cuda_ok < <("$py" -c '
import os, torch
print(torch.utils.cmake_prefix_path, torch.__version__, os.path.dirname(os.path.dirname(torch.__file__)),
      int(torch.cuda.is_available()))')
log "torch $torch_version at $prefix; CUDA device: $cuda_ok"
"$py" -c 'import torch; print(torch.cuda.get_device_name(0)) if torch.cuda.is_available() else None' >>"$out/gpu_check.log" 2>&1 || true
command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv >>"$out/gpu_check.log" 2>&1 || true
# NCCL and cuDNN: the pip packages beside torch when there (nvidia-nccl-cu13, nvidia-cudnn-cu13).
[ -d "$site/nvidia/nccl" ] && export NCCL_ROOT=${NCCL_ROOT:-$site/nvidia/nccl}
[ -d "$site/nvidia/cudnn" ] && export CUDNN_ROOT=${CUDNN_ROOT:-$site/nvidia/cudnn}
export GLOO_ROOT=$bundle/usr

# -- 1. Build the check's targets.
# The suites as ctest names them (<folder>/<name>); their programs are test_<folder>_<name>.
suites=(sam/golden_parity sam/attention sam/flops train/interactive_step train/optim train/distributed tools/sam_train)
tests=("${suites[@]//\//_}")
targets="${tests[*]/#/test_} sam_bench sam_amg_bench sam_train sam_data"
log "configure"
cmake -S "$root" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DCMAKE_PREFIX_PATH="$prefix" \
  -DSAM_WITH_CUDA=ON -DSAM_WITH_ANNOTATE=OFF -DSAM_IMAGE_CODECS=jpegpng "-DTORCH_CUDA_ARCH_LIST=${TORCH_CUDA_ARCH_LIST:-9.0}" \
  -Dyaml-cpp_DIR="$lib/cmake/yaml-cpp" -Dnlohmann_json_DIR="$bundle/usr/share/cmake/nlohmann_json" \
  -DCatch2_DIR="$bundle/usr/lib/cmake/Catch2" -DOpenCV_DIR="$lib/cmake/opencv4" \
  -DJPEG_INCLUDE_DIR="$bundle/usr/include" -DJPEG_LIBRARY="$lib/libjpeg.so" \
  -DPNG_PNG_INCLUDE_DIR="$bundle/usr/include" -DPNG_LIBRARY="$lib/libpng16.so" \
  -DZLIB_INCLUDE_DIR="$bundle/usr/include" -DZLIB_LIBRARY="$lib/libz.so" \
  "-DCMAKE_CXX_FLAGS=-isystem $bundle/usr/include -isystem $bundle/usr/include/x86_64-linux-gnu" \
  "-DCMAKE_BUILD_RPATH=$lib" >"$out/configure.log" 2>&1 || { tail -40 "$out/configure.log"; exit 1; }
log "build: $targets"
# shellcheck disable=SC2086
cmake --build "$build" -j "$(nproc)" --target $targets >"$out/build.log" 2>&1 || { tail -60 "$out/build.log"; exit 1; }
t_built=$(date +%s)
ldd "$build/bin/sam_train" | grep -E "torch_cuda|nccl|cudnn|gomp|not found" >>"$out/gpu_check.log" || true

# -- 2. The suites (their CPU cases too), with the bundle's fixtures and this torch as the peer.
export SAM_SHARED_DIR=$bundle/shared SAM_TEST_PYTHON=$py OMP_WAIT_POLICY=PASSIVE
regex="^($(IFS='|'; echo "${suites[*]}")):"
log "tests: $regex"
set +e
(cd "$build" && ctest -j 4 --output-on-failure -R "$regex" --output-junit "$out/ctest.xml") >"$out/ctest.log" 2>&1
tests_rc=$?
set -e
# The [cuda] cases on their own, each binary's result line.
: >"$out/cuda_cases.log"
for s in "${tests[@]}"; do
  res=$(cd "$root" && "$build/bin/test_$s" "[cuda]" 2>&1) || true
  grep -q "No tests ran" <<<"$res" && continue
  skips=$(grep -c "SAM_TEST_SKIPPED" <<<"$res" || true)
  echo "test_$s [cuda]: $(grep -E '^(All tests passed|test cases:)' <<<"$res" | head -1) ($skips skipped)" >>"$out/cuda_cases.log"
done
t_tested=$(date +%s)
log "tests done (ctest status $tests_rc): $(grep -E 'tests passed' "$out/ctest.log" || echo '?')"

# -- 3. Benchmarks.
bench_rc=0
if [ "$bench" = 1 ]; then
  if [ "$cuda_ok" = 1 ]; then
    dev=(--device cuda --dtype bf16)
    log "bench: ViT-H training step, encoder batch 8, decoder on 64 prompts"
    "$build/bin/sam_bench" "${dev[@]}" --gemm --only-extra --model vit_h --encoder-batch 8 --embeds 5 --prompt-batch 64 \
      --prompts 10 --train-step --train-steps 3 --checkpointing both --json "$out/vit_h.json" >"$out/bench_vit_h.log" 2>&1 || bench_rc=$?
    log "bench: ViT-B encoder batch 32"
    "$build/bin/sam_bench" "${dev[@]}" --gemm --only-extra --model vit_b --encoder-batch 32 --embeds 5 \
      --json "$out/vit_b.json" >"$out/bench_vit_b.log" 2>&1 || bench_rc=$?
    # Random weights: the thresholds at 0 keep every candidate, so post-processing does its full work.
    amg=(--device cuda --dtype bf16 --model vit_h --image "$bundle/shared/golden/tiny/image.jpg" --points-per-side 32
         --pred-iou-thresh 0 --stability-score-thresh 0)
    log "bench: mask generator, ViT-H, 32x32 points, no crops and 2 crop layers"
    "$build/bin/sam_amg_bench" "${amg[@]}" --warmup 1 --repeat 3 --json "$out/amg.json" >"$out/bench_amg.log" 2>&1 || bench_rc=$?
    "$build/bin/sam_amg_bench" "${amg[@]}" --crop-n-layers 2 --warmup 0 --repeat 1 --json "$out/amg_crops.json" \
      >"$out/bench_amg_crops.log" 2>&1 || bench_rc=$?
  else
    tiny=$root/configs/model_tiny.json
    log "bench (no GPU: CPU smoke run on the tiny model)"
    "$build/bin/sam_bench" --device cpu --gemm --only-extra --model "$tiny" --encoder-batch 2 --embeds 1 --prompt-batch 8 \
      --prompts 2 --train-step --train-masks 4 --train-rounds 3 --train-steps 1 --checkpointing both \
      --json "$out/vit_h.json" >"$out/bench_vit_h.log" 2>&1 || bench_rc=$?
    "$build/bin/sam_amg_bench" --model "$tiny" --checkpoint "$bundle/shared/golden/tiny/sam.pth" \
      --image "$bundle/shared/golden/tiny/image.jpg" --points-per-side 8 --warmup 0 --repeat 1 \
      --json "$out/amg.json" >"$out/bench_amg.log" 2>&1 || bench_rc=$?
  fi
fi
t_end=$(date +%s)
log "benchmarks done (status $bench_rc)"

# -- 4. The report.
"$py" - "$out" "$torch_version" "$cuda_ok" "$tests_rc" "$bench_rc" $((t_built - t_start)) $((t_tested - t_built)) \
  $((t_end - t_tested)) <<'EOF'
import json, os, re, sys, datetime
out, torch_version, cuda_ok, tests_rc, bench_rc = sys.argv[1], sys.argv[2], sys.argv[3] == "1", int(sys.argv[4]), int(sys.argv[5])
secs = dict(zip(["build_s", "tests_s", "bench_s"], map(int, sys.argv[6:9])))
def load(name):
    p = os.path.join(out, name)
    return json.load(open(p)) if os.path.exists(p) else None
ctest = open(os.path.join(out, "ctest.log")).read()
m = re.search(r"(\d+)% tests passed, (\d+) tests failed out of (\d+)", ctest)
skipped = re.findall(r"\d+ - (.*) \(Skipped\)", ctest)
failed = re.findall(r"\d+ - (.*) \((?:Failed|SEGFAULT|Timeout|Exception|Subprocess aborted|Not Run)[^)]*\)", ctest)
report = {"date": datetime.datetime.utcnow().isoformat(timespec="seconds") + "Z", "torch": torch_version,
          "cuda_device": cuda_ok, "seconds": secs,
          "tests": {"status": tests_rc, "summary": m.group(0) if m else None, "skipped": skipped, "failed": failed,
                    "cuda_cases": open(os.path.join(out, "cuda_cases.log")).read().strip().splitlines()},
          "bench_status": bench_rc, "vit_h": load("vit_h.json"), "vit_b": load("vit_b.json"),
          "amg": load("amg.json"), "amg_crops": load("amg_crops.json")}
json.dump(report, open(os.path.join(out, "gpu_check.json"), "w"), indent=2)
rows = [("torch", torch_version), ("CUDA device", (report["vit_h"] or {}).get("device", "none")),
        ("tests", report["tests"]["summary"]), ("skipped", len(skipped)), ("failed", ", ".join(failed) or "none")]
h, b = report["vit_h"] or {}, report["vit_b"] or {}
def f(x, d=3):
    return "-" if x is None else (f"{x:.{d}g}" if isinstance(x, float) else str(x))
if h.get("gemm_tflops"): rows.append(("GEMM rate (" + h.get("gemm", "") + "), TFLOP/s", f(h["gemm_tflops"])))
for key, name in (("train_step", "training step, no checkpointing"), ("train_step_checkpointing", "training step, checkpointing")):
    t = h.get(key)
    if t:
        rows.append((f"{h.get('model')} {name}: s/step, images/s, peak MiB, MFU",
                     f"{f(t['sec_per_step_median'])}, {f(t['images_per_s'])}, {f(t['peak_mib'], 6)}, {f(t.get('mfu'))}"))
for j in (h, b):
    e = j.get("encoder_batch")
    if e: rows.append((f"{j.get('model')} encoder, batch {e['batch']}: images/s, MFU", f"{f(e['images_per_s'])}, {f(e.get('mfu'))}"))
p = h.get("prompt_batch")
if p: rows.append((f"decoder, {p['prompts']} prompts: ms per batch, per prompt", f"{f(p['ms_per_batch_median'])}, {f(p['ms_per_prompt'])}"))
for key, name in (("amg", "mask generator"), ("amg_crops", "mask generator, 2 crop layers")):
    a = report[key]
    if a: rows.append((f"{name} ({a.get('model')}): s per image", f(a["median"]["total_s"])))
rows.append(("seconds: build, tests, benchmarks", f"{secs['build_s']}, {secs['tests_s']}, {secs['bench_s']}"))
with open(os.path.join(out, "gpu_check.md"), "w") as fo:
    fo.write("| measure | value |\n|---|---|\n" + "".join(f"| {k} | {v} |\n" for k, v in rows))
print(open(os.path.join(out, "gpu_check.md")).read())
EOF
log "done: $out/gpu_check.json, $out/gpu_check.md"
[ "$tests_rc" = 0 ] && [ "$bench_rc" = 0 ]
