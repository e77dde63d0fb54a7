// Losses against hand-computed values, and the prompt simulation's rules: points inside the mask,
// box noise bounds, error-region sampling, the 11-round schedule.
#include <catch2/catch.hpp>

#include <map>
#include <random>
#include <tuple>

#include "train/loss.h"
#include "train/prompt_sim.h"

using namespace sam::train;

namespace {
torch::Tensor t4(std::vector<float> v, int64_t h, int64_t w) {
  return torch::tensor(v).view({1, 1, h, w});
}

// Three candidates for one mask on 2x2 (target, logits, predicted IoUs): the first is the
// complement of the target (IoU 0), the second matches it exactly, the third is 0 everywhere
// (nothing above 0: IoU 0); predicted IoUs 0.3, 0.6, 0.9.
std::tuple<torch::Tensor, torch::Tensor, torch::Tensor> three_candidates() {
  auto target = torch::tensor({1.f, 1.f, 0.f, 0.f}).view({1, 2, 2});
  auto logits = torch::stack({torch::tensor({-5.f, -5.f, 5.f, 5.f}), torch::tensor({9.f, 9.f, -9.f, -9.f}),
                              torch::tensor({0.f, 0.f, 0.f, 0.f})})
                    .view({1, 3, 2, 2})
                    .requires_grad_(true);
  auto iou_pred = torch::tensor({{0.3f, 0.6f, 0.9f}}).requires_grad_(true);
  return {target, logits, iou_pred};
}
}  // namespace

TEST_CASE("focal loss matches hand-computed values", "[train][loss]") {
  // logit 0, target 1: p = 0.5, ce = ln 2, (1 - p_t)^2 = 0.25, alpha_t = 0.25.
  auto a = focal_loss(t4({0.f}, 1, 1), t4({1.f}, 1, 1), 0.25, 2.0);
  CHECK(a.item<double>() == Approx(std::log(2.0) * 0.25 * 0.25).epsilon(1e-6));
  // logit 2, target 0: ce = softplus(2), p_t = 1 - sigmoid(2), alpha_t = 0.75.
  const double p = 1.0 / (1.0 + std::exp(-2.0));
  const double want = std::log1p(std::exp(2.0)) * std::pow(p, 2.0) * 0.75;
  auto b = focal_loss(t4({2.f}, 1, 1), t4({0.f}, 1, 1), 0.25, 2.0);
  CHECK(b.item<double>() == Approx(want).epsilon(1e-6));
  // Mean over pixels.
  auto c = focal_loss(t4({0.f, 2.f}, 1, 2), t4({1.f, 0.f}, 1, 2), 0.25, 2.0);
  CHECK(c.item<double>() == Approx((std::log(2.0) / 16 + want) / 2).epsilon(1e-6));
  // Large confident-correct logits give ~0 and stay finite.
  auto d = focal_loss(t4({80.f, -80.f}, 1, 2), t4({1.f, 0.f}, 1, 2), 0.25, 2.0);
  CHECK(std::isfinite(d.item<double>()));
  CHECK(d.item<double>() < 1e-20);
}

TEST_CASE("dice loss and actual IoU match hand-computed values", "[train][loss]") {
  // p = 0.5 everywhere on 4 pixels, target [1, 1, 0, 0]: 1 - (2*1 + 1) / (2 + 2 + 1) = 0.4.
  CHECK(dice_loss(t4({0, 0, 0, 0}, 2, 2), t4({1, 1, 0, 0}, 2, 2)).item<double>() == Approx(0.4));
  // Prediction {0,1,2}, target {1,2,3}: IoU 2/4.
  CHECK(actual_iou(t4({1, 1, 1, -1}, 2, 2), t4({0, 1, 1, 1}, 2, 2)).item<double>() == Approx(0.5));
  // Both empty: 0 (SAM 2's convention), no division by zero.
  CHECK(actual_iou(t4({-1, -1, -1, -1}, 2, 2), t4({0, 0, 0, 0}, 2, 2)).item<double>() == 0.0);
}

