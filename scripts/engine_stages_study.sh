#!/usr/bin/env bash
# studies/engine_stages.yaml with what it needs: the demo's data engine outputs (scripts/demo.sh,
# when ${DEMO_DIR:-runs/demo}/engine/auto is missing) and 40 held-out synthetic scenes made like the
# demo's but from another seed (synth_test), then the study and its report.
# Usage: scripts/engine_stages_study.sh [sam_study run options, e.g. --only 'manual/*']
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
bin=${BUILD_DIR:-$root/build}/bin
cd "$root"
demo=${DEMO_DIR:-runs/demo}
export DEMO_DIR=$demo
if [ ! -d "$demo/engine/auto" ]; then
  echo "== the demo's data engine outputs are missing: scripts/demo.sh"
  DEMO_NO_BUILD=1 "$root/scripts/demo.sh"
fi
if [ ! -d "$demo/synth_test" ]; then
  source "$root/scripts/demo_scenes.sh"   # the demo's scene settings; seed 7, indices apart from its sets
  "$bin/sam_data" synth "$demo/synth_test" --images 40 --seed 7 --first-index 5000 "${synth[@]}"
fi
# A failed run (e.g. a stage that kept no masks, so a variant has nothing to train on) is in the
# report as failed; the report is written all the same and the script then exits non-zero.
rc=0
"$bin/sam_study" run studies/engine_stages.yaml "$@" || rc=$?
"$bin/sam_study" report studies/engine_stages.yaml
exit $rc
