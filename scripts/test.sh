#!/usr/bin/env bash
# Installs what is missing, builds, and runs every test (ctest over the Catch2 suites).
# Tests read ../shared (golden fixtures, datasets) next to the repository, or $SAM_SHARED_DIR.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
"$root/scripts/setup.sh"
"$root/scripts/build.sh"
cd "${BUILD_DIR:-$root/build}"
# Two suites run at once on two cores: OpenMP threads must sleep, not spin, while they wait
# (see tools/tool_common.h).
export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-PASSIVE}
ctest --output-on-failure -j "${TEST_JOBS:-2}" "$@"