TEST_CASE("round loss supervises only the lowest-loss candidate", "[train][loss]") {
  auto [target, logits, iou_pred] = three_candidates();
  LossWeights w;
  auto rl = round_loss(logits, target, iou_pred, w);
  CHECK(rl.best.item<int64_t>() == 1);
  CHECK(rl.iou.item<double>() == Approx(1.0));
  // IoU error of the chosen candidate: (0.6 - 1)^2.
  CHECK(rl.iou_mse.item<double>() == Approx(0.16).epsilon(1e-5));
  rl.total.backward();
  auto g = logits.grad();
  CHECK(g[0][0].abs().sum().item<double>() == 0.0);
  CHECK(g[0][2].abs().sum().item<double>() == 0.0);
  CHECK(g[0][1].abs().sum().item<double>() > 0.0);
  auto gi = iou_pred.grad();
  CHECK(gi[0][1].item<double>() == Approx(2 * (0.6 - 1.0)).epsilon(1e-5));
  CHECK(gi[0][0].item<double>() == 0.0);
  // Weighted sum: 20 focal + dice + iou.
  CHECK(rl.total.item<double>() ==
        Approx(20 * rl.focal.item<double>() + rl.dice.item<double>() + rl.iou_mse.item<double>()));
}

TEST_CASE("supervise_all_iou trains the IoU head on every candidate, the masks still on the best", "[train][loss]") {
  auto [target, logits, iou_pred] = three_candidates();
  LossWeights w;
  w.supervise_all_iou = true;
  auto rl = round_loss(logits, target, iou_pred, w);
  CHECK(rl.best.item<int64_t>() == 1);
  // Actual IoUs 0 (the complement), 1, 0 (nothing above 0): ((0.3)^2 + (0.4)^2 + (0.9)^2) / 3.
  CHECK(rl.iou_mse.item<double>() == Approx(1.06 / 3).epsilon(1e-5));
  rl.total.backward();
  auto gi = iou_pred.grad();
  CHECK(gi[0][0].item<double>() == Approx(2 * 0.3 / 3).epsilon(1e-5));
  CHECK(gi[0][1].item<double>() == Approx(2 * (0.6 - 1.0) / 3).epsilon(1e-5));
  CHECK(gi[0][2].item<double>() == Approx(2 * 0.9 / 3).epsilon(1e-5));
  auto g = logits.grad();  // the mask losses still reach only the lowest-loss candidate
  CHECK(g[0][0].abs().sum().item<double>() == 0.0);
  CHECK(g[0][2].abs().sum().item<double>() == 0.0);
  // One candidate (a single-mask round): the same as without the option.
  auto one = round_loss(logits.detach().narrow(1, 1, 1), target, iou_pred.detach().narrow(1, 1, 1), w);
  CHECK(one.iou_mse.item<double>() == Approx(0.16).epsilon(1e-5));
}

TEST_CASE("the 11-round schedule: 1 initial, 8 points, 2 mask-only, one of them last", "[train][prompt]") {
  PromptSimOptions o;
  std::map<int, int> positions;
  for (uint64_t seed = 0; seed < 400; ++seed) {
    std::mt19937_64 rng(seed);
    auto k = round_schedule(o, rng);
    REQUIRE(k.size() == 11);
    CHECK(k.front() == RoundKind::kInitial);
    CHECK(k.back() == RoundKind::kMaskOnly);
    int points = 0, masks = 0, pos = -1;
    for (size_t i = 1; i < k.size(); ++i) {
      if (k[i] == RoundKind::kPoint) ++points;
      if (k[i] == RoundKind::kMaskOnly) {
        ++masks;
        if (i + 1 < k.size()) pos = static_cast<int>(i);
      }
    }
    CHECK(points == 8);
    CHECK(masks == 2);
    REQUIRE(pos > 0);
    CHECK(k[pos + 1] == RoundKind::kPoint);  // among the point rounds
    positions[pos]++;
  }
  CHECK(positions.size() == 8);  // every slot among the 8 points is used
  PromptSimOptions one;
  one.rounds = 1;
  std::mt19937_64 rng(1);
  CHECK(round_schedule(one, rng).size() == 1);
}

