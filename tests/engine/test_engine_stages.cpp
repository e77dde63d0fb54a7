// The data engine's stages on a few synthetic images with the golden tiny model: the report's
// counts agree with the SA-1B files written, bad input is skipped and counted, an interrupted
// stage resumes without redoing finished images, the auto stage's output is readable SA-1B
// tar shards (repacked in place when the shard size changes), and the configuration is strict.
#include <catch2/catch.hpp>

#include <filesystem>
#include <fstream>
#include <map>

#include <nlohmann/json.hpp>

#include "data/dataset.h"
#include "data/synth.h"
#include "data/tar.h"
#include "data/mask/rle.h"
#include "engine/data_engine.h"
#include "engine/engine_config.h"
#include "test_util.h"

namespace fs = std::filesystem;
using namespace sam::engine;

namespace {

nlohmann::json read_json(const fs::path& p) {
  std::ifstream f(p);
  return nlohmann::json::parse(f);
}

// Three 320 x 240 synthetic images, the third one corrupted.
fs::path make_data(const fs::path& root) {
  const fs::path d = root / "synth";
  sam::data::SynthOptions so;
  so.width = 320;
  so.height = 240;
  so.min_objects = 3;
  so.max_objects = 5;
  so.seed = 7;
  sam::data::synth_write(d.string(), so, 3, 1, false, 1);
  std::ofstream(d / "sa_3.jpg", std::ios::binary) << "this is not a JPEG";
  return d;
}

EngineConfig small_config(const fs::path& root, const fs::path& data) {
  return load_engine_config(
      "", {"out_dir=" + (root / "out").string(), "data=sa1b:" + data.string(),
           "model.arch=" + (sam_test::golden_tiny() / "config.json").string(),
           "model.checkpoint=" + (sam_test::golden_tiny() / "sam.pth").string(), "threads=2",
           "manual.images=3", "manual.retrain_rounds=0", "annotator.max_objects_per_image=4",
           "annotator.brush_seconds=10", "auto.images=3", "auto.generator.points_per_side=8",
           "auto.generator.crop_n_layers=0"});
}

int64_t annotations_in(const fs::path& data_dir) {
  int64_t n = 0;
  for (const auto& e : fs::directory_iterator(data_dir))
    if (e.path().extension() == ".json") n += int64_t(read_json(e.path())["annotations"].size());
  return n;
}

}  // namespace

TEST_CASE(
    "manual stage: report counts, a corrupt image skipped, resume redoes only what is missing",
    "[engine][stages]") {
  const auto root = sam_test::temp_dir("engine_manual");
  const auto data = make_data(root);
  const auto cfg = small_config(root, data);
  const fs::path st = root / "out" / "manual";
  {
    DataEngine eng(cfg, {});
    const auto s = eng.run("manual").at("manual");
    CHECK(s["images"] == 3);
    CHECK(s["images_done"] == 2);
    CHECK(s["images_skipped"] == 1);
    CHECK(s["skipped_by_problem"]["corrupt_image"] == 1);
    // Every mask in the report is in the SA-1B files, and all came from the annotator.
    CHECK(s["masks"].get<int64_t>() == annotations_in(st / "data"));
    CHECK(s["masks"].get<int64_t>() > 0);
    CHECK(s["masks_by_source"]["manual"] == s["masks"]);
    CHECK(s["annotated_masks"] == s["masks"]);
    // Clicks and seconds follow the time model: 6 s + 3 s per further click, clicking stops at
    // 30 s, and a mask the clicks could not finish is brushed for 10 s more.
    const auto rec = read_json(st / "records" / "sa_1.json");
    REQUIRE(rec["masks"].size() > 0);
    for (const auto& m : rec["masks"]) {
      const bool brushed = m["brushed"].get<bool>();
      CHECK(m["seconds"].get<double>() ==
            Approx(6 + 3 * (m["clicks"].get<int>() - 1) + (brushed ? 10 : 0)));
      CHECK(m["seconds"].get<double>() <= 30 + (brushed ? 10 : 0));
      if (m["accepted"].get<bool>()) CHECK(m["gt_iou"].get<double>() >= 0.9 - 1e-9);
      if (brushed) CHECK(m["gt_iou"].get<double>() == 1.0);
    }
    CHECK(rec["gt_objects"].get<int>() > 0);
    for (const char* f : {"manifest.json", "report.json", "report.html", "model.pth"})
      CHECK(fs::exists(st / f));
    const auto man = read_json(st / "manifest.json");
    CHECK(man["counts"]["masks"] == s["masks"]);
    CHECK(man["model"]["input_checkpoint"] == (sam_test::golden_tiny() / "sam.pth").string());
  }
  const auto before = read_json(st / "report.json");
  const auto t1 = fs::last_write_time(st / "records" / "sa_1.json");
  fs::remove(st / "records" / "sa_2.json");
  fs::remove(st / "data" / "sa_2.json");
  {
    DataEngine eng(cfg, {});
    const auto s = eng.run("manual").at("manual");
    CHECK(fs::last_write_time(st / "records" / "sa_1.json") == t1);  // not redone
    CHECK(fs::exists(st / "records" / "sa_2.json"));                 // redone
    CHECK(s["masks"] == before["masks"]);                            // seeded: the same result
    CHECK(s["images_skipped"] == 1);
    CHECK(s["clicks_per_mask"].get<double>() == Approx(before["clicks_per_mask"].get<double>()));
  }
  fs::remove_all(root);
}

