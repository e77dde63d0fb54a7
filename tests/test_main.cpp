// The Catch2 main for every test binary. Uses all cores for libtorch (it starts with one here).
// OpenBLAS's kernels are fixed as in the tools (tools/process_env.h), so that a test and the
// programs it starts compute with the same kernels; the OpenMP waits stay libgomp's defaults.
#define CATCH_CONFIG_RUNNER
#include <catch2/catch.hpp>
#include <torch/torch.h>

#include <thread>

#include "tools/process_env.h"

int main(int argc, char** argv) {
  sam::tools::reexec_with({{"OPENBLAS_CORETYPE", sam::tools::openblas_core_fix()}});
  torch::set_num_threads(static_cast<int>(std::max(1u, std::thread::hardware_concurrency())));
  return Catch::Session().run(argc, argv);
}
