// sam_amg end to end: the golden generator parameters given as flags reproduce amg.json through
// the SA-1B file the program writes; --png writes the reference's folder; a folder input skips
// unreadable files; bad arguments and inputs fail with a message.
#include <catch2/catch.hpp>

#include <cmath>
#include <filesystem>
#include <fstream>

#include <nlohmann/json.hpp>
#include <opencv2/imgcodecs.hpp>

#include "data/mask/rle.h"
#include "test_util.h"

namespace fs = std::filesystem;

namespace {

const std::string kTool = (sam_test::bin_dir() / "sam_amg").string();

std::string golden(const char* f) {
  return (sam_test::golden_tiny() / f).string();
}

std::string model_flags() {
  return kTool + " --model " + golden("config.json") + " --checkpoint " + golden("sam.pth");
}

// The flags of amg.json's "params" (crop_overlap_ratio written as the real number it is).
std::string golden_flags(const nlohmann::json& p) {
  std::ostringstream o;
  o.precision(17);
  o << " --points-per-side " << p["points_per_side"].get<int>() << " --points-per-batch "
    << p["points_per_batch"].get<int>() << " --pred-iou-thresh "
    << p["pred_iou_thresh"].get<double>() << " --stability-score-thresh "
    << p["stability_score_thresh"].get<double>() << " --stability-score-offset "
    << p["stability_score_offset"].get<double>() << " --box-nms-thresh "
    << p["box_nms_thresh"].get<double>() << " --crop-n-layers " << p["crop_n_layers"].get<int>()
    << " --crop-nms-thresh " << p["crop_nms_thresh"].get<double>() << " --crop-overlap-ratio "
    << p["crop_overlap_ratio"].get<double>() << " --crop-n-points-downscale-factor "
    << p["crop_n_points_downscale_factor"].get<int>() << " --min-mask-region-area "
    << p["min_mask_region_area"].get<int>();
  return o.str();
}

}  // namespace

TEST_CASE("sam_amg writes the golden masks as an SA-1B file and a PNG folder", "[tools][golden]") {
  std::ifstream in(golden("amg.json"));
  const auto amg = nlohmann::json::parse(in);
  const auto out = sam_test::temp_dir("sam_amg_golden");
  std::string log;
  const int rc =
      sam_test::run_command(model_flags() + " --input " + golden("image.jpg") + " --output " +
                                out.string() + golden_flags(amg["params"]) +
                                " --png --threads 2 --timings " + (out / "timings.json").string(),
                            &log);
  INFO(log);
  REQUIRE(rc == 0);
  std::ifstream jf(out / "image.json");
  REQUIRE(jf.good());
  const auto doc = nlohmann::json::parse(jf);
  CHECK(doc["image"]["width"] == 640);
  CHECK(doc["image"]["height"] == 480);
  CHECK(doc["image"]["file_name"] == "image.jpg");
  CHECK(doc["image"]["image_id"].is_number_integer());
  const auto& anns = doc["annotations"];
  const auto& refs = amg["masks"];
  CHECK(std::abs(static_cast<int>(anns.size()) - static_cast<int>(refs.size())) <= 1);

  // Every reference mask has its counterpart (COCO strings decoded against uncompressed counts).
  std::vector<sam::mask::Rle> ours;
  for (size_t i = 0; i < anns.size(); ++i) {
    const auto& a = anns[i];
    CHECK(a["id"] == static_cast<int>(i));
    REQUIRE(a["segmentation"]["counts"].is_string());
    for (const char* k :
         {"bbox", "area", "predicted_iou", "stability_score", "crop_box", "point_coords"})
      CHECK(a.contains(k));
    ours.push_back(sam::mask::rle_from_json(a["segmentation"]));
    CHECK(a["area"] == sam::mask::rle_area(ours.back()));
  }
  size_t matched = 0;
  for (const auto& r : refs) {
    const auto ref = sam::mask::rle_from_json(r["segmentation"]);
    double best = 0;
    for (const auto& o : ours) best = std::max(best, sam::mask::rle_iou(o, ref, false));
    matched += best >= 0.99;
  }
  CHECK(static_cast<double>(matched) >= std::ceil(0.98 * static_cast<double>(refs.size())));

  // --png: <i>.png (0/255) per mask and the reference's metadata.csv.
  const fs::path folder = out / "image";
  REQUIRE(fs::is_directory(folder));
  for (size_t i = 0; i < anns.size(); ++i) {
    cv::Mat m = cv::imread((folder / (std::to_string(i) + ".png")).string(), cv::IMREAD_UNCHANGED);
    REQUIRE(m.rows == 480);
    REQUIRE(m.cols == 640);
    CHECK(cv::countNonZero(m) == anns[i]["area"].get<int>());
    double lo, hi;
    cv::minMaxLoc(m, &lo, &hi);
    CHECK(hi == 255);
  }
  std::ifstream csv(folder / "metadata.csv");
  std::string header;
  std::getline(csv, header);
  CHECK(header ==
        "id,area,bbox_x0,bbox_y0,bbox_w,bbox_h,point_input_x,point_input_y,predicted_iou,"
        "stability_score,crop_box_x0,crop_box_y0,crop_box_w,crop_box_h");
  size_t rows = 0;
  for (std::string line; std::getline(csv, line);) ++rows;
  CHECK(rows == anns.size());

  std::ifstream tf(out / "timings.json");
  const auto timings = nlohmann::json::parse(tf);
  REQUIRE(timings.size() == 1);
  CHECK(timings[0]["kept_final"] == anns.size());
  CHECK(timings[0]["encoder_s"].get<double>() > 0);
  fs::remove_all(out);
}

