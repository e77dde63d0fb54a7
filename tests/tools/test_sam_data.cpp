// sam_data end to end: the issue's "done when" check (validate passes on a coco-to-sa1b
// conversion of COCO_Tiny, train and val), RLE encode/decode through files, validate failing on
// broken data and passing on a tar shard, synth determinism, info / export-coco / show / bench.
#include <catch2/catch.hpp>

#include <opencv2/imgcodecs.hpp>

#include <filesystem>
#include <fstream>

#include <nlohmann/json.hpp>

#include "test_util.h"

namespace fs = std::filesystem;
using Catch::Matchers::Contains;

namespace {

std::string prog() {
  return (sam_test::bin_dir() / "sam_data").string();
}

int run(const std::string& args, std::string* out) {
  return sam_test::run_command(prog() + " " + args, out);
}

std::string slurp(const fs::path& p) {
  std::ifstream f(p, std::ios::binary);
  return {std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>()};
}

}  // namespace

TEST_CASE("sam_data: validate passes on coco-to-sa1b conversions of COCO_Tiny (train and val)") {
  const auto dir = sam_test::temp_dir("tool_c2s");
  const auto coco = sam_test::shared_data() / "COCO_Tiny";
  struct Split {
    const char* name;
    int masks;
  };
  for (const Split sp : {Split{"train2017", 705 - 6}, Split{"val2017", 815 - 11}}) {
    const fs::path out = dir / sp.name;
    std::string text;
    REQUIRE(run((coco / "annotations" / (std::string("instances_") + sp.name + ".json")).string() +
                    " " + (coco / sp.name).string() + " " + out.string(),
                &text) != 0);  // no subcommand
    REQUIRE(
        run("coco-to-sa1b " +
                (coco / "annotations" / (std::string("instances_") + sp.name + ".json")).string() +
                " " + (coco / sp.name).string() + " " + out.string(),
            &text) == 0);
    INFO(text);
    CHECK_THAT(text, Contains("80 images, " + std::to_string(sp.masks) + " masks"));
    CHECK(fs::exists(out / "sa_532481.jpg") == (std::string(sp.name) == "val2017"));
    REQUIRE(run("validate " + out.string(), &text) == 0);
    CHECK_THAT(text, Contains("80 samples, " + std::to_string(sp.masks) +
                              " masks, 80 images decoded; 0 problems"));
    CHECK_THAT(text, Contains("OK"));
  }
  // The converted val2017 image is the original file, byte for byte.
  CHECK(slurp(dir / "val2017" / "sa_532481.jpg") == slurp(coco / "val2017" / "000000532481.jpg"));

  // Broken copies fail, each problem named with its file.
  const fs::path bad = dir / "bad";
  fs::create_directories(bad);
  for (const char* f : {"sa_532481.jpg", "sa_532481.json"})
    fs::copy_file(dir / "val2017" / f, bad / f);
  nlohmann::json j = nlohmann::json::parse(slurp(bad / "sa_532481.json"));
  j["annotations"][0]["area"] = 1;
  j["annotations"][1].erase("point_coords");
  j["annotations"][2]["segmentation"]["counts"] = "01";
  std::ofstream(bad / "sa_532481.json") << j.dump();
  const std::string jpg = slurp(bad / "sa_532481.jpg");
  std::ofstream(bad / "sa_532481.jpg", std::ios::binary) << jpg.substr(0, jpg.size() - 100);
  std::ofstream(bad / "sa_9.json") << "{\"image\": ";
  std::string text;
  CHECK(run("validate " + bad.string(), &text) == 1);
  CHECK_THAT(text, Contains("sa_532481.json: annotations[0]: area 1 but the mask has"));
  CHECK_THAT(text, Contains("annotations[1]: missing \"point_coords\""));
  CHECK_THAT(text, Contains("annotations[2]") && Contains("sum"));
  CHECK_THAT(text, Contains("sa_532481.jpg: truncated JPEG"));
  CHECK_THAT(text, Contains("sa_9.json: not valid JSON"));
  CHECK_THAT(text, Contains("FAILED"));
  fs::remove_all(dir);
}

