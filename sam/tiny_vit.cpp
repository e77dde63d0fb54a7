#include "sam/tiny_vit.h"

#include <stdexcept>

#include "sam/amp.h"
#include "sam/common.h"

namespace sam {

Conv2dBNImpl::Conv2dBNImpl(int64_t in, int64_t out, int64_t kernel, int64_t stride, int64_t pad, int64_t groups,
                           double bn_weight_init) {
  c = register_module("c", torch::nn::Conv2d(torch::nn::Conv2dOptions(in, out, kernel)
                                                 .stride(stride)
                                                 .padding(pad)
                                                 .groups(groups)
                                                 .bias(false)));
  bn = register_module("bn", torch::nn::BatchNorm2d(torch::nn::BatchNormOptions(out)));
  torch::NoGradGuard ng;
  bn->weight.fill_(bn_weight_init);
  bn->bias.zero_();
}

torch::Tensor Conv2dBNImpl::forward(const torch::Tensor& x) { return bn->forward(c->forward(x)); }

TinyVitAttentionImpl::TinyVitAttentionImpl(int64_t dim, int64_t heads_, int64_t window_)
    : heads(heads_), key_dim(dim / heads_), window(window_), scale(1.0 / std::sqrt(static_cast<double>(dim / heads_))) {
  norm = register_module("norm", torch::nn::LayerNorm(torch::nn::LayerNormOptions({dim}).eps(1e-5)));
  qkv = register_module("qkv", torch::nn::Linear(dim, 3 * dim));
  proj = register_module("proj", torch::nn::Linear(dim, dim));
  attention_biases = register_parameter("attention_biases", torch::zeros({heads, window * window}));
  // Token p = (y, x) of the window, row-major; the bias of (p, q) is that of (|dy|, |dx|). Listed in
  // the order the offsets first appear going over (p, q) pairs, that is |dy| * window + |dx|.
  const int64_t N = window * window;
  bias_index = torch::empty({N, N}, torch::kLong);
  auto a = bias_index.accessor<int64_t, 2>();
  for (int64_t p = 0; p < N; ++p)
    for (int64_t q = 0; q < N; ++q) a[p][q] = std::abs(p / window - q / window) * window + std::abs(p % window - q % window);
}

torch::Tensor TinyVitAttentionImpl::forward(const torch::Tensor& x) {
  const int64_t B = x.size(0), N = x.size(1), C = x.size(2);
  // Per head: q, k and v side by side ([B, N, heads, 3 * key_dim]), as MobileSAM's qkv lays them out.
  auto h = qkv->forward(norm->forward(x)).view({B, N, heads, 3 * key_dim});
  auto q = h.narrow(3, 0, key_dim).permute({0, 2, 1, 3});
  auto k = h.narrow(3, key_dim, key_dim).permute({0, 2, 1, 3});
  auto v = h.narrow(3, 2 * key_dim, key_dim).permute({0, 2, 1, 3});
  if (bias_index.device() != attention_biases.device()) bias_index = bias_index.to(attention_biases.device());
  auto bias = attention_biases.index_select(1, bias_index.view({-1})).view({heads, N, N});
  auto attn = (sam::matmul(q, k.transpose(-2, -1)) * scale + bias.to(q.dtype())).softmax(-1);
  return proj->forward(sam::matmul(attn, v).transpose(1, 2).reshape({B, N, C}));
}

// The stem, as patch_embed.seq: Conv2dBN(3, d/2, 3, stride 2), GELU, Conv2dBN(d/2, d, 3, stride 2).
struct TinyVitPatchEmbedImpl : torch::nn::Module {
  explicit TinyVitPatchEmbedImpl(int64_t dim) {
    seq = register_module("seq", torch::nn::Sequential(Conv2dBN(3, dim / 2, 3, 2, 1), torch::nn::GELU(),
                                                        Conv2dBN(dim / 2, dim, 3, 2, 1)));
  }
  torch::Tensor forward(const torch::Tensor& x) { return seq->forward(x); }
  torch::nn::Sequential seq{nullptr};
};

namespace {

// Inverted residual (stage 0): [B, C, H, W] -> the same.
struct MBConvImpl : torch::nn::Module {
  MBConvImpl(int64_t dim, double ratio, double dpr) : drop(dpr) {
    const auto hidden = static_cast<int64_t>(static_cast<double>(dim) * ratio);
    conv1 = register_module("conv1", Conv2dBN(dim, hidden, 1));
    conv2 = register_module("conv2", Conv2dBN(hidden, hidden, 3, 1, 1, hidden));
    conv3 = register_module("conv3", Conv2dBN(hidden, dim, 1, 1, 0, 1, 0.0));
  }
  torch::Tensor forward(const torch::Tensor& x) {
    auto y = conv3->forward(torch::gelu(conv2->forward(torch::gelu(conv1->forward(x)))));
    return torch::gelu(drop_path(y, drop, is_training()) + x);
  }
  Conv2dBN conv1{nullptr}, conv2{nullptr}, conv3{nullptr};
  double drop;
};
TORCH_MODULE(MBConv);

// Between stages: [B, C, H, W] -> [B, C', H / stride, W / stride].
struct PatchMergingImpl : torch::nn::Module {
  PatchMergingImpl(int64_t in, int64_t out, int64_t stride) {
    conv1 = register_module("conv1", Conv2dBN(in, out, 1));
    conv2 = register_module("conv2", Conv2dBN(out, out, 3, stride, 1, out));
    conv3 = register_module("conv3", Conv2dBN(out, out, 1));
  }
  torch::Tensor forward(const torch::Tensor& x) {
    return conv3->forward(torch::gelu(conv2->forward(torch::gelu(conv1->forward(x)))));
  }
  Conv2dBN conv1{nullptr}, conv2{nullptr}, conv3{nullptr};
};
TORCH_MODULE(PatchMerging);

struct TinyVitMlpImpl : torch::nn::Module {
  TinyVitMlpImpl(int64_t dim, int64_t hidden) {
    norm = register_module("norm", torch::nn::LayerNorm(torch::nn::LayerNormOptions({dim}).eps(1e-5)));
    fc1 = register_module("fc1", torch::nn::Linear(dim, hidden));
    fc2 = register_module("fc2", torch::nn::Linear(hidden, dim));
  }
  torch::Tensor forward(const torch::Tensor& x) { return fc2->forward(torch::gelu(fc1->forward(norm->forward(x)))); }
  torch::nn::LayerNorm norm{nullptr};
  torch::nn::Linear fc1{nullptr}, fc2{nullptr};
};
TORCH_MODULE(TinyVitMlp);

// Attention block (stages 1 and on): [B, H, W, C] -> the same. Windows padded with zeros at the
// bottom and right (the padded tokens take part as keys, as in TinyViT), then the depthwise
// convolution and the MLP.
struct TinyVitBlockImpl : torch::nn::Module {
  TinyVitBlockImpl(int64_t dim, int64_t heads, int64_t window, double mlp_ratio, double dpr) : window(window), drop(dpr) {
    attn = register_module("attn", TinyVitAttention(dim, heads, window));
    mlp = register_module("mlp", TinyVitMlp(dim, static_cast<int64_t>(static_cast<double>(dim) * mlp_ratio)));
    local_conv = register_module("local_conv", Conv2dBN(dim, dim, 3, 1, 1, dim));
  }
  torch::Tensor forward(const torch::Tensor& x) {
    const int64_t H = x.size(1), W = x.size(2), C = x.size(3);
    auto [win, padded] = window_partition(x.contiguous(), window);  // views need the plain layout
    auto a = attn->forward(win.reshape({-1, window * window, C})).view({-1, window, window, C});
    auto y = x + drop_path(window_unpartition(a, window, padded, H, W), drop, is_training());
    y = local_conv->forward(y.permute({0, 3, 1, 2})).permute({0, 2, 3, 1});
    return y + drop_path(mlp->forward(y), drop, is_training());
  }
  TinyVitAttention attn{nullptr};
  TinyVitMlp mlp{nullptr};
  Conv2dBN local_conv{nullptr};
  int64_t window;
  double drop;
};
TORCH_MODULE(TinyVitBlock);

// One stage: its blocks, then (all but the last stage) the merge into the next. Stage 0 works on
// [B, C, H, W], the attention stages on [B, H, W, C]; forward takes and returns [B, C, H, W].
struct TinyVitStageImpl : torch::nn::Module {
  bool conv = false;
  torch::nn::ModuleList blocks;
  PatchMerging downsample{nullptr};

