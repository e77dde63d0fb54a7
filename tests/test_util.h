#pragma once
// Helpers shared by the test suites: where the shared fixtures and built programs live, and a way
// to run a program and capture its output.
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>

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

inline std::filesystem::path golden_tiny() { return shared_dir() / "golden" / "tiny"; }
inline std::filesystem::path shared_data() { return shared_dir() / "data"; }

/// A fresh, empty temporary folder for one test.
inline std::filesystem::path temp_dir(const std::string& name) {
  auto p = std::filesystem::temp_directory_path() / ("sam_test_" + name + "_" + std::to_string(::getpid()));
  std::filesystem::remove_all(p);
  std::filesystem::create_directories(p);
  return p;
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

/// Whether Debian's torchrun (python3-torch) can be started.
inline bool have_torchrun() {
  return run_command("/usr/bin/python3 -c 'import torch.distributed.run'") == 0;
}

/// The command prefix that starts 2 single-threaded processes under torchrun (1.13's flags; -r 1
/// -t 1 avoid its crash on Python 3.11), on a port from `base_port` and this process's id so
/// that concurrent tests do not collide.
inline std::string torchrun_two(int base_port) {
  return "OMP_NUM_THREADS=1 /usr/bin/python3 -m torch.distributed.run --nproc_per_node=2 --no_python -r 1 -t 1 "
         "--master_port=" + std::to_string(base_port + ::getpid() % 2000) + " ";
}

}  // namespace sam_test
