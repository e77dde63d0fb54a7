#pragma once
// Simulated interactive prompting for training (paper appendix A; SAM_SPEC 6 and 7.2): an
// initial point or noisy box per mask, then clicks sampled uniformly from the error region, and
// rounds that only feed back the previous logits. Everything works on batches of masks in the
// model's input frame (S x S pixels) with tensor ops, so it runs on the device without syncs.
#include <random>
#include <string>
#include <vector>

#include <torch/torch.h>

namespace sam::train {

enum class RoundKind { kInitial, kPoint, kMaskOnly };
enum class BoxNoise { kGaussian, kUniform };

struct PromptSimOptions {
  int rounds = 11;            ///< total rounds per mask (1 initial + points + mask-only)
  int mask_only_rounds = 2;   ///< one is always last; the others are inserted at random among the point rounds
  double prob_box = 0.5;      ///< probability that the initial prompt is a box instead of a point
  BoxNoise box_noise = BoxNoise::kGaussian;  ///< paper: std 10% of the side; SAM 2: uniform
  double box_noise_frac = 0.1;   ///< noise scale as a fraction of the box side
  double box_noise_max = 20.0;   ///< noise magnitude limit in pixels
  bool box_multimask = true;     ///< a single box gets 3 masks (paper: "single prompt") vs SAM 2's 1
};

/// The kinds of the `rounds` rounds: kInitial first, kMaskOnly last, each other mask-only round
/// just before a uniformly chosen point round (with the paper's 11: 1 + 8 points + 2 mask-only).
std::vector<RoundKind> round_schedule(const PromptSimOptions& o, std::mt19937_64& rng);
const char* round_kind_name(RoundKind k);

/// One pixel per mask, uniformly among the set pixels of `region` [N, H, W] (bool), selected by
/// u [N] in [0, 1). Returns long [N, 2] as (x, y); rows of empty regions give (0, 0).
torch::Tensor sample_uniform_pixels(const torch::Tensor& region, const torch::Tensor& u);

/// Inclusive bounding boxes x0, y0, x1, y1 of masks [N, H, W] -> float [N, 4]; empty -> 0s.
torch::Tensor masks_to_boxes(const torch::Tensor& masks);

/// Ground-truth boxes with noise: `noise` [N, 4] holds standard normals (kGaussian) or U(-1, 1)
/// (kUniform) per coordinate. The noise scale per coordinate is frac * box side (width for x,
/// height for y); Gaussian noise is clipped to +-max px, uniform uses min(frac * side, max). The
/// result is clamped to the valid image [0, valid_w - 1] x [0, valid_h - 1] (valid_hw: [N, 2])
/// and ordered so that x0 <= x1, y0 <= y1.
torch::Tensor noisy_boxes(const torch::Tensor& gt, const torch::Tensor& noise,
                          const torch::Tensor& valid_hw, const PromptSimOptions& o);

/// A corrective click per mask: uniform over the error region (false negatives give a positive
/// click, label 1; false positives a negative click, label 0) inside `valid` [N, H, W]. When a
/// prediction has no error, a negative click is taken from the valid background (or, if the
/// object fills the image, a positive click inside it). gt, pred, valid: bool [N, H, W];
/// u: [N] in [0, 1). Returns coords float [N, 2] (x, y) and labels long [N].
std::pair<torch::Tensor, torch::Tensor> error_clicks(const torch::Tensor& gt, const torch::Tensor& pred,
                                                     const torch::Tensor& valid, const torch::Tensor& u);

}  // namespace sam::train