TEST_CASE("sam_amg: folders skip unreadable files and bad input fails", "[tools]") {
  const auto dir = sam_test::temp_dir("sam_amg_folder");
  const auto in = dir / "in";
  fs::create_directories(in / "sub");
  fs::copy_file(golden("image.jpg"), in / "sa_42.jpg");
  std::ofstream(in / "notes.txt") << "not an image";
  const std::string fast = " --points-per-side 4 --pred-iou-thresh 0 --stability-score-thresh 0.5";
  std::string log;
  int rc = sam_test::run_command(
      model_flags() + " --input " + in.string() + " --output " + (dir / "out").string() + fast,
      &log);
  INFO(log);
  CHECK(rc == 0);
  CHECK(log.find("notes.txt") != std::string::npos);  // the skip is reported
  std::ifstream jf(dir / "out" / "sa_42.json");
  REQUIRE(jf.good());
  CHECK(nlohmann::json::parse(jf)["image"]["image_id"] == 42);
  CHECK_FALSE(fs::exists(dir / "out" / "notes.json"));
  CHECK_FALSE(fs::exists(dir / "out" / "sub.json"));  // not recursive

  // Nothing readable: non-zero exit.
  fs::remove(in / "sa_42.jpg");
  rc = sam_test::run_command(
      model_flags() + " --input " + in.string() + " --output " + (dir / "out2").string() + fast,
      &log);
  CHECK(rc != 0);
  // Bad arguments: an invalid option value and a missing input.
  rc = sam_test::run_command(model_flags() + " --input " + golden("image.jpg") + " --output " +
                                 (dir / "out3").string() + " --points-per-batch 0",
                             &log);
  CHECK(rc != 0);
  CHECK(log.find("points_per_batch") != std::string::npos);
  rc = sam_test::run_command(model_flags() + " --input " + (dir / "missing.jpg").string() +
                                 " --output " + (dir / "out4").string(),
                             &log);
  CHECK(rc != 0);
  CHECK(log.find("missing.jpg") != std::string::npos);
  rc = sam_test::run_command(kTool + " --input x", &log);
  CHECK(rc != 0);
  fs::remove_all(dir);
}