  torch::Tensor forward(const torch::Tensor& x) {
    torch::Tensor h = x;
    if (conv) {
      for (auto& b : *blocks) h = b->as<MBConv>()->forward(h);
    } else {
      h = h.permute({0, 2, 3, 1});
      for (auto& b : *blocks) h = b->as<TinyVitBlock>()->forward(h);
      h = h.permute({0, 3, 1, 2});
    }
    return downsample ? downsample->forward(h) : h;
  }
};

}  // namespace

TinyVitImpl::TinyVitImpl(const ModelConfig& c) : config(c) {
  const auto& dims = c.tiny_vit_dims;
  const size_t n = dims.size();
  patch_embed = register_module("patch_embed", std::make_shared<TinyVitPatchEmbedImpl>(dims[0]));
  int64_t total = 0;
  for (int d : c.tiny_vit_depths) total += d;
  int64_t at = 0;  // the block's index over all stages: its drop-path rate, linear from 0
  const auto rate = [&] { return total > 1 ? c.drop_path_rate * static_cast<double>(at++) / (total - 1) : (at++, 0.0); };
  for (size_t i = 0; i < n; ++i) {
    auto stage = std::make_shared<TinyVitStageImpl>();
    stage->conv = i == 0;
    for (int b = 0; b < c.tiny_vit_depths[i]; ++b) {
      if (i == 0)
        stage->blocks->push_back(MBConv(dims[0], c.tiny_vit_mbconv_ratio, rate()));
      else
        stage->blocks->push_back(TinyVitBlock(dims[i], c.tiny_vit_heads[i], c.tiny_vit_windows[i], c.mlp_ratio, rate()));
    }
    stage->register_module("blocks", stage->blocks);
    if (i + 1 < n)  // halves the resolution, except into the last stage
      stage->downsample = stage->register_module("downsample", PatchMerging(dims[i], dims[i + 1], i + 2 < n ? 2 : 1));
    layers->push_back(stage);
  }
  register_module("layers", layers);
  neck = register_module("neck", make_neck(dims[n - 1], c.prompt_dim, 1e-6));
  // TinyViT's initialisation of its linear layers (normal, std 0.02, biases 0); convolutions keep
  // libtorch's default, BatchNorm and LayerNorm start at 1 and 0 (conv3 of an MBConv at 0).
  torch::NoGradGuard ng;
  for (auto& m : modules(/*include_self=*/false))
    if (auto* l = m->as<torch::nn::Linear>()) {
      l->weight.normal_(0.0, 0.02);
      l->bias.zero_();
    }
}

void TinyVitImpl::set_activation_checkpointing(bool on) {
  if (on)
    throw std::invalid_argument("train.activation_checkpointing: the tiny_vit encoder does not offer it (its "
                                "activations are small; BatchNorm would count each recomputed batch twice)");
}

torch::Tensor TinyVitImpl::forward(const torch::Tensor& x) {
  TORCH_CHECK(x.dim() == 4 && x.size(1) == 3 && x.size(2) == config.img_size && x.size(3) == config.img_size,
              "image encoder expects [B, 3, ", config.img_size, ", ", config.img_size, "], got ", x.sizes());
  auto h = patch_embed->forward(x);
  for (auto& s : *layers) h = s->as<TinyVitStageImpl>()->forward(h);
  return neck->forward(h);
}

std::shared_ptr<ImageEncoderBase> make_image_encoder(const ModelConfig& c) {
  if (c.encoder == "tiny_vit") return std::make_shared<TinyVitImpl>(c);
  return ImageEncoder(c).ptr();
}

NamedTensors drop_tiny_vit_head(const NamedTensors& weights) {
  NamedTensors out;
  for (const auto& kv : weights)
    if (kv.first.rfind("image_encoder.norm_head.", 0) != 0 && kv.first.rfind("image_encoder.head.", 0) != 0)
      out.push_back(kv);
  return out;
}

}  // namespace sam
