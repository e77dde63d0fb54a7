#include "sam/mae.h"

#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <utility>
#include <vector>

#include "data/config_schema.h"
#include "sam/common.h"
#include "sam/sam_model.h"

namespace sam {

const cfg::Section<MaeConfig>& mae_config_schema() {
  static const cfg::Section<MaeConfig> s =
      cfg::Section<MaeConfig>("mae")
          .key("mask_ratio", &MaeConfig::mask_ratio,
               "share of the patches hidden from the encoder (MAE: 0.75); the encoder sees floor(L × (1 − ratio))",
               cfg::in_range_open_hi(0, 1))
          .key("norm_pix_loss", &MaeConfig::norm_pix_loss,
               "targets are each patch's pixels normalised to mean 0 and variance 1 (MAE's better setting); false: "
               "the normalised image's pixels")
          .key("decoder_dim", &MaeConfig::decoder_dim, "decoder width (MAE: 512)", cfg::at_least(4))
          .key("decoder_depth", &MaeConfig::decoder_depth, "decoder blocks (MAE: 8)", cfg::at_least(1))
          .key("decoder_heads", &MaeConfig::decoder_heads, "decoder attention heads (MAE: 16)", cfg::at_least(1));
  return s;
}

torch::Tensor sincos_pos_embed_2d(int64_t dim, int64_t grid) {
  if (dim % 4 != 0) throw std::invalid_argument("sincos_pos_embed_2d: width " + std::to_string(dim) + " is not divisible by 4");
  const int64_t q = dim / 4;
  auto omega = torch::pow(10000.0, -torch::arange(q, torch::kDouble) / static_cast<double>(q));  // [q]
  auto pos = torch::arange(grid, torch::kDouble);
  auto i = pos.repeat_interleave(grid), j = pos.repeat({grid});  // row, column of each token
  auto oj = j.unsqueeze(1) * omega, oi = i.unsqueeze(1) * omega;  // [L, q]
  auto table = torch::cat({torch::sin(oj), torch::cos(oj), torch::sin(oi), torch::cos(oi)}, 1);
  return torch::cat({torch::zeros({1, dim}, torch::kDouble), table}, 0).to(torch::kFloat);
}

MaskedAutoencoderImpl::MaskedAutoencoderImpl(const ModelConfig& encoder, const MaeConfig& mae) : enc(encoder), cfg(mae) {
  enc.validate();
  if (!(cfg.mask_ratio >= 0 && cfg.mask_ratio < 1)) throw std::invalid_argument("mae.mask_ratio must be in [0, 1)");
  if (cfg.decoder_dim % cfg.decoder_heads != 0 || cfg.decoder_dim % 4 != 0)
    throw std::invalid_argument("mae.decoder_dim " + std::to_string(cfg.decoder_dim) +
                                " must be divisible by 4 and by mae.decoder_heads " + std::to_string(cfg.decoder_heads));
  const int64_t C = enc.embed_dim, D = cfg.decoder_dim, G = enc.grid_size(), p = enc.patch_size;
  // MAE's state_dict order: the module's own tensors, then its children.
  cls_token = register_parameter("cls_token", torch::zeros({1, 1, C}));
  pos_embed = register_buffer("pos_embed", sincos_pos_embed_2d(C, G).unsqueeze(0));
  mask_token = register_parameter("mask_token", torch::zeros({1, 1, D}));
  decoder_pos_embed = register_buffer("decoder_pos_embed", sincos_pos_embed_2d(D, G).unsqueeze(0));
  patch_embed = register_module("patch_embed", PatchEmbed(p, 3, C));
  for (int64_t b = 0; b < enc.depth; ++b) {
    const double dpr = enc.depth > 1 ? enc.drop_path_rate * b / (enc.depth - 1) : 0.0;
    blocks->push_back(EncoderBlock(enc, 0, dpr, /*rel_pos=*/false));
  }
  register_module("blocks", blocks);
  norm = register_module("norm", torch::nn::LayerNorm(torch::nn::LayerNormOptions({C}).eps(enc.layer_norm_eps)));
  decoder_embed = register_module("decoder_embed", torch::nn::Linear(C, D));
  ModelConfig dec = enc;
  dec.embed_dim = D;
  dec.num_heads = cfg.decoder_heads;
  for (int64_t b = 0; b < cfg.decoder_depth; ++b) decoder_blocks->push_back(EncoderBlock(dec, 0, 0.0, /*rel_pos=*/false));
  register_module("decoder_blocks", decoder_blocks);
  decoder_norm = register_module("decoder_norm", torch::nn::LayerNorm(torch::nn::LayerNormOptions({D}).eps(enc.layer_norm_eps)));
  decoder_pred = register_module("decoder_pred", torch::nn::Linear(D, p * p * 3));
  pixel_mean = torch::tensor(std::vector<float>(enc.pixel_mean.begin(), enc.pixel_mean.end())).view({3, 1, 1});
  pixel_std = torch::tensor(std::vector<float>(enc.pixel_std.begin(), enc.pixel_std.end())).view({3, 1, 1});

  // MAE's initialize_weights: the patch kernel Xavier-uniform as a matrix (its bias as PyTorch's
  // default), class and mask tokens N(0, 0.02), every Linear Xavier-uniform with zero bias,
  // LayerNorms 1 and 0.
  torch::NoGradGuard ng;
  torch::nn::init::xavier_uniform_(patch_embed->proj->weight.view({C, -1}));
  torch::nn::init::normal_(cls_token, 0.0, 0.02);
  torch::nn::init::normal_(mask_token, 0.0, 0.02);
  for (auto& m : modules(/*include_self=*/false)) {
    if (auto* l = m->as<torch::nn::Linear>()) {
      torch::nn::init::xavier_uniform_(l->weight);
      if (l->bias.defined()) l->bias.zero_();
    } else if (auto* n = m->as<torch::nn::LayerNorm>()) {
      n->weight.fill_(1.0);
      n->bias.zero_();
    }
  }
}

torch::Tensor MaskedAutoencoderImpl::patchify(const torch::Tensor& imgs) const {
  const int64_t p = enc.patch_size, B = imgs.size(0), h = imgs.size(2) / p, w = imgs.size(3) / p;
  TORCH_CHECK(imgs.size(1) == 3 && imgs.size(2) % p == 0 && imgs.size(3) % p == 0, "patchify: bad shape ", imgs.sizes());
  return imgs.reshape({B, 3, h, p, w, p}).permute({0, 2, 4, 3, 5, 1}).reshape({B, h * w, p * p * 3});
}

torch::Tensor MaskedAutoencoderImpl::preprocess(const torch::Tensor& image) const {
  return normalize_and_pad(image, pixel_mean, pixel_std, enc.img_size);
}

torch::Tensor MaskedAutoencoderImpl::unpatchify(const torch::Tensor& x) const {
  const int64_t p = enc.patch_size, B = x.size(0);
  const auto h = static_cast<int64_t>(std::llround(std::sqrt(static_cast<double>(x.size(1)))));
  TORCH_CHECK(h * h == x.size(1) && x.size(2) == p * p * 3, "unpatchify: bad shape ", x.sizes());
  return x.reshape({B, h, h, p, p, 3}).permute({0, 5, 1, 3, 2, 4}).reshape({B, 3, h * p, h * p});
}

std::tuple<torch::Tensor, torch::Tensor, torch::Tensor> MaskedAutoencoderImpl::random_masking(
    const torch::Tensor& x, const torch::Tensor& noise) const {
  const int64_t B = x.size(0), L = x.size(1), C = x.size(2);
  const auto keep = static_cast<int64_t>(static_cast<double>(L) * (1.0 - cfg.mask_ratio));  // MAE: int()
  auto ids_shuffle = torch::argsort(noise, /*dim=*/int64_t{1});  // ascending: the lowest noise is kept
  auto ids_restore = torch::argsort(ids_shuffle, /*dim=*/int64_t{1});
  auto ids_keep = ids_shuffle.narrow(1, 0, keep);
  auto kept = torch::gather(x, 1, ids_keep.unsqueeze(-1).expand({B, keep, C}));
  auto mask = torch::ones({B, L}, x.options().dtype(torch::kFloat));
  mask.narrow(1, 0, keep).zero_();
  mask = torch::gather(mask, 1, ids_restore);
  return std::make_tuple(kept, mask, ids_restore);
}

torch::Tensor MaskedAutoencoderImpl::loss_of(const torch::Tensor& imgs, const torch::Tensor& pred,
                                             const torch::Tensor& mask) const {
  auto target = patchify(imgs).to(torch::kFloat);
  if (cfg.norm_pix_loss) {
    const auto [mean, sd] = patch_stats(target);
    target = (target - mean) / sd;
  }
  auto per_patch = (pred.to(torch::kFloat) - target).pow(2).mean(-1);  // [B, L]
  return (per_patch * mask).sum(1) / mask.sum(1).clamp_min(1.0);
}

std::pair<torch::Tensor, torch::Tensor> MaskedAutoencoderImpl::patch_stats(const torch::Tensor& patches) {
  auto mean = patches.mean(-1, true);
  auto var = (patches - mean).pow(2).sum(-1, true) / static_cast<double>(patches.size(-1) - 1);  // unbiased
  return {mean, (var + 1e-6).sqrt()};
}

torch::Tensor MaskedAutoencoderImpl::pred_to_pixels(const torch::Tensor& imgs, const torch::Tensor& pred) const {
  if (!cfg.norm_pix_loss) return pred;
  const auto [mean, sd] = patch_stats(patchify(imgs).to(torch::kFloat));
  return pred.to(torch::kFloat) * sd + mean;
}

MaskedAutoencoderImpl::Output MaskedAutoencoderImpl::forward(const torch::Tensor& imgs, torch::Tensor noise) {
  TORCH_CHECK(imgs.dim() == 4 && imgs.size(1) == 3 && imgs.size(2) == enc.img_size && imgs.size(3) == enc.img_size,
              "MAE expects [B, 3, ", enc.img_size, ", ", enc.img_size, "], got ", imgs.sizes());
  const int64_t B = imgs.size(0);
  auto x = patch_embed->forward(imgs).flatten(1, 2);  // [B, L, C]
  const int64_t L = x.size(1), C = x.size(2), D = cfg.decoder_dim;
  x = x + pos_embed.narrow(1, 1, L).to(x.dtype());
  if (!noise.defined()) noise = torch::rand({B, L}, imgs.options().dtype(torch::kFloat));
  TORCH_CHECK(noise.dim() == 2 && noise.size(0) == B && noise.size(1) == L, "MAE: noise must be [", B, ", ", L,
              "], got ", noise.sizes());
  auto [kept, mask, ids_restore] = random_masking(x, noise);
  auto cls = (cls_token + pos_embed.narrow(1, 0, 1)).to(kept.dtype()).expand({B, 1, C});
  x = torch::cat({cls, kept}, 1).unsqueeze(1);  // [B, 1, 1 + keep, C]: a sequence as a 1-row grid
  for (auto& b : *blocks) x = b->as<EncoderBlock>()->forward(x);
  x = layer_norm(norm, x.squeeze(1));

  // Decoder: embed, put mask tokens where patches were hidden, restore the order, add positions.
  x = decoder_embed->forward(x);
  const int64_t hidden = L + 1 - x.size(1);
  auto rest = torch::cat({x.narrow(1, 1, x.size(1) - 1), mask_token.to(x.dtype()).expand({B, hidden, D})}, 1);
  rest = torch::gather(rest, 1, ids_restore.unsqueeze(-1).expand({B, L, D}));
  x = torch::cat({x.narrow(1, 0, 1), rest}, 1) + decoder_pos_embed.to(x.dtype());
  x = x.unsqueeze(1);
  for (auto& b : *decoder_blocks) x = b->as<EncoderBlock>()->forward(x);
  x = layer_norm(decoder_norm, x.squeeze(1));
  auto pred = decoder_pred->forward(x).narrow(1, 1, L);
  return {loss_of(imgs, pred, mask), pred, mask};
}

namespace {

// Renames the first occurrence of each `from` in `name` to its `to`.
std::string renamed(std::string name, const std::vector<std::pair<std::string, std::string>>& pairs) {
  for (const auto& [from, to] : pairs) {
    const auto at = name.find(from);
    if (at != std::string::npos) name.replace(at, from.size(), to);
  }
  return name;
}

}  // namespace

NamedTensors mae_from_official(NamedTensors official) {
  for (auto& kv : official) {
    if (kv.first.rfind("model.", 0) == 0) kv.first.erase(0, 6);
    kv.first = renamed(kv.first, {{".mlp.fc1.", ".mlp.lin1."}, {".mlp.fc2.", ".mlp.lin2."}});
  }
  return official;
}

NamedTensors mae_state_dict(NamedTensors own) {
  NamedTensors out;
  // Buffers come after parameters in our listing; MAE's tables are parameters, listed in order.
  const std::vector<std::string> first{"cls_token", "pos_embed", "mask_token", "decoder_pos_embed"};
  for (const auto& name : first)
    for (const auto& kv : own)
      if (kv.first == name) out.push_back(kv);
  for (auto kv : own) {
    if (std::find(first.begin(), first.end(), kv.first) != first.end()) continue;
    kv.first = renamed(kv.first, {{".mlp.lin1.", ".mlp.fc1."}, {".mlp.lin2.", ".mlp.fc2."}});
    out.push_back(std::move(kv));
  }
  return out;
}

void save_mae(const std::string& path, const NamedTensors& weights) { pth_write(path, weights, "model"); }

}  // namespace sam
