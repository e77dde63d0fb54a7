// The data engine's stages on a few synthetic images with the golden tiny model: the report's
// counts agree with the SA-1B files written, bad input is skipped and counted, an interrupted
// stage resumes without redoing finished images, the auto stage's output is a readable SA-1B
// folder, and the configuration is strict.
#include <catch2/catch.hpp>

#include <filesystem>
#include <fstream>

#include <nlohmann/json.hpp>

#include "data/dataset.h"
#include "data/synth.h"
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

TEST_CASE("auto stage: SA-1B folder readable by the dataset reader, GT matches counted",
          "[engine][stages]") {
  const auto root = sam_test::temp_dir("engine_auto");
  const auto data = make_data(root);
  const auto cfg = small_config(root, data);
  DataEngine eng(cfg, {});
  const auto s = eng.run("auto").at("auto");
  const fs::path st = root / "out" / "auto";
  CHECK(s["images_done"] == 2);
  CHECK(s["images_skipped"] == 1);
  auto ds = sam::data::open_sa1b((st / "data").string());
  REQUIRE(ds->size() == 2);
  int64_t n = 0;
  for (size_t i = 0; i < ds->size(); ++i) {
    const auto smp = ds->get(i);
    CHECK(smp.load_image().cols == 320);
    n += int64_t(smp.annotations.size());
    for (size_t k = 0; k < smp.annotations.size(); ++k) CHECK(smp.annotations[k].rle().h == 240);
  }
  CHECK(s["masks"].get<int64_t>() == n);
  CHECK(s["ground_truth"]["gt_masks"].get<int64_t>() > 0);
  CHECK(s["ground_truth"]["masks_matched"].get<int64_t>() <= n);
  CHECK(read_json(st / "manifest.json")["generator"]["points_per_side"] == 8);
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
}
