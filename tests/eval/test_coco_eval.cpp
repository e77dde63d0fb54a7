// COCOeval (segm) on toy sets worked out by hand: AP and AR on two images with a false positive
// ranked first, a partially overlapping detection, a crowd region, a category without ground
// truth, area ranges and maxDets; and proposal AR at 10 / 100 / 1000 by size. iouType bbox: box
// IoUs (fractional, crowd, touching, outside the image) and AP on a toy image, and what loadRes
// makes of box and mask results.
#include <catch2/catch.hpp>

#include <opencv2/core.hpp>

#include "eval/coco_eval.h"

using namespace sam::eval;
using sam::mask::Rle;

namespace {

constexpr int kSize = 200;

Rle rect(int x, int y, int w, int h) {
  cv::Mat m = cv::Mat::zeros(kSize, kSize, CV_8UC1);
  m(cv::Rect(x, y, w, h)).setTo(1);
  return sam::mask::rle_encode(m.data, kSize, kSize);
}

CocoGt gt(int64_t img, int64_t cat, Rle r, bool crowd = false) {
  CocoGt g;
  g.image_id = img;
  g.category_id = cat;
  g.area = static_cast<double>(sam::mask::rle_area(r));
  g.rle = std::move(r);
  g.iscrowd = crowd;
  return g;
}

CocoDt dt(int64_t img, int64_t cat, Rle r, double score) {
  return {img, cat, std::move(r), score};
}

}  // namespace

// The toy set (all masks in 200 x 200 images, category 1 unless said):
//   image 1: ground truth A = 4x4 at (10,10).
//   image 2: ground truth B = 4x4 at (10,10); crowd region C = 20x20 at (60,60).
//   detections, by score: d4 .99 (img 2, 5x5 inside C), d0 .95 (img 1, false), d1 .90 (img 1,
//   = A), d2 .80 (img 2, 4x6 over B: IoU 16/24 = .667), d3 .70 (img 1, false), d6 .50 (img 1,
//   category 2, which has no ground truth).
// d4 matches the crowd (IoU |d & C| / |d| = 1) and is ignored: neither TP nor FP. npig = 2.
// IoU thresholds .50-.65 (4 of 10): d0 FP, d1 TP, d2 TP, d3 FP -> recall [0, .5, 1, 1],
//   precision [0, .5, 2/3, .5], envelope [2/3, 2/3, 2/3, .5] -> all 101 recall points 2/3.
// Thresholds .70-.95 (6): d0 FP, d1 TP, d2 FP, d3 FP -> recall [0, .5, .5, .5], precision
//   [0, .5, 1/3, 1/4], envelope [.5, .5, 1/3, 1/4] -> points 0.00..0.50 (51) give .5, the rest 0.
// AP = (4 * 2/3 + 6 * 25.5/101) / 10 = 1267 / 3030; AP50 = 2/3; AP75 = 25.5/101.
// AR100 = (4 * 1 + 6 * .5) / 10 = .7. AR1: the top detection per image is d0 (false) and d4
// (ignored) -> 0. Category 2 has no ground truth (-1) and leaves the means alone; medium and
// large have no ground truth (-1).
TEST_CASE("COCOeval segm AP on a two-image toy set", "[eval][coco]") {
  std::vector<CocoGt> gts{gt(1, 1, rect(10, 10, 4, 4)), gt(2, 1, rect(10, 10, 4, 4)),
                          gt(2, 1, rect(60, 60, 20, 20), true)};
  std::vector<CocoDt> dts{dt(2, 1, rect(62, 62, 5, 5), 0.99), dt(1, 1, rect(100, 100, 4, 4), 0.95),
                          dt(1, 1, rect(10, 10, 4, 4), 0.90), dt(2, 1, rect(10, 10, 4, 6), 0.80),
                          dt(1, 1, rect(50, 50, 4, 4), 0.70), dt(1, 2, rect(150, 150, 4, 4), 0.5)};
  const auto r = coco_evaluate({1, 2}, {1, 2}, gts, dts, CocoEvalParams());
  const auto s = r.stats();
  REQUIRE(s.size() == 12);
  CHECK(s[0] == Approx(1267.0 / 3030.0));  // AP
  CHECK(s[1] == Approx(2.0 / 3.0));        // AP50
  CHECK(s[2] == Approx(25.5 / 101.0));     // AP75
  CHECK(s[3] == Approx(1267.0 / 3030.0));  // APs: everything is small
  CHECK(s[4] == -1.0);                     // APm: no medium ground truth
  CHECK(s[5] == -1.0);                     // APl
  CHECK(s[6] == Approx(0.0));              // AR1
  CHECK(s[7] == Approx(0.7));              // AR10
  CHECK(s[8] == Approx(0.7));              // AR100
  CHECK(s[9] == Approx(0.7));              // ARs
  CHECK(s[10] == -1.0);
  CHECK(s[11] == -1.0);
  const auto per_cat = r.per_category_ap();
  REQUIRE(per_cat.size() == 2);
  CHECK(per_cat[0] == Approx(1267.0 / 3030.0));
  CHECK(per_cat[1] == -1.0);

  // Without the crowd flag C is an object nobody finds, and d4 (IoU 25/400) a false positive.
  auto gts2 = gts;
  gts2[2].iscrowd = false;
  CHECK(coco_evaluate({1, 2}, {1, 2}, gts2, dts, CocoEvalParams()).stats()[0] < s[0] - 0.1);

  // A large false positive d5 (.85, image 2, 100x100): for "all" it ranks between d1 and d2:
  // thresholds .50-.65 give envelope .5 everywhere, .70-.95 give .5 up to recall .5:
  // AP = (4 * .5 + 6 * 25.5/101) / 10 = 355 / 1010. For "small" it is unmatched and outside the
  // area range, so ignored: APs is the AP without it.
  auto dts2 = dts;
  dts2.push_back(dt(2, 1, rect(90, 90, 100, 100), 0.85));
  const auto s2 = coco_evaluate({1, 2}, {1, 2}, gts, dts2, CocoEvalParams()).stats();
  CHECK(s2[0] == Approx(355.0 / 1010.0));
  CHECK(s2[3] == Approx(1267.0 / 3030.0));
  CHECK(s2[5] == -1.0);

  // Only image 1: d0 FP, d1 TP, d3 FP at every threshold -> envelope 1/2 everywhere.
  const auto s3 = coco_evaluate({1}, {1, 2}, gts, dts, CocoEvalParams()).stats();
  CHECK(s3[0] == Approx(0.5));
  CHECK(s3[8] == Approx(1.0));
}

