#pragma once
// The ViT image encoder (SA `modeling/image_encoder.py`; SAM_SPEC 2.1): patch embedding, absolute
// positions, windowed and global blocks with decomposed relative positions, and the neck.
#include <torch/torch.h>

#include "sam/common.h"
#include "sam/config.h"

namespace sam {

/// Multi-head self-attention over a [B, H, W, C] grid with decomposed relative position terms
/// (keys qkv, proj, rel_pos_h, rel_pos_w), or without them (keys qkv, proj: a plain ViT's, as
/// MAE's; a sequence is a [B, 1, L, C] grid).
struct EncoderAttentionImpl : torch::nn::Module {
  /// `input_size` is the side of the token grid it sees (window side or the full grid).
  EncoderAttentionImpl(int64_t dim, int64_t num_heads, int64_t input_size, bool use_rel_pos = true);
  /// x: [B, H, W, C] -> [B, H, W, C]
  torch::Tensor forward(const torch::Tensor& x);
  /// The attention of each ws x ws window of x [B, H, W, C] (the grid padded to multiples of ws,
  /// as window_partition does) -> [B, H, W, C], equal to partitioning, forward and unpartitioning,
  /// without projecting the padding's tokens (float32 on the CPU, no autograd).
  torch::Tensor forward_windows(const torch::Tensor& x, int64_t ws);
  /// The attention of qkv_t [3, B*heads, H*W, head_dim] over an H x W grid -> [B*heads, H*W, head_dim].
  torch::Tensor attend(const torch::Tensor& qkv_t, int64_t H, int64_t W);
  int64_t num_heads, head_dim;
  double scale;
  torch::Tensor rel_pos_h, rel_pos_w;  ///< [2 * input_size - 1, head_dim]; undefined without
  torch::nn::Linear qkv{nullptr}, proj{nullptr};
};
TORCH_MODULE(EncoderAttention);

/// A pre-norm transformer block; window_size 0 means global attention. Width, heads, MLP ratio and
/// LayerNorm epsilon come from `c` (embed_dim, num_heads, mlp_ratio, layer_norm_eps); `rel_pos`
/// false gives a plain ViT block (timm's, as MAE's encoder and decoder use).
struct EncoderBlockImpl : torch::nn::Module {
  EncoderBlockImpl(const ModelConfig& c, int64_t window_size, double drop_path_rate, bool rel_pos = true);
  /// x: [B, H, W, C] -> [B, H, W, C]. With `checkpoint` set, in training with gradients enabled,
  /// activations are not kept but recomputed in the backward pass (same RNG draws for drop path).
  torch::Tensor forward(const torch::Tensor& x);
  /// The block's computation itself.
  torch::Tensor forward_impl(const torch::Tensor& x);
  bool checkpoint = false;
  torch::nn::LayerNorm norm1{nullptr}, norm2{nullptr};
  EncoderAttention attn{nullptr};
  MLPBlock mlp{nullptr};
  int64_t window_size;
  double drop_path_rate;
};
TORCH_MODULE(EncoderBlock);

/// Conv patch embedding (key proj); output is channels-last.
struct PatchEmbedImpl : torch::nn::Module {
  PatchEmbedImpl(int64_t patch, int64_t in_chans, int64_t dim);
  /// x: [B, 3, S, S] -> [B, S/p, S/p, C]
  torch::Tensor forward(const torch::Tensor& x);
  torch::nn::Conv2d proj{nullptr};
};
TORCH_MODULE(PatchEmbed);

/// What SAM needs of an image encoder (SamImpl::image_encoder): [B, 3, S, S] normalised, padded
/// images -> [B, prompt_dim, G, G] embeddings, G = S / patch_size. The ViT below is SAM's; a
/// TinyViT-style student is sam/tiny_vit.h's (ModelConfig::encoder chooses).
struct ImageEncoderBase : torch::nn::Module {
  virtual torch::Tensor forward(const torch::Tensor& x) = 0;
  /// Recompute each block's activations in the backward pass instead of keeping them.
  virtual void set_activation_checkpointing(bool on) = 0;
};

/// SAM's neck: 1x1 conv to `out` channels, LayerNorm2d, 3x3 conv, LayerNorm2d (no biases), as
/// neck.0 to neck.3.
torch::nn::Sequential make_neck(int64_t in, int64_t out, double eps);

/// SAM's ViT encoder.
struct ImageEncoderImpl : ImageEncoderBase {
  explicit ImageEncoderImpl(const ModelConfig& c);
  /// x: [B, 3, S, S] normalised and padded -> image embedding [B, prompt_dim, S/16, S/16]
  torch::Tensor forward(const torch::Tensor& x) override;
  /// Runs `forward` for blocks in [0, n) only, then the neck is skipped (for tests and profiling).
  torch::Tensor forward_blocks(const torch::Tensor& x, int64_t n);
  /// When set, each block's activations are recomputed in the backward pass (saves memory).
  void set_activation_checkpointing(bool on) override;

  ModelConfig config;
  torch::Tensor pos_embed;  ///< [1, G, G, C]
  PatchEmbed patch_embed{nullptr};
  torch::nn::ModuleList blocks;
  torch::nn::Sequential neck{nullptr};
};
TORCH_MODULE(ImageEncoder);

/// Partitions [B, H, W, C] into [B * nWin, ws, ws, C] windows after zero-padding H and W at the
/// bottom/right to multiples of ws. Returns the windows and the padded (Hp, Wp).
std::pair<torch::Tensor, std::pair<int64_t, int64_t>> window_partition(const torch::Tensor& x,
                                                                       int64_t ws);
/// Inverse of window_partition, cropping back to (h, w).
torch::Tensor window_unpartition(const torch::Tensor& windows, int64_t ws,
                                 std::pair<int64_t, int64_t> padded, int64_t h, int64_t w);
/// The relative-position table for q_size x k_size, interpolated when its length differs from
/// 2 * max(q, k) - 1: [2*max-1, d] -> [q_size, k_size, d].
torch::Tensor get_rel_pos(int64_t q_size, int64_t k_size, const torch::Tensor& rel_pos);

}  // namespace sam
