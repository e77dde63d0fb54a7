// The generator's helper rules (sam/amg/amg_utils.h) on constructed inputs with hand-computed
// answers: point grids and crop boxes (SAM_SPEC section 9 values), stability score, mask boxes,
// the crop-edge test, uncropping, torchvision-exact NMS, and hole/island removal.
#include <catch2/catch.hpp>

#include <opencv2/imgproc.hpp>

#include <cmath>
#include <random>
#include <vector>

#include "data/mask/rle.h"
#include "sam/amg/amg_utils.h"

using namespace sam::amg;
using sam::mask::Rle;

namespace {

cv::Mat mask_from_rows(const std::vector<std::string>& rows) {
  cv::Mat m(static_cast<int>(rows.size()), static_cast<int>(rows[0].size()), CV_8UC1);
  for (int y = 0; y < m.rows; ++y)
    for (int x = 0; x < m.cols; ++x) m.at<uint8_t>(y, x) = rows[y][x] == '#' ? 1 : 0;
  return m;
}

int64_t count(const cv::Mat& m) {
  return cv::countNonZero(m);
}

Rle encode(const cv::Mat& m) {
  return sam::mask::rle_encode(m.data, m.rows, m.cols);
}

}  // namespace

TEST_CASE("build_point_grid: cell centres, x varies fastest", "[amg]") {
  auto g = build_point_grid(4);
  REQUIRE(g.size() == 16);
  const double v[4] = {0.125, 0.375, 0.625, 0.875};
  for (int r = 0; r < 4; ++r)
    for (int c = 0; c < 4; ++c) {
      CHECK(g[r * 4 + c][0] == Approx(v[c]).margin(1e-15));
      CHECK(g[r * 4 + c][1] == Approx(v[r]).margin(1e-15));
    }
  CHECK(g[15][0] == 0.875);  // numpy.linspace sets the last value exactly
  auto one = build_point_grid(1);
  REQUIRE(one.size() == 1);
  CHECK(one[0] == Point{0.5, 0.5});
  CHECK_THROWS_AS(build_point_grid(0), std::invalid_argument);
}

TEST_CASE("build_all_layer_point_grids: points per layer", "[amg]") {
  auto a = build_all_layer_point_grids(32, 2, 2);
  REQUIRE(a.size() == 3);
  CHECK(a[0].size() == 1024);
  CHECK(a[1].size() == 256);
  CHECK(a[2].size() == 64);
  auto b = build_all_layer_point_grids(32, 2, 1);
  REQUIRE(b.size() == 3);
  for (const auto& g : b) CHECK(g.size() == 1024);
  CHECK(build_all_layer_point_grids(16, 1, 2)[1].size() == 64);  // the golden fixture's 8x8
}

TEST_CASE("generate_crop_boxes: SAM_SPEC golden values", "[amg]") {
  auto boxes = generate_crop_boxes(1500, 2250, 2, 512.0 / 1500.0);
  REQUIRE(boxes.size() == 21);
  CHECK(boxes[0] == CropBox{0, 0, 2250, 1500, 0});
  CHECK(boxes[1] == CropBox{0, 0, 1381, 1006, 1});
  CHECK(boxes[2] == CropBox{0, 494, 1381, 1500, 1});
  CHECK(boxes[3] == CropBox{869, 0, 2250, 1006, 1});
  CHECK(boxes[4] == CropBox{869, 494, 2250, 1500, 1});
  CHECK(boxes[5] == CropBox{0, 0, 755, 567, 2});
  CHECK(boxes[20] == CropBox{1497, 933, 2250, 1500, 2});
  // Layer 2: x outer, y inner.
  const int64_t x0s[4] = {0, 499, 998, 1497}, y0s[4] = {0, 311, 622, 933};
  for (int i = 0; i < 4; ++i)
    for (int j = 0; j < 4; ++j) {
      const auto& b = boxes[5 + i * 4 + j];
      CHECK(b.x0 == x0s[i]);
      CHECK(b.y0 == y0s[j]);
      CHECK(b.x1 == std::min<int64_t>(x0s[i] + 755, 2250));
      CHECK(b.y1 == std::min<int64_t>(y0s[j] + 567, 1500));
    }
  // The golden image (480 x 640, one layer): overlap int(0.3413 * 480) = 163, crops 402 x 322.
  auto g = generate_crop_boxes(480, 640, 1, 0.3413333333333333);
  REQUIRE(g.size() == 5);
  CHECK(g[1] == CropBox{0, 0, 402, 322, 1});
  CHECK(g[2] == CropBox{0, 159, 402, 480, 1});
  CHECK(g[3] == CropBox{239, 0, 640, 322, 1});
  CHECK(g[4] == CropBox{239, 159, 640, 480, 1});
  CHECK(generate_crop_boxes(480, 640, 0, 0.5).size() == 1);
}

