// sam_engine end to end: --stage all on a few synthetic images (sam_data synth) with the golden
// tiny model and very short retraining; every stage writes its SA-1B folder, manifest, report and
// weights, each stage starts from the previous one's model, and bad configurations fail with a
// message naming the key.
#include <catch2/catch.hpp>

#include <filesystem>
#include <fstream>
#include <map>

#include <nlohmann/json.hpp>

#include "data/tar.h"
#include "test_util.h"

namespace fs = std::filesystem;

namespace {
const std::string kTool = (sam_test::bin_dir() / "sam_engine").string();
nlohmann::json read_json(const fs::path& p) {
  std::ifstream f(p);
  return nlohmann::json::parse(f);
}
// Five 320x240 synthetic images (sam_data synth) in `dir`.
bool make_synth(const fs::path& dir, int seed, std::string& log) {
  return sam_test::run_command((sam_test::bin_dir() / "sam_data").string() + " synth " + dir.string() +
                                   " --images 5 --seed " + std::to_string(seed) +
                                   " --size 320x240 --max-objects 6 --jobs 1",
                               &log) == 0;
}
}  // namespace

TEST_CASE("sam_engine --stage all runs the three stages on synthetic data", "[tools][engine]") {
  const auto root = sam_test::temp_dir("sam_engine_all");
  std::string log;
  REQUIRE(make_synth(root / "synth", 3, log));
  REQUIRE(make_synth(root / "heldout", 9, log));
  const std::string cmd =
      kTool + " --config " + (sam_test::source_dir() / "configs" / "engine.yaml").string() +
      " --stage all --out " + (root / "out").string() + " data=sa1b:" + (root / "synth").string() +
      " retrain.eval_data=sa1b:" + (root / "heldout").string() + " retrain.eval_clicks=3" +
      " model.arch=" + (sam_test::golden_tiny() / "config.json").string() +
      " model.checkpoint=" + (sam_test::golden_tiny() / "sam.pth").string() +
      " threads=2 manual.images=2 manual.retrain_rounds=1 semi.images=2"
      " semi.retrain_rounds=1 semi.detector.epochs=10 retrain.iterations=2 retrain.prompt_rounds=2"
      " annotator.max_objects_per_image=4 auto.images=3 auto.generator.points_per_side=8"
      " auto.generator.crop_n_layers=1";
  const int rc = sam_test::run_command(cmd, &log);
  INFO(log);
  REQUIRE(rc == 0);
  const fs::path out = root / "out";
  for (const char* st : {"manual", "semi", "auto"}) {
    INFO(st);
    for (const char* f : {"manifest.json", "report.json", "report.html"})
      CHECK(fs::exists(out / st / f));
    const auto rep = read_json(out / st / "report.json");
    CHECK(rep["images_done"].get<int>() > 0);
    CHECK(rep.contains("masks_per_image"));
    CHECK(rep.contains("seconds_per_mask"));
  }
  // Retrained once in each annotation stage; each stage starts from the previous one's weights.
  CHECK(read_json(out / "manual" / "report.json")["retrain_rounds"] == 1);
  CHECK(fs::exists(out / "manual" / "retrain" / "round_1" / "model.pth"));
  CHECK(read_json(out / "semi" / "manifest.json")["model"]["input_checkpoint"] ==
        (out / "manual" / "model.pth").string());
  CHECK(read_json(out / "auto" / "manifest.json")["model"]["input_checkpoint"] ==
        (out / "semi" / "model.pth").string());
  CHECK(read_json(out / "semi" / "manifest.json")["detector"]["loss_last"].get<double>() <
        read_json(out / "semi" / "manifest.json")["detector"]["loss_first"].get<double>());
  CHECK(read_json(out / "auto" / "report.json")["images_done"] == 3);
  CHECK(read_json(out / "semi" / "manifest.json")["images"]["first"] == 2);

  // Every model round of the annotation stages on the held-out images: the stage's starting
  // weights (round 0) and each retrained model, with the figures sam_eval gives those weights.
  const auto manual_ho = read_json(out / "manual" / "report.json")["heldout"];
  const auto semi_ho = read_json(out / "semi" / "report.json")["heldout"];
  REQUIRE(manual_ho.size() == 2);
  REQUIRE(semi_ho.size() == 2);
  CHECK(manual_ho[0]["model_round"] == 0);
  CHECK(manual_ho[0]["checkpoint"] == (sam_test::golden_tiny() / "sam.pth").string());
  CHECK(manual_ho[1]["model_round"] == 1);
  const fs::path round1 = out / "manual" / "retrain" / "round_1" / "model.pth";
  CHECK(manual_ho[1]["checkpoint"] == round1.string());
  CHECK(semi_ho[0]["checkpoint"] == (out / "manual" / "model.pth").string());
  CHECK(manual_ho[0]["clicks"] == 3);
  CHECK(manual_ho[0]["n"].get<int>() > 0);
  CHECK(log.find("held-out mIoU at 1 / 3 clicks") != std::string::npos);
  CHECK(read_json(out / "manual" / "heldout.json") == manual_ho);
  for (const auto& [ho, ckpt] : std::vector<std::pair<nlohmann::json, fs::path>>{
           {manual_ho[0], sam_test::golden_tiny() / "sam.pth"}, {manual_ho[1], round1}}) {
    INFO(ckpt);
    const fs::path json = root / ("eval_" + std::to_string(ho["model_round"].get<int>()) + ".json");
    REQUIRE(sam_test::run_command((sam_test::bin_dir() / "sam_eval").string() + " points --model " +
                                      (sam_test::golden_tiny() / "config.json").string() + " --checkpoint " +
                                      ckpt.string() + " --dataset sa1b:" + (root / "heldout").string() +
                                      " --clicks 3 --threads 2 --out " + json.string(),
                                  &log) == 0);
    const auto ev = read_json(json);
    CHECK(ho["n"] == ev["n"]);
    CHECK(ho["miou_1click"].get<double>() == Approx(ev["miou_1click"].get<double>()).margin(1e-6));
    CHECK(ho["miou_1click_oracle"].get<double>() == Approx(ev["miou_1click_oracle"].get<double>()).margin(1e-6));
    for (size_t k = 0; k < 3; ++k)
      CHECK(ho["miou_at_k"][k].get<double>() == Approx(ev["miou_at_k"][k].get<double>()).margin(1e-6));
  }
  // The semi stage starts from the manual stage's final weights (its round 1): the same figures.
  CHECK(semi_ho[0]["miou_at_k"][2].get<double>() == Approx(manual_ho[1]["miou_at_k"][2].get<double>()).margin(1e-9));

  // Running it again finds every image done and every round trained: nothing is redone.
  const auto t = fs::last_write_time(out / "manual" / "retrain" / "round_1" / "model.pth");
  const auto th = fs::last_write_time(out / "manual" / "heldout.json");
  REQUIRE(sam_test::run_command(cmd, &log) == 0);
  CHECK(fs::last_write_time(out / "manual" / "retrain" / "round_1" / "model.pth") == t);
  CHECK(fs::last_write_time(out / "manual" / "heldout.json") == th);
  fs::remove_all(root);
}

