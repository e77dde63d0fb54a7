// The simulated annotator's rules on constructed masks: where the first click goes (the point
// farthest from the boundary, the image border counting as boundary), where corrections go (the
// largest error region; positive for missed object, negative for spill), the time model, the
// prominence order, the retraining schedule and ground-truth matching.
#include <catch2/catch.hpp>

#include <opencv2/imgproc.hpp>

#include "data/mask/rle.h"
#include "engine/annotator_sim.h"
#include "engine/annotation_session.h"

using namespace sam::engine;

namespace {
cv::Mat rect_mask(int h, int w, int x0, int y0, int x1, int y1) {  // inclusive corners
  cv::Mat m = cv::Mat::zeros(h, w, CV_8UC1);
  m(cv::Rect(x0, y0, x1 - x0 + 1, y1 - y0 + 1)).setTo(1);
  return m;
}
sam::mask::Rle rle(const cv::Mat& m) {
  return sam::mask::rle_encode(m.data, m.rows, m.cols);
}
}  // namespace

TEST_CASE("interior point: the pixel farthest from the boundary, first in row-major order",
          "[engine][annotator]") {
  // Columns 10..29, rows 20..39: distance 10 is first reached at column 19 of row 29.
  CHECK(interior_point(rect_mask(60, 60, 10, 20, 29, 39)) == cv::Point(19, 29));
  // A flat bar (columns 5..15, rows 5..9): distance 3 all along row 7 from column 7 to 13; the
  // tie goes to the first, (7, 7).
  CHECK(interior_point(rect_mask(30, 30, 5, 5, 15, 9)) == cv::Point(7, 7));
  // A square of odd side has one centre: columns 5..15, rows 5..15 -> (10, 10).
  CHECK(interior_point(rect_mask(30, 30, 5, 5, 15, 15)) == cv::Point(10, 10));
  // The image border is a boundary: a square in the corner is clicked at its own centre, not at
  // the far corner (where an unpadded transform would put the maximum).
  CHECK(interior_point(rect_mask(40, 40, 0, 0, 19, 19)) == cv::Point(9, 9));
  // An L shape: the thick part wins.
  cv::Mat l = rect_mask(50, 50, 0, 0, 4, 49);
  l(cv::Rect(0, 30, 30, 20)).setTo(1);
  const cv::Point p = interior_point(l);
  CHECK(p.y >= 30);
  CHECK(l.at<uint8_t>(p) == 1);
  CHECK(interior_point(cv::Mat::zeros(10, 10, CV_8UC1)) == cv::Point(-1, -1));
}

TEST_CASE("next click: largest error region, positive for misses and negative for spill",
          "[engine][annotator]") {
  const cv::Mat gt = rect_mask(80, 80, 20, 20, 49, 49);  // 30 x 30
  SECTION("first click on an empty prediction is the object's centre, positive") {
    const ErrorClick c = next_click(gt, cv::Mat::zeros(80, 80, CV_8UC1));
    CHECK(c.click.positive);
    CHECK(c.click.x == 34);
    CHECK(c.click.y == 34);
    CHECK(c.region_area == 900);
  }
  SECTION("a spill larger than the miss gets a negative click inside the spill") {
    cv::Mat pred = gt.clone();
    pred(cv::Rect(20, 20, 3, 3)).setTo(0);    // 9 px missed
    pred(cv::Rect(55, 60, 20, 10)).setTo(1);  // 200 px spilled, columns 55..74 rows 60..69
    const ErrorClick c = next_click(gt, pred);
    CHECK_FALSE(c.click.positive);
    CHECK(c.region_area == 200);
    CHECK(c.click.x >= 55);
    CHECK(c.click.x <= 74);
    CHECK(c.click.y >= 64);  // the middle rows of the spill
    CHECK(c.click.y <= 65);
  }
  SECTION("a large miss gets a positive click inside the missed part") {
    cv::Mat pred = gt.clone();
    pred(cv::Rect(20, 35, 30, 15)).setTo(0);  // bottom half missed: rows 35..49
    pred(cv::Rect(0, 0, 5, 5)).setTo(1);      // small spill
    const ErrorClick c = next_click(gt, pred);
    CHECK(c.click.positive);
    CHECK(c.region_area == 450);
    CHECK(c.click.y >= 35);
    CHECK(gt.at<uint8_t>(int(c.click.y), int(c.click.x)) == 1);
    CHECK(pred.at<uint8_t>(int(c.click.y), int(c.click.x)) == 0);
  }
  SECTION("the largest connected region, not the largest error in total") {
    cv::Mat pred = gt.clone();
    // Misses: two separate 10 x 10 holes (200 px in all); spill: one 12 x 12 block (144 px).
    pred(cv::Rect(22, 22, 10, 10)).setTo(0);
    pred(cv::Rect(36, 36, 10, 10)).setTo(0);
    pred(cv::Rect(60, 60, 12, 12)).setTo(1);
    const ErrorClick c = next_click(gt, pred);
    CHECK_FALSE(c.click.positive);
    CHECK(c.region_area == 144);
  }
  SECTION("a tie goes to the miss; no error, no click") {
    cv::Mat pred = gt.clone();
    pred(cv::Rect(20, 20, 5, 5)).setTo(0);
    pred(cv::Rect(70, 70, 5, 5)).setTo(1);
    CHECK(next_click(gt, pred).click.positive);
    CHECK(next_click(gt, gt).region_area == 0);
  }
}