TEST_CASE("calculate_stability_score: counts above thr+off over counts above thr-off", "[amg]") {
  auto logits = torch::tensor({-2.0f, -0.5f, 0.5f, 1.5f, 2.0f, 3.0f, -1.5f, 0.0f}).view({1, 2, 4});
  auto s = calculate_stability_score(logits, 0.0, 1.0);
  REQUIRE(s.sizes() == torch::IntArrayRef{1});
  CHECK(s.item<float>() == 0.5f);  // 3 / 6
  // Strict comparisons: a logit equal to the upper cutoff does not count.
  auto edge = torch::tensor({1.0f, 1.0f, -0.9f, 2.0f}).view({1, 2, 2});
  CHECK(calculate_stability_score(edge, 0.0, 1.0).item<float>() == 0.25f);
  // No pixel above thr - off: 0 / 0 is NaN, as in the reference (which has no guard).
  auto empty = torch::full({1, 3, 3}, -5.0f);
  CHECK(std::isnan(calculate_stability_score(empty, 0.0, 1.0).item<float>()));
}

TEST_CASE("mask_to_box: inclusive maxima, empty masks give zeros", "[amg]") {
  auto m = torch::tensor({0, 1, 1, 0, 1, 0}, torch::kBool).view({1, 2, 3});
  auto b = batched_mask_to_box(m);
  REQUIRE(b.sizes() == torch::IntArrayRef({1, 4}));
  CHECK(b[0][0].item<int64_t>() == 1);
  CHECK(b[0][1].item<int64_t>() == 0);
  CHECK(b[0][2].item<int64_t>() == 2);
  CHECK(b[0][3].item<int64_t>() == 1);
  auto both = torch::zeros({2, 1, 4, 5}, torch::kBool);
  both[1][0][3][4] = true;
  both[1][0][1][2] = true;
  auto bb = batched_mask_to_box(both);
  REQUIRE(bb.sizes() == torch::IntArrayRef({2, 1, 4}));
  CHECK(bb[0][0].sum().item<int64_t>() == 0);
  CHECK(bb[1][0][0].item<int64_t>() == 2);
  CHECK(bb[1][0][1].item<int64_t>() == 1);
  CHECK(bb[1][0][2].item<int64_t>() == 4);
  CHECK(bb[1][0][3].item<int64_t>() == 3);
  const uint8_t single[6] = {0, 0, 0, 0, 0, 1};
  CHECK(mask_to_box(single, 2, 3) == BoxI{2, 1, 2, 1});
}

TEST_CASE("is_box_near_crop_edge: crop edges that are not image edges", "[amg]") {
  const CropBox crop{0, 0, 1000, 1000, 1};
  CHECK(is_box_near_crop_edge({10, 500, 990, 800}, crop, 2250, 1500));
  CHECK_FALSE(is_box_near_crop_edge({0, 0, 100, 100}, crop, 2250, 1500));
  CHECK_FALSE(is_box_near_crop_edge({10, 500, 2240, 800}, crop, 2250, 1500));
  // Boxes are uncropped first; |a - b| <= 20 counts as near.
  const CropBox c2{100, 100, 500, 500, 1};
  CHECK(is_box_near_crop_edge({20, 50, 100, 100}, c2, 1000, 1000));        // x0 120 vs 100
  CHECK_FALSE(is_box_near_crop_edge({21, 50, 100, 100}, c2, 1000, 1000));  // 21 px away
  CHECK(is_box_near_crop_edge({50, 50, 100, 380}, c2, 1000, 1000));        // y1 480 vs 500
  // Golden-image crop at the bottom right: its right/bottom edges are the image's.
  const CropBox c3{239, 159, 640, 480, 1};
  CHECK_FALSE(is_box_near_crop_edge({30, 30, 390, 310}, c3, 640, 480));
  CHECK(is_box_near_crop_edge({0, 50, 100, 200}, c3, 640, 480));
  // The whole-image crop never drops anything.
  CHECK_FALSE(is_box_near_crop_edge({0, 0, 639, 479}, CropBox{0, 0, 640, 480, 0}, 640, 480));
}