// Reads an SA-1B dataset (folder, shard or folder of shards) into id -> (image bytes, JSON).
std::map<std::string, std::pair<std::vector<uint8_t>, std::string>> sa1b_contents(const fs::path& p) {
  std::map<std::string, std::pair<std::vector<uint8_t>, std::string>> out;
  auto ds = sam::data::open_sa1b(p.string());
  for (size_t i = 0; i < ds->size(); ++i) {
    const auto smp = ds->get(i);
    nlohmann::json a = nlohmann::json::array();
    for (const auto& an : smp.annotations) a.push_back(sam::mask::rle_to_string(an.rle()));
    out[smp.id] = {smp.image.read(), a.dump()};
  }
  return out;
}

// The auto stage with low thresholds (the golden tiny model keeps masks) and `shard_images`.
EngineConfig auto_config(const fs::path& root, const fs::path& data, int shard_images) {
  auto c = small_config(root, data);
  c.autom.generator.pred_iou_thresh = 0.0;
  c.autom.generator.stability_score_thresh = 0.5;
  c.autom.shard_images = shard_images;
  return c;
}

TEST_CASE("auto stage: SA-1B tar shards readable by the dataset reader, GT matches counted",
          "[engine][stages]") {
  const auto root = sam_test::temp_dir("engine_auto");
  const auto data = make_data(root);
  const fs::path st = root / "out" / "auto";
  {  // the loose folder kept beside one shard per image
    auto c = auto_config(root, data, 1);
    c.autom.keep_folder = true;
    DataEngine eng(c, {});
    const auto s = eng.run("auto").at("auto");
    CHECK(s["images_done"] == 2);
    CHECK(s["images_skipped"] == 1);
    CHECK(s["ground_truth"]["gt_masks"].get<int64_t>() > 0);
    CHECK(s["ground_truth"]["masks_matched"].get<int64_t>() <= s["masks"].get<int64_t>());
    CHECK(read_json(st / "manifest.json")["generator"]["points_per_side"] == 8);
    CHECK(read_json(st / "manifest.json")["shards"] == 2);
    const auto listing = read_json(st / "shards.json");
    REQUIRE(listing["shards"].size() == 2);
    CHECK(listing["shards"][0]["file"] == "sa_000000.tar");
    CHECK(listing["shards"][0]["images"] == nlohmann::json::array({"sa_1"}));
    CHECK(listing["shards"][1]["images"] == nlohmann::json::array({"sa_2"}));
    // Each shard holds the image, then its JSON, as SA-1B's release does.
    const sam::data::TarArchive t((st / "shards" / "sa_000001.tar").string());
    REQUIRE(t.index().members.size() == 2);
    CHECK(t.index().members[0].name == "sa_2.jpg");
    CHECK(t.index().members[1].name == "sa_2.json");
  }
  const auto folder = sa1b_contents(st / "data");
  REQUIRE(folder.size() == 2);
  int64_t n = 0;
  for (const auto& [id, c] : folder) n += int64_t(nlohmann::json::parse(c.second).size());
  CHECK(n > 0);
  CHECK(read_json(st / "report.json")["masks"].get<int64_t>() == n);
  CHECK(sa1b_contents(st / "shards") == folder);
  {
    auto ds = sam::data::open_sa1b((st / "shards").string());
    REQUIRE(ds->size() == 2);
    const auto smp = ds->get(0);
    CHECK(smp.load_image().cols == 320);
    for (const auto& an : smp.annotations) CHECK(an.rle().h == 240);
  }
  {  // rerun with 2 images per shard, the folder dropped: repacked from the loose files
    DataEngine eng(auto_config(root, data, 2), {});
    CHECK(eng.run("auto").at("auto")["images_done"] == 2);
    CHECK_FALSE(fs::exists(st / "data"));
    CHECK_FALSE(fs::exists(st / "shards" / "sa_000001.tar"));
    CHECK(read_json(st / "shards.json")["shards"][0]["images"] ==
          nlohmann::json::array({"sa_1", "sa_2"}));
    CHECK(sa1b_contents(st / "shards") == folder);
    CHECK(read_json(st / "manifest.json")["outputs"]["sa1b"] == (st / "shards").string());
  }
  const auto packed = fs::last_write_time(st / "shards" / "sa_000000.tar");
  {  // rerun as is: nothing redone, nothing repacked
    DataEngine eng(auto_config(root, data, 2), {});
    CHECK(eng.run("auto").at("auto")["images_done"] == 2);
    CHECK(fs::last_write_time(st / "shards" / "sa_000000.tar") == packed);
  }
  {  // one image per shard again, with no loose files left: repacked from the old shards
    DataEngine eng(auto_config(root, data, 1), {});
    eng.run("auto");
    CHECK(read_json(st / "shards.json")["shards"].size() == 2);
    CHECK(sa1b_contents(st / "shards") == folder);
    CHECK_FALSE(fs::exists(root / "out" / "auto" / "shards.tmp"));
    CHECK_FALSE(fs::exists(root / "out" / "auto" / "shards.old"));
  }
  {  // a finished image whose outputs are gone is named in the error
    fs::remove_all(st / "shards");
    DataEngine eng(auto_config(root, data, 2), {});
    CHECK_THROWS_WITH(eng.run("auto"), Catch::Contains("sa_1") && Catch::Contains("redo it"));
  }
  fs::remove_all(root);
}

