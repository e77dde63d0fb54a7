// The programs' logger (data/log.h): file sinks receive the message alone (train.log's format),
// at the level set; several sinks at once; a sink stops receiving when it is destroyed; an
// unopenable path is named. The console side (stdout / stderr by level, the rank prefix under
// torchrun) is checked on a program in tests/tools/test_sam_export.cpp.
#include <catch2/catch.hpp>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

#include "data/log.h"
#include "test_util.h"

namespace fs = std::filesystem;

namespace {

std::string read(const fs::path& p) {
  std::ifstream f(p);
  std::stringstream s;
  s << f.rdbuf();
  return s.str();
}

// Restores the level on scope exit.
struct LevelGuard {
  sam::log::Level saved = sam::log::level();
  ~LevelGuard() { sam::log::set_level(saved); }
};

}  // namespace

TEST_CASE("log: file sinks get the lines at the level set, message alone", "[data][log]") {
  LevelGuard guard;
  const auto dir = sam_test::temp_dir("log_sinks");
  const auto a = dir / "a.log", b = dir / "b.log";
  fs::remove(a);
  fs::remove(b);
  sam::log::set_level(sam::log::Level::kInfo);
  {
    sam::log::FileSink sink_a(a.string());
    sam::log::info("step 1/2 | loss 0.5");
    sam::log::debug("not shown at info");
    {
      sam::log::FileSink sink_b(b.string());
      sam::log::warn("resume: warning: something");
      sam::log::set_level(sam::log::Level::kDebug);
      sam::log::debug("debug shown");
      sam::log::set_level(sam::log::Level::kError);
      sam::log::warn("not shown at error");
      sam::log::error("an error");
    }
    sam::log::set_level(sam::log::Level::kInfo);
    sam::log::info("after b closed");
  }
  sam::log::info("after both closed");
  CHECK(read(a) == "step 1/2 | loss 0.5\nresume: warning: something\ndebug shown\nan error\nafter b closed\n");
  CHECK(read(b) == "resume: warning: something\ndebug shown\nan error\n");
  // Appends, as train.log does across restarts.
  {
    sam::log::FileSink again(b.string());
    sam::log::info("appended");
  }
  CHECK(read(b) == "resume: warning: something\ndebug shown\nan error\nappended\n");
}

TEST_CASE("log: levels by name, and bad names and paths are errors", "[data][log]") {
  CHECK(sam::log::parse_level("debug") == sam::log::Level::kDebug);
  CHECK(sam::log::parse_level("warn") == sam::log::Level::kWarn);
  CHECK(sam::log::parse_level("off") == sam::log::Level::kOff);
  CHECK_THROWS_WITH(sam::log::parse_level("loud"), Catch::Contains("'loud'") && Catch::Contains("debug, info"));
  CHECK_THROWS_WITH(sam::log::FileSink("/proc/no/such/dir/train.log"),
                    Catch::Contains("/proc/no/such/dir/train.log"));
}
