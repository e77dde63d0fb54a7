#pragma once
// Building blocks shared by the encoder and decoder (SA `modeling/common.py`, `mask_decoder.py` MLP).
#include <torch/torch.h>

namespace sam {

/// LayerNorm over the channel dimension of an NCHW tensor (SAM_SPEC 2.1 "LayerNorm2d").
struct LayerNorm2dImpl : torch::nn::Module {
  LayerNorm2dImpl(int64_t channels, double eps);
  /// x: [B, C, H, W] -> [B, C, H, W]
  torch::Tensor forward(const torch::Tensor& x);
  torch::Tensor weight, bias;
  double eps;
};
TORCH_MODULE(LayerNorm2d);

/// l.forward(x); in inference on the CPU, for inputs of at most 32 rows (the mask decoder's tokens),
/// a kernel that reads the weight once instead of BLAS's packing (decoder_kernels.h).
torch::Tensor linear(torch::nn::LinearImpl& l, const torch::Tensor& x);

/// Two linear layers with an activation between (keys lin1, lin2). `dropout` applies after the
/// activation in training mode only.
struct MLPBlockImpl : torch::nn::Module {
  MLPBlockImpl(int64_t dim, int64_t hidden, bool relu, double dropout = 0.0);
  /// x: [..., dim] -> [..., dim]
  torch::Tensor forward(const torch::Tensor& x);
  torch::nn::Linear lin1{nullptr}, lin2{nullptr};
  bool relu;
  double dropout;
};
TORCH_MODULE(MLPBlock);

/// `depth` linear layers (keys layers.0..depth-1) with ReLU between them, none after the last.
struct MLPImpl : torch::nn::Module {
  MLPImpl(int64_t in, int64_t hidden, int64_t out, int64_t depth);
  /// x: [..., in] -> [..., out]
  torch::Tensor forward(torch::Tensor x);
  torch::nn::ModuleList layers;
};
TORCH_MODULE(MLP);

/// `norm` applied to `x` cast to the norm's weight dtype: a LayerNorm runs in fp32 under autocast,
/// as CUDA autocast's policy has it (libtorch 1.13's CPU autocast would fail on a bf16 input);
/// a no-op cast otherwise.
torch::Tensor layer_norm(torch::nn::LayerNorm& norm, const torch::Tensor& x);

/// The state of the default random generator of `device` (the CPU's, or the GPU's of that index),
/// which drop path and dropout draw from; set_generator_state puts a saved one back.
torch::Tensor generator_state(const torch::Device& device);
void set_generator_state(const torch::Device& device, const torch::Tensor& state);

/// Stochastic depth on the residual branch: per-sample keep with probability 1 - p, scaled by
/// 1 / (1 - p); identity when p == 0 or not training. x: [B, ...].
torch::Tensor drop_path(const torch::Tensor& x, double p, bool training);

}  // namespace sam
