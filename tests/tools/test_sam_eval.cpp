// sam_eval end to end on every dataset in ../shared/data (GrabCut, Berkeley, COCO_Tiny and
// COCO_MINI val, BSDS500 test) with the golden tiny model and a few samples each: exit code 0, the
// JSON keys the issue asks for, an HTML page with plots next to it; a random-init run; errors.
#include <catch2/catch.hpp>

#include <fstream>

#include <nlohmann/json.hpp>

#include "test_util.h"

namespace {

const std::string kTool = (sam_test::bin_dir() / "sam_eval").string();

std::string model_flags() {
  const auto g = sam_test::golden_tiny();
  return " --model " + (g / "config.json").string() + " --checkpoint " + (g / "sam.pth").string();
}

std::string data(const std::string& rel) {
  return (sam_test::shared_data() / rel).string();
}

std::string coco(const std::string& set) {
  return "coco:" + data(set + "/annotations/instances_val2017.json") + ":" + data(set + "/val2017");
}

nlohmann::json run_ok(const std::string& args, const std::string& out) {
  std::string log;
  // One libtorch thread: much faster than two on a loaded 2-core machine.
  const int rc = sam_test::run_command(kTool + " " + args + " --threads 1 --out " + out, &log);
  INFO(log);
  REQUIRE(rc == 0);
  std::ifstream f(out);
  REQUIRE(f.good());
  nlohmann::json j;
  f >> j;
  std::string html_path = out.substr(0, out.size() - 5) + ".html";
  std::ifstream h(html_path);
  REQUIRE(h.good());
  const std::string html((std::istreambuf_iterator<char>(h)), std::istreambuf_iterator<char>());
  CHECK(html.find("<svg") != std::string::npos);
  CHECK(j.contains("meta"));
  return j;
}

}  // namespace

TEST_CASE("sam_eval points on GrabCut, Berkeley and COCO", "[tools][eval]") {
  const auto dir = sam_test::temp_dir("sam_eval_points");
  for (const auto& [name, spec] : std::vector<std::pair<std::string, std::string>>{
           {"grabcut", "grabcut:" + data("GrabCut")},
           {"berkeley", "berkeley:" + data("Berkeley")},
           {"coco_tiny", coco("COCO_Tiny")},
           {"coco_mini", coco("COCO_MINI")}}) {
    INFO(name);
    const auto j =
        run_ok("points" + model_flags() + " --dataset " + spec + " --clicks 3 --max-samples 2",
               (dir / (name + ".json")).string());
    for (const char* k : {"n", "miou_1click", "miou_1click_oracle", "noc85", "noc90", "miou_at_k"})
      CHECK(j.contains(k));
    CHECK(j["n"].get<int>() >= 1);
    CHECK(j["n"].get<int>() <= 2);
    CHECK(j["miou_at_k"].size() == 3);
    CHECK(j["noc90"].get<double>() <= 3.0);
  }
  // A random first point and a randomly initialised model (the docs' baseline).
  const auto j =
      run_ok("points --model " + (sam_test::source_dir() / "configs/model_tiny.json").string() +
                 " --random-init --seed 1 --dataset grabcut:" + data("GrabCut") +
                 " --clicks 2 --max-samples 1 --random-point",
             (dir / "random.json").string());
  CHECK(j["n"] == 1);
  CHECK(j["meta"]["checkpoint"] == "random init, seed 1");
  CHECK(j["meta"]["first_click"] == "random");
}

TEST_CASE("sam_eval edges on BSDS500 test", "[tools][eval]") {
  const auto dir = sam_test::temp_dir("sam_eval_edges");
  const auto j =
      run_ok("edges" + model_flags() + " --bsds " + data("BSDS500") +
                 " --max-samples 1 --thresholds 19 --save-edges " + (dir / "maps").string(),
             (dir / "edges.json").string());
  for (const char* k : {"ods", "ois", "ap", "r50", "curve", "matching"}) CHECK(j.contains(k));
  CHECK(j["images"] == 1);
  CHECK(j["curve"]["recall"].size() == 19);
  CHECK(j["matching"].get<std::string>().find("Hopcroft-Karp") != std::string::npos);
  CHECK(std::ifstream((dir / "maps" / "2018.png").string()).good());
}

