// The edge pipeline: Sobel on mask probabilities kept near mask boundaries, per-pixel max, edge
// NMS thinning to one pixel, the BSDS500 listing, and the whole SAM edge map with the golden tiny
// model (logits of the kept masks recovered exactly).
#include <catch2/catch.hpp>

#include <opencv2/imgproc.hpp>

#include <cmath>

#include "data/image.h"
#include "eval/edges.h"
#include "sam/config.h"
#include "test_util.h"

using namespace sam::eval;

namespace {

cv::Mat disk(int size, int cx, int cy, double r) {
  cv::Mat m = cv::Mat::zeros(size, size, CV_8UC1);
  cv::circle(m, {cx, cy}, static_cast<int>(r), cv::Scalar(1), cv::FILLED);
  return m;
}

}  // namespace

TEST_CASE("edges of a disk: on its boundary, thinned to one pixel", "[eval][edges]") {
  const cv::Mat m = disk(100, 50, 50, 20);
  cv::Mat prob;
  m.convertTo(prob, CV_32F);
  EdgeAccumulator acc(100, 100, true);
  acc.add(prob, m);
  const cv::Mat e = acc.finish(true);
  double mx = 0;
  cv::minMaxLoc(e, nullptr, &mx);
  CHECK(mx == Approx(1.0));
  int n = 0;
  for (int y = 0; y < 100; ++y)
    for (int x = 0; x < 100; ++x)
      if (e.at<float>(y, x) > 0) {
        ++n;
        const double d = std::hypot(x - 50, y - 50);
        CHECK(d > 18.5);
        CHECK(d < 21.5);
      }
  CHECK(n > 100);  // the circumference is ~126 px
  // Where the boundary is vertical (the row through the centre) the step is one pixel wide.
  CHECK(cv::countNonZero(e.row(50)) == 2);
  CHECK(cv::countNonZero(e.col(50)) == 2);
  // Without NMS the Sobel response is at least two pixels wide there.
  CHECK(cv::countNonZero(acc.finish(false).row(50)) >= 4);
}

TEST_CASE("gradients away from the mask boundary are dropped", "[eval][edges]") {
  // A probability ramp (gradient everywhere) with a square mask: only the band around the
  // square's boundary keeps a response.
  cv::Mat ramp(64, 64, CV_32F);
  for (int y = 0; y < 64; ++y)
    for (int x = 0; x < 64; ++x) ramp.at<float>(y, x) = x / 64.0f;
  cv::Mat sq = cv::Mat::zeros(64, 64, CV_8UC1);
  sq(cv::Rect(20, 20, 20, 20)).setTo(1);
  EdgeAccumulator band(64, 64, true), all(64, 64, false);
  band.add(ramp, sq);
  all.add(ramp, sq);
  const cv::Mat eb = band.finish(false), ea = all.finish(false);
  CHECK(cv::countNonZero(ea) == 64 * 64);
  // Band: the 3x3 dilation minus the 3x3 erosion of a 20x20 square: 22^2 - 18^2 = 160 px.
  CHECK(cv::countNonZero(eb) == 160);
  CHECK(eb.at<float>(30, 30) == 0.0f);
  CHECK(eb.at<float>(20, 30) > 0.0f);
  // The maximum over masks: a second, disjoint disk adds its own edges.
  cv::Mat d2 = disk(64, 52, 52, 6), p2;
  d2.convertTo(p2, CV_32F);
  band.add(p2, d2);
  const cv::Mat e2 = band.finish(false);
  CHECK(e2.at<float>(52, 46) > 0.0f);
  CHECK(e2.at<float>(20, 30) > 0.0f);
}

TEST_CASE("edge NMS keeps the ridge of a blurred line", "[eval][edges]") {
  cv::Mat mag(30, 30, CV_32F), gx(30, 30, CV_32F, cv::Scalar(1.0f)),
      gy(30, 30, CV_32F, cv::Scalar(0.0f));
  for (int y = 0; y < 30; ++y)
    for (int x = 0; x < 30; ++x) mag.at<float>(y, x) = std::exp(-(x - 10) * (x - 10) / 4.0f);
  const cv::Mat out = edge_nms(mag, gx, gy);
  CHECK(cv::countNonZero(out) == 30);
  CHECK(cv::countNonZero(out.col(10)) == 30);
}

TEST_CASE("BSDS500 test split listing", "[eval][edges]") {
  const auto root = (sam_test::shared_data() / "BSDS500").string();
  const auto imgs = list_bsds(root, "test");
  REQUIRE(imgs.size() == 200);
  CHECK(imgs[0].id == "2018");  // natural order: numeric ids
  for (const auto& im : imgs) CHECK(im.boundaries.size() >= 4);
  const cv::Mat b = read_boundary_map(imgs[0].boundaries[0]);
  CHECK((b.cols == 481 || b.cols == 321));
  CHECK(cv::countNonZero(b) > 100);
  CHECK_THROWS_AS(list_bsds(root, "nosuchsplit"), std::invalid_argument);
}

TEST_CASE("SAM edge map with the golden tiny model", "[eval][edges][model]") {
  torch::set_num_threads(1);  // see test_points_model.cpp
  const auto g = sam_test::golden_tiny();
  sam::Sam model(sam::model_config_resolve((g / "config.json").string()));
  sam::load_checkpoint(model, (g / "sam.pth").string());
  const auto imgs = list_bsds((sam_test::shared_data() / "BSDS500").string(), "test");
  const cv::Mat rgb = sam::data::image_read_rgb(imgs[0].image);
  EdgesOptions o;
  sam::Predictor p(model);
  sam::amg::MaskGenerator gen(p, o.amg_options());
  int64_t n = 0;
  double worst = 0;
  const cv::Mat e = sam_edge_map(gen, p, rgb, o, &n, &worst);
  CHECK(n > 0);
  CHECK(n <= 768);
  CHECK(worst > 0.99);  // the recovered logits threshold to the generator's masks
  double mn = 0, mx = 0;
  cv::minMaxLoc(e, &mn, &mx);
  CHECK(mn == 0.0);
  CHECK(mx == Approx(1.0));
  CHECK(e.size() == rgb.size());
  std::vector<cv::Mat> gts;
  for (const auto& b : imgs[0].boundaries) gts.push_back(read_boundary_map(b));
  BsdsOptions bo;
  bo.thresholds = 9;
  const auto c = evaluate_boundary_image(e, gts, bo);
  const auto s = summarize_boundaries(bsds_thresholds(9), {c});
  CHECK(s.ods_f > 0.0);
  CHECK(s.ods_f <= 1.0);
}