TEST_CASE("sam_engine --stage auto under torchrun: 2 ranks share the images and write what 1 rank writes",
          "[tools][engine][dist]") {
  if (!sam_test::have_torchrun()) {
    sam_test::skip(sam_test::test_python() + " has no torchrun (Debian: python3-torch)");
    return;
  }
  const auto root = sam_test::temp_dir("sam_engine_dist");
  std::string log;
  REQUIRE(make_synth(root / "synth", 4, log));
  auto cmd = [&](const std::string& out) {
    return kTool + " --config " + (sam_test::source_dir() / "configs" / "engine.yaml").string() +
           " --stage auto --out " + (root / out).string() + " data=sa1b:" + (root / "synth").string() +
           " model.arch=" + (sam_test::golden_tiny() / "config.json").string() +
           " model.checkpoint=" + (sam_test::golden_tiny() / "sam.pth").string() +
           " threads=1 auto.generator.points_per_side=8 auto.generator.crop_n_layers=0"
           " auto.shard_images=2";
  };
  REQUIRE(sam_test::run_command(cmd("one"), &log) == 0);
  const std::string torchrun = sam_test::torchrun_two(31500);
  const int rc = sam_test::run_command(torchrun + cmd("two"), &log);
  INFO(log);
  REQUIRE(rc == 0);
  // Both ranks generated (images 1, 3, 5 on rank 0; 2, 4 on rank 1), rank 0 wrote the report.
  CHECK(log.find("(rank 0)") != std::string::npos);
  CHECK(log.find("(rank 1)") != std::string::npos);
  CHECK(read_json(root / "two" / "auto" / "report.json")["images_done"] == 5);
  // The same SA-1B shards, member for member and byte for byte, as the single process wrote
  // (3 shards of at most 2 images, in dataset order, whichever rank generated them).
  int files = 0;
  for (const std::string shard : {"sa_000000.tar", "sa_000001.tar", "sa_000002.tar"}) {
    INFO(shard);
    const sam::data::TarArchive a((root / "one" / "auto" / "shards" / shard).string());
    const sam::data::TarArchive b((root / "two" / "auto" / "shards" / shard).string());
    REQUIRE(a.index().members.size() == b.index().members.size());
    CHECK(a.index().problems.empty());
    for (size_t i = 0; i < a.index().members.size(); ++i) {
      CHECK(a.index().members[i].name == b.index().members[i].name);
      CHECK(a.read(a.index().members[i]) == b.read(b.index().members[i]));
      ++files;
    }
  }
  CHECK_FALSE(fs::exists(root / "two" / "auto" / "shards" / "sa_000003.tar"));
  CHECK_FALSE(fs::exists(root / "two" / "auto" / "data"));  // packed, then removed
  CHECK(files == 10);  // 5 images and 5 JSON files
  fs::remove_all(root);
}

