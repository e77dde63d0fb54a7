// The one atomic writer (data/atomic_file.h): whole files written and replaced, no temporary file
// left, parent folders made, the path named when it cannot write; publish_file renames a finished
// temporary file into place.
#include <catch2/catch.hpp>

#include <filesystem>
#include <fstream>

#include "data/atomic_file.h"
#include "test_text.h"
#include "test_util.h"

using sam::data::publish_file;
using sam::data::write_file_atomic;
using Catch::Matchers::Contains;
namespace fs = std::filesystem;

TEST_CASE("write_file_atomic writes and replaces whole files, makes folders, names the path it cannot write") {
  const auto dir = sam_test::temp_dir("atomic");
  const auto path = dir / "config.yaml";
  write_file_atomic(path.string(), "a: 1\n");
  CHECK(sam_test::read_text(path) == "a: 1\n");
  const std::string binary("x\0y\n", 4);
  write_file_atomic(path.string(), binary);
  CHECK(sam_test::read_text(path) == binary);
  for (const auto& e : fs::directory_iterator(dir)) CHECK(e.path().filename().string().find(".tmp") == std::string::npos);
  const auto nested = dir / "a" / "b" / "f.json";
  write_file_atomic(nested.string(), "{}\n");
  CHECK(sam_test::read_text(nested) == "{}\n");
  // A folder that cannot be made: its would-be parent is a file.
  const auto nowhere = (path / "sub" / "f.txt").string();
  CHECK_THROWS_WITH(write_file_atomic(nowhere, "z"), Contains(nowhere));
  CHECK(sam_test::read_text(path) == binary);
  fs::remove_all(dir);
}

TEST_CASE("publish_file moves a finished file over the target and names a missing one") {
  const auto dir = sam_test::temp_dir("publish");
  const auto tmp = dir / "out.bin.part", path = dir / "out.bin";
  std::ofstream(path) << "old";
  std::ofstream(tmp) << "new";
  publish_file(tmp.string(), path.string());
  CHECK(sam_test::read_text(path) == "new");
  CHECK_FALSE(fs::exists(tmp));
  CHECK_THROWS_WITH(publish_file((dir / "absent").string(), path.string()), Contains("absent"));
  CHECK(sam_test::read_text(path) == "new");
  fs::remove_all(dir);
}