TEST_CASE("proposal AR at 10, 100 and 1000 by size (useCats = 0)", "[eval][coco]") {
  // One image: A small (4x4, category 1), M medium (40x40 = 1600 px, category 2).
  // Proposals (no category): p1 = A (.9), ten false ones (.8 .. .62), p2 over M with IoU
  // 1160/1600 = .725 (.5): matched at IoU .50-.70 (5 thresholds).
  std::vector<CocoGt> gts{gt(1, 1, rect(10, 10, 4, 4)), gt(1, 2, rect(50, 50, 40, 40))};
  std::vector<CocoDt> dts{dt(1, 0, rect(10, 10, 4, 4), 0.9)};
  for (int i = 0; i < 10; ++i)
    dts.push_back(dt(1, 0, rect(120 + 6 * (i % 5), 120 + 6 * (i / 5), 4, 4), 0.8 - 0.02 * i));
  dts.push_back(dt(1, 0, rect(50, 50, 40, 29), 0.5));
  const auto r = coco_evaluate({1}, {1, 2}, gts, dts, CocoEvalParams::proposals());
  // @10: p1 and nine false ones: A at every threshold, M never -> 1/2.
  CHECK(r.summarize(false, -1, "all", 10) == Approx(0.5));
  // @100: M found at 5 of 10 thresholds -> (5 * 1 + 5 * .5) / 10.
  CHECK(r.summarize(false, -1, "all", 100) == Approx(0.75));
  CHECK(r.summarize(false, -1, "all", 1000) == Approx(0.75));
  CHECK(r.summarize(false, -1, "small", 1000) == Approx(1.0));
  CHECK(r.summarize(false, -1, "medium", 1000) == Approx(0.5));
  CHECK(r.summarize(false, -1, "medium", 10) == Approx(0.0));
  CHECK(r.summarize(false, -1, "large", 1000) == -1.0);
}

