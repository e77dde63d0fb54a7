#pragma once
// Starts sam_annotate for the tools tests: the golden tiny model (unless `extra` names a --model
// and its --checkpoint) over DIR/images and DIR/a.sqlite, on a free port, its output in
// DIR/<log_name>.
#include <catch2/catch.hpp>

#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <regex>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "test_util.h"

namespace sam_test {

/// Forks and execs sam_annotate with `extra` arguments; waits until it prints its port. Returns
/// {pid, port}; fails the test when the server exits early or never listens (it is killed then).
inline std::pair<pid_t, int> start_annotate_server(const std::filesystem::path& dir, const std::string& log_name,
                                                   const std::vector<std::string>& extra = {}) {
  const std::filesystem::path log = dir / log_name;
  std::vector<std::string> args = {(bin_dir() / "sam_annotate").string(),
                                   "--images",
                                   (dir / "images").string(),
                                   "--db",
                                   (dir / "a.sqlite").string(),
                                   "--port",
                                   "0",
                                   "--threads",
                                   "1"};
  args.insert(args.end(), extra.begin(), extra.end());
  if (std::find(extra.begin(), extra.end(), "--model") == extra.end()) {
    args.insert(args.end(), {"--model", (golden_tiny() / "config.json").string(), "--checkpoint",
                             (golden_tiny() / "sam.pth").string()});
  }
  const pid_t pid = fork();
  if (pid == 0) {
    const int fd = ::open(log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    dup2(fd, 1);
    dup2(fd, 2);
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    execv(argv[0], argv.data());
    _exit(127);
  }
  const std::regex listening(R"(listening on http://127\.0\.0\.1:(\d+)/)");
  for (int i = 0; i < 600; ++i) {
    std::ifstream in(log, std::ios::binary);
    const std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    std::smatch m;
    if (std::regex_search(text, m, listening)) return {pid, std::stoi(m[1])};
    if (waitpid(pid, nullptr, WNOHANG) == pid) FAIL("sam_annotate exited early:\n" << text);
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  kill(pid, SIGKILL);
  waitpid(pid, nullptr, 0);
  FAIL("sam_annotate did not start");
  return {-1, 0};
}

}  // namespace sam_test
