// evaluate_points with the golden tiny model on real benchmark data: sane values, the ignore band
// of GrabCut, COCO objects (crowd skipped), the same results with several workers, and the model
// adapter feeding back the chosen mask's logits.
#include <catch2/catch.hpp>

#include "data/dataset.h"
#include "eval/points.h"
#include "sam/config.h"
#include "test_util.h"

using namespace sam::eval;

namespace {

sam::Sam golden_model() {
  // One intra-op thread: on a loaded shared machine OpenMP threads waiting on each other make the
  // tiny model tens of times slower.
  torch::set_num_threads(1);
  const auto g = sam_test::golden_tiny();
  sam::Sam model(sam::model_config_resolve((g / "config.json").string()));
  sam::load_checkpoint(model, (g / "sam.pth").string());
  return model;
}

void check_sane(const PointsResult& r, int clicks) {
  REQUIRE(r.miou_at_k.size() == static_cast<size_t>(clicks));
  CHECK(r.miou_1click == Approx(r.miou_at_k[0]));
  CHECK(r.miou_1click_oracle >= r.miou_1click - 1e-12);
  CHECK(r.miou_1click_oracle <= 1.0);
  CHECK(r.noc85 >= 1.0);
  CHECK(r.noc90 >= r.noc85);
  CHECK(r.noc90 <= clicks);
  for (const auto& s : r.samples) {
    CHECK(s.iou_per_click.size() == static_cast<size_t>(clicks));
    for (double v : s.iou_per_click) {
      CHECK(v >= 0.0);
      CHECK(v <= 1.0);
    }
  }
}

}  // namespace

TEST_CASE("points on GrabCut with the golden model, workers give the same numbers",
          "[eval][points][model]") {
  const auto model = golden_model();
  const auto ds =
      sam::data::make_dataset("grabcut:" + (sam_test::shared_data() / "GrabCut").string());
  PointsOptions o;
  o.clicks = 4;
  o.max_samples = 3;
  const auto r1 = evaluate_points(model, *ds, o);
  CHECK(r1.n == 3);
  check_sane(r1, 4);
  CHECK(r1.miou_1click_oracle > 0.05);  // the masks overlap the (large) GrabCut objects
  o.workers = 2;
  const auto r2 = evaluate_points(model, *ds, o);
  REQUIRE(r2.samples.size() == r1.samples.size());
  for (size_t i = 0; i < r1.samples.size(); ++i) {
    CHECK(r2.samples[i].id == r1.samples[i].id);
    for (size_t k = 0; k < r1.samples[i].iou_per_click.size(); ++k)
      CHECK(r2.samples[i].iou_per_click[k] == Approx(r1.samples[i].iou_per_click[k]).margin(1e-6));
  }
  // Random first points: reproducible with the seed.
  o.workers = 1;
  o.random_first = true;
  o.seed = 3;
  const auto r3 = evaluate_points(model, *ds, o), r4 = evaluate_points(model, *ds, o);
  CHECK(r3.miou_1click == Approx(r4.miou_1click));
  check_sane(r3, 4);
}

TEST_CASE("points on COCO objects: one sample per non-crowd annotation", "[eval][points][model]") {
  const auto model = golden_model();
  const auto root = sam_test::shared_data() / "COCO_Tiny";
  const auto ds =
      sam::data::make_dataset("coco:" + (root / "annotations/instances_val2017.json").string() +
                              ":" + (root / "val2017").string());
  PointsOptions o;
  o.clicks = 2;
  o.max_samples = 5;
  const auto r = evaluate_points(model, *ds, o);
  CHECK(r.n <= 5);
  CHECK(r.n >= 4);  // at most one tiny or degenerate object skipped
  check_sane(r, 2);
  for (const auto& s : r.samples) CHECK(s.id.find('#') != std::string::npos);
}

TEST_CASE("the predictor adapter returns 3 masks, then 1, with low-res logits as feedback",
          "[eval][points][model]") {
  const auto model = golden_model();
  sam::Predictor p(model);
  const cv::Mat rgb = cv::Mat(120, 160, CV_8UC3, cv::Scalar(90, 120, 200));
  p.set_image(image_tensor(rgb));
  const auto cm = predictor_click_model(p);
  const auto a = cm({{80, 60, true}}, torch::Tensor(), true);
  REQUIRE(a.masks.size() == 3);
  CHECK(a.masks[0].rows == 120);
  CHECK(a.masks[0].cols == 160);
  REQUIRE(a.feedback[0].dim() == 3);
  CHECK(a.feedback[0].size(0) == 1);
  CHECK(a.feedback[0].size(1) == 64);  // 4 x the 16 x 16 embedding grid
  const auto b = cm({{80, 60, true}, {10, 10, false}}, a.feedback[1], false);
  CHECK(b.masks.size() == 1);
  CHECK(b.scores.size() == 1);
}
