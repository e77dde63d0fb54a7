#pragma once
// Helpers shared by the test suites: where the shared fixtures and built programs live, and a way
// to run a program and capture its output.
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <stdexcept>
#include <string>

#include <catch2/catch.hpp>
#include <torch/cuda.h>

namespace sam_test {

/// The repository root (tests run from it; this is the compile-time value).
inline std::filesystem::path source_dir() { return SAM_SOURCE_DIR; }

/// Where the programs of tools/ are built.
inline std::filesystem::path bin_dir() { return SAM_BIN_DIR; }

/// `../shared` next to the repository, or $SAM_SHARED_DIR when set.
inline std::filesystem::path shared_dir() {
  if (const char* env = std::getenv("SAM_SHARED_DIR")) return env;
  return source_dir().parent_path() / "shared";
}

/// Under CI=true every test must run.
inline bool in_ci() {
  const char* ci = std::getenv("CI");
  return ci && std::string(ci) == "true";
}

/// `dir` (a folder of the shared fixtures) when it exists. Otherwise the running test stops with
/// one message naming the folder and SAM_SHARED_DIR, and is reported as skipped (ctest's
/// SKIP_REGULAR_EXPRESSION wins over the failed status), except under CI=true, where it fails.
inline std::filesystem::path require_shared(const std::filesystem::path& dir) {
  std::error_code ec;
  if (std::filesystem::is_directory(dir, ec)) return dir;
  const std::string why = "the shared fixtures are missing: no folder " + dir.string() +
                          " (the tests read ../shared next to the repository, or $SAM_SHARED_DIR: " +
                          (std::getenv("SAM_SHARED_DIR") ? "set to " + std::string(std::getenv("SAM_SHARED_DIR"))
                                                          : std::string("not set")) +
                          ")";
  if (!in_ci()) std::cout << "SAM_TEST_SKIPPED: " << why << std::endl;
  throw std::runtime_error(why);
}

inline std::filesystem::path golden_tiny() { return require_shared(shared_dir() / "golden" / "tiny"); }
inline std::filesystem::path shared_data() { return require_shared(shared_dir() / "data"); }

/// A fresh, empty temporary folder for one test.
inline std::filesystem::path temp_dir(const std::string& name) {
  auto p = std::filesystem::temp_directory_path() / ("sam_test_" + name + "_" + std::to_string(::getpid()));
  std::filesystem::remove_all(p);
  std::filesystem::create_directories(p);
  return p;
}

/// Writes `text` to `path` (replacing it); returns the path as a string, for the API under test.
inline std::string write_text(const std::filesystem::path& path, const std::string& text) {
  std::ofstream(path) << text;
  return path.string();
}

/// Runs a shell command, capturing stdout and stderr together; returns the exit status.
inline int run_command(const std::string& cmd, std::string* output = nullptr) {
  const std::string full = cmd + " 2>&1";
  FILE* pipe = popen(full.c_str(), "r");
  if (!pipe) return -1;
  std::array<char, 4096> buf;
  std::string out;
  size_t n;
  while ((n = fread(buf.data(), 1, buf.size(), pipe)) > 0) out.append(buf.data(), n);
  const int status = pclose(pipe);
  if (output) *output = out;
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

/// A synthetic SA-1B folder, `name`/sa1b in a fresh temporary folder, made by `sam_data synth` with
/// `args` (e.g. "--images 8 --seed 3"). Throws with the program's output when it fails.
inline std::string synth_sa1b(const std::string& name, const std::string& args) {
  const auto d = temp_dir(name) / "sa1b";
  std::string out;
  if (run_command((bin_dir() / "sam_data").string() + " synth " + d.string() + " " + args, &out) != 0)
    throw std::runtime_error("sam_data synth failed: " + out);
  return d.string();
}

/// Marks the running test case as skipped, with the reason, in ctest's summary: every TEST_CASE
/// runs as its own ctest test, whose SKIP_REGULAR_EXPRESSION matches this line
/// (tests/CMakeLists.txt). The caller returns right after. Under CI=true a test must run, so the
/// skip fails it instead, unless `expected_in_ci`: what CI's machine cannot have (a GPU) or what
/// only the other build has (a libtorch 2.x feature in the 1.13 build).
inline void skip(const std::string& why, bool expected_in_ci = false) {
  if (!expected_in_ci && in_ci()) FAIL("under CI=true this test must run, but: " << why);
  std::cout << "SAM_TEST_SKIPPED: " << why << std::endl;
}

/// Whether a CUDA device is present: the tests tagged [cuda] run only then.
inline bool have_cuda() { return torch::cuda::is_available(); }

/// The Python that holds the torch of the tests' peers: Debian's python3 with torch 1.13, or the
/// command in $SAM_TEST_PYTHON (scripts/test.sh points the cluster build's tests at PyTorch 2.x,
/// whose torchrun store the 2.x programs speak to).
inline std::string test_python() {
  const char* env = std::getenv("SAM_TEST_PYTHON");
  return env && *env ? env : "/usr/bin/python3";
}

/// Whether that Python's torchrun can be started.
inline bool have_torchrun() {
  return run_command(test_python() + " -c 'import torch.distributed.run'") == 0;
}

/// The command prefix that starts 2 single-threaded processes under torchrun (flags both 1.13 and
/// 2.x take; -r 1 -t 1 avoid 1.13's crash on Python 3.11), on a port from `base_port` and this
/// process's id so that concurrent tests do not collide; a run that hangs is stopped after 10
/// minutes instead of holding the suite.
inline std::string torchrun_two(int base_port) {
  return "OMP_NUM_THREADS=1 timeout 600 " + test_python() +
         " -m torch.distributed.run --nproc_per_node=2 --no_python -r 1 -t 1 --master_port=" +
         std::to_string(base_port + ::getpid() % 2000) + " ";
}

}  // namespace sam_test

/// Returns from the enclosing test case, reported as skipped, when no CUDA device is present.
#define SAM_REQUIRE_CUDA()                                      \
  do {                                                          \
    if (!sam_test::have_cuda()) {                               \
      sam_test::skip("no CUDA device: this [cuda] test needs one", true); \
      return;                                                   \
    }                                                           \
  } while (0)
