#pragma once
// Masked autoencoder pre-training of the ViT image encoder (He et al. 2022, "Masked Autoencoders
// Are Scalable Vision Learners"; the paper's encoder starts from it, SAM_SPEC 2.1). A plain ViT of
// the model's encoder size (patch embedding, fixed 2-D sine-cosine positions, a class token,
// global-attention blocks without relative positions, a final norm) sees only a random 25 % of
// the patches; a light decoder (its own width, depth and heads) fills the rest in with a shared
// mask token and predicts every patch's pixels; the loss is the mean squared error on the hidden
// patches only, against per-patch-normalised pixels by default.
//
// Keys are those of Meta's MAE (models_mae.py, timm blocks): cls_token, pos_embed, mask_token,
// decoder_pos_embed, patch_embed.proj.*, blocks.N.{norm1,attn.qkv,attn.proj,norm2,mlp.fc1,mlp.fc2}.*,
// norm.*, decoder_embed.*, decoder_blocks.N.*, decoder_norm.*, decoder_pred.*; the module itself
// names the MLP layers lin1/lin2 (the SAM encoder's block) and mae_state_dict renames them.
// save_mae writes {"model": state_dict} as MAE's main_pretrain.py does, so MAE's own code and
// init.kind mae (train/trainer.h init_from_mae) load it.
#include <string>

#include <torch/torch.h>

#include "sam/config.h"
#include "sam/image_encoder.h"
#include "sam/pth_io.h"

namespace sam {

namespace cfg {
template <class S>
class Section;
}

/// The pre-training objective's own settings (the encoder's come from ModelConfig).
struct MaeConfig {
  double mask_ratio = 0.75;   ///< share of patches hidden from the encoder
  bool norm_pix_loss = true;  ///< targets normalised per patch (mean 0, variance 1)
  int decoder_dim = 512;      ///< decoder width (MAE: 512 for ViT-B/L/H)
  int decoder_depth = 8;      ///< decoder blocks
  int decoder_heads = 16;     ///< decoder attention heads
};

/// The keys of the `mae` configuration section, declared once (data/config_schema.h).
const cfg::Section<MaeConfig>& mae_config_schema();

/// The fixed 2-D sine-cosine position table of MAE for a grid x grid token grid of width `dim`
/// (dim divisible by 4), with a zero row first for the class token: [1 + grid^2, dim]. Token
/// (i, j) (row-major) gets sin(j w_k), cos(j w_k), sin(i w_k), cos(i w_k) in four quarters,
/// w_k = 10000^(-k / (dim / 4)).
torch::Tensor sincos_pos_embed_2d(int64_t dim, int64_t grid);

struct MaskedAutoencoderImpl : torch::nn::Module {
  MaskedAutoencoderImpl(const ModelConfig& encoder, const MaeConfig& mae);

  struct Output {
    torch::Tensor loss;  ///< [B] per image: mean squared error over its hidden patches
    torch::Tensor pred;  ///< [B, L, p * p * 3] the decoder's patches (normalised if norm_pix_loss)
    torch::Tensor mask;  ///< [B, L] float, 1 = hidden from the encoder
  };
  /// imgs: [B, 3, S, S] normalised (pixel_mean / pixel_std). `noise` [B, L] orders each image's
  /// patches for masking (the lowest are kept; random_masking); undefined: drawn from the default
  /// generator of imgs' device.
  Output forward(const torch::Tensor& imgs, torch::Tensor noise = {});

  /// [B, 3, S, S] -> [B, L, p * p * 3]: patches row-major, each patch's pixels row-major with the
  /// three channels innermost (MAE's patchify).
  torch::Tensor patchify(const torch::Tensor& imgs) const;
  /// image: [B, 3, h, w] RGB 0-255 (h, w <= S) -> normalised by the encoder's pixel_mean and
  /// pixel_std, zero-padded to [B, 3, S, S].
  torch::Tensor preprocess(const torch::Tensor& image) const;
  /// The inverse of patchify.
  torch::Tensor unpatchify(const torch::Tensor& x) const;
  /// Per-sample random masking by argsort of uniform noise (MAE's random_masking): keeps the
  /// floor(L (1 - mask_ratio)) tokens of lowest noise. Returns the kept tokens [B, keep, C], the
  /// mask [B, L] (1 = removed) and the permutation that restores the original order [B, L].
  std::tuple<torch::Tensor, torch::Tensor, torch::Tensor> random_masking(const torch::Tensor& x,
                                                                          const torch::Tensor& noise) const;
  /// The loss of predictions `pred` [B, L, p*p*3] against images and mask: [B].
  torch::Tensor loss_of(const torch::Tensor& imgs, const torch::Tensor& pred, const torch::Tensor& mask) const;
  /// Predictions `pred` [B, L, p*p*3] of images `imgs` (forward's input) as patches of those
  /// images' values: with norm_pix_loss each is put back with its true patch's mean and deviation
  /// (MAE's visualisation), else `pred` itself.
  torch::Tensor pred_to_pixels(const torch::Tensor& imgs, const torch::Tensor& pred) const;
  /// Each patch's mean and standard deviation over its values (unbiased variance + 1e-6, MAE's
  /// norm_pix_loss): [B, L, 1] each, for patches [B, L, n].
  static std::pair<torch::Tensor, torch::Tensor> patch_stats(const torch::Tensor& patches);

  ModelConfig enc;
  MaeConfig cfg;
  torch::Tensor cls_token, mask_token;           ///< [1, 1, C], [1, 1, D]
  torch::Tensor pos_embed, decoder_pos_embed;    ///< fixed buffers [1, 1 + L, C], [1, 1 + L, D]
  PatchEmbed patch_embed{nullptr};
  torch::nn::ModuleList blocks, decoder_blocks;
  torch::nn::LayerNorm norm{nullptr}, decoder_norm{nullptr};
  torch::nn::Linear decoder_embed{nullptr}, decoder_pred{nullptr};
  torch::Tensor pixel_mean, pixel_std;  ///< [3, 1, 1], not in the state dict
};
TORCH_MODULE(MaskedAutoencoder);

/// The module's weights (state_dict(module), or an average of them) under MAE's key names, in
/// MAE's state_dict order.
NamedTensors mae_state_dict(NamedTensors own);
/// The inverse of mae_state_dict, for a file of MAE's (pth_read's names: "model." prefixes are
/// dropped): MAE's names to the module's (mlp.fc1/fc2 -> lin1/lin2).
NamedTensors mae_from_official(NamedTensors official);
/// Writes `weights` (mae_state_dict's) as MAE's checkpoints hold them: {"model": OrderedDict}.
void save_mae(const std::string& path, const NamedTensors& weights);

}  // namespace sam
