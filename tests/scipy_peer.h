#pragma once
// scipy on Debian's python3 (python3-scipy, scripts/setup.sh): the peer that writes the MATLAB
// files of the .mat tests (scipy.io.savemat writes genuine Level 5 MAT-files, compressed or not).
// A test that needs it starts with SAM_REQUIRE_SCIPY(); without it the test is reported as
// skipped (a failure under CI=true).
#include <filesystem>
#include <fstream>
#include <string>

#include "test_util.h"

namespace sam_test {

/// The interpreter of the scipy peer.
inline std::string scipy_python() {
  return "/usr/bin/python3";
}

/// Whether it imports scipy.io and numpy; `why` says what failed.
inline bool have_scipy(std::string* why) {
  std::string out;
  if (run_command(scipy_python() + " -c 'import numpy, scipy.io, scipy.sparse'", &out) == 0)
    return true;
  *why = "scipy cannot be imported by " + scipy_python() +
         " (install python3-scipy: scripts/setup.sh): " + out.substr(0, 300);
  return false;
}

/// Writes `script` to `dir`/`name` and runs it with the peer's Python and `args`; the test fails
/// with the script's output when it does not succeed.
inline void run_python_script(const std::filesystem::path& dir, const std::string& name,
                              const std::string& script, const std::string& args) {
  const auto path = dir / name;
  std::ofstream(path, std::ios::binary) << script;
  std::string out;
  const int rc = run_command(scipy_python() + " " + path.string() + " " + args, &out);
  INFO(name << " said:\n" << out);
  REQUIRE(rc == 0);
}

}  // namespace sam_test

/// Returns from the enclosing test case, reported as skipped, when scipy is missing.
#define SAM_REQUIRE_SCIPY()             \
  do {                                  \
    std::string why_;                   \
    if (!sam_test::have_scipy(&why_)) { \
      sam_test::skip(why_);             \
      return;                           \
    }                                   \
  } while (0)