TEST_CASE("mask IoU, time model, prominence order, option checks", "[engine][annotator]") {
  const cv::Mat a = rect_mask(20, 20, 0, 0, 9, 9), b = rect_mask(20, 20, 5, 0, 14, 9);
  CHECK(mask_iou(a, b) == Approx(50.0 / 150.0));
  CHECK(mask_iou(cv::Mat::zeros(4, 4, CV_8UC1), cv::Mat::zeros(4, 4, CV_8UC1)) == 1.0);

  AnnotatorOptions o;
  o.seconds_first_click = 6;
  o.seconds_per_click = 3;
  CHECK(o.seconds_for(0) == 0);
  CHECK(o.seconds_for(1) == 6);
  CHECK(o.seconds_for(9) == 30);

  o.min_object_area = 100;
  o.max_objects_per_image = 0;
  CHECK(prominence_order({50, 400, 100, 2000, 400}, o) == std::vector<size_t>{3, 1, 4, 2});
  o.max_objects_per_image = 2;
  CHECK(prominence_order({50, 400, 100, 2000, 400}, o) == std::vector<size_t>{3, 1});

  AnnotatorOptions bad;
  bad.target_iou = 1.5;
  CHECK_THROWS_WITH(bad.validate(), Catch::Contains("target_iou"));
  bad = AnnotatorOptions();
  bad.seconds_budget = 0;
  CHECK_THROWS_WITH(bad.validate(), Catch::Contains("seconds_budget"));
}

TEST_CASE("retraining schedule and ground-truth matching", "[engine][report]") {
  CHECK(retrain_points(8, 2) == std::vector<int>{4, 8});
  CHECK(retrain_points(5, 3) == std::vector<int>{2, 4, 5});
  CHECK(retrain_points(2, 4) == std::vector<int>{1, 2});
  CHECK(retrain_points(0, 2).empty());
  CHECK(retrain_points(6, 0).empty());

  // GT: two 10 x 10 squares. Produced: the first exactly (IoU 1), the second shifted by one column
  // (IoU 90/110 = 0.818), and one on nothing.
  const auto g1 = rect_mask(40, 40, 0, 0, 9, 9), g2 = rect_mask(40, 40, 20, 20, 29, 29);
  const auto p2 = rect_mask(40, 40, 21, 20, 30, 29), p3 = rect_mask(40, 40, 0, 30, 5, 35);
  const GtMatch m = match_ground_truth({rle(g1), rle(p2), rle(p3)}, {rle(g1), rle(g2)}, 0.9);
  CHECK(m.masks_matched == 1);
  CHECK(m.gt_matched == 1);
  REQUIRE(m.best_iou.size() == 3);
  CHECK(m.best_iou[0] == Approx(1.0));
  CHECK(m.best_iou[1] == Approx(90.0 / 110.0));
  CHECK(m.best_iou[2] == Approx(0.0));
  const GtMatch loose = match_ground_truth({rle(g1), rle(p2), rle(p3)}, {rle(g1), rle(g2)}, 0.8);
  CHECK(loose.gt_matched == 2);
}

TEST_CASE("an SA-1B annotation from a mask: RLE, generator-convention box, first click",
          "[engine][report]") {
  const cv::Mat m = rect_mask(30, 40, 5, 7, 14, 11);  // 10 x 5
  const auto a = mask_annotation(m, 3, 0.87, {{9, 9, true}, {1, 1, false}});
  CHECK(a.id == 3);
  CHECK(a.area == 50);
  CHECK(a.bbox == std::array<double, 4>{5, 7, 9, 4});  // w = x1 - x0 with inclusive x1
  CHECK(a.segmentation.h == 30);
  CHECK(a.segmentation.w == 40);
  REQUIRE(a.point_coords.size() == 1);
  CHECK(a.point_coords[0] == std::array<double, 2>{9, 9});
  CHECK(a.predicted_iou.value() == Approx(0.87));
}
