// The BSDS boundary benchmark on constructed maps with known answers: MATLAB's thinning (the
// documented bwmorph 'thin' example), matching within / outside the tolerance, a case where a
// greedy matching is not maximal, precision over several human maps, and the ODS / OIS / AP /
// R50 formulas on hand-made counts.
#include <catch2/catch.hpp>

#include <cmath>

#include "eval/bsds.h"

using namespace sam::eval;

namespace {

cv::Mat from_rows(const std::vector<std::vector<int>>& rows) {
  cv::Mat m(static_cast<int>(rows.size()), static_cast<int>(rows[0].size()), CV_8UC1);
  for (int y = 0; y < m.rows; ++y)
    for (int x = 0; x < m.cols; ++x) m.at<uint8_t>(y, x) = static_cast<uint8_t>(rows[y][x]);
  return m;
}

cv::Mat vline(int size, int x, int y0, int y1, uint8_t v = 1) {
  cv::Mat m = cv::Mat::zeros(size, size, CV_8UC1);
  for (int y = y0; y <= y1; ++y) m.at<uint8_t>(y, x) = v;
  return m;
}

}  // namespace

TEST_CASE("thinning matches MATLAB bwmorph thin on its documented example", "[eval][bsds]") {
  // The example of scikit-image's thin(), which reproduces bwmorph(..., 'thin', Inf).
  const cv::Mat in = from_rows({{0, 1, 0, 0, 0, 0, 0},
                                {0, 0, 1, 1, 1, 0, 0},
                                {0, 0, 1, 1, 1, 0, 0},
                                {0, 0, 1, 1, 1, 0, 0},
                                {0, 0, 1, 1, 1, 0, 0},
                                {0, 0, 1, 1, 1, 0, 0},
                                {0, 0, 0, 0, 0, 0, 0}});
  const cv::Mat want = from_rows({{0, 1, 0, 0, 0, 0, 0},
                                  {0, 0, 1, 0, 0, 0, 0},
                                  {0, 0, 0, 1, 0, 0, 0},
                                  {0, 0, 0, 1, 0, 0, 0},
                                  {0, 0, 0, 1, 0, 0, 0},
                                  {0, 0, 0, 0, 0, 0, 0},
                                  {0, 0, 0, 0, 0, 0, 0}});
  const cv::Mat got = thin_binary(in);
  CHECK(cv::countNonZero(got != want) == 0);
  // A one-pixel line is already thin.
  const cv::Mat line = vline(20, 5, 2, 17);
  CHECK(cv::countNonZero(thin_binary(line) != line) == 0);
  // A 3-pixel-wide bar thins to a single-pixel line along its middle.
  cv::Mat bar = cv::Mat::zeros(20, 30, CV_8UC1);
  bar(cv::Rect(3, 9, 24, 3)).setTo(1);
  const cv::Mat t = thin_binary(bar);
  for (int x = 0; x < 30; ++x) CHECK(cv::countNonZero(t.col(x)) <= 1);
  CHECK(cv::countNonZero(t.row(10)) >= 20);
}

TEST_CASE("matching: a shifted line within and outside the tolerance", "[eval][bsds]") {
  const cv::Mat gt = vline(40, 10, 0, 19);
  CHECK(match_boundaries(vline(40, 12, 0, 19), gt, 2.0).matches == 20);  // 2 px <= 2
  CHECK(match_boundaries(vline(40, 12, 0, 19), gt, 1.99).matches == 0);  // 2 px > 1.99
  CHECK(match_boundaries(vline(40, 13, 0, 19), gt, 2.5).matches == 0);
  // Diagonal neighbours are sqrt(2) away.
  cv::Mat p = cv::Mat::zeros(40, 40, CV_8UC1), g = p.clone();
  p.at<uint8_t>(5, 5) = 1;
  g.at<uint8_t>(6, 6) = 1;
  CHECK(match_boundaries(p, g, 1.5).matches == 1);
  CHECK(match_boundaries(p, g, 1.4).matches == 0);
  // One-to-one: two predicted pixels next to one human pixel give one match.
  p.at<uint8_t>(6, 7) = 1;
  const auto m = match_boundaries(p, g, 1.5);
  CHECK(m.matches == 1);
  CHECK(cv::countNonZero(m.pred_matched) == 1);
  CHECK(cv::countNonZero(m.gt_matched) == 1);
}

TEST_CASE("matching is maximum-cardinality where greedy nearest-first is not", "[eval][bsds]") {
  // Predicted p1 (5,5), p2 (6,6); human g1 (6,5), g2 (7,7). Greedy at distance 1 gives p2-g1
  // first (offset (0,-1) comes first), leaving p1 and g2 apart; the augmenting path
  // p1-g1-p2-g2 gives the maximum, 2.
  cv::Mat p = cv::Mat::zeros(12, 12, CV_8UC1), g = p.clone();
  p.at<uint8_t>(5, 5) = 1;
  p.at<uint8_t>(6, 6) = 1;
  g.at<uint8_t>(5, 6) = 1;
  g.at<uint8_t>(7, 7) = 1;
  const auto m = match_boundaries(p, g, 1.5);
  CHECK(m.matches == 2);
  // A long chain of such pairs (augmenting paths of many steps).
  cv::Mat p2 = cv::Mat::zeros(300, 300, CV_8UC1), g2 = p2.clone();
  for (int i = 0; i < 280; ++i) {
    p2.at<uint8_t>(i, i) = 1;
    g2.at<uint8_t>(i, i + 1) = 1;
  }
  CHECK(match_boundaries(p2, g2, 1.0).matches == 280);
}

