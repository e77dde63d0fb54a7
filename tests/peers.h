#pragma once
// The tests' Python peers (scripts/peers.sh): Meta's segment-anything, pycocotools, tensorboard's
// event reader, onnx and onnxruntime, from PyPI, on Debian's python3 with its torch 1.13, torchvision and numpy. A test
// that needs them starts with SAM_REQUIRE_PEERS(py); without them it is reported as skipped (a
// failure under CI=true).
#include <cstdlib>
#include <filesystem>
#include <optional>
#include <string>

#include "test_util.h"

namespace sam_test {

/// Where scripts/peers.sh unpacked the peers: $SAM_PEERS_DIR, else <cache>/peers/site.
inline std::filesystem::path peers_site() {
  if (const char* env = std::getenv("SAM_PEERS_DIR")) return env;
  std::filesystem::path cache;
  if (const char* c = std::getenv("SAM_CACHE_DIR")) cache = c;
  else if (const char* x = std::getenv("XDG_CACHE_HOME")) cache = std::filesystem::path(x) / "sam-cpp";
  else cache = std::filesystem::path(std::getenv("HOME") ? std::getenv("HOME") : "/root") / ".cache" / "sam-cpp";
  return cache / "peers" / "site";
}

/// The command prefix that runs a Python script with the peers importable ("PYTHONPATH=<site>
/// /usr/bin/python3"; $SAM_PEER_PYTHON replaces the interpreter), or nothing, with `why` set, when
/// they cannot be imported.
inline std::optional<std::string> peer_python(std::string* why) {
  const char* env = std::getenv("SAM_PEER_PYTHON");
  const std::string python = env && *env ? env : "/usr/bin/python3";
  const std::string cmd = "PYTHONPATH=" + peers_site().string() + " " + python;
  std::string out;
  const std::string modules =
      "segment_anything, pycocotools.mask, torchvision, tensorboard.backend.event_processing.event_accumulator, "
      "onnx, onnxruntime";
  if (run_command(cmd + " -c 'import " + modules + "'", &out) != 0) {
    *why = "the Python peers cannot be imported (run scripts/setup.sh, or scripts/peers.sh; looked in " +
           peers_site().string() + " with " + python + "): " + out.substr(0, 300);
    return std::nullopt;
  }
  return cmd;
}

}  // namespace sam_test

/// Declares `std::string var`, the peers' Python command prefix; returns from the enclosing test
/// case, reported as skipped, when the peers are missing.
#define SAM_REQUIRE_PEERS(var)                          \
  std::string var;                                      \
  do {                                                  \
    std::string why_;                                   \
    auto py_ = sam_test::peer_python(&why_);            \
    if (!py_) {                                         \
      sam_test::skip(why_);                             \
      return;                                           \
    }                                                   \
    var = *py_;                                         \
  } while (0)
