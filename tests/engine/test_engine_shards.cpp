// engine/shards.h on hand-made SA-1B folders: members and their order in each tar, the listing,
// the loose folder removed or kept, nothing repacked when nothing changed, an interrupted swap
// recovered, repacking from the old shards alone, and the errors.
#include <catch2/catch.hpp>

#include <filesystem>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "data/tar.h"
#include "engine/shards.h"
#include "engine/stage_io.h"
#include "test_util.h"

namespace fs = std::filesystem;
using namespace sam::engine;

namespace {

// data/<stem><ext> (bytes "img:<stem>") and data/<stem>.json (bytes "[<k>]") for each stem.
void make_folder(const fs::path& dir, const std::vector<std::string>& stems) {
  fs::create_directories(dir / "data");
  int k = 0;
  for (const auto& s : stems) {
    sam_test::write_text(dir / "data" / (s + (k % 2 ? ".png" : ".jpg")), "img:" + s);
    sam_test::write_text(dir / "data" / (s + ".json"), "[" + std::to_string(k++) + "]");
  }
}

std::vector<std::string> names(const fs::path& tar) {
  const sam::data::TarArchive t(tar.string());
  std::vector<std::string> out;
  for (const auto& m : t.index().members) out.push_back(m.name);
  return out;
}

std::string member(const fs::path& tar, const std::string& name) {
  const sam::data::TarArchive t(tar.string());
  for (const auto& m : t.index().members)
    if (m.name == name) {
      const auto b = t.read(m);
      return std::string(b.begin(), b.end());
    }
  return "<missing>";
}

}  // namespace

TEST_CASE("shards: packing, listing, keeping or removing the folder", "[engine][shards]") {
  const auto dir = sam_test::temp_dir("engine_shards");
  const std::vector<std::string> stems{"sa_1", "sa_2", "sa_3"};
  make_folder(dir, stems);
  sam_test::write_text(dir / "data" / "sa_9.jpg", "not finished");  // not in `stems`: stays
  std::vector<std::string> logged;
  auto log = [&](const std::string& m) { logged.push_back(m); };

  auto doc = pack_shards(dir, stems, 2, /*keep_folder=*/true, log);
  CHECK(doc["shard_images"] == 2);
  REQUIRE(doc["shards"].size() == 2);
  CHECK(doc["shards"][0]["file"] == "sa_000000.tar");
  CHECK(doc["shards"][0]["images"] == nlohmann::json::array({"sa_1", "sa_2"}));
  CHECK(doc["shards"][1]["images"] == nlohmann::json::array({"sa_3"}));
  CHECK(doc["shards"][0]["bytes"].get<int64_t>() ==
        int64_t(fs::file_size(dir / "shards" / "sa_000000.tar")));
  CHECK(read_json_file(dir / "shards.json") == doc);
  // Each image before its JSON, in the order of the stems.
  CHECK(names(dir / "shards" / "sa_000000.tar") ==
        std::vector<std::string>{"sa_1.jpg", "sa_1.json", "sa_2.png", "sa_2.json"});
  CHECK(member(dir / "shards" / "sa_000001.tar", "sa_3.jpg") == "img:sa_3");
  CHECK(member(dir / "shards" / "sa_000001.tar", "sa_3.json") == "[2]");
  CHECK(fs::exists(dir / "data" / "sa_1.jpg"));  // kept
  REQUIRE(logged.size() == 1);
  CHECK_THAT(logged[0], Catch::Contains("3 image(s) into 2 shard(s)"));

  // Unchanged: the listing stands, nothing is rewritten; the folder goes when not kept.
  const auto t0 = fs::last_write_time(dir / "shards" / "sa_000000.tar");
  CHECK(pack_shards(dir, stems, 2, /*keep_folder=*/false, log) == doc);
  CHECK(logged.size() == 1);
  CHECK(fs::last_write_time(dir / "shards" / "sa_000000.tar") == t0);
  CHECK_FALSE(fs::exists(dir / "data" / "sa_1.json"));
  CHECK(fs::exists(dir / "data" / "sa_9.jpg"));

  // An interrupted swap (shards/ moved to shards.old/, the new ones not yet in place) and a new
  // shard size: repacked from the old shards alone, the intermediate folders gone.
  fs::rename(dir / "shards", dir / "shards.old");
  fs::create_directories(dir / "shards.tmp");
  doc = pack_shards(dir, stems, 1, false, log);
  REQUIRE(doc["shards"].size() == 3);
  CHECK(names(dir / "shards" / "sa_000001.tar") ==
        std::vector<std::string>{"sa_2.png", "sa_2.json"});
  CHECK(member(dir / "shards" / "sa_000001.tar", "sa_2.png") == "img:sa_2");
  CHECK_FALSE(fs::exists(dir / "shards.old"));
  CHECK_FALSE(fs::exists(dir / "shards.tmp"));
  fs::remove_all(dir);
}

TEST_CASE("shards: a finished image's missing files and a bad shard size are errors",
          "[engine][shards]") {
  const auto dir = sam_test::temp_dir("engine_shards_err");
  make_folder(dir, {"a", "b"});
  fs::remove(dir / "data" / "b.json");
  CHECK_THROWS_WITH(pack_shards(dir, {"a", "b"}, 2, false),
                    Catch::Contains("finished image b") && Catch::Contains("records/b.json"));
  CHECK(fs::exists(dir / "data" / "a.json"));  // nothing removed on failure
  CHECK_FALSE(fs::exists(dir / "shards"));
  CHECK_THROWS_AS(pack_shards(dir, {"a"}, 0, false), std::invalid_argument);
  fs::remove_all(dir);
}
