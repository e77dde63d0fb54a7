#pragma once
// The model's arithmetic, counted analytically (FLOPs = 2 x multiply-adds of the matrix products
// and convolutions; element-wise work, norms and softmax left out): what model FLOPs utilisation
// (MFU) divides by. docs/PERFORMANCE.md quotes MFU as these FLOPs per second over the GEMM rate
// measured in the same run.
#include <cstdint>

#include "sam/config.h"

namespace sam {

/// The image encoder's forward pass on one image (patch embedding, blocks, neck). Windowed blocks
/// compute their projections on the padded grid, as the reference does.
double encoder_forward_flops(const ModelConfig& c);

/// One prompt through the mask decoder's forward pass with `prompt_tokens` sparse tokens (a point
/// and its padding: 2; a box: 2; n clicks: n + 1): the two-way transformer with its image-side
/// projections, the upscaling, the hypernetworks and the IoU head.
double decoder_forward_flops(const ModelConfig& c, int64_t prompt_tokens);

/// One training step on one image: the encoder's forward and backward passes (3x forward) and
/// `masks` x `rounds` decoder passes forward and backward, with the clicks of the rounds adding up
/// (round r has r + 2 sparse tokens: its clicks and the padding token). The recomputation of activation checkpointing
/// is not counted: MFU counts the model's arithmetic, not the work a memory saving adds.
double train_step_flops(const ModelConfig& c, int64_t masks, int64_t rounds);

}  // namespace sam
