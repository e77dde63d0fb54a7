#include "sam/config.h"

#include <filesystem>
#include <stdexcept>

#include <nlohmann/json.hpp>

#include "data/config_file.h"
#include "data/config_schema.h"

namespace sam {

const cfg::Section<ModelConfig>& model_config_schema() {
  // The rules that relate keys (multiples, index ranges) are ModelConfig::validate's; the docs
  // say them in words.
  static const cfg::Section<ModelConfig> schema =
      cfg::Section<ModelConfig>("")
      .key("img_size", &ModelConfig::img_size,
           "encoder input side S in px; positive multiple of `patch_size`; also the loader's output size (16..16384, at start)")
      .key("patch_size", &ModelConfig::patch_size,
           "patch side in px; the embedding grid G = S / patch_size")
      .key("embed_dim", &ModelConfig::embed_dim,
           "ViT width; positive multiple of `num_heads`")
      .key("depth", &ModelConfig::depth,
           "encoder blocks, > 0; also the number of layers for `optim.layer_decay`")
      .key("num_heads", &ModelConfig::num_heads,
           "attention heads per encoder block")
      .key("mlp_ratio", &ModelConfig::mlp_ratio,
           "encoder MLP hidden width = embed_dim × mlp_ratio; > 0")
      .key("window_size", &ModelConfig::window_size,
           "window side (tokens) of the non-global blocks; >= 0, 0 = every block attends globally")
      .key("global_attn_indexes", &ModelConfig::global_attn_indexes,
           "0-based blocks with full attention; each in [0, depth)")
      .key("layer_norm_eps", &ModelConfig::layer_norm_eps,
           "epsilon of the encoder's LayerNorm and LayerNorm2d (the ViT's)")
      .key("encoder", &ModelConfig::encoder,
           "image encoder: `vit` (SAM's ViT: the keys above) or `tiny_vit` (a TinyViT-style hybrid, MobileSAM's "
           "encoder design: a convolutional stem and stage, then windowed-attention stages; the `tiny_vit_*` keys, "
           "`mlp_ratio`, `drop_path_rate`; `patch_size` = 4 x 2^(stages - 2); docs/TRAINING.md)",
           cfg::one_of({"vit", "tiny_vit"}))
      .key("tiny_vit_dims", &ModelConfig::tiny_vit_dims, "`tiny_vit`: width of each stage")
      .key("tiny_vit_depths", &ModelConfig::tiny_vit_depths,
           "`tiny_vit`: blocks of each stage (stage 0: MBConv blocks; the others: attention blocks)")
      .key("tiny_vit_heads", &ModelConfig::tiny_vit_heads,
           "`tiny_vit`: attention heads of each stage (stage 0's unused); each divides its stage's width")
      .key("tiny_vit_windows", &ModelConfig::tiny_vit_windows,
           "`tiny_vit`: attention window side of each stage (stage 0's unused)")
      .key("tiny_vit_mbconv_ratio", &ModelConfig::tiny_vit_mbconv_ratio,
           "`tiny_vit`: MBConv hidden width = stage width × this; > 0")
      .key("prompt_dim", &ModelConfig::prompt_dim,
           "neck output, prompt-encoder and decoder-transformer width; positive multiple of 8")
      .key("mask_in_chans", &ModelConfig::mask_in_chans,
           "hidden channels of the mask-prompt downscaler; positive multiple of 4")
      .key("decoder_depth", &ModelConfig::decoder_depth,
           "two-way transformer blocks; > 0")
      .key("decoder_mlp_dim", &ModelConfig::decoder_mlp_dim,
           "two-way transformer MLP width; > 0")
      .key("decoder_heads", &ModelConfig::decoder_heads,
           "decoder attention heads; must divide prompt_dim and prompt_dim / attention_downsample_rate")
      .key("attention_downsample_rate", &ModelConfig::attention_downsample_rate,
           "decoder cross-attention internal width = prompt_dim / rate; > 0")
      .key("num_multimask_outputs", &ModelConfig::num_multimask_outputs,
           "multimask output tokens (plus one single-mask token); > 0")
      .key("iou_head_depth", &ModelConfig::iou_head_depth,
           "IoU-prediction MLP layers; > 0")
      .key("iou_head_hidden_dim", &ModelConfig::iou_head_hidden_dim,
           "IoU-prediction MLP width; > 0")
      .key("pixel_mean", &ModelConfig::pixel_mean,
           "RGB mean subtracted from 0-255 input; 3 values")
      .key("pixel_std", &ModelConfig::pixel_std,
           "RGB std dividing 0-255 input; 3 values, all > 0")
      .key("drop_path_rate", &ModelConfig::drop_path_rate,
           "encoder stochastic depth, linear over the blocks from 0 to this; [0, 1); training only")
      .key("decoder_dropout", &ModelConfig::decoder_dropout,
           "dropout in the decoder's attention and MLP; [0, 1); training only");
  return schema;
}

void ModelConfig::validate() const {
  auto fail = [](const std::string& msg) { throw std::invalid_argument("model config: " + msg); };
  if (img_size <= 0 || patch_size <= 0 || img_size % patch_size != 0)
    fail("img_size must be a positive multiple of patch_size");
  if (embed_dim <= 0 || num_heads <= 0 || embed_dim % num_heads != 0)
    fail("embed_dim must be a positive multiple of num_heads");
  if (depth <= 0) fail("depth must be positive");
  if (window_size < 0) fail("window_size must be >= 0");
  for (int i : global_attn_indexes)
    if (i < 0 || i >= depth) fail("global_attn_indexes entry " + std::to_string(i) + " is outside [0, depth)");
  if (prompt_dim <= 0 || prompt_dim % 8 != 0) fail("prompt_dim must be a positive multiple of 8");
  if (prompt_dim % 2 != 0) fail("prompt_dim must be even (random Fourier features)");
  if (mask_in_chans <= 0 || mask_in_chans % 4 != 0) fail("mask_in_chans must be a positive multiple of 4");
  if (decoder_heads <= 0 || attention_downsample_rate <= 0 ||
      (prompt_dim / attention_downsample_rate) % decoder_heads != 0 || prompt_dim % decoder_heads != 0)
    fail("prompt_dim / attention_downsample_rate must be a multiple of decoder_heads");
  if (decoder_depth <= 0 || decoder_mlp_dim <= 0) fail("decoder_depth and decoder_mlp_dim must be positive");
  if (num_multimask_outputs <= 0) fail("num_multimask_outputs must be positive");
  if (iou_head_depth <= 0 || iou_head_hidden_dim <= 0) fail("iou_head_depth and iou_head_hidden_dim must be positive");
  if (pixel_mean.size() != 3 || pixel_std.size() != 3) fail("pixel_mean and pixel_std need 3 values");
  for (double s : pixel_std)
    if (!(s > 0)) fail("pixel_std values must be positive");
  if (mlp_ratio <= 0) fail("mlp_ratio must be positive");
  if (drop_path_rate < 0 || drop_path_rate >= 1) fail("drop_path_rate must be in [0, 1)");
  if (encoder == "tiny_vit") {
    const size_t n = tiny_vit_dims.size();
    if (n < 2 || tiny_vit_depths.size() != n || tiny_vit_heads.size() != n || tiny_vit_windows.size() != n)
      fail("tiny_vit_dims, tiny_vit_depths, tiny_vit_heads and tiny_vit_windows need one value per stage, 2 stages or more");
    for (size_t i = 0; i < n; ++i) {
      if (tiny_vit_dims[i] <= 0 || tiny_vit_depths[i] <= 0) fail("tiny_vit_dims and tiny_vit_depths must be positive");
      if (i > 0 && (tiny_vit_heads[i] <= 0 || tiny_vit_dims[i] % tiny_vit_heads[i] != 0))
        fail("stage " + std::to_string(i) + ": tiny_vit_heads must divide tiny_vit_dims");
      if (i > 0 && tiny_vit_windows[i] <= 0) fail("tiny_vit_windows must be positive");
    }
    if (tiny_vit_dims[0] % 2 != 0) fail("tiny_vit_dims[0] must be even (the stem's first convolution has half of it)");
    if (patch_size != (4 << (n - 2)))
      fail("a tiny_vit of " + std::to_string(n) + " stages reduces the image " + std::to_string(4 << (n - 2)) +
           "-fold (the stem 4, each stage but the last 2): patch_size must be " + std::to_string(4 << (n - 2)));
    if (!(tiny_vit_mbconv_ratio > 0)) fail("tiny_vit_mbconv_ratio must be positive");
  } else if (encoder != "vit") {
    fail("encoder must be vit or tiny_vit, got '" + encoder + "'");
  }
  if (decoder_dropout < 0 || decoder_dropout >= 1) fail("decoder_dropout must be in [0, 1)");
}

ModelConfig model_config_preset(const std::string& name) {
  ModelConfig c;  // defaults are vit_b
  if (name == "vit_b") return c;
  if (name == "vit_l") {
    c.embed_dim = 1024;
    c.depth = 24;
    c.num_heads = 16;
    c.global_attn_indexes = {5, 11, 17, 23};
    return c;
  }
  if (name == "vit_h" || name == "default") {
    c.embed_dim = 1280;
    c.depth = 32;
    c.num_heads = 16;
    c.global_attn_indexes = {7, 15, 23, 31};
    return c;
  }
  throw std::invalid_argument("unknown model '" + name +
                              "': use vit_b, vit_l, vit_h or a .json/.yaml architecture file");
}

ModelConfig model_config_from_json(const nlohmann::json& j, const std::string& where) {
  ModelConfig c;
  model_config_schema().read(j, c, where);
  try {
    c.validate();
  } catch (const std::invalid_argument& e) {
    throw std::invalid_argument(where + ": " + e.what());
  }
  return c;
}

nlohmann::json model_config_to_json(const ModelConfig& c) { return model_config_schema().to_json(c); }

ModelConfig model_config_resolve(const std::string& name_or_path) {
  if (name_or_path == "vit_b" || name_or_path == "vit_l" || name_or_path == "vit_h" ||
      name_or_path == "default")
    return model_config_preset(name_or_path);
  if (!std::filesystem::exists(name_or_path)) {
    throw std::invalid_argument("unknown model '" + name_or_path +
                                "': not a preset (vit_b, vit_l, vit_h) and no such file");
  }
  return model_config_from_json(cfg::load_file(name_or_path), name_or_path);
}

}  // namespace sam
