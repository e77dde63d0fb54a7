#pragma once
// Model architecture as data (SAM_SPEC section 1): the vit_b / vit_l / vit_h presets and any
// architecture given as a JSON or YAML file whose keys are exactly the fields below.
#include <string>
#include <vector>

#include <nlohmann/json_fwd.hpp>

namespace sam {
namespace cfg {
template <class S>
class Section;
}

/// Every architectural choice of a SAM model. Field names are the config-file keys.
struct ModelConfig {
  // Image encoder (ViT).
  int img_size = 1024;                 ///< encoder input side S (square, padded)
  int patch_size = 16;                 ///< embedding grid is S / patch_size
  int embed_dim = 768;                 ///< ViT width C
  int depth = 12;                      ///< number of blocks
  int num_heads = 12;                  ///< attention heads per block
  double mlp_ratio = 4.0;              ///< MLP hidden = C * mlp_ratio
  int window_size = 14;                ///< window side for non-global blocks
  std::vector<int> global_attn_indexes{2, 5, 8, 11};  ///< blocks with full attention
  double layer_norm_eps = 1e-6;        ///< encoder LayerNorm / LayerNorm2d epsilon
  // Which image encoder: "vit" (SAM's, the fields above) or "tiny_vit" (a TinyViT-style hybrid,
  // MobileSAM's encoder design, sam/tiny_vit.h: the fields below, with mlp_ratio and drop_path_rate).
  std::string encoder = "vit";
  std::vector<int> tiny_vit_dims{64, 128, 160, 320};  ///< width of each stage
  std::vector<int> tiny_vit_depths{2, 2, 6, 2};       ///< blocks per stage (stage 0: MBConv, the others attention)
  std::vector<int> tiny_vit_heads{2, 4, 5, 10};       ///< attention heads per stage (stage 0's unused)
  std::vector<int> tiny_vit_windows{7, 7, 14, 7};     ///< attention window side per stage (stage 0's unused)
  double tiny_vit_mbconv_ratio = 4.0;                 ///< MBConv hidden width = stage width x this
  // Prompt encoder and mask decoder.
  int prompt_dim = 256;                ///< neck output, prompt and decoder transformer width
  int mask_in_chans = 16;              ///< hidden channels of the mask-prompt downscaler
  int decoder_depth = 2;               ///< two-way transformer blocks
  int decoder_mlp_dim = 2048;          ///< two-way transformer MLP width
  int decoder_heads = 8;               ///< two-way transformer heads
  int attention_downsample_rate = 2;   ///< cross-attention internal width = prompt_dim / rate
  int num_multimask_outputs = 3;       ///< multimask tokens (plus one single-mask token)
  int iou_head_depth = 3;              ///< IoU head MLP layers
  int iou_head_hidden_dim = 256;       ///< IoU head MLP width
  // Normalisation of 0-255 RGB input.
  std::vector<double> pixel_mean{123.675, 116.28, 103.53};
  std::vector<double> pixel_std{58.395, 57.12, 57.375};
  // Training-time regularisation (no effect in eval mode).
  double drop_path_rate = 0.0;         ///< encoder drop path, linear over depth from 0 to this
  double decoder_dropout = 0.0;        ///< dropout in decoder attention and MLP

  /// Side of the image-embedding grid (S / patch_size).
  int grid_size() const { return img_size / patch_size; }
  /// Side of the low-resolution mask logits (4x the embedding grid).
  int low_res_size() const { return 4 * grid_size(); }
  /// Throws std::invalid_argument naming the offending field when the architecture is inconsistent.
  void validate() const;
};

/// A preset by name: "vit_b", "vit_l", "vit_h" ("default" = vit_h). Throws listing the valid names.
ModelConfig model_config_preset(const std::string& name);
/// A preset name, or else a path to a .json/.yaml/.yml file (strict keys; unknown keys rejected).
ModelConfig model_config_resolve(const std::string& name_or_path);
/// Parses a JSON object strictly; `where` names the source in error messages. Missing keys keep
/// their defaults (the vit_b values above).
ModelConfig model_config_from_json(const nlohmann::json& j, const std::string& where);
/// All fields as a JSON object (round-trips through model_config_from_json).
nlohmann::json model_config_to_json(const ModelConfig& c);
/// Every key of an architecture, declared once: name, member, doc (data/config_schema.h). Its
/// keys() are the valid keys in declaration order.
const cfg::Section<ModelConfig>& model_config_schema();

}  // namespace sam
