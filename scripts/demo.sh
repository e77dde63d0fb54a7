#!/usr/bin/env bash
# The main job on the embedded default: installs what is missing, builds, then runs the whole loop
# on data the project makes itself (nothing downloaded, ../shared not needed):
#   1. synthetic scenes (overlapping and nested shapes with exact masks: wholes with parts), as
#      SA-1B: a training set and, apart, the images the data engine annotates;
#   2. the tiny SAM trained from random weights on the training set, on a time budget
#      (configs/demo.yaml);
#   3. the data engine at the paper's thresholds (configs/demo_engine.yaml): assisted-manual,
#      semi-automatic and fully automatic stages, retraining the model within and between
#      stages, with reports.
# Outputs go to ${DEMO_DIR:-runs/demo}. DEMO_TRAIN_MIN sets the training minutes (default 7) and
# DEMO_RETRAIN_MIN those of each retraining round (default 0.5), DEMO_SCENE_FLAGS adds `sam_data synth`
# options to the scenes' (scripts/demo_scenes.sh); more arguments are overrides of the engine's
# configuration (key=value).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
if [ "${DEMO_NO_BUILD:-0}" != 1 ]; then
  "$root/scripts/setup.sh"
  "$root/scripts/build.sh"
fi
bin=${BUILD_DIR:-$root/build}/bin
out=${DEMO_DIR:-$root/runs/demo}
mkdir -p "$out"
cd "$root"
start=$(date +%s)

source "$root/scripts/demo_scenes.sh"   # the scenes' settings: synth=(...)
echo "== 1. synthetic data: $out/synth (training), $out/engine_data (for the data engine), $out/heldout"
"$bin/sam_data" synth "$out/synth" --images "${DEMO_TRAIN_IMAGES:-60}" --seed 1 "${synth[@]}"
"$bin/sam_data" synth "$out/engine_data" --images "${DEMO_ENGINE_IMAGES:-16}" --seed 0 \
  --first-index 1000 "${synth[@]}"
# 6 scenes no stage annotates: every model round of the manual and semi stages is evaluated on them.
"$bin/sam_data" synth "$out/heldout" --images 6 --seed 5 --first-index 2000 "${synth[@]}"

echo "== 2. training the tiny model from random weights for ${DEMO_TRAIN_MIN:-7} minutes: $out/train"
"$bin/sam_train" --config configs/demo.yaml --run-dir "$out/train" "data.train=[sa1b:$out/synth]" \
  train.time_limit_min="${DEMO_TRAIN_MIN:-7}" | grep -E "^(step|done|time|train)"

echo "== 3. the data engine, all three stages, at the paper's thresholds: $out/engine"
"$bin/sam_engine" --config configs/demo_engine.yaml --stage all data="sa1b:$out/engine_data" \
  out_dir="$out/engine" model.checkpoint="$out/train/model.pth" \
  "retrain.extra_data=[sa1b:$out/synth]" retrain.eval_data="sa1b:$out/heldout" \
  retrain.minutes="${DEMO_RETRAIN_MIN:-0.5}" "$@"

echo "demo: done in $(( $(date +%s) - start )) s; reports: $out/engine/<stage>/report.html, training curves: $out/train/*.svg"
