#pragma once
// A TinyViT-style image encoder (Wu et al. 2022, as MobileSAM's encoder uses it): a hybrid of
// convolutions and windowed attention, the student architecture of distillation (issue 22;
// ModelConfig::encoder "tiny_vit"). Stages:
//   patch_embed   two 3x3 stride-2 convolutions with BatchNorm and GELU (the image / 4)
//   layers.0      MBConv blocks (1x1 expand, 3x3 depthwise, 1x1 project, BatchNorm, GELU, residual)
//   layers.i>0    attention blocks: windowed self-attention with a learned bias per head and
//                 (|dy|, |dx|) offset, a 3x3 depthwise convolution, an MLP (each branch with its
//                 own LayerNorm)
//   downsample    between stages (layers.i.downsample): 1x1, 3x3 depthwise (stride 2; stride 1 into
//                 the last stage), 1x1 convolutions
//   neck          SAM's: 1x1 and 3x3 convolutions with LayerNorm2d to prompt_dim channels
// Key names and layout are MobileSAM's (`mobile_sam/modeling/tiny_vit_sam.py`), so its released
// weights load; its classifier head (norm_head, head: unused by SAM) is not part of this module
// and is dropped when such a checkpoint is read (load_checkpoint). BatchNorm follows the module's
// train/eval mode (batch statistics while training; the running ones in eval mode).
#include <memory>

#include <torch/torch.h>

#include "sam/config.h"
#include "sam/image_encoder.h"
#include "sam/pth_io.h"

namespace sam {

/// Convolution without bias, then BatchNorm: c.*, bn.*.
struct Conv2dBNImpl : torch::nn::Module {
  Conv2dBNImpl(int64_t in, int64_t out, int64_t kernel, int64_t stride = 1, int64_t pad = 0, int64_t groups = 1,
               double bn_weight_init = 1.0);
  torch::Tensor forward(const torch::Tensor& x);
  torch::nn::Conv2d c{nullptr};
  torch::nn::BatchNorm2d bn{nullptr};
};
TORCH_MODULE(Conv2dBN);

/// Windowed attention with learned offset biases over one window's tokens: [Bw, N, C] -> [Bw, N, C].
struct TinyVitAttentionImpl : torch::nn::Module {
  TinyVitAttentionImpl(int64_t dim, int64_t heads, int64_t window);
  torch::Tensor forward(const torch::Tensor& x);
  int64_t heads, key_dim, window;
  double scale;
  torch::nn::LayerNorm norm{nullptr};
  torch::nn::Linear qkv{nullptr}, proj{nullptr};
  torch::Tensor attention_biases;  ///< [heads, window^2]: one per (|dy|, |dx|), index |dy| * window + |dx|
  torch::Tensor bias_index;        ///< [N, N] offsets' indices (not in the state dict)
};
TORCH_MODULE(TinyVitAttention);

struct TinyVitPatchEmbedImpl;  // patch_embed.seq: the stem (tiny_vit.cpp)

struct TinyVitImpl : ImageEncoderBase {
  explicit TinyVitImpl(const ModelConfig& c);
  /// x: [B, 3, S, S] normalised and padded -> [B, prompt_dim, S/patch_size, S/patch_size]
  torch::Tensor forward(const torch::Tensor& x) override;
  /// Not offered: the student is small; turning it on throws std::invalid_argument.
  void set_activation_checkpointing(bool on) override;

  ModelConfig config;
  std::shared_ptr<TinyVitPatchEmbedImpl> patch_embed;
  torch::nn::ModuleList layers;  ///< the stages (tiny_vit.cpp's TinyVitStageImpl)
  torch::nn::Sequential neck{nullptr};
};
TORCH_MODULE(TinyVit);

/// The encoder `c.encoder` names (ViT or TinyViT), for SamImpl.
std::shared_ptr<ImageEncoderBase> make_image_encoder(const ModelConfig& c);

/// `weights` without the keys of MobileSAM's classifier head (image_encoder.norm_head.*,
/// image_encoder.head.*), which a TinyViT checkpoint holds and SAM does not use.
NamedTensors drop_tiny_vit_head(const NamedTensors& weights);

}  // namespace sam
