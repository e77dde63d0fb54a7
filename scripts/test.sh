#!/usr/bin/env bash
# Installs what is missing, builds both configurations and runs the tests (ctest over the Catch2
# suites):
#   build/       Debian's libtorch 1.13 (CPU): every test.
#   build-cuda/  the cluster build, PyTorch's libtorch 2.x with CUDA (scripts/build.sh --cuda):
#                every program, and on the CPU the suites where libtorch 2.x behaves differently
#                (golden parity and bf16, .pth I/O against Python's torch.load/torch.save of the
#                same 2.x, attention through scaled_dot_product_attention, the fused AdamW, the
#                training step, the distributed collectives and gradient reducer, sam_train's
#                kill-and-resume and 2-rank Gloo runs, the ONNX export linked against Debian's
#                libonnx and protobuf beside libtorch 2.x). Their [cuda] cases report themselves
#                skipped where no GPU is present.
# Tests read ../shared (golden fixtures, datasets) next to the repository, or $SAM_SHARED_DIR.
# Extra arguments go to both ctest runs. SAM_SKIP_CUDA_BUILD=1 leaves the cluster build out.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cuda=1
[ "${SAM_SKIP_CUDA_BUILD:-0}" = 1 ] && cuda=0
if [ "$cuda" = 1 ]; then "$root/scripts/setup.sh" --cuda; else "$root/scripts/setup.sh"; fi
# Two suites run at once on two cores: OpenMP threads must sleep, not spin, while they wait
# (see tools/tool_common.h).
export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-PASSIVE}
t0=$(date +%s)
"$root/scripts/build.sh"
t1=$(date +%s)
# The suites as ctest names them (<folder>/<name>); their programs are test_<folder>_<name>.
suites=(sam/golden_parity sam/pth_io sam/attention train/interactive_step train/optim train/distributed tools/sam_train
        tools/sam_export)
if [ "$cuda" = 1 ]; then
  programs=$(cd "$root/tools" && ls sam_*.cpp | sed 's/\.cpp$//' | tr '\n' ' ')
  tests=("${suites[@]//\//_}")
  TARGETS="$programs ${tests[*]/#/test_}" "$root/scripts/build.sh" --cuda
  # The cluster build's programs load libtorch_cuda and NCCL (and would start on a GPU machine).
  loads=$(ldd "$root/build-cuda/bin/sam_train")
  for l in libtorch_cuda.so libnccl.so libcudnn.so; do
    grep -q "$l" <<<"$loads" || { echo "test.sh: build-cuda/bin/sam_train does not load $l" >&2; exit 1; }
  done
  ! grep -q "not found" <<<"$loads" || { echo "test.sh: build-cuda/bin/sam_train: $(grep 'not found' <<<"$loads")" >&2; exit 1; }
fi
t2=$(date +%s)
status=0
(cd "${BUILD_DIR:-$root/build}" && ctest --output-on-failure -j "${TEST_JOBS:-2}" "$@") || status=$?
t3=$(date +%s)
if [ "$cuda" = 1 ]; then
  regex="^($(IFS='|'; echo "${suites[*]}")):"  # ctest's names: "<folder>/<name>: <case>"
  export SAM_TEST_PYTHON="env PYTHONPATH=$("$root/scripts/libtorch_cuda.sh" --pythonpath) /usr/bin/python3"
  (cd "$root/build-cuda" && ctest --output-on-failure -j "${TEST_JOBS:-2}" -R "$regex" "$@") || status=$?
fi
t4=$(date +%s)
echo "test.sh: build $((t1 - t0)) s, cluster build $((t2 - t1)) s, tests $((t3 - t2)) s, cluster-build tests $((t4 - t3)) s"
exit $status
