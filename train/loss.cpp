#include "train/loss.h"

namespace sam::train {

torch::Tensor focal_loss(const torch::Tensor& logits, const torch::Tensor& targets, double alpha,
                         double gamma) {
  auto t = targets.to(logits.dtype());
  auto p = torch::sigmoid(logits);
  // Stable BCE with logits, written out so that targets [N, 1, H, W] broadcast over M candidates.
  auto ce = torch::relu(logits) - logits * t + torch::log1p(torch::exp(-logits.abs()));
  auto p_t = p * t + (1 - p) * (1 - t);
  auto loss = ce * (1 - p_t).pow(gamma);
  if (alpha >= 0) loss = loss * (alpha * t + (1 - alpha) * (1 - t));
  return loss.flatten(2).mean(-1);
}

torch::Tensor dice_loss(const torch::Tensor& logits, const torch::Tensor& targets) {
  auto p = torch::sigmoid(logits).flatten(2);
  auto t = targets.to(logits.dtype()).flatten(2);
  auto num = 2 * (p * t).sum(-1);
  auto den = p.sum(-1) + t.sum(-1);  // t.sum is [N, 1] and broadcasts
  return 1 - (num + 1) / (den + 1);
}

torch::Tensor actual_iou(const torch::Tensor& logits, const torch::Tensor& targets) {
  torch::NoGradGuard ng;
  auto pred = (logits > 0).flatten(2);
  auto gt = (targets.to(torch::kFloat) > 0.5).flatten(2);
  auto inter = (pred & gt).sum(-1).to(torch::kFloat);
  auto uni = (pred | gt).sum(-1).to(torch::kFloat);
  return inter / uni.clamp_min(1.0);
}

RoundLoss round_loss(const torch::Tensor& logits, const torch::Tensor& targets,
                     const torch::Tensor& iou_pred, const LossWeights& w) {
  TORCH_CHECK(logits.dim() == 4 && targets.dim() == 3 && logits.size(0) == targets.size(0) &&
                  logits.size(2) == targets.size(1) && logits.size(3) == targets.size(2),
              "round_loss: logits [N, M, H, W] and targets [N, H, W] disagree: ", logits.sizes(),
              " vs ", targets.sizes());
  const int64_t M = logits.size(1);
  auto tgt = targets.unsqueeze(1);  // broadcasts over the M candidates without copies
  auto focal = focal_loss(logits, tgt, w.focal_alpha, w.focal_gamma);  // [N, M]
  auto dice = dice_loss(logits, tgt);                                   // [N, M]
  auto mask_loss = w.focal * focal + w.dice * dice;
  RoundLoss out;
  out.best = M > 1 ? mask_loss.detach().argmin(1) : torch::zeros({logits.size(0)}, torch::kLong).to(logits.device());
  auto pick = [&](const torch::Tensor& x) { return x.gather(1, out.best.unsqueeze(1)).squeeze(1); };
  auto iou_all = actual_iou(logits, tgt);  // [N, M]
  out.iou = pick(iou_all);
  auto iou_err = (pick(iou_pred.to(logits.dtype())) - out.iou).pow(2);
  auto f = pick(focal), d = pick(dice);
  out.total = (w.focal * f + w.dice * d + w.iou * iou_err).sum();
  out.focal = f.detach().sum();
  out.dice = d.detach().sum();
  out.iou_mse = iou_err.detach().sum();
  return out;
}

}  // namespace sam::train
