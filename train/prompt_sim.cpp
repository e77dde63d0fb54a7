#include "train/prompt_sim.h"

#include <algorithm>

namespace sam::train {

const char* round_kind_name(RoundKind k) {
  switch (k) {
    case RoundKind::kInitial: return "initial";
    case RoundKind::kPoint: return "point";
    case RoundKind::kMaskOnly: return "mask";
  }
  return "?";
}

std::vector<RoundKind> round_schedule(const PromptSimOptions& o, std::mt19937_64& rng) {
  TORCH_CHECK(o.rounds >= 1, "prompt.rounds must be >= 1");
  std::vector<RoundKind> kinds{RoundKind::kInitial};
  if (o.rounds == 1) return kinds;
  const int mask_only = std::clamp(o.mask_only_rounds, 0, o.rounds - 1);
  const int points = o.rounds - 1 - mask_only;
  std::vector<RoundKind> middle(points, RoundKind::kPoint);
  // Each extra mask-only round goes before a uniformly chosen point round, so it always sits
  // among the point rounds; the last round is always mask-only.
  for (int i = 0; i + 1 < mask_only; ++i) {
    int pos = 0;
    if (points > 0) {
      // Index of the point round it precedes, among the point rounds placed so far.
      const int k = std::uniform_int_distribution<int>(0, points - 1)(rng);
      for (int seen = 0; pos < static_cast<int>(middle.size()); ++pos) {
        if (middle[pos] == RoundKind::kPoint && seen++ == k) break;
      }
    }
    middle.insert(middle.begin() + pos, RoundKind::kMaskOnly);
  }
  kinds.insert(kinds.end(), middle.begin(), middle.end());
  if (mask_only > 0) kinds.push_back(RoundKind::kMaskOnly);
  return kinds;
}

torch::Tensor sample_uniform_pixels(const torch::Tensor& region, const torch::Tensor& u) {
  const int64_t N = region.size(0), H = region.size(1), W = region.size(2);
  auto flat = region.reshape({N, H * W});
  auto cums = flat.to(torch::kInt).cumsum(1, torch::kInt);  // [N, HW]
  auto count = cums.select(1, H * W - 1);                   // [N]
  auto k = (u.to(torch::kDouble) * count.to(torch::kDouble)).floor().to(torch::kInt);
  k = torch::minimum(k, (count - 1).clamp_min(0));
  // The first position whose running count exceeds k is the k-th set pixel (0-based).
  auto idx = (cums <= k.unsqueeze(1)).sum(1).to(torch::kLong).clamp_max(H * W - 1);
  idx = torch::where(count > 0, idx, torch::zeros_like(idx));
  return torch::stack({idx % W, idx.div(W, "floor")}, 1);
}

torch::Tensor masks_to_boxes(const torch::Tensor& masks) {
  const int64_t N = masks.size(0), H = masks.size(1), W = masks.size(2);
  auto m = masks.to(torch::kBool);
  auto rows = m.any(2), cols = m.any(1);  // [N, H], [N, W]
  auto ar_h = torch::arange(H, torch::TensorOptions().device(m.device())).unsqueeze(0).expand({N, H});
  auto ar_w = torch::arange(W, torch::TensorOptions().device(m.device())).unsqueeze(0).expand({N, W});
  auto big = std::max(H, W) + 1;
  auto y0 = torch::where(rows, ar_h, torch::full_like(ar_h, big)).amin(1);
  auto y1 = torch::where(rows, ar_h, torch::full_like(ar_h, -1)).amax(1);
  auto x0 = torch::where(cols, ar_w, torch::full_like(ar_w, big)).amin(1);
  auto x1 = torch::where(cols, ar_w, torch::full_like(ar_w, -1)).amax(1);
  auto box = torch::stack({x0, y0, x1, y1}, 1).to(torch::kFloat);
  auto empty = rows.any(1).logical_not().unsqueeze(1);
  return torch::where(empty, torch::zeros_like(box), box);
}

torch::Tensor noisy_boxes(const torch::Tensor& gt, const torch::Tensor& noise,
                          const torch::Tensor& valid_hw, const PromptSimOptions& o) {
  auto box = masks_to_boxes(gt);  // [N, 4]
  auto w = (box.select(1, 2) - box.select(1, 0) + 1);
  auto h = (box.select(1, 3) - box.select(1, 1) + 1);
  auto side = torch::stack({w, h, w, h}, 1);
  auto n = noise.to(box.device(), torch::kFloat);
  torch::Tensor delta;
  if (o.box_noise == BoxNoise::kGaussian) {
    delta = (n * side * o.box_noise_frac).clamp(-o.box_noise_max, o.box_noise_max);
  } else {
    delta = n * (side * o.box_noise_frac).clamp_max(o.box_noise_max);
  }
  auto b = box + delta;
  auto vhw = valid_hw.to(box.device(), torch::kFloat);
  auto max_x = (vhw.select(1, 1) - 1).unsqueeze(1), max_y = (vhw.select(1, 0) - 1).unsqueeze(1);
  auto xs = torch::stack({b.select(1, 0), b.select(1, 2)}, 1);
  auto ys = torch::stack({b.select(1, 1), b.select(1, 3)}, 1);
  xs = torch::minimum(xs.clamp_min(0), max_x);
  ys = torch::minimum(ys.clamp_min(0), max_y);
  return torch::stack({std::get<0>(xs.min(1)), std::get<0>(ys.min(1)), std::get<0>(xs.max(1)),
                       std::get<0>(ys.max(1))},
                      1);
}

std::pair<torch::Tensor, torch::Tensor> error_clicks(const torch::Tensor& gt_in, const torch::Tensor& pred_in,
                                                     const torch::Tensor& valid_in, const torch::Tensor& u) {
  auto gt = gt_in.to(torch::kBool), pred = pred_in.to(torch::kBool), valid = valid_in.to(torch::kBool);
  auto fn = gt & pred.logical_not() & valid;
  auto fp = pred & gt.logical_not() & valid;
  auto err = fn | fp;
  auto has_err = err.flatten(1).any(1);                       // [N]
  auto bg = gt.logical_not() & valid;
  auto has_bg = bg.flatten(1).any(1);
  auto fallback = torch::where(has_bg.view({-1, 1, 1}), bg, gt & valid);
  auto region = torch::where(has_err.view({-1, 1, 1}), err, fallback);
  auto xy = sample_uniform_pixels(region, u);  // [N, 2]
  const int64_t W = gt.size(2);
  auto flat_idx = xy.select(1, 1) * W + xy.select(1, 0);
  auto at_gt = gt.flatten(1).gather(1, flat_idx.unsqueeze(1)).squeeze(1);
  // A pixel of the object is a positive click (it was missed, or it is the fallback inside the
  // object); a background pixel is a negative click.
  auto labels = at_gt.to(torch::kLong);
  return {xy.to(torch::kFloat), labels};
}

}  // namespace sam::train
