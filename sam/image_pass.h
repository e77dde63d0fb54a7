#pragma once
// One pass over the image tokens of the mask decoder's two-way transformer, for inference on the
// CPU: a block's image-to-token attention, residual and norm4 (row by row: each image token
// attends to the prompt's few tokens) fused with the following token-to-image attention's
// reduction over the updated image tokens (an online softmax, as flash attention computes it).
// Tiles of image rows are processed on one thread each with every intermediate in cache, so each
// block reads and writes the 4096 x 256 image tokens once instead of once per tensor operation.
// TwoWayTransformerImpl::forward uses it when the decoder's kernels apply (decoder_kernels.h).
#include <torch/torch.h>

namespace sam {

/// The image-to-token attention of one block in the values order (DecoderAttentionImpl), with its
/// token-side products made: for image rows x, s = x m + c, p = softmax(scale * s) within each
/// head's group of Nt columns, out = p vo + bo; then keys_out = LayerNorm(keys + out).
struct ImageToTokenTerms {
  torch::Tensor x_rows;  ///< [1, N, Din]: x given (the cached query projections), or undefined: x = keys + key_pe
  torch::Tensor m;       ///< [B, Din, R], R = heads * Nt
  torch::Tensor c;       ///< [B, R] or undefined
  torch::Tensor vo;      ///< [B, R, D]
  torch::Tensor bo;      ///< [D]
  torch::Tensor ln_weight, ln_bias;  ///< [D]
  double ln_eps = 1e-5;
  int64_t heads = 1;
  double scale = 1.0;
  /// Write the updated keys over the input keys (when they are [B, N, D], contiguous: each tile
  /// reads its rows before it writes them), for a caller that no longer needs them: one 4 MB
  /// buffer (ViT) fewer for the prompt's memory traffic.
  bool in_place = false;
};

/// keys [Bk, N, D] (Bk = 1 shared by the B prompts, or B), key_pe [1, N, D]. With i2t, the keys
/// are first updated as above (-> [B, N, D]); then for the next token-to-image attention, given
/// its queries already multiplied into the keys' space, qk [B, R2, D]:
///   pv[b] = softmax(t2i_scale * qk[b] (keys[b] + key_pe)^T) keys[b]     [B, R2, D]
/// Returns (keys after the update, or the input when i2t is null; pv).
std::pair<torch::Tensor, torch::Tensor> image_pass(const torch::Tensor& keys, const torch::Tensor& key_pe,
                                                   const ImageToTokenTerms* i2t, const torch::Tensor& qk,
                                                   double t2i_scale);

/// The same reduction over given rows, for a token-to-image attention whose keys and values are
/// projected already (the first block's, from DecoderImageCache): score_rows [1, N, Ds],
/// value_rows [1, N, Dv], qk [B, R2, Ds] -> softmax(scale * qk[b] score_rows^T) value_rows [B, R2, Dv].
torch::Tensor attend_image_rows(const torch::Tensor& score_rows, const torch::Tensor& value_rows,
                                const torch::Tensor& qk, double scale);

}  // namespace sam
