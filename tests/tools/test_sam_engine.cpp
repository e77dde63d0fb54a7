// sam_engine end to end: --stage all on a few synthetic images (sam_data synth) with the golden
// tiny model and very short retraining; every stage writes its SA-1B folder, manifest, report and
// weights, each stage starts from the previous one's model, and bad configurations fail with a
// message naming the key.
#include <catch2/catch.hpp>

#include <filesystem>
#include <fstream>

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
  const std::string cmd =
      kTool + " --config " + (sam_test::source_dir() / "configs" / "engine.yaml").string() +
      " --stage all --out " + (root / "out").string() + " data=sa1b:" + (root / "synth").string() +
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

  // Running it again finds every image done and every round trained: nothing is redone.
  const auto t = fs::last_write_time(out / "manual" / "retrain" / "round_1" / "model.pth");
  REQUIRE(sam_test::run_command(cmd, &log) == 0);
  CHECK(fs::last_write_time(out / "manual" / "retrain" / "round_1" / "model.pth") == t);
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
