#pragma once
// One training step of SAM's simulated interactive segmentation (paper appendix A): encode the
// images once, then for every mask run the prompt rounds through the prompt encoder and mask
// decoder, accumulate the losses and back-propagate.
#include <cstdint>
#include <functional>
#include <vector>

#include <torch/torch.h>

#include "sam/sam_model.h"
#include "train/loss.h"
#include "train/prompt_sim.h"

namespace sam::train {

/// The images and masks of one step on this rank.
struct StepBatch {
  std::vector<torch::Tensor> images;  ///< uint8 [3, h_i, w_i], h_i, w_i <= S
  /// Or, instead of the images, their encoder embeddings [C, G, G] (any floating dtype; cached,
  /// data/embedding_store.h): the encoder does not run and gets no gradient.
  std::vector<torch::Tensor> embeddings;
  std::vector<torch::Tensor> masks;   ///< uint8/bool [K_i, h_i, w_i]
  std::vector<int64_t> keys;          ///< per image: a key that seeds its prompt randomness
};

struct StepOptions {
  PromptSimOptions prompt;
  LossWeights loss;
  bool loss_full_resolution = true;  ///< compare at S x S (else at the 4G x 4G decoder output)
  uint64_t seed = 0;
  int64_t step = 0;                  ///< the optimiser step (seeds the round schedule)
  double global_masks = 0;           ///< masks over all ranks this step (loss normaliser); 0 = local
  bool autocast_bf16 = false;        ///< forward passes under bf16 autocast (losses stay in fp32)
  /// Called once the decoder's last round has been back-propagated, before the encoder's
  /// backward pass: the prompt encoder's and decoder's gradients are final then (the trainer
  /// starts their all-reduce while the encoder's backward runs).
  std::function<void()> before_encoder_backward;
};

/// What one step measured (sums over this rank's masks; divide by masks for means).
struct StepStats {
  double loss = 0;       ///< the back-propagated objective (already normalised)
  double focal = 0, dice = 0, iou_mse = 0;  ///< sums over masks and rounds
  std::vector<double> iou_per_round;        ///< sum over masks of the fed-back mask's IoU
  int64_t masks = 0;
  int64_t rounds = 0;
  bool finite = true;
};

/// What one step measured, left on the device (reading it would make the host wait for the GPU):
/// float64 [4 + rounds] = the back-propagated objective (normalised), the sums over masks and
/// rounds of focal, dice and IoU-MSE, then per round the sum over masks of the fed-back mask's IoU.
struct StepSums {
  torch::Tensor sums;
  int64_t masks = 0;
  int64_t rounds = 0;
};

/// The host values of `s` (one read of the device).
StepStats resolve(const StepSums& s);

/// interactive_step without reading anything back: the trainer's form.
StepSums interactive_step_async(Sam& model, const StepBatch& batch, const StepOptions& opts,
                                const torch::Device& device);

/// Runs the forward and backward passes of one step (gradients are accumulated into the model's
/// parameters; no optimiser update). The model must be in training mode. The logits fed back
/// between rounds are detached (the paper feeds them as a prompt; no gradient crosses rounds),
/// so each round is back-propagated as soon as its loss is known and its graph freed.
StepStats interactive_step(Sam& model, const StepBatch& batch, const StepOptions& opts,
                           const torch::Device& device);

/// Normalises uint8 [3, h, w] images and pads them to [B, 3, S, S] on `device`.
torch::Tensor preprocess_batch(const Sam& model, const std::vector<torch::Tensor>& images,
                               const torch::Device& device);

}  // namespace sam::train
