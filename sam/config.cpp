#include "sam/config.h"

#include <filesystem>
#include <stdexcept>

#include <nlohmann/json.hpp>

#include "data/config_file.h"

namespace sam {

const std::vector<std::string>& model_config_keys() {
  static const std::vector<std::string> keys{
      "img_size",        "patch_size",       "embed_dim",
      "depth",           "num_heads",        "mlp_ratio",
      "window_size",     "global_attn_indexes", "layer_norm_eps",
      "prompt_dim",      "mask_in_chans",    "decoder_depth",
      "decoder_mlp_dim", "decoder_heads",    "attention_downsample_rate",
      "num_multimask_outputs", "iou_head_depth", "iou_head_hidden_dim",
      "pixel_mean",      "pixel_std",        "drop_path_rate",
      "decoder_dropout"};
  return keys;
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
  cfg::check_keys(j, model_config_keys(), where);
  ModelConfig c;
  cfg::read(j, "img_size", c.img_size, where);
  cfg::read(j, "patch_size", c.patch_size, where);
  cfg::read(j, "embed_dim", c.embed_dim, where);
  cfg::read(j, "depth", c.depth, where);
  cfg::read(j, "num_heads", c.num_heads, where);
  cfg::read(j, "mlp_ratio", c.mlp_ratio, where);
  cfg::read(j, "window_size", c.window_size, where);
  cfg::read(j, "global_attn_indexes", c.global_attn_indexes, where);
  cfg::read(j, "layer_norm_eps", c.layer_norm_eps, where);
  cfg::read(j, "prompt_dim", c.prompt_dim, where);
  cfg::read(j, "mask_in_chans", c.mask_in_chans, where);
  cfg::read(j, "decoder_depth", c.decoder_depth, where);
  cfg::read(j, "decoder_mlp_dim", c.decoder_mlp_dim, where);
  cfg::read(j, "decoder_heads", c.decoder_heads, where);
  cfg::read(j, "attention_downsample_rate", c.attention_downsample_rate, where);
  cfg::read(j, "num_multimask_outputs", c.num_multimask_outputs, where);
  cfg::read(j, "iou_head_depth", c.iou_head_depth, where);
  cfg::read(j, "iou_head_hidden_dim", c.iou_head_hidden_dim, where);
  cfg::read(j, "pixel_mean", c.pixel_mean, where);
  cfg::read(j, "pixel_std", c.pixel_std, where);
  cfg::read(j, "drop_path_rate", c.drop_path_rate, where);
  cfg::read(j, "decoder_dropout", c.decoder_dropout, where);
  try {
    c.validate();
  } catch (const std::invalid_argument& e) {
    throw std::invalid_argument(where + ": " + e.what());
  }
  return c;
}

nlohmann::json model_config_to_json(const ModelConfig& c) {
  return nlohmann::json{{"img_size", c.img_size},
                        {"patch_size", c.patch_size},
                        {"embed_dim", c.embed_dim},
                        {"depth", c.depth},
                        {"num_heads", c.num_heads},
                        {"mlp_ratio", c.mlp_ratio},
                        {"window_size", c.window_size},
                        {"global_attn_indexes", c.global_attn_indexes},
                        {"layer_norm_eps", c.layer_norm_eps},
                        {"prompt_dim", c.prompt_dim},
                        {"mask_in_chans", c.mask_in_chans},
                        {"decoder_depth", c.decoder_depth},
                        {"decoder_mlp_dim", c.decoder_mlp_dim},
                        {"decoder_heads", c.decoder_heads},
                        {"attention_downsample_rate", c.attention_downsample_rate},
                        {"num_multimask_outputs", c.num_multimask_outputs},
                        {"iou_head_depth", c.iou_head_depth},
                        {"iou_head_hidden_dim", c.iou_head_hidden_dim},
                        {"pixel_mean", c.pixel_mean},
                        {"pixel_std", c.pixel_std},
                        {"drop_path_rate", c.drop_path_rate},
                        {"decoder_dropout", c.decoder_dropout}};
}

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