TEST_CASE("sam_eval proposals and instances on COCO", "[tools][eval]") {
  const auto dir = sam_test::temp_dir("sam_eval_coco");
  const auto p = run_ok("proposals" + model_flags() + " --dataset " + coco("COCO_Tiny") +
                            " --max-samples 1 --points-per-side 8 --pred-iou-thresh 0 "
                            "--stability-score-thresh 0",
                        (dir / "proposals.json").string());
  CHECK(p["images"] == 1);
  CHECK(p["ar"]["1000"]["all"].get<double>() >= p["ar"]["10"]["all"].get<double>());
  CHECK(p["mean_proposals"].get<double>() > 0);

  const std::string results = (dir / "results.json").string();
  const auto i = run_ok("instances" + model_flags() + " --dataset " + coco("COCO_MINI") +
                            " --max-samples 2 --results-out " + results,
                        (dir / "instances.json").string());
  CHECK(i["images"] == 2);
  CHECK(i["stats"].contains("AP"));
  CHECK(i["stats"].contains("APl"));
  CHECK(i["stats"]["AP"].get<double>() >= 0.0);  // ground-truth boxes: objects exist
  nlohmann::json res;
  std::ifstream(results) >> res;
  REQUIRE(res.size() == i["prompts"].get<size_t>());
  CHECK(res[0].contains("segmentation"));

  // The same masks as a detector's results file: boxes from the file, its scores kept.
  nlohmann::json dets = nlohmann::json::array();
  std::ifstream ann(data("COCO_MINI/annotations/instances_val2017.json"));
  nlohmann::json a;
  ann >> a;
  for (const auto& x : a["annotations"])
    dets.push_back({{"image_id", x["image_id"]},
                    {"category_id", x["category_id"]},
                    {"bbox", x["bbox"]},
                    {"score", 0.5}});
  const std::string dets_path = (dir / "dets.json").string();
  std::ofstream(dets_path) << dets.dump();
  const auto d = run_ok("instances" + model_flags() + " --dataset " + coco("COCO_MINI") +
                            " --max-samples 2 --detections " + dets_path,
                        (dir / "instances_dets.json").string());
  CHECK(d["prompts"].get<int>() >= i["prompts"].get<int>());  // crowd boxes included here
  // The detector's boxes scored as boxes: these are the ground truth's own, so every one matches.
  REQUIRE(d.contains("box_stats"));
  CHECK(d["box_stats"]["AP"].get<double>() == Approx(1.0));
  CHECK(d["box_stats"]["AP50"].get<double>() == Approx(1.0));
}

TEST_CASE("sam_eval errors name the problem", "[tools][eval]") {
  std::string log;
  const auto dir = sam_test::temp_dir("sam_eval_err");
  const std::string out = " --out " + (dir / "x.json").string();
  CHECK(sam_test::run_command(kTool + " points --model " +
                                  (sam_test::golden_tiny() / "config.json").string() +
                                  " --dataset grabcut:" + data("GrabCut") + out,
                              &log) != 0);
  CHECK(log.find("--random-init") != std::string::npos);
  CHECK(sam_test::run_command(kTool + " points" + model_flags() + " --dataset nosuch:/x" + out,
                              &log) != 0);
  CHECK(log.find("nosuch") != std::string::npos);
  CHECK(sam_test::run_command(
            kTool + " instances" + model_flags() + " --dataset grabcut:" + data("GrabCut") + out,
            &log) != 0);
  CHECK(log.find("COCO") != std::string::npos);
}
