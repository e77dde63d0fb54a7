// The point-prompt protocol on constructed masks with hand-computed answers, driven by fake
// models: IoU with ignore pixels, click placement (centre of a rectangle, padding at the image
// border, the larger error region, ignore pixels), a perfect predictor (1.0 / NoC 1), a shifted
// mask, feedback of the chosen mask's logits, NoC, and the random first click.
#include <catch2/catch.hpp>

#include <opencv2/imgproc.hpp>

#include <set>

#include "eval/points.h"

using namespace sam::eval;

namespace {

cv::Mat rect_mask(int w, int h, int x0, int y0, int rw, int rh) {
  cv::Mat m = cv::Mat::zeros(h, w, CV_8UC1);
  m(cv::Rect(x0, y0, rw, rh)).setTo(1);
  return m;
}

// A model answering with fixed masks; records the calls.
struct Fake {
  std::vector<std::vector<cv::Mat>> answers;  // per call
  std::vector<std::vector<double>> scores;    // per call (multimask calls)
  std::vector<std::vector<Click>> seen_clicks;
  std::vector<torch::Tensor> seen_feedback;
  std::vector<bool> seen_multimask;
  ClickModel model() {
    return [this](const std::vector<Click>& c, const torch::Tensor& fb, bool multi) {
      const size_t call = seen_clicks.size();
      seen_clicks.push_back(c);
      seen_feedback.push_back(fb);
      seen_multimask.push_back(multi);
      const auto& masks = answers[std::min(call, answers.size() - 1)];
      ClickAnswer a;
      for (size_t k = 0; k < masks.size(); ++k) {
        a.masks.push_back(masks[k]);
        a.scores.push_back(call < scores.size() && k < scores[call].size() ? scores[call][k] : 0.5);
        // Feedback identifies (call, mask): 100 * call + k.
        a.feedback.push_back(torch::full({1}, static_cast<double>(100 * call + k)));
      }
      return a;
    };
  }
};

}  // namespace

TEST_CASE("masked IoU: shifted square and ignore pixels", "[eval][points]") {
  const cv::Mat gt = rect_mask(40, 40, 10, 10, 10, 10);
  const cv::Mat shifted = rect_mask(40, 40, 12, 10, 10, 10);
  // intersection 8 x 10 = 80, union 100 + 100 - 80 = 120.
  CHECK(masked_iou(shifted, gt, cv::Mat()) == Approx(80.0 / 120.0));
  // Ignoring columns 20..21 (the two predicted-only columns) leaves 80 / 100.
  const cv::Mat ignore = rect_mask(40, 40, 20, 0, 2, 40);
  CHECK(masked_iou(shifted, gt, ignore) == Approx(0.8));
  // Ignoring everything: an empty union counts as a perfect answer.
  CHECK(masked_iou(shifted, gt, cv::Mat::ones(40, 40, CV_8UC1)) == 1.0);
  CHECK(masked_iou(gt, gt, cv::Mat()) == 1.0);
  CHECK(masked_iou(cv::Mat::zeros(40, 40, CV_8UC1), gt, cv::Mat()) == 0.0);
}

TEST_CASE("first click: the distance-transform maximum, ties row-major", "[eval][points]") {
  // An odd square has one centre: (14, 14), 5 px from the background.
  auto d = distance_max(rect_mask(30, 30, 10, 10, 9, 9));
  CHECK(d.x == 14);
  CHECK(d.y == 14);
  CHECK(d.dist == Approx(5.0f));
  // A 10 x 6 rectangle at (5, 3): rows 5 and 6 and columns 7..12 are all 3 px from the
  // background; the first in row-major order is (7, 5).
  d = distance_max(rect_mask(30, 20, 5, 3, 10, 6));
  CHECK(d.x == 7);
  CHECK(d.y == 5);
  CHECK(d.dist == Approx(3.0f));
  // Touching the image corner: the padding makes the border background, so the maximum is the
  // centre (4, 4) (distance 5), not the corner.
  d = distance_max(rect_mask(20, 20, 0, 0, 10, 10));
  CHECK(d.x == 4);
  CHECK(d.y == 4);
  CHECK(d.dist == Approx(5.0f));
  // Excluded (already clicked) pixels are skipped: the next maximum of the odd square.
  cv::Mat ex = cv::Mat::zeros(30, 30, CV_8UC1);
  ex.at<uint8_t>(14, 14) = 1;
  d = distance_max(rect_mask(30, 30, 10, 10, 9, 9), ex);
  CHECK(d.dist == Approx(4.0f));
  CHECK(d.y == 13);  // (13, 13) is the first 4-px pixel in row-major order
  CHECK(d.x == 13);
  CHECK(distance_max(cv::Mat::zeros(5, 5, CV_8UC1)).x == -1);
}