TEST_CASE("uncrop: boxes, points and RLEs move into the image frame", "[amg]") {
  const CropBox crop{2, 1, 5, 3, 1};  // 3 wide, 2 high in a 4 x 6 image
  CHECK(uncrop_box({0, 0, 2, 1}, crop) == BoxI{2, 1, 4, 2});
  CHECK(uncrop_point({0.5, 1.25}, crop) == Point{2.5, 2.25});
  cv::Mat small = mask_from_rows({"#.#", "##."});
  cv::Mat full = cv::Mat::zeros(4, 6, CV_8UC1);
  small.copyTo(full(cv::Rect(2, 1, 3, 2)));
  Rle got = uncrop_rle(encode(small), crop, 4, 6);
  Rle want = encode(full);
  CHECK(got.h == 4);
  CHECK(got.w == 6);
  CHECK(got.counts == want.counts);
  // Pixel (0, 0) of the crop set on a crop at the origin: the RLE starts with a 0-run of 0.
  cv::Mat corner = mask_from_rows({"#.", ".."});
  CHECK(uncrop_rle(encode(corner), CropBox{0, 0, 2, 2, 1}, 3, 3).counts ==
        std::vector<uint32_t>{0, 1, 8});
}

TEST_CASE("batched_nms: greedy by score, torchvision IoU without +1, strict threshold", "[amg]") {
  // IoU([0,0,10,10], [1,1,11,11]) = 81 / 119 = 0.68.
  std::vector<BoxF> b = {{0, 0, 10, 10}, {1, 1, 11, 11}};
  CHECK(batched_nms(b, {0.9f, 0.8f}, 0.7) == std::vector<int64_t>{0, 1});
  CHECK(batched_nms(b, {0.9f, 0.8f}, 0.6) == std::vector<int64_t>{0});
  CHECK(batched_nms(b, {0.8f, 0.9f}, 0.6) == std::vector<int64_t>{1});
  // IoU exactly 0.5 (inter 2, union 4) is not above 0.5.
  std::vector<BoxF> half = {{0, 0, 4, 1}, {0, 0, 2, 1}};
  CHECK(batched_nms(half, {0.5f, 0.7f}, 0.5) == std::vector<int64_t>{1, 0});
  CHECK(batched_nms(half, {0.5f, 0.7f}, 0.49) == std::vector<int64_t>{1});
  // A suppressed box suppresses nothing: A hits B, B would hit C, A and C are disjoint.
  std::vector<BoxF> chain = {{0, 0, 10, 10}, {2, 0, 12, 10}, {4, 0, 14, 10}};  // 0.67, 0.67, 0.43
  CHECK(batched_nms(chain, {0.9f, 0.8f, 0.7f}, 0.5) == std::vector<int64_t>{0, 2});
  // Output is in score order, not index order.
  std::vector<BoxF> far = {{0, 0, 1, 1}, {10, 10, 11, 11}, {20, 20, 21, 21}};
  CHECK(batched_nms(far, {0.1f, 0.3f, 0.2f}, 0.5) == std::vector<int64_t>{1, 2, 0});
  // Single-pixel masks give zero-area boxes (inclusive x0 == x1): 0/0 IoU never suppresses.
  std::vector<BoxF> dots = {{5, 5, 5, 5}, {5, 5, 5, 5}};
  CHECK(batched_nms(dots, {0.9f, 0.8f}, 0.0).size() == 2);
  // Equal scores (the across-crop NMS uses 1/area(crop), equal for a whole crop): the first in
  // the input wins here, as torch's CPU sort keeps small tied inputs in order.
  std::vector<BoxF> same = {{0, 0, 10, 10}, {0, 0, 10, 10}, {0, 0, 10, 10}};
  CHECK(batched_nms(same, {0.5f, 0.5f, 0.5f}, 0.7) == std::vector<int64_t>{0});
  CHECK(batched_nms({}, {}, 0.7).empty());
  CHECK_THROWS_AS(batched_nms(b, {0.5f}, 0.7), std::invalid_argument);
}

TEST_CASE("batched_nms: more than 1000 boxes take torchvision's per-class path", "[amg]") {
  // 1200 disjoint boxes: all kept, ordered by descending score either way.
  std::vector<BoxF> boxes;
  std::vector<float> scores;
  for (int i = 0; i < 1200; ++i) {
    boxes.push_back({static_cast<float>(3 * i), 0, static_cast<float>(3 * i + 2), 2});
    scores.push_back(static_cast<float>((i * 7919) % 1200) / 1200.0f);
  }
  auto keep = batched_nms(boxes, scores, 0.5);
  REQUIRE(keep.size() == 1200);
  for (size_t i = 1; i < keep.size(); ++i) CHECK(scores[keep[i - 1]] >= scores[keep[i]]);
  // A duplicate of box 0 with a lower score is suppressed.
  boxes.push_back(boxes[0]);
  scores.push_back(scores[0] - 1e-4f);
  keep = batched_nms(boxes, scores, 0.5);
  CHECK(keep.size() == 1200);
  CHECK(std::find(keep.begin(), keep.end(), 1200) == keep.end());
}

