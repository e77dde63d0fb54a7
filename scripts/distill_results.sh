#!/usr/bin/env bash
# Issue 22's distillation measurement on the tiny architecture: a student encoder
# (configs/model_tiny_student.json) distilled from a teacher trained by scripts/tiny_results.sh
# (configs/distill_tiny.yaml, ITERATIONS steps on the COCO train2017 subsets' images), then:
# - both evaluated as docs/RESULTS.md does (scripts/eval_points.sh: GrabCut and Berkeley), the
#   student's 1-click and 5-click mIoU printed as shares of the teacher's;
# - the time of each encoder alone (sam_bench --encoder-batch 1) and of set_image on a 640 x 480
#   image, 40 each, 2 threads, teacher and student alternately twice in the same minutes, and the
#   speed-ups (teacher time / student time, medians; docs/PERFORMANCE.md "Student encoders").
# Usage: scripts/distill_results.sh TEACHER_RUN [OUT_DIR]
#   env: ITERATIONS=1500; STUDENT=configs/model_tiny_student.json (the student's architecture, e.g.
#   configs/model_tiny_hybrid.json for the TinyViT-style one)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
bin=${BUILD_DIR:-$root/build}/bin
teacher=${1:?give the run directory of the teacher, made by scripts/tiny_results.sh}
out=${2:-$root/runs/distill_tiny}
cd "$root"
student=${STUDENT:-configs/model_tiny_student.json}
echo "== distillation of $student, ${ITERATIONS:-1500} steps (load $(cut -d' ' -f1-3 /proc/loadavg))"
"$bin/sam_train" --config configs/distill_tiny.yaml --run-dir "$out" train.iterations=${ITERATIONS:-1500} model.arch="$student" \
  distill.teacher_checkpoint="$teacher/model.pth" | grep -E "^(step|val|done|train|objective)" | awk 'NR % 5 == 1 || /val|done|train:|objective/'
[ -f "$teacher/eval_Berkeley.json" ] || "$root/scripts/eval_points.sh" "$teacher" "$root/configs/model_tiny.json"
"$root/scripts/eval_points.sh" "$out"
for round in 1 2; do
  for who in teacher student; do
    if [ $who = teacher ]; then arch=configs/model_tiny.json; ck=$teacher/model.pth; else arch=$out/model.json; ck=$out/model.pth; fi
    "$bin/sam_bench" --model "$arch" --checkpoint "$ck" --embeds 40 --encoder-batch 1 --prompts 1 --threads 2 --orig-h 480 --orig-w 640 --json "$out/bench_${who}_$round.json" > /dev/null
  done
done
/usr/bin/python3 - "$teacher" "$out" <<'PY'
import json, statistics, sys
teacher, out = sys.argv[1], sys.argv[2]
for ds in ("GrabCut", "Berkeley"):
    t = json.load(open(f"{teacher}/eval_{ds}.json")); s = json.load(open(f"{out}/eval_{ds}.json"))
    print(f"{ds}: student/teacher 1-click mIoU {s['miou_1click']:.3f}/{t['miou_1click']:.3f} = {s['miou_1click'] / t['miou_1click']:.1%}, "
          f"5 clicks {s['miou_at_k'][4]:.3f}/{t['miou_at_k'][4]:.3f} = {s['miou_at_k'][4] / t['miou_at_k'][4]:.1%}")
def med(who, pick):
    return statistics.median(sum((pick(json.load(open(f"{out}/bench_{who}_{r}.json"))) for r in (1, 2)), []))
for name, pick in (("encoder alone", lambda j: j["encoder_batch"]["sec_per_batch"]), ("set_image 640x480", lambda j: j["embed_s"])):
    t, s = med("teacher", pick), med("student", pick)
    print(f"{name} (median of 80): teacher {t * 1e3:.2f} ms, student {s * 1e3:.2f} ms, speed-up {t / s:.2f}x")
PY