TEST_CASE("next click: in the larger error region, ignore excluded", "[eval][points]") {
  const cv::Mat gt = rect_mask(60, 60, 10, 10, 30, 30);
  // Prediction misses a 7x7 block of the object (FN) and adds a 3x3 block outside (FP).
  cv::Mat pred = gt.clone();
  pred(cv::Rect(20, 20, 7, 7)).setTo(0);
  pred(cv::Rect(50, 50, 3, 3)).setTo(1);
  auto c = next_click(gt, pred, cv::Mat(), cv::Mat());
  REQUIRE(c);
  CHECK(c->positive);
  CHECK(c->x == 23);  // centre of the 7x7 hole
  CHECK(c->y == 23);
  // Swap the sizes: a 3x3 hole and a 7x7 false region -> a negative click at its centre.
  pred = gt.clone();
  pred(cv::Rect(20, 20, 3, 3)).setTo(0);
  pred(cv::Rect(45, 45, 7, 7)).setTo(1);
  c = next_click(gt, pred, cv::Mat(), cv::Mat());
  REQUIRE(c);
  CHECK_FALSE(c->positive);
  CHECK(c->x == 48);
  CHECK(c->y == 48);
  // Equal maxima go negative, as RITM (fn_max > fp_max is required for a positive click).
  pred = gt.clone();
  pred(cv::Rect(20, 20, 3, 3)).setTo(0);
  pred(cv::Rect(50, 50, 3, 3)).setTo(1);
  c = next_click(gt, pred, cv::Mat(), cv::Mat());
  REQUIRE(c);
  CHECK_FALSE(c->positive);
  // Ignoring the large false region: the click goes to the hole.
  pred = gt.clone();
  pred(cv::Rect(20, 20, 3, 3)).setTo(0);
  pred(cv::Rect(45, 45, 7, 7)).setTo(1);
  c = next_click(gt, pred, rect_mask(60, 60, 44, 44, 9, 9), cv::Mat());
  REQUIRE(c);
  CHECK(c->positive);
  CHECK(c->x == 21);
  CHECK(c->y == 21);
  // Nothing wrong: no click.
  CHECK_FALSE(next_click(gt, gt, cv::Mat(), cv::Mat()));
}

TEST_CASE("a perfect predictor scores 1.0 with NoC 1", "[eval][points]") {
  const cv::Mat gt = rect_mask(50, 40, 8, 6, 20, 15);
  Fake f;
  f.answers = {{cv::Mat::zeros(40, 50, CV_8UC1), gt, rect_mask(50, 40, 0, 0, 5, 5)}};
  f.scores = {{0.1, 0.9, 0.3}};
  PointsOptions o;
  o.clicks = 5;
  const auto s = evaluate_object(gt, cv::Mat(), f.model(), o, 0);
  CHECK(s.iou_1click == 1.0);
  CHECK(s.iou_1click_oracle == 1.0);
  CHECK(s.noc85 == 1);
  CHECK(s.noc90 == 1);
  REQUIRE(s.iou_per_click.size() == 5);
  for (double v : s.iou_per_click) CHECK(v == 1.0);
  CHECK(f.seen_clicks.size() == 1);  // nothing left to correct after the first click
  // The first click is the object's centre: 20 x 15 at (8, 6) -> first maximum (15, 13).
  CHECK(f.seen_clicks[0][0].x == 15);
  CHECK(f.seen_clicks[0][0].y == 13);
  CHECK(f.seen_clicks[0][0].positive);
  CHECK(f.seen_multimask[0]);
  CHECK_FALSE(f.seen_feedback[0].defined());

  auto r = summarize_points({s, s}, 5);
  CHECK(r.n == 2);
  CHECK(r.miou_1click == 1.0);
  CHECK(r.noc90 == 1.0);
  CHECK(r.miou_at_k == std::vector<double>(5, 1.0));
}

TEST_CASE("a shifted mask: hand-computed IoU, oracle, feedback and NoC", "[eval][points]") {
  const cv::Mat gt = rect_mask(40, 40, 10, 10, 10, 10);
  const cv::Mat shifted = rect_mask(40, 40, 12, 10, 10, 10);  // IoU 80 / 120
  Fake f;
  // Click 1: the shifted mask is top-ranked, the true one is second; later clicks: shifted,
  // then the truth.
  f.answers = {{shifted, gt, cv::Mat::zeros(40, 40, CV_8UC1)}, {shifted}, {gt}};
  f.scores = {{0.8, 0.7, 0.1}};
  PointsOptions o;
  o.clicks = 4;
  const auto s = evaluate_object(gt, cv::Mat(), f.model(), o, 0);
  CHECK(s.iou_1click == Approx(2.0 / 3.0));
  CHECK(s.iou_1click_oracle == 1.0);
  REQUIRE(s.iou_per_click.size() == 4);
  CHECK(s.iou_per_click[1] == Approx(2.0 / 3.0));
  CHECK(s.iou_per_click[2] == 1.0);
  CHECK(s.iou_per_click[3] == 1.0);
  CHECK(s.noc85 == 3);
  CHECK(s.noc90 == 3);
  REQUIRE(f.seen_clicks.size() == 3);
  // Click 2: the false region (columns 20..21, 2 px wide: DT max 1) is larger than the missed one
  // (columns 10..11, also 2 px wide): equal maxima -> negative, at the first maximum (20, 10).
  CHECK_FALSE(f.seen_clicks[1][1].positive);
  CHECK(f.seen_clicks[1][1].x == 20);
  CHECK(f.seen_clicks[1][1].y == 10);
  CHECK(f.seen_clicks[1].size() == 2);
  // Single-mask output after the first click, fed back the chosen mask's state.
  CHECK_FALSE(f.seen_multimask[1]);
  CHECK(f.seen_feedback[1].item<double>() == 0.0);    // call 0, mask 0 (top-ranked)
  CHECK(f.seen_feedback[2].item<double>() == 100.0);  // call 1, mask 0
  // The third click may not repeat a clicked pixel.
  CHECK((f.seen_clicks[2][2].x != 20 || f.seen_clicks[2][2].y != 10));
}