TEST_CASE("engine configuration is strict and names the key at fault", "[engine][config]") {
  CHECK_THROWS_WITH(load_engine_config("", {"manual.imagez=3"}),
                    Catch::Contains("imagez") && Catch::Contains("images"));
  CHECK_THROWS_WITH(load_engine_config("", {"annotator.target_iou=2"}),
                    Catch::Contains("target_iou"));
  CHECK_THROWS_WITH(load_engine_config("", {"auto.generator.points_per_sidez=3"}),
                    Catch::Contains("points_per_sidez"));
  const auto c = load_engine_config((sam_test::source_dir() / "configs" / "engine.yaml").string(),
                                    {"manual.images=5"});
  CHECK(c.manual.images == 5);
  CHECK(c.autom.generator.crop_n_layers == 2);
  CHECK(c.autom.generator.crop_n_points_downscale_factor == 2);
  CHECK(c.autom.generator.min_mask_region_area == 100);
  CHECK_THROWS_WITH(load_engine_config("", {"retrain.minutes=-1"}), Catch::Contains("retrain.minutes"));
  // The demo's file: the paper's thresholds, rounds on a time budget beside the training set.
  const auto demo = load_engine_config((sam_test::source_dir() / "configs" / "demo_engine.yaml").string(), {});
  CHECK(demo.autom.generator.pred_iou_thresh == 0.88);
  CHECK(demo.autom.generator.stability_score_thresh == 0.95);
  CHECK(demo.semi.prefill_iou_thresh == 0.8);
  CHECK(demo.retrain.minutes == 0.5);  // scripts/demo.sh: rounds of half a minute
  REQUIRE(demo.retrain.extra_data.size() == 1);
  CHECK(demo.retrain.extra_data[0] == "sa1b:runs/demo/synth");
}