TEST_CASE("box IoU as maskApi bbIou", "[eval][coco]") {
  // [0,0,4,4] vs [2,1,4,4]: overlap 2 x 3 = 6, union 16 + 16 - 6 = 26.
  CHECK(coco_box_iou({0, 0, 4, 4}, {2, 1, 4, 4}, false) == Approx(6.0 / 26.0));
  // Fractional: [.5,.5,2,3] vs [1.5,0,2,2]: overlap (2.5 - 1.5) x (2 - .5) = 1.5, union
  // 6 + 4 - 1.5 = 8.5; against a crowd box the detection's area 6 divides.
  CHECK(coco_box_iou({0.5, 0.5, 2, 3}, {1.5, 0, 2, 2}, false) == Approx(1.5 / 8.5));
  CHECK(coco_box_iou({0.5, 0.5, 2, 3}, {1.5, 0, 2, 2}, true) == Approx(0.25));
  // Boxes are not clipped to any image: [-2,-2,4,4] vs [0,0,4,4]: 4 / 28.
  CHECK(coco_box_iou({-2, -2, 4, 4}, {0, 0, 4, 4}, false) == Approx(4.0 / 28.0));
  CHECK(coco_box_iou({0, 0, 2, 2}, {2, 0, 2, 2}, false) == 0.0);  // touching
  CHECK(coco_box_iou({1, 1, 0, 3}, {0, 0, 4, 4}, true) == 0.0);   // zero width
  CHECK(coco_box_iou({0, 0, 4, 4}, {0, 0, 4, 4}, false) == 1.0);
}

// Image 1 (200 x 200), category 1: ground truth A = box [10,10,10,10] with stored area 90, crowd
// box C = [50,50,20,20]. Detections: d0 .95 [52,52,5,5] inside C (crowd IoU 25/25 = 1: matched to
// the crowd, ignored), d1 .90 [12,10,10,10] over A (overlap 8 x 10 = 80, union 120: IoU 2/3),
// d2 .80 [100,100,10,10] false.
// IoU .50-.65 (4 thresholds): d1 TP, d2 FP -> recall [1, 1], precision [1, .5], envelope 1 at
// every recall point. IoU .70-.95: no TP -> 0. AP = .4, AP50 = 1, AP75 = 0; AR100 = AR10 = .4;
// AR1 = 0 (only d0, ignored, is kept).
TEST_CASE("COCOeval bbox AP on a toy image", "[eval][coco]") {
  std::vector<CocoGt> gts{{1, 1, Rle{}, 90, false, CocoBox{10, 10, 10, 10}},
                          {1, 1, Rle{}, 400, true, CocoBox{50, 50, 20, 20}}};
  std::vector<CocoDt> dts{coco_box_dt(1, 1, {52, 52, 5, 5}, 0.95),
                          coco_box_dt(1, 1, {12, 10, 10, 10}, 0.90),
                          coco_box_dt(1, 1, {100, 100, 10, 10}, 0.80)};
  CocoEvalParams p;
  p.iou_type = CocoIouType::bbox;
  const auto s = coco_evaluate({1}, {1}, gts, dts, p).stats();
  CHECK(s[0] == Approx(0.4));
  CHECK(s[1] == Approx(1.0));
  CHECK(s[2] == Approx(0.0));
  CHECK(s[3] == Approx(0.4));  // APs: A's stored area 90 is small
  CHECK(s[4] == -1.0);
  CHECK(s[6] == Approx(0.0));  // AR1
  CHECK(s[7] == Approx(0.4));
  CHECK(s[8] == Approx(0.4));

  // The ranges read the annotation's area, not the box's: stored 2000, A is medium.
  auto gts2 = gts;
  gts2[0].area = 2000;
  const auto s2 = coco_evaluate({1}, {1}, gts2, dts, p).stats();
  CHECK(s2[3] == -1.0);
  CHECK(s2[4] == Approx(0.4));

  // Without the crowd flag C is an object nobody finds (2 to find) and d0 (IoU 25/400) a false
  // positive ranked first: at .50-.65 recall [0, .5, .5], precision [0, .5, 1/3], envelope
  // [.5, .5, 1/3] -> .5 at the 51 recall points up to .5 -> AP = 4 * 25.5 / 101 / 10.
  gts2 = gts;
  gts2[1].iscrowd = false;
  CHECK(coco_evaluate({1}, {1}, gts2, dts, p).stats()[0] == Approx(10.2 / 101.0));

  // The same toy set as masks (boxes with integer corners are their pixels) gives the same AP.
  auto box_rle = [](const CocoBox& b) {
    return sam::mask::rle_from_bbox(b[0], b[1], b[2], b[3], kSize, kSize);
  };
  std::vector<CocoGt> mgts;
  for (auto g : gts)
    mgts.push_back({g.image_id, g.category_id, box_rle(*g.bbox), g.area, g.iscrowd});
  std::vector<CocoDt> mdts;
  for (const auto& d : dts) mdts.push_back({d.image_id, d.category_id, box_rle(*d.bbox), d.score});
  CHECK(coco_evaluate({1}, {1}, mgts, mdts, CocoEvalParams()).stats() == s);
}

