#pragma once
// The mask decoder (SA `modeling/mask_decoder.py`, `modeling/transformer.py`; SAM_SPEC 2.3): a
// two-way transformer between prompt tokens and image embedding, upscaling, hypernetwork MLPs
// and the IoU head.
#include <torch/torch.h>

#include "sam/common.h"
#include "sam/config.h"

namespace sam {

/// Attention with a downscaled internal width (keys q_proj, k_proj, v_proj, out_proj).
struct DecoderAttentionImpl : torch::nn::Module {
  DecoderAttentionImpl(int64_t dim, int64_t heads, int64_t downsample_rate, double dropout = 0.0);
  /// q: [B, Nq, D], k: [B, Nk, D], v: [B, Nk, D] -> [B, Nq, D]
  torch::Tensor forward(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v);
  int64_t heads, internal_dim;
  double dropout;
  torch::nn::Linear q_proj{nullptr}, k_proj{nullptr}, v_proj{nullptr}, out_proj{nullptr};
};
TORCH_MODULE(DecoderAttention);

/// Self-attention of tokens, token-to-image and image-to-token cross-attention, and an MLP.
struct TwoWayAttentionBlockImpl : torch::nn::Module {
  TwoWayAttentionBlockImpl(const ModelConfig& c, bool skip_first_layer_pe);
  /// queries: [B, Nt, D], keys: [B, HW, D]; query_pe / key_pe are added to q and k only.
  std::pair<torch::Tensor, torch::Tensor> forward(torch::Tensor queries, torch::Tensor keys,
                                                  const torch::Tensor& query_pe,
                                                  const torch::Tensor& key_pe);
  DecoderAttention self_attn{nullptr}, cross_attn_token_to_image{nullptr},
      cross_attn_image_to_token{nullptr};
  torch::nn::LayerNorm norm1{nullptr}, norm2{nullptr}, norm3{nullptr}, norm4{nullptr};
  MLPBlock mlp{nullptr};
  bool skip_first_layer_pe;
};
TORCH_MODULE(TwoWayAttentionBlock);

struct TwoWayTransformerImpl : torch::nn::Module {
  explicit TwoWayTransformerImpl(const ModelConfig& c);
  /// image: [B or 1, D, h, w], image_pe: [1, D, h, w], tokens: [B, Nt, D]
  /// -> (tokens [B, Nt, D], image [B, hw, D])
  std::pair<torch::Tensor, torch::Tensor> forward(const torch::Tensor& image,
                                                  const torch::Tensor& image_pe,
                                                  const torch::Tensor& tokens);
  torch::nn::ModuleList layers;
  DecoderAttention final_attn_token_to_image{nullptr};
  torch::nn::LayerNorm norm_final_attn{nullptr};
};
TORCH_MODULE(TwoWayTransformer);

/// Masks and IoU predictions for a batch of prompts.
struct DecoderOutput {
  torch::Tensor masks;  ///< low-resolution logits [B, C, 4G, 4G]
  torch::Tensor iou;    ///< predicted IoU [B, C]
};

struct MaskDecoderImpl : torch::nn::Module {
  explicit MaskDecoderImpl(const ModelConfig& c);
  /// image_embeddings: [1 or B, D, G, G] (a single embedding is shared by all B prompts),
  /// image_pe: [1, D, G, G], sparse: [B, N, D], dense: [B, D, G, G].
  /// multimask: C = num_multimask_outputs masks (tokens 1..), else C = 1 (token 0).
  DecoderOutput forward(const torch::Tensor& image_embeddings, const torch::Tensor& image_pe,
                        const torch::Tensor& sparse, const torch::Tensor& dense, bool multimask);
  /// All num_multimask_outputs + 1 masks and IoU predictions (token 0 first).
  DecoderOutput predict_all(const torch::Tensor& image_embeddings, const torch::Tensor& image_pe,
                            const torch::Tensor& sparse, const torch::Tensor& dense);

  /// output_upscaling on the transformer's image tokens: keys [B, h*w, D] -> [B, 4h, 4w, D/8]
  /// channels-last (the reference's layers, computed as matrix products).
  torch::Tensor upscale(const torch::Tensor& keys, int64_t h, int64_t w);

  int64_t num_mask_tokens;
  TwoWayTransformer transformer{nullptr};
  torch::nn::Embedding iou_token{nullptr}, mask_tokens{nullptr};
  torch::nn::Sequential output_upscaling{nullptr};
  torch::nn::ModuleList output_hypernetworks_mlps;
  MLP iou_prediction_head{nullptr};
};
TORCH_MODULE(MaskDecoder);

}  // namespace sam
