#pragma once
// The mask decoder (SA `modeling/mask_decoder.py`, `modeling/transformer.py`; SAM_SPEC 2.3): a
// two-way transformer between prompt tokens and image embedding, upscaling, hypernetwork MLPs
// and the IoU head.
#include <torch/torch.h>

#include "sam/common.h"
#include "sam/config.h"

namespace sam {

/// Attention with a downscaled internal width (keys q_proj, k_proj, v_proj, out_proj).
///
/// The same function is computed in one of three orders of the products, whichever needs the
/// fewest multiply-adds for the shapes at hand (equal up to float rounding):
///  - kPlain: the reference's (project q, k, v; attend; project out);
///  - kKeys: for few queries against many keys (token-to-image on a 64x64 embedding) the keys and
///    values are not projected: scores (q_h Wk_h) k^T, output ((P_h v) Wv_h^T + bv_h);
///  - kValues: for many queries against few keys (image-to-token), out_proj is applied to the
///    values before the attention: sum_h P_h (v_h Wo_h^T) + bo.
/// With dropout in training the reference's order is used.
struct DecoderAttentionImpl : torch::nn::Module {
  DecoderAttentionImpl(int64_t dim, int64_t heads, int64_t downsample_rate, double dropout = 0.0);
  /// q: [Bq, Nq, D], k: [Bk, Nk, D], v: [Bk, Nk, D] -> [max(Bq, Bk), Nq, D]; a batch of 1 is
  /// shared by all of the other's (a shared image embedding).
  /// q_proj_out / kv_proj_out: the projections of a shared q ([1, Nq, I]) or of shared k and v
  /// ([1, Nk, I] each), computed once per image (DecoderImageCache); then q_in / k_in, v_in give
  /// only the shapes.
  torch::Tensor forward(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                        const torch::Tensor& q_proj_out = {},
                        const std::pair<torch::Tensor, torch::Tensor>& kv_proj_out = {});
  /// The keys order's queries in the keys' space: q [Bq, Nq, I] (projected) -> [Bq, h*Nq, D], row
  /// (h, i) = q_h[i] Wk_h; the scores are then these rows times the unprojected keys.
  torch::Tensor keys_order_queries(const torch::Tensor& q) const;
  /// The keys order's output from pv [B, h*Nq, D] (each row: its probabilities times the
  /// unprojected values) -> [B, Nq, D]: Wv_h per head, the value bias, out_proj.
  torch::Tensor keys_order_output(const torch::Tensor& pv, int64_t Nq);
  /// The values order's scores with the query projection folded in, for projected keys k [Bk, Nk, I]:
  /// (mt [Bk, h*Nk, D], c [Bk, h*Nk]) with scores(x) = x mt^T + c for unprojected queries x.
  std::pair<torch::Tensor, torch::Tensor> folded_scores(const torch::Tensor& k) const;
  /// The values order's values through out_proj: v [Bk, Nk, I] -> [Bk, h*Nk, D], row (h, j) = v_h[j] Wo_h^T.
  torch::Tensor values_through_out(const torch::Tensor& v) const;
  enum class Order { kAuto, kPlain, kKeys, kValues };
  Order choose_order(int64_t Bq, int64_t Bk, int64_t Nq, int64_t Nk, int64_t D, bool q_given = false,
                     bool kv_given = false) const;
  Order forced_order = Order::kAuto;  ///< tests: compute in this order
  int64_t heads, internal_dim;
  double dropout;
  torch::nn::Linear q_proj{nullptr}, k_proj{nullptr}, v_proj{nullptr}, out_proj{nullptr};
};
TORCH_MODULE(DecoderAttention);

/// What the decoder computes from the image alone, when the embedding is shared by the prompts and
/// none has a mask prompt: made once per image (MaskDecoderImpl::prepare_image) and reused by
/// every prompt. The first block's token-to-image keys and values and its image-to-token queries
/// are projections of the image tokens only.
struct DecoderImageCache {
  torch::Tensor keys, key_pe;   ///< [1, HW, D]: embedding + no-mask embedding, positional encoding
  torch::Tensor t2i_k, t2i_v;   ///< first block: k_proj(keys + key_pe), v_proj(keys) [1, HW, I]
  torch::Tensor i2t_q;          ///< first block: q_proj(keys + key_pe) [1, HW, I]
  bool defined() const { return keys.defined(); }
  /// Memory held by the cache's tensors.
  int64_t bytes() const {
    int64_t n = 0;
    for (const auto* t : {&keys, &key_pe, &t2i_k, &t2i_v, &i2t_q})
      if (t->defined()) n += static_cast<int64_t>(t->numel()) * static_cast<int64_t>(t->element_size());
    return n;
  }
};

/// Self-attention of tokens, token-to-image and image-to-token cross-attention, and an MLP.
struct TwoWayAttentionBlockImpl : torch::nn::Module {
  TwoWayAttentionBlockImpl(const ModelConfig& c, bool skip_first_layer_pe);
  /// queries: [B, Nt, D], keys: [B, HW, D]; query_pe / key_pe are added to q and k only.
  std::pair<torch::Tensor, torch::Tensor> forward(torch::Tensor queries, torch::Tensor keys,
                                                  const torch::Tensor& query_pe,
                                                  const torch::Tensor& key_pe,
                                                  const DecoderImageCache* cache = nullptr);
  /// The self-attention step (with norm1) on the tokens.
  torch::Tensor self_part(const torch::Tensor& queries, const torch::Tensor& query_pe);
  /// The token-to-image attention's output added (norm2), then the MLP step (norm3).
  torch::Tensor mlp_part(const torch::Tensor& queries, const torch::Tensor& t2i_out);
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
  /// With a cache (for the first block), image and image_pe are not read.
  std::pair<torch::Tensor, torch::Tensor> forward(const torch::Tensor& image,
                                                  const torch::Tensor& image_pe,
                                                  const torch::Tensor& tokens,
                                                  const DecoderImageCache* cache = nullptr);
  /// Whether forward() takes forward_image_passes(): the decoder's CPU kernels apply (inference,
  /// float32, BLAS) and no attention drops out.
  bool image_pass_applies(const torch::Tensor& tokens) const;
  /// forward() for CPU inference with one fused pass over the image tokens per block (sam/image_pass.h).
  std::pair<torch::Tensor, torch::Tensor> forward_image_passes(const torch::Tensor& image,
                                                               const torch::Tensor& image_pe,
                                                               const torch::Tensor& tokens,
                                                               const DecoderImageCache* cache);
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
  /// A cache from prepare_image() for this embedding and image_pe is used when no prompt has a
  /// mask input (dense is then the no-mask vector broadcast); otherwise it is ignored.
  DecoderOutput forward(const torch::Tensor& image_embeddings, const torch::Tensor& image_pe,
                        const torch::Tensor& sparse, const torch::Tensor& dense, bool multimask,
                        const DecoderImageCache* cache = nullptr);
  /// All num_multimask_outputs + 1 masks and IoU predictions (token 0 first).
  DecoderOutput predict_all(const torch::Tensor& image_embeddings, const torch::Tensor& image_pe,
                            const torch::Tensor& sparse, const torch::Tensor& dense,
                            const DecoderImageCache* cache = nullptr);
  /// The image-only part of the decoder for one embedding [1, D, G, G] and the prompt encoder's
  /// no-mask dense embedding ([1, D, G, G], possibly a broadcast view). No gradients.
  DecoderImageCache prepare_image(const torch::Tensor& image_embedding, const torch::Tensor& image_pe,
                                  const torch::Tensor& no_mask_dense);

  /// The transformer's tokens for B prompts: the IoU token and the mask tokens, then the prompts'
  /// sparse embeddings [B, N, D] -> [B, 1 + M + N, D]. (predict_all's first step.)
  torch::Tensor tokens(const torch::Tensor& sparse);
  /// The heads on the transformer's outputs: its tokens hs [B, T, D] and image tokens keys
  /// [B, h*w, D] -> all M masks [B, M, 4h, 4w] (output_upscaling, then each mask token's
  /// hypernetwork product) and IoU predictions [B, M]. (Its last step.)
  DecoderOutput heads(const torch::Tensor& hs, const torch::Tensor& keys, int64_t h, int64_t w);

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