TEST_CASE("per-image counts: tolerance of the diagonal, several human maps", "[eval][bsds]") {
  // 200 x 200: tolerance 0.0075 * 282.8 = 2.12 px.
  const cv::Mat gt = vline(200, 100, 20, 179, 255);
  BsdsOptions o;
  for (int shift : {2, 3}) {
    cv::Mat e;
    vline(200, 100 + shift, 20, 179).convertTo(e, CV_32F, 0.8);
    const auto c = evaluate_boundary_image(e, {gt}, o);
    REQUIRE(c.cnt_r.size() == 99);
    // Threshold 0.80 (index 79) keeps the line, 0.81 drops it.
    const int64_t expect = shift == 2 ? 160 : 0;
    CHECK(c.cnt_r[79] == expect);
    CHECK(c.cnt_p[79] == expect);
    CHECK(c.sum_p[79] == 160);
    CHECK(c.sum_r[79] == 160);
    CHECK(c.sum_p[80] == 0);
    CHECK(c.cnt_r[80] == 0);
  }
  // Two human maps (lines at x = 100 and 150); the prediction has their lines shifted by one pixel
  // plus a false line at x = 50, all at 0.6. Recall over both maps: 320 / 320; precision: the
  // union of the matches, 320 of 480.
  const cv::Mat gt2 = vline(200, 150, 20, 179, 255);
  cv::Mat pred = vline(200, 101, 20, 179) | vline(200, 151, 20, 179) | vline(200, 50, 20, 179);
  cv::Mat e;
  pred.convertTo(e, CV_32F, 0.6);
  const auto c = evaluate_boundary_image(e, {gt, gt2}, o);
  CHECK(c.cnt_r[0] == 320);
  CHECK(c.sum_r[0] == 320);
  CHECK(c.cnt_p[0] == 320);
  CHECK(c.sum_p[0] == 480);
  CHECK(c.sum_p[60] == 0);  // threshold 0.61
  const auto s = summarize_boundaries(bsds_thresholds(99), {c});
  CHECK(s.ods_f == Approx(0.8));  // P = 2/3, R = 1
  CHECK(s.ois_f == Approx(0.8));
  // Recalls {1 (P 2/3 at the first threshold), 0 (P 0)}: P(r) = 2r/3 at r = 0, .01, ..., 1:
  // 0.01 * (2/3) * 50.5.
  CHECK(s.ap == Approx(0.01 * (2.0 / 3.0) * 50.5));
  CHECK(s.r50 == Approx(1.0));
  CHECK_THROWS_AS(evaluate_boundary_image(e, {cv::Mat::zeros(10, 10, CV_8UC1)}, o),
                  std::invalid_argument);
}

TEST_CASE("ODS, OIS, AP and R50 from hand-made counts", "[eval][bsds]") {
  const std::vector<double> t{0.3, 0.6};
  // Image A is best at the first threshold, image B at the second.
  BoundaryCounts a{{10, 5}, {10, 10}, {10, 10}, {10, 10}};  // R 1, .5; P 1, 1
  BoundaryCounts b{{10, 10}, {10, 10}, {1, 10}, {10, 10}};  // R 1, 1; P .1, 1
  const auto s = summarize_boundaries(t, {a, b});
  CHECK(s.recall[0] == Approx(1.0));
  CHECK(s.precision[0] == Approx(11.0 / 20.0));
  CHECK(s.recall[1] == Approx(0.75));
  CHECK(s.precision[1] == Approx(1.0));
  CHECK(s.ods_f == Approx(2 * 0.75 / 1.75));  // the end of the segment is its best point
  CHECK(s.ods_t == Approx(0.6));
  CHECK(s.ois_f == Approx(1.0));  // A at 0.3 and B at 0.6 pooled: 20/20 and 20/20
  CHECK(s.image_best_f[0] == Approx(1.0));

  // Interpolated ODS between two thresholds with F = 2/3 each: the middle reaches ~0.75.
  BoundaryCounts c{{10, 5}, {10, 10}, {5, 10}, {10, 10}};  // (R 1, P .5), (R .5, P 1)
  const auto s2 = summarize_boundaries(t, {c});
  CHECK(s2.f[0] == Approx(2.0 / 3.0));
  CHECK(s2.ods_f == Approx(0.75).margin(1e-3));
  CHECK(s2.ods_f > 0.7499);
  // AP: recalls {.5 (P 1), 1 (P .5)} -> P(r) = 1.5 - r on [.5, 1], 0 below .5:
  // 0.01 * sum_{k=50..100} (1.5 - k/100) = 0.01 * (51 * 1.5 - 38.25).
  CHECK(s2.ap == Approx(0.01 * (51 * 1.5 - 38.25)));

  // R50: precision crosses 0.5 halfway between (R 1, P .4) and (R .5, P .6) -> 0.75.
  BoundaryCounts d{{10, 5}, {10, 10}, {4, 6}, {10, 10}};
  CHECK(summarize_boundaries(t, {d}).r50 == Approx(0.75));
  // Never 50% precise: 0.
  BoundaryCounts e{{10, 5}, {10, 10}, {1, 1}, {10, 10}};
  CHECK(summarize_boundaries(t, {e}).r50 == 0.0);
  CHECK(bsds_thresholds(99)[0] == Approx(0.01));
  CHECK(bsds_thresholds(99)[98] == Approx(0.99));
}