TEST_CASE("sam_data: rle encode prints cocoapi's string and decode writes the mask back") {
  const auto dir = sam_test::temp_dir("tool_rle");
  // Column-major runs of this 2 x 3 mask: 2 zeros, 3 ones, 1 zero -> "231" (the issue's string).
  cv::Mat m = (cv::Mat_<uint8_t>(2, 3) << 0, 255, 255, 0, 255, 0);
  cv::imwrite((dir / "m.png").string(), m);
  std::string out;
  REQUIRE(run("rle encode " + (dir / "m.png").string(), &out) == 0);
  CHECK(out == "{\"counts\":\"231\",\"size\":[2,3]}\n");
  std::ofstream(dir / "r.json") << out;
  REQUIRE(run("rle decode " + (dir / "r.json").string() + " " + (dir / "back.png").string(),
              &out) == 0);
  CHECK(cv::countNonZero(cv::imread((dir / "back.png").string(), cv::IMREAD_GRAYSCALE) != m) == 0);
  std::ofstream(dir / "bad.json") << R"({"size": [2, 3], "counts": "23"})";
  CHECK(run("rle decode " + (dir / "bad.json").string() + " " + (dir / "x.png").string(), &out) ==
        1);
  CHECK_THAT(out, Contains("bad.json"));
  fs::remove_all(dir);
}

TEST_CASE(
    "sam_data: synth is byte-deterministic, its tar shard validates, info, show, export-coco") {
  const auto dir = sam_test::temp_dir("tool_synth");
  std::string out;
  for (const char* name : {"a", "b"})
    REQUIRE(run("synth " + (dir / name).string() + " --images 3 --seed 4 --size 200x150 --jobs 2",
                &out) == 0);
  CHECK_THAT(out, Contains("3 images"));
  for (const char* f : {"sa_1.jpg", "sa_1.json", "sa_3.jpg", "sa_3.json"})
    CHECK(slurp(dir / "a" / f) == slurp(dir / "b" / f));
  REQUIRE(sam_test::run_command("tar -C " + (dir / "a").string() + " -cf " +
                                (dir / "s.tar").string() + " .") == 0);
  CHECK(run("validate " + (dir / "s.tar").string(), &out) == 0);
  CHECK_THAT(out, Contains("3 samples") && Contains("OK"));
  CHECK(run("info sa1b:" + (dir / "s.tar").string(), &out) == 0);
  CHECK_THAT(out, Contains("3 samples"));
  CHECK(run("show sa1b:" + (dir / "a").string() + " " + (dir / "show.png").string() + " --index 1",
            &out) == 0);
  CHECK(cv::imread((dir / "show.png").string()).cols == 200);
  const auto berkeley = sam_test::shared_data() / "Berkeley";
  REQUIRE(run("export-coco berkeley:" + berkeley.string() + " " + (dir / "b.json").string() +
                  " --image-root " + (berkeley / "images").string(),
              &out) == 0);
  const auto j = nlohmann::json::parse(slurp(dir / "b.json"));
  CHECK(j["images"].size() == 96);
  CHECK(j["annotations"].size() == 96);
  CHECK(j["images"][0]["file_name"].get<std::string>().find('/') == std::string::npos);
  CHECK(run("info nosuch:/x", &out) == 1);
  CHECK_THAT(out, Contains("unknown kind 'nosuch'"));
  fs::remove_all(dir);
}

TEST_CASE("sam_data: bench reports loader throughput, memory and RLE speed") {
  const auto dir = sam_test::temp_dir("tool_bench");
  std::string out;
  REQUIRE(run("bench --data " + (dir / "d").string() +
                  " --make 3 --size 320x240 --samples 6 --profile 2 --rle-reps 1 "
                  "--image-size 128 --json " +
                  (dir / "r.json").string(),
              &out) == 0);
  const auto j = nlohmann::json::parse(slurp(dir / "r.json"));
  CHECK(j["loader"]["images_per_s"].get<double>() > 0);
  CHECK(j["loader"]["rss_steady_mib"].get<double>() > 0);
  CHECK(j["rle_object_2250x1500"]["decode_mb_s"].get<double>() > 0);
  CHECK(j["profile_one_thread"]["samples"] == 2);
  fs::remove_all(dir);
}