TEST_CASE("results read as loadRes reads them", "[eval][coco]") {
  const std::map<int64_t, std::array<int64_t, 2>> hw{{1, {20, 30}}};
  // Box results: area w * h, the mask the box's polygon in the image (here cut at its border).
  const auto b = coco_load_results(
      nlohmann::json::parse(R"([{"image_id": 1, "category_id": 3, "bbox": [25.5, 2, 10, 0.5],
                                 "score": 0.7},
                                {"image_id": 1, "category_id": 3, "bbox": [1, 1, 2, 3],
                                 "score": 0.1}])"),
      hw);
  REQUIRE(b.size() == 2);
  CHECK(*b[0].area == 5.0);
  CHECK(*b[0].bbox == CocoBox{25.5, 2, 10, 0.5});
  CHECK(b[0].rle.h == 20);
  CHECK(b[0].rle.w == 30);
  CHECK(*b[1].area == 6.0);
  CHECK(sam::mask::rle_area(b[1].rle) == 6);
  CHECK(b[1].score == 0.1);
  // Mask results: area the pixel count, box toBbox's.
  const Rle m = rect(3, 4, 5, 2);
  nlohmann::json seg = nlohmann::json::array();
  seg.push_back({{"image_id", 1},
                 {"category_id", 3},
                 {"segmentation", sam::mask::rle_to_json(m)},
                 {"score", 0.5}});
  const auto s = coco_load_results(seg, {{1, {kSize, kSize}}});
  REQUIRE(s.size() == 1);
  CHECK(*s[0].area == 10.0);
  CHECK(*s[0].bbox == CocoBox{3, 4, 5, 2});
  // Errors name the result; an image outside the ground truth is one, as loadRes asserts.
  seg.push_back({{"image_id", 2},
                 {"category_id", 3},
                 {"segmentation", sam::mask::rle_to_json(m)},
                 {"score", 0.5}});
  CHECK_THROWS_WITH(coco_load_results(seg, {{1, {kSize, kSize}}}),
                    Catch::Contains("result 1") && Catch::Contains("image 2"));
  CHECK(coco_load_results(nlohmann::json::array(), hw).empty());
}

TEST_CASE("numpy linspace values", "[eval][coco]") {
  const auto t = np_linspace(0.5, 0.95, 10);
  REQUIRE(t.size() == 10);
  CHECK(t[0] == 0.5);
  CHECK(t[9] == 0.95);
  CHECK(t[5] == 0.75);  // pycocotools finds AP75 by exact comparison
  const auto r = np_linspace(0.0, 1.0, 101);
  CHECK(r[50] == 0.5);
  CHECK(r[100] == 1.0);
}
