// engine/stage_io.h: file stems and extensions, the order and contents of an image's outputs,
// skip records, rounds.json round trips, mask counts, and the JSON reader's errors.
#include <catch2/catch.hpp>

#include <filesystem>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "engine/stage_io.h"
#include "test_util.h"

namespace fs = std::filesystem;
using namespace sam::engine;

TEST_CASE("stage_io: stems and extensions safe on every file system", "[engine][stage_io]") {
  CHECK(safe_stem("sa_12") == "sa_12");
  CHECK(safe_stem("000000397133") == "000000397133");
  CHECK(safe_stem("img#2") == "img_2");
  CHECK(safe_stem("a/b\\c d:e") == "a_b_c_d_e");
  CHECK(safe_stem("v-1.2") == "v-1.2");
  CHECK(safe_stem("") == "image");
  sam::data::ImageRef r;
  r.path = "/d/x.PNG";
  CHECK(image_ext(r) == ".png");
  r.path = "/d/x.jpeg";
  CHECK(image_ext(r) == ".jpeg");
  r.path = "/d/x.bmp";
  CHECK(image_ext(r) == ".jpg");
  r.path = "/d/shard.tar";  // an archive member: its own name counts
  r.member = "sa_1.png";
  CHECK(image_ext(r) == ".png");
}

TEST_CASE("stage_io: an image's outputs, then its record, and skip records", "[engine][stage_io]") {
  const auto dir = sam_test::temp_dir("engine_stage_io");
  const auto img = sam_test::write_text(dir / "in.png", "PNGBYTES");
  sam::data::Sample s;
  s.image.path = img;
  ImageRecord rec;
  rec.id = "in#1";
  rec.stem = "in_1";
  rec.width = 7;
  rec.height = 5;
  const nlohmann::json sa1b = {{"image", {{"image_id", 3}}},
                               {"annotations", nlohmann::json::array()}};
  write_image_outputs(dir, s, "in_1", sa1b, rec);
  CHECK(sam_test::run_command("cmp -s " + img + " " + (dir / "data" / "in_1.png").string()) == 0);
  CHECK(read_json_file(dir / "data" / "in_1.json") == sa1b);
  const auto back = ImageRecord::from_json(read_json_file(dir / "records" / "in_1.json"), "test");
  CHECK(back.id == "in#1");
  CHECK(back.width == 7);
  CHECK_FALSE(back.skipped);
  // The record is the last file written: it is not older than the outputs.
  CHECK(fs::last_write_time(dir / "records" / "in_1.json") >=
        fs::last_write_time(dir / "data" / "in_1.json"));

  ImageRecord bad;
  bad.id = "broken";
  bad.stem = "broken";
  bad.problem = "decode";
  write_skip_record(dir, bad);
  const auto sk = ImageRecord::from_json(read_json_file(dir / "records" / "broken.json"), "test");
  CHECK(sk.skipped);
  CHECK(sk.problem == "decode");
  CHECK_FALSE(fs::exists(dir / "data" / "broken.json"));
  fs::remove_all(dir);
}

TEST_CASE("stage_io: rounds.json and mask counts", "[engine][stage_io]") {
  const auto dir = sam_test::temp_dir("engine_stage_rounds");
  CHECK(load_rounds(dir).empty());
  CHECK(count_masks(dir) == 0);
  RetrainRound a;
  a.round = 1;
  a.after_images = 4;
  a.masks = 17;
  a.iterations = 20;
  a.seconds = 1.25;
  a.checkpoint = "/r/model.pth";
  RetrainRound b;
  b.round = 2;
  b.skipped = true;
  save_rounds(dir, {a, b});
  const auto back = load_rounds(dir);
  REQUIRE(back.size() == 2);
  CHECK(back[0].to_json() == a.to_json());
  CHECK(back[1].skipped);

  fs::create_directories(dir / "records");
  ImageRecord r1, r2;
  r1.stem = "x";
  r1.masks.resize(3);
  r2.stem = "y";
  r2.masks.resize(2);
  sam_test::write_text(dir / "records" / "x.json", r1.to_json().dump());
  sam_test::write_text(dir / "records" / "y.json", r2.to_json().dump());
  sam_test::write_text(dir / "records" / "notes.txt", "ignored");
  CHECK(count_masks(dir) == 5);

  sam_test::write_text(dir / "records" / "z.json", "{not json");
  CHECK_THROWS_WITH(count_masks(dir), Catch::Contains("z.json"));
  CHECK_THROWS_WITH(read_json_file(dir / "missing.json"),
                    Catch::Contains("missing.json") && Catch::Contains("cannot read"));
  fs::remove_all(dir);
}
