#pragma once
// The prompt encoder (SA `modeling/prompt_encoder.py`; SAM_SPEC 2.2): random Fourier positional
// encoding of points and box corners, learned point-type embeddings, and the mask downscaler.
#include <optional>

#include <torch/torch.h>

#include "sam/common.h"
#include "sam/config.h"

namespace sam {

/// Positional encoding with a fixed random Gaussian matrix (a persistent buffer, in checkpoints).
struct PositionEmbeddingRandomImpl : torch::nn::Module {
  explicit PositionEmbeddingRandomImpl(int64_t num_pos_feats, double scale = 1.0);
  /// coords: [..., 2] in [0, 1] as (x, y) -> [..., 2 * num_pos_feats], sin features first.
  torch::Tensor encode(const torch::Tensor& coords) const;
  /// Dense encoding of an h x w grid (pixel centres) -> [2 * num_pos_feats, h, w].
  torch::Tensor grid(int64_t h, int64_t w) const;
  /// coords: [B, N, 2] pixels of the (H, W) = image_size frame -> [B, N, 2 * num_pos_feats].
  torch::Tensor forward_with_coords(const torch::Tensor& coords, int64_t H, int64_t W) const;
  torch::Tensor positional_encoding_gaussian_matrix;  ///< [2, num_pos_feats]
};
TORCH_MODULE(PositionEmbeddingRandom);

/// Sparse and dense prompt embeddings.
struct PromptEmbeddings {
  torch::Tensor sparse;  ///< [B, N_tokens, D]
  torch::Tensor dense;   ///< [B, D, G, G]
};

struct PromptEncoderImpl : torch::nn::Module {
  explicit PromptEncoderImpl(const ModelConfig& c);
  /// Embeds prompts, all in pixels of the padded encoder frame (S x S):
  ///  points: coords [B, N, 2] (x, y) with labels [B, N] in {-1 pad, 0 negative, 1 positive,
  ///          2 box top-left, 3 box bottom-right}; a (0,0) pad point with label -1 is appended
  ///          when no boxes are given, as in the reference;
  ///  boxes:  [B, 4] as x0, y0, x1, y1;
  ///  masks:  [B, 1, 4G, 4G] low-resolution logits.
  /// Undefined tensors mean "absent". The batch size comes from points, then boxes, then masks.
  PromptEmbeddings forward(const torch::Tensor& coords, const torch::Tensor& labels,
                           const torch::Tensor& boxes, const torch::Tensor& masks);
  /// The dense positional encoding of the embedding grid: [1, D, G, G].
  torch::Tensor get_dense_pe() const;

  ModelConfig config;
  int64_t embed_dim, grid, input_size;
  PositionEmbeddingRandom pe_layer{nullptr};
  torch::nn::ModuleList point_embeddings;  ///< 4 x Embedding(1, D): neg, pos, box TL, box BR
  torch::nn::Embedding not_a_point_embed{nullptr};
  torch::nn::Sequential mask_downscaling{nullptr};
  torch::nn::Embedding no_mask_embed{nullptr};

 private:
  torch::Tensor embed_points(const torch::Tensor& coords, const torch::Tensor& labels, bool pad);
  torch::Tensor embed_boxes(const torch::Tensor& boxes);
};
TORCH_MODULE(PromptEncoder);

}  // namespace sam