TEST_CASE("remove_small_regions: holes, islands, and the largest-island rule", "[amg]") {
  cv::Mat m = mask_from_rows({
      "..........",
      ".######...",
      ".######...",
      ".##..##...",  // a 2x2 hole (area 4)
      ".##..##...",
      ".######...",
      ".######...",
      "..........",
      "........##",  // an island of 2
      "..........",
  });
  auto [filled, ch] = remove_small_regions(m, 5, RegionMode::kHoles);
  CHECK(ch);
  CHECK(count(filled) == count(m) + 4);
  CHECK(filled.at<uint8_t>(3, 3) == 1);
  auto [clean, ci] = remove_small_regions(filled, 5, RegionMode::kIslands);
  CHECK(ci);
  CHECK(count(clean) == 36);  // the filled 6x6 square
  CHECK(clean.at<uint8_t>(8, 9) == 0);
  // Nothing below the threshold: unchanged and flagged so.
  auto [same, cs] = remove_small_regions(m, 2, RegionMode::kIslands);
  CHECK_FALSE(cs);
  CHECK(count(same) == count(m));
  auto [same2, cs2] = remove_small_regions(m, 4, RegionMode::kHoles);  // hole area 4 is not < 4
  CHECK_FALSE(cs2);
  CHECK(count(same2) == count(m));

  // All islands small: the largest one stays.
  cv::Mat two = mask_from_rows({"##....", "#.....", "......", "...###", "...#..", "......"});
  auto [kept, ck] = remove_small_regions(two, 10, RegionMode::kIslands);
  CHECK(ck);
  CHECK(count(kept) == 4);
  CHECK(kept.at<uint8_t>(3, 3) == 1);
  CHECK(kept.at<uint8_t>(0, 0) == 0);

  // 8-connectivity: a diagonal pair is one island of 2, which survives a threshold of 2.
  cv::Mat diag = mask_from_rows({"#....", ".#...", ".....", "..###", "..###"});
  auto [d, cd] = remove_small_regions(diag, 2, RegionMode::kIslands);
  CHECK_FALSE(cd);
  CHECK(count(d) == 8);

  // The background outside the mask is a "hole" too when it is small (the reference's rule).
  cv::Mat nearly = cv::Mat::ones(6, 6, CV_8UC1);
  nearly.at<uint8_t>(0, 0) = nearly.at<uint8_t>(0, 1) = nearly.at<uint8_t>(1, 0) = 0;
  auto [full, cf] = remove_small_regions(nearly, 4, RegionMode::kHoles);
  CHECK(cf);
  CHECK(count(full) == 36);
}

TEST_CASE("clean_small_regions: windowed result equals the whole-image rule", "[amg]") {
  std::mt19937 rng(7);
  int changed = 0, compared = 0;
  for (int t = 0; t < 300; ++t) {
    const int H = 20 + static_cast<int>(rng() % 60), W = 20 + static_cast<int>(rng() % 60);
    cv::Mat m = cv::Mat::zeros(H, W, CV_8UC1);
    // Random rectangles and single pixels; some masks touch the border or fill most of it.
    const int n = 1 + static_cast<int>(rng() % 6);
    for (int k = 0; k < n; ++k) {
      const int x = static_cast<int>(rng() % W), y = static_cast<int>(rng() % H);
      const int w = 1 + static_cast<int>(rng() % (t % 5 == 0 ? W : W / 3 + 1));
      const int h = 1 + static_cast<int>(rng() % (t % 5 == 0 ? H : H / 3 + 1));
      cv::rectangle(m, cv::Rect(x, y, w, h), 1, rng() % 3 == 0 ? 1 : cv::FILLED);
    }
    for (int k = 0; k < 6; ++k) m.at<uint8_t>(rng() % H, rng() % W) ^= 1;
    const double thr = 1 + rng() % 40;
    auto [h1, c1] = remove_small_regions(m, thr, RegionMode::kHoles);
    auto [i1, c2] = remove_small_regions(h1, thr, RegionMode::kIslands);
    const CleanResult r = clean_small_regions(encode(m), thr);
    INFO("case " << t << " size " << H << "x" << W << " thr " << thr);
    REQUIRE(r.changed == (c1 || c2));
    ++compared;
    if (r.changed) {
      ++changed;
      CHECK(r.rle.counts == encode(i1).counts);
      CHECK(r.box == mask_to_box(i1.data, H, W));
    }
  }
  CHECK(compared == 300);
  CHECK(changed > 100);  // the cases exercise the rule, not only the no-change path
}