TEST_CASE("uniform pixel sampling picks each set pixel with equal frequency", "[train][prompt]") {
  auto region = torch::zeros({1, 4, 5}, torch::kBool);
  region[0][1][2] = true;
  region[0][3][0] = true;
  region[0][3][4] = true;
  std::map<std::pair<int64_t, int64_t>, int> hits;
  const int n = 3000;
  auto u = torch::rand({n});
  auto many = region.expand({n, 4, 5});
  auto xy = sample_uniform_pixels(many, u);
  for (int i = 0; i < n; ++i) hits[{xy[i][0].item<int64_t>(), xy[i][1].item<int64_t>()}]++;
  REQUIRE(hits.size() == 3);
  CHECK(hits.count({2, 1}));
  CHECK(hits.count({0, 3}));
  CHECK(hits.count({4, 3}));
  for (auto& kv : hits) CHECK(std::abs(kv.second - n / 3) < 150);
  // Exact: u in [0, 1/3) -> first pixel in row-major order, [2/3, 1) -> last.
  auto first = sample_uniform_pixels(region, torch::tensor({0.1f}));
  CHECK(first[0][0].item<int64_t>() == 2);
  CHECK(first[0][1].item<int64_t>() == 1);
  auto last = sample_uniform_pixels(region, torch::tensor({0.99f}));
  CHECK(last[0][0].item<int64_t>() == 4);
  auto empty = sample_uniform_pixels(torch::zeros({1, 4, 5}, torch::kBool), torch::tensor({0.5f}));
  CHECK(empty.abs().sum().item<int64_t>() == 0);
}

TEST_CASE("initial points lie inside the mask", "[train][prompt]") {
  torch::manual_seed(3);
  auto gt = torch::rand({16, 32, 32}) > 0.8;
  auto xy = sample_uniform_pixels(gt, torch::rand({16}));
  for (int i = 0; i < 16; ++i) CHECK(gt[i][xy[i][1].item<int64_t>()][xy[i][0].item<int64_t>()].item<bool>());
}

TEST_CASE("boxes and box noise stay within their bounds", "[train][prompt]") {
  auto gt = torch::zeros({1, 100, 200}, torch::kBool);
  gt[0].narrow(0, 10, 50).narrow(1, 20, 150).fill_(true);  // x 20..169, y 10..59
  auto box = masks_to_boxes(gt);
  CHECK(box[0][0].item<float>() == 20);
  CHECK(box[0][1].item<float>() == 10);
  CHECK(box[0][2].item<float>() == 169);
  CHECK(box[0][3].item<float>() == 59);
  CHECK(masks_to_boxes(torch::zeros({1, 5, 5}, torch::kBool)).abs().sum().item<float>() == 0);

  auto hw = torch::tensor({{100, 200}});
  PromptSimOptions o;  // gaussian, 10% of side, at most 20 px
  auto same = noisy_boxes(gt, torch::zeros({1, 4}), hw, o);
  CHECK(torch::equal(same, box));
  // Width 150 -> sigma 15 px on x, height 50 -> 5 px on y; clipped at 20 px and to the image.
  auto big = noisy_boxes(gt, torch::tensor({{-10.f, -10.f, 10.f, 10.f}}), hw, o);
  CHECK(big[0][0].item<float>() == 0);    // 20 - 20, clipped noise
  CHECK(big[0][1].item<float>() == 0);    // 10 - 20 -> clamped to 0
  CHECK(big[0][2].item<float>() == 189);  // 169 + 20
  CHECK(big[0][3].item<float>() == 79);   // 59 + 20
  auto small = noisy_boxes(gt, torch::tensor({{1.f, 1.f, -1.f, -1.f}}), hw, o);
  CHECK(small[0][0].item<float>() == Approx(35));  // 20 + 1 sigma (15)
  CHECK(small[0][1].item<float>() == Approx(15));  // 10 + 5
  CHECK(small[0][2].item<float>() == Approx(154));
  CHECK(small[0][3].item<float>() == Approx(54));
  o.box_noise = BoxNoise::kUniform;  // SAM 2: U(-1, 1) * min(0.1 side, 20)
  auto uni = noisy_boxes(gt, torch::tensor({{-1.f, -1.f, 1.f, 1.f}}), hw, o);
  CHECK(uni[0][0].item<float>() == Approx(5));   // 20 - 15
  CHECK(uni[0][1].item<float>() == Approx(5));   // 10 - 5
  CHECK(uni[0][2].item<float>() == Approx(184));
  CHECK(uni[0][3].item<float>() == Approx(64));
  // Random noise never moves a corner by more than 20 px.
  torch::manual_seed(0);
  o.box_noise = BoxNoise::kGaussian;
  auto many = noisy_boxes(gt.expand({500, 100, 200}), torch::randn({500, 4}) * 3, hw.expand({500, 2}), o);
  CHECK((many - box).abs().max().item<float>() <= 20.0f);
}