TEST_CASE("NoC: first click reaching the IoU, else N", "[eval][points]") {
  CHECK(number_of_clicks({0.5, 0.86, 0.91}, 0.85) == 2);
  CHECK(number_of_clicks({0.5, 0.86, 0.91}, 0.90) == 3);
  CHECK(number_of_clicks({0.5, 0.6, 0.7, 0.8}, 0.85) == 4);
  CHECK(number_of_clicks({0.85}, 0.85) == 1);
  PointsSample a, b;
  a.iou_1click = 0.5, a.iou_1click_oracle = 0.7, a.noc85 = 3, a.noc90 = 5;
  a.iou_per_click = {0.5, 0.7};
  b.iou_1click = 0.9, b.iou_1click_oracle = 0.9, b.noc85 = 1, b.noc90 = 1;
  b.iou_per_click = {0.9, 0.95};
  const auto r = summarize_points({a, b}, 2);
  CHECK(r.miou_1click == Approx(0.7));
  CHECK(r.miou_1click_oracle == Approx(0.8));
  CHECK(r.noc85 == Approx(2.0));
  CHECK(r.noc90 == Approx(3.0));
  CHECK(r.miou_at_k[1] == Approx(0.825));
  const auto j = r.to_json();
  CHECK(j["nof85"] == 1);  // a never reaches 0.85
  CHECK(j["miou_at_k"].size() == 2);
  CHECK(j["samples"].size() == 2);
}

TEST_CASE("random first click: inside the valid object, reproducible", "[eval][points]") {
  const cv::Mat gt = rect_mask(64, 48, 5, 5, 30, 20);
  const cv::Mat ignore = rect_mask(64, 48, 5, 5, 15, 20);  // left half of the object ignored
  PointsOptions o;
  o.clicks = 1;
  o.random_first = true;
  o.seed = 7;
  std::set<std::pair<int, int>> seen;
  for (uint64_t idx = 0; idx < 20; ++idx) {
    Fake f1, f2;
    f1.answers = f2.answers = {{gt}};
    evaluate_object(gt, ignore, f1.model(), o, idx);
    evaluate_object(gt, ignore, f2.model(), o, idx);
    const Click c = f1.seen_clicks[0][0];
    CHECK(c.x == f2.seen_clicks[0][0].x);
    CHECK(c.y == f2.seen_clicks[0][0].y);
    CHECK(c.positive);
    CHECK(c.x >= 20);
    CHECK(c.x < 35);
    CHECK(c.y >= 5);
    CHECK(c.y < 25);
    seen.insert({c.x, c.y});
  }
  CHECK(seen.size() > 10);  // different objects get different points
  Fake f;
  f.answers = {{gt}};
  CHECK_THROWS_AS(evaluate_object(gt, gt, f.model(), o, 0), std::invalid_argument);
}

TEST_CASE("protocol variation: three masks at every click, the top-ranked one kept",
          "[eval][points]") {
  const cv::Mat gt = rect_mask(40, 40, 10, 10, 10, 10);
  const cv::Mat shifted = rect_mask(40, 40, 12, 10, 10, 10);
  const cv::Mat none = cv::Mat::zeros(40, 40, CV_8UC1);
  Fake f;
  f.answers = {{shifted, gt, none}, {none, gt, shifted}};
  f.scores = {{0.8, 0.7, 0.1}, {0.1, 0.9, 0.2}};
  PointsOptions o;
  o.clicks = 3;
  const auto s = evaluate_object(gt, cv::Mat(), f.model(), o, 0, PointsProtocol{true});
  CHECK(s.iou_per_click == std::vector<double>{2.0 / 3.0, 1.0, 1.0});
  REQUIRE(f.seen_multimask.size() == 2);
  CHECK(f.seen_multimask[1]);
  CHECK(s.noc90 == 2);
  // The paper's protocol on the same answers takes the first (single) mask: none.
  Fake g;
  g.answers = f.answers;
  g.scores = f.scores;
  const auto p = evaluate_object(gt, cv::Mat(), g.model(), o, 0);
  CHECK(p.iou_per_click[1] == 0.0);
  CHECK_FALSE(g.seen_multimask[1]);
}
