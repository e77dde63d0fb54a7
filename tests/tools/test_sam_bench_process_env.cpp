// tools/process_env.h: OpenBLAS's kernels fixed where its own choice does not use the CPU, in the
// test binaries (tests/test_main.cpp) and in every tool (tools/tool_common.h).
#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include <fstream>

#include "test_util.h"
#include "tools/process_env.h"

using namespace sam::tools;

TEST_CASE("pre-AVX2 OpenBLAS cores are recognised by name", "[process_env]") {
  for (const char* c : {"Prescott", "prescott", "Core2", "Nehalem", "Sandybridge", "Unknown"})
    CHECK(openblas_core_pre_avx2(c));
  for (const char* c : {"Haswell", "SkylakeX", "Cooperlake", "SapphireRapids", "Zen"})
    CHECK_FALSE(openblas_core_pre_avx2(c));
  CHECK_FALSE(openblas_core_pre_avx2(nullptr));
}

TEST_CASE("this test computes with OpenBLAS kernels that use the CPU", "[process_env]") {
  const char* core = openblas_core_name();
  if (core == nullptr) {  // a libtorch with another BLAS (the cluster build's MKL): nothing to fix
    CHECK(openblas_core_fix() == nullptr);
    return;
  }
  INFO("OpenBLAS core " << core << ", OPENBLAS_CORETYPE=" << (std::getenv("OPENBLAS_CORETYPE") ? std::getenv("OPENBLAS_CORETYPE") : "(unset)"));
  if (cpu_has_avx2_fma()) CHECK_FALSE(openblas_core_pre_avx2(core));
  CHECK(openblas_core_fix() == nullptr);  // nothing left to fix in this process
}

namespace {
// sam_bench's GEMM rate alone on the tiny architecture, with `env` before it; its JSON.
nlohmann::json bench_core(const std::string& env) {
  const auto dir = sam_test::temp_dir("process_env");
  const auto json = dir / "bench.json";
  const std::string cmd = env + " " + (sam_test::bin_dir() / "sam_bench").string() + " --model " +
                          (sam_test::source_dir() / "configs" / "model_tiny.json").string() +
                          " --threads 1 --gemm --only-extra --json " + json.string();
  std::string out;
  REQUIRE(sam_test::run_command(cmd, &out) == 0);
  std::ifstream in(json);
  return nlohmann::json::parse(in);
}
}  // namespace

TEST_CASE("a tool started without OPENBLAS_CORETYPE fixes its kernels, and keeps a user's choice", "[process_env]") {
  if (openblas_core_name() == nullptr) {
    CHECK(bench_core("env -u OPENBLAS_CORETYPE")["blas_core"] == "");
    return;
  }
  const auto fixed = bench_core("env -u OPENBLAS_CORETYPE");
  INFO(fixed.dump());
  if (cpu_has_avx2_fma()) CHECK_FALSE(openblas_core_pre_avx2(fixed["blas_core"].get<std::string>().c_str()));
  CHECK(fixed["gemm_tflops"].get<double>() > 0);
  // A core the user names is the one used, even the generic one.
  CHECK(bench_core("OPENBLAS_CORETYPE=Prescott")["blas_core"] == "Prescott");
}