TEST_CASE("sam_engine rejects bad configurations with the key at fault", "[tools][engine]") {
  const std::string cfg = (sam_test::source_dir() / "configs" / "engine.yaml").string();
  std::string log;
  CHECK(sam_test::run_command(
            kTool + " --config " + cfg + " --stage manual annotator.targt_iou=0.8", &log) != 0);
  CHECK(log.find("targt_iou") != std::string::npos);
  CHECK(log.find("target_iou") != std::string::npos);  // the valid keys are listed
  CHECK(sam_test::run_command(kTool + " --config " + cfg + " --stage manual semi.images=-1",
                              &log) != 0);
  CHECK(log.find("semi.images") != std::string::npos);
  CHECK(sam_test::run_command(kTool + " --config " + cfg + " --stage everything", &log) != 0);
  const auto root = sam_test::temp_dir("sam_engine_badcfg");
  std::ofstream(root / "bad.yaml") << "manual:\n  imagez: 3\n";
  CHECK(sam_test::run_command(
            kTool + " --config " + (root / "bad.yaml").string() + " --dump-config", &log) != 0);
  CHECK(log.find("imagez") != std::string::npos);
  REQUIRE(sam_test::run_command(kTool + " --config " + cfg + " --dump-config manual.images=3",
                                &log) == 0);
  CHECK(log.find("\"images\": 3") != std::string::npos);
  fs::remove_all(root);
}

TEST_CASE("the demo, reduced (scripts/demo.sh): its three stages at the paper's thresholds, accepted shares "
          "counted per model round", "[tools][engine][demo]") {
  // The README's first command on fewer images and minutes: its own synthetic data, the tiny model
  // trained from random weights, then sam_engine --stage all with configs/demo_engine.yaml, whose
  // thresholds are the paper's (checked here, not assumed).
  const auto root = sam_test::temp_dir("demo_reduced");
  const std::string cmd = "DEMO_NO_BUILD=1 BUILD_DIR=" + sam_test::bin_dir().parent_path().string() +
                          " DEMO_DIR=" + root.string() +
                          " DEMO_TRAIN_MIN=1 DEMO_RETRAIN_MIN=0.2 DEMO_TRAIN_IMAGES=30 DEMO_ENGINE_IMAGES=7 " +
                          (sam_test::source_dir() / "scripts" / "demo.sh").string() +
                          " manual.images=4 manual.retrain_rounds=2 semi.images=1 semi.detector.epochs=20";
  std::string log;
  const int rc = sam_test::run_command(cmd, &log);
  INFO(log);
  REQUIRE(rc == 0);
  const fs::path out = root / "engine";
  const auto generator = read_json(out / "auto" / "manifest.json")["config"]["auto"]["generator"];
  CHECK(generator["pred_iou_thresh"] == 0.88);
  CHECK(generator["stability_score_thresh"] == 0.95);
  CHECK(read_json(out / "semi" / "manifest.json")["config"]["semi"]["prefill_iou_thresh"] == 0.8);
  // The auto stage ran over every image (7) and its report counts what its records hold. (That a
  // model of these minutes keeps masks at those thresholds is the demo's target, issue 18: not
  // yet reached, docs/ENGINE.md.)
  const auto autorep = read_json(out / "auto" / "report.json");
  CHECK(autorep["images_done"] == 7);
  int auto_masks = 0;
  for (const auto& e : fs::directory_iterator(out / "auto" / "records"))
    auto_masks += int(read_json(e.path())["masks"].size());
  CHECK(autorep["masks"] == auto_masks);

  // Manual stage: model rounds 0 and 1 annotate 2 images each; each round's accepted share is its
  // accepted masks over its annotated masks, counted here from the per-image records.
  const auto manual = read_json(out / "manual" / "report.json");
  std::map<int, std::pair<int, int>> counted;  // model round -> (annotated, accepted)
  for (const auto& e : fs::directory_iterator(out / "manual" / "records")) {
    const auto rec = read_json(e.path());
    for (const auto& m : rec["masks"]) {
      if (m["source"] != "manual") continue;
      ++counted[rec["model_round"].get<int>()].first;
      counted[rec["model_round"].get<int>()].second += m["accepted"].get<bool>() ? 1 : 0;
    }
  }
  // The rounds stopped on their time budget (0.2 min), not on retrain.iterations (100000), and
  // report the steps they ran.
  const auto rounds = read_json(out / "manual" / "rounds.json");
  REQUIRE(rounds.size() == 2);
  for (const auto& r : rounds) {
    CHECK(r["iterations"].get<int64_t>() > 0);
    CHECK(r["iterations"].get<int64_t>() < 100000);
  }
  REQUIRE(manual["per_model_round"].size() == 2);
  for (const auto& r : manual["per_model_round"]) {
    const int round = r["model_round"].get<int>();
    INFO("model round " << round);
    CHECK(r["images"] == 2);
    CHECK(r["annotated_masks"] == counted[round].first);
    CHECK(r["accepted"] == counted[round].second);
    REQUIRE(counted[round].first > 0);
    CHECK(r["accepted_share"].get<double>() == Approx(double(counted[round].second) / counted[round].first));
  }
  fs::remove_all(root);
}
