#pragma once
// SAM's training losses (paper appendix A; SAM_SPEC 6 and 7.1): focal and dice in a 20:1 ratio on
// the mask logits, plus the IoU head's mean-squared error against the actual IoU; with several
// candidate masks only the one with the lowest mask loss is supervised.
#include <torch/torch.h>

namespace sam::train {

struct LossWeights {
  double focal = 20.0;
  double dice = 1.0;
  double iou = 1.0;
  double focal_alpha = 0.25;  ///< < 0 disables the alpha weighting
  double focal_gamma = 2.0;
  /// The IoU head's error on every candidate (mean over the M), as SAM 2's `supervise_all_iou`,
  /// instead of only on the supervised (lowest-loss) one, the paper's wording.
  bool supervise_all_iou = false;
};

/// Sigmoid focal loss, mean over pixels of each mask. logits: [N, M, H, W], targets broadcastable
/// to it ([N, 1, H, W] or [N, M, H, W]) -> [N, M].
torch::Tensor focal_loss(const torch::Tensor& logits, const torch::Tensor& targets, double alpha,
                         double gamma);
/// Dice loss 1 - (2 sum(p t) + 1) / (sum p + sum t + 1) per mask: [N, M, H, W] -> [N, M].
torch::Tensor dice_loss(const torch::Tensor& logits, const torch::Tensor& targets);
/// IoU of (logits > 0) with (targets > 0.5) per mask, |inter| / max(|union|, 1) (0 when both are
/// empty, as SAM 2's trainer): [N, M, H, W] and broadcastable targets -> [N, M] (no gradient).
torch::Tensor actual_iou(const torch::Tensor& logits, const torch::Tensor& targets);

/// The three per-mask terms at once, in two passes over the pixels (forward: sums; backward:
/// recomputed per pixel): focal [N, M] (differentiable), dice [N, M] (differentiable) and
/// actual IoU [N, M] (no gradient), equal to focal_loss, dice_loss and actual_iou. logits: float
/// [N, M, H, W] on the CPU; targets: [N, H, W] with values in {0, 1} (any dtype), shared by the
/// M candidates. Saves the ~20 full-size temporaries of the composed version, which dominate a
/// training step at full resolution on a CPU.
std::vector<torch::Tensor> fused_mask_losses(const torch::Tensor& logits, const torch::Tensor& targets,
                                             double alpha, double gamma);

/// Losses of one round for N masks with M candidates each.
struct RoundLoss {
  torch::Tensor total;   ///< scalar: sum over masks of (w_f focal + w_d dice) of the best candidate + w_i iou_mse
  torch::Tensor focal;   ///< scalar sums over masks (detached), for logging
  torch::Tensor dice;
  torch::Tensor iou_mse;  ///< the best candidate's squared error, or the mean over all with supervise_all_iou
  torch::Tensor best;    ///< [N] index of the supervised candidate
  torch::Tensor iou;     ///< [N] actual IoU of the supervised candidate (detached)
};

/// logits: [N, M, H, W] at the loss resolution; targets: [N, H, W] in {0, 1} (float or bool);
/// iou_pred: [N, M]. Sums over masks (callers divide by the global mask count).
RoundLoss round_loss(const torch::Tensor& logits, const torch::Tensor& targets,
                     const torch::Tensor& iou_pred, const LossWeights& w);

}  // namespace sam::train