TEST_CASE("corrective clicks come from the error region with the right label", "[train][prompt]") {
  auto gt = torch::zeros({3, 10, 10}, torch::kBool);
  gt.narrow(1, 2, 4).narrow(2, 2, 4).fill_(true);  // a 4x4 square in each
  auto pred = torch::zeros({3, 10, 10}, torch::kBool);
  pred[1] = gt[1].clone();
  pred[1].narrow(0, 7, 2).narrow(1, 7, 2).fill_(true);  // false positives only
  pred[2] = gt[2].clone();                               // perfect
  auto valid = torch::ones({3, 10, 10}, torch::kBool);
  for (int trial = 0; trial < 20; ++trial) {
    auto [xy, lab] = error_clicks(gt, pred, valid, torch::rand({3}));
    auto x0 = xy[0][0].item<float>(), y0 = xy[0][1].item<float>();
    CHECK(lab[0].item<int64_t>() == 1);  // missed object -> positive inside it
    CHECK(gt[0][static_cast<int64_t>(y0)][static_cast<int64_t>(x0)].item<bool>());
    CHECK(lab[1].item<int64_t>() == 0);  // false positive -> negative in the FP area
    CHECK(xy[1][0].item<float>() >= 7);
    CHECK(xy[1][1].item<float>() >= 7);
    CHECK(lab[2].item<int64_t>() == 0);  // perfect -> negative in the background
    CHECK_FALSE(gt[2][static_cast<int64_t>(xy[2][1].item<float>())][static_cast<int64_t>(xy[2][0].item<float>())].item<bool>());
  }
  // Clicks never land outside the valid (unpadded) region.
  auto v2 = torch::zeros({1, 10, 10}, torch::kBool);
  v2[0].narrow(0, 0, 5).narrow(1, 0, 5).fill_(true);
  auto gt2 = torch::zeros({1, 10, 10}, torch::kBool);
  auto pr2 = torch::ones({1, 10, 10}, torch::kBool);
  for (int trial = 0; trial < 20; ++trial) {
    auto [xy, lab] = error_clicks(gt2, pr2, v2, torch::rand({1}));
    CHECK(xy[0][0].item<float>() < 5);
    CHECK(xy[0][1].item<float>() < 5);
    CHECK(lab[0].item<int64_t>() == 0);
  }
}

TEST_CASE("the fused CPU losses equal the composed ones, values and gradients", "[train][loss]") {
  torch::manual_seed(11);
  for (double alpha : {0.25, -1.0}) {
    for (double gamma : {2.0, 1.5}) {
      INFO("alpha " << alpha << " gamma " << gamma);
      auto x0 = torch::randn({3, 2, 17, 23}) * 4;
      auto t = torch::rand({3, 17, 23}) > 0.7;
      auto wf = torch::rand({3, 2}), wd = torch::rand({3, 2});
      wf[1][0] = 0;  // an unsupervised candidate
      wd[1][0] = 0;
      auto xa = x0.clone().requires_grad_(true), xb = x0.clone().requires_grad_(true);
      auto fa = focal_loss(xa, t.unsqueeze(1), alpha, gamma), da = dice_loss(xa, t.unsqueeze(1));
      auto ia = actual_iou(xa, t.unsqueeze(1));
      auto fb = fused_mask_losses(xb, t, alpha, gamma);
      CHECK(torch::allclose(fa, fb[0], 1e-5, 1e-6));
      CHECK(torch::allclose(da, fb[1], 1e-5, 1e-6));
      CHECK(torch::allclose(ia, fb[2]));
      ((fa * wf).sum() + (da * wd).sum()).backward();
      ((fb[0] * wf).sum() + (fb[1] * wd).sum()).backward();
      CHECK(torch::allclose(xa.grad(), xb.grad(), 1e-4, 1e-7));
      CHECK(xb.grad()[1][0].abs().max().item<float>() == 0.f);
    }
  }
}
