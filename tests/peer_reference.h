#pragma once
// Running Meta's reference SAM live (tests/peers/sam_reference.py on the Python peers of
// tests/peers.h) for the peer-reference suites: the script's run, its temporary folder, the thread
// count both sides use and the clocks of the suites' reports.
#include <signal.h>
#include <unistd.h>

#include <cctype>
#include <cerrno>
#include <chrono>
#include <ctime>
#include <filesystem>
#include <string>

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include "data/process.h"
#include "test_util.h"

namespace sam_test {

/// Threads for both sides: $SAM_PEER_THREADS, else 2.
inline int peer_threads() {
  const char* env = std::getenv("SAM_PEER_THREADS");
  const int n = env && *env ? std::atoi(env) : 2;
  return n > 0 ? n : 2;
}

/// A temporary folder removed with everything in it when the test case ends, passed or not. A run
/// killed before that (ctest's timeout, ^C) leaves its folder (ViT-H's weights: 2.5 GB): the next
/// run removes the folders of the same name whose process is gone.
struct ScratchDir {
  std::filesystem::path path;
  explicit ScratchDir(const std::string& name) : path(temp_dir(name)) { remove_stale(name); }
  ~ScratchDir() {
    std::error_code ec;
    std::filesystem::remove_all(path, ec);
  }
  ScratchDir(const ScratchDir&) = delete;
  // temp_dir's folders are named sam_test_<name>_<pid>.
  static void remove_stale(const std::string& name) {
    const std::string prefix = "sam_test_" + name + "_";
    std::error_code ec;
    for (const auto& e : std::filesystem::directory_iterator(std::filesystem::temp_directory_path(), ec)) {
      const std::string f = e.path().filename().string();
      if (f.rfind(prefix, 0) != 0) continue;
      const std::string pid = f.substr(prefix.size());
      if (pid.empty() || pid.find_first_not_of("0123456789") != std::string::npos) continue;
      const pid_t p = static_cast<pid_t>(std::stol(pid));
      if (p != ::getpid() && ::kill(p, 0) != 0 && errno == ESRCH) std::filesystem::remove_all(e.path(), ec);
    }
  }
  ScratchDir& operator=(const ScratchDir&) = delete;
};

/// Wall-clock and process-CPU seconds since construction.
struct Clock {
  std::chrono::steady_clock::time_point wall0 = std::chrono::steady_clock::now();
  std::clock_t cpu0 = std::clock();
  double wall() const { return std::chrono::duration<double>(std::chrono::steady_clock::now() - wall0).count(); }
  double cpu() const { return static_cast<double>(std::clock() - cpu0) / CLOCKS_PER_SEC; }
};

/// Runs tests/peers/sam_reference.py for `preset` on `image` into `out` with `modes`
/// ("--predictor", "--amg" or both) and peer_threads() threads. Returns the script's report (its
/// last output line: timings, peak memory) with "wall_s", the whole run as this process saw it.
inline nlohmann::json run_sam_reference(const std::string& py, const std::string& preset,
                                        const std::filesystem::path& image,
                                        const std::filesystem::path& out, const std::string& modes) {
  const auto script = source_dir() / "tests" / "peers" / "sam_reference.py";
  const std::string cmd = py + " " + script.string() + " --preset " + preset + " --image '" +
                          image.string() + "' --out '" + out.string() + "' --threads " +
                          std::to_string(peer_threads()) + " " + modes;
  Clock clock;
  std::string output;
  const int rc = run_command(cmd, &output);
  const double wall = clock.wall();
  INFO(cmd << "\n" << output);
  REQUIRE(rc == 0);
  std::string text = output;
  while (!text.empty() && std::isspace(static_cast<unsigned char>(text.back()))) text.pop_back();
  const auto nl = text.rfind('\n');
  const std::string line = nl == std::string::npos ? text : text.substr(nl + 1);
  REQUIRE(line.rfind('{', 0) == 0);
  auto report = nlohmann::json::parse(line);
  report["wall_s"] = wall;
  return report;
}

}  // namespace sam_test
