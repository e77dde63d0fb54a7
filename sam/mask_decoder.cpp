#include "sam/mask_decoder.h"

#include "sam/attention.h"

#include <cmath>

namespace sam {

DecoderAttentionImpl::DecoderAttentionImpl(int64_t dim, int64_t heads_, int64_t rate,
                                           double dropout_)
    : heads(heads_), internal_dim(dim / rate), dropout(dropout_) {
  TORCH_CHECK(internal_dim % heads == 0, "num_heads must divide embedding_dim / downsample_rate");
  q_proj = register_module("q_proj", torch::nn::Linear(dim, internal_dim));
  k_proj = register_module("k_proj", torch::nn::Linear(dim, internal_dim));
  v_proj = register_module("v_proj", torch::nn::Linear(dim, internal_dim));
  out_proj = register_module("out_proj", torch::nn::Linear(internal_dim, dim));
}

torch::Tensor DecoderAttentionImpl::forward(const torch::Tensor& q_in, const torch::Tensor& k_in,
                                            const torch::Tensor& v_in) {
  const int64_t ch = internal_dim / heads;
  auto split = [&](const torch::Tensor& x) {
    return x.view({x.size(0), x.size(1), heads, ch}).transpose(1, 2);  // [B, h, N, ch]
  };
  auto q = split(q_proj->forward(q_in));
  auto k = split(k_proj->forward(k_in));
  auto v = split(v_proj->forward(v_in));
  const int64_t B = q.size(0), Nq = q.size(2), Nk = k.size(2);
  auto out = attention_core(q.reshape({B * heads, Nq, ch}), k.reshape({B * heads, Nk, ch}),
                            v.reshape({B * heads, Nk, ch}), 1.0 / std::sqrt(static_cast<double>(ch)),
                            dropout, is_training());
  out = out.view({B, heads, Nq, ch}).transpose(1, 2).reshape({B, Nq, internal_dim});
  return out_proj->forward(out);
}

TwoWayAttentionBlockImpl::TwoWayAttentionBlockImpl(const ModelConfig& c, bool skip_pe)
    : skip_first_layer_pe(skip_pe) {
  const int64_t D = c.prompt_dim;
  const double p = c.decoder_dropout;
  self_attn = register_module("self_attn", DecoderAttention(D, c.decoder_heads, 1, p));
  norm1 = register_module("norm1", torch::nn::LayerNorm(torch::nn::LayerNormOptions({D})));
  cross_attn_token_to_image = register_module(
      "cross_attn_token_to_image",
      DecoderAttention(D, c.decoder_heads, c.attention_downsample_rate, p));
  norm2 = register_module("norm2", torch::nn::LayerNorm(torch::nn::LayerNormOptions({D})));
  mlp = register_module("mlp", MLPBlock(D, c.decoder_mlp_dim, /*relu=*/true, p));
  norm3 = register_module("norm3", torch::nn::LayerNorm(torch::nn::LayerNormOptions({D})));
  norm4 = register_module("norm4", torch::nn::LayerNorm(torch::nn::LayerNormOptions({D})));
  cross_attn_image_to_token = register_module(
      "cross_attn_image_to_token",
      DecoderAttention(D, c.decoder_heads, c.attention_downsample_rate, p));
}

std::pair<torch::Tensor, torch::Tensor> TwoWayAttentionBlockImpl::forward(
    torch::Tensor queries, torch::Tensor keys, const torch::Tensor& query_pe,
    const torch::Tensor& key_pe) {
  if (skip_first_layer_pe) {
    queries = self_attn->forward(queries, queries, queries);
  } else {
    auto q = queries + query_pe;
    queries = queries + self_attn->forward(q, q, queries);
  }
  queries = norm1->forward(queries);

  auto k_pe = keys + key_pe;
  queries = queries + cross_attn_token_to_image->forward(queries + query_pe, k_pe, keys);
  queries = norm2->forward(queries);

  queries = norm3->forward(queries + mlp->forward(queries));

  keys = keys + cross_attn_image_to_token->forward(k_pe, queries + query_pe, queries);
  keys = norm4->forward(keys);
  return {queries, keys};
}

TwoWayTransformerImpl::TwoWayTransformerImpl(const ModelConfig& c) {
  const int64_t D = c.prompt_dim;
  for (int i = 0; i < c.decoder_depth; ++i) layers->push_back(TwoWayAttentionBlock(c, i == 0));
  register_module("layers", layers);
  final_attn_token_to_image = register_module(
      "final_attn_token_to_image",
      DecoderAttention(D, c.decoder_heads, c.attention_downsample_rate, c.decoder_dropout));
  norm_final_attn =
      register_module("norm_final_attn", torch::nn::LayerNorm(torch::nn::LayerNormOptions({D})));
}

std::pair<torch::Tensor, torch::Tensor> TwoWayTransformerImpl::forward(
    const torch::Tensor& image, const torch::Tensor& image_pe, const torch::Tensor& tokens) {
  const int64_t B = tokens.size(0);
  // Token-major and contiguous: a transposed view here would send every projection of the image
  // tokens down libtorch's slow batched-matmul path.
  auto keys = image.flatten(2).transpose(1, 2).contiguous();     // [B or 1, HW, D]
  auto key_pe = image_pe.flatten(2).transpose(1, 2).contiguous();  // [1, HW, D]
  if (keys.size(0) != B) keys = keys.expand({B, keys.size(1), keys.size(2)}).contiguous();
  auto queries = tokens;
  for (const auto& layer : *layers) {
    auto out = layer->as<TwoWayAttentionBlock>()->forward(queries, keys, tokens, key_pe);
    queries = out.first;
    keys = out.second;
  }
  auto attn = final_attn_token_to_image->forward(queries + tokens, keys + key_pe, keys);
  queries = norm_final_attn->forward(queries + attn);
  return {queries, keys};
}

MaskDecoderImpl::MaskDecoderImpl(const ModelConfig& c)
    : num_mask_tokens(c.num_multimask_outputs + 1) {
  const int64_t D = c.prompt_dim;
  transformer = register_module("transformer", TwoWayTransformer(c));
  iou_token = register_module("iou_token", torch::nn::Embedding(1, D));
  mask_tokens = register_module("mask_tokens", torch::nn::Embedding(num_mask_tokens, D));
  output_upscaling = register_module(
      "output_upscaling",
      torch::nn::Sequential(
          torch::nn::ConvTranspose2d(torch::nn::ConvTranspose2dOptions(D, D / 4, 2).stride(2)),
          LayerNorm2d(D / 4, 1e-6), torch::nn::GELU(),
          torch::nn::ConvTranspose2d(torch::nn::ConvTranspose2dOptions(D / 4, D / 8, 2).stride(2)),
          torch::nn::GELU()));
  for (int64_t i = 0; i < num_mask_tokens; ++i)
    output_hypernetworks_mlps->push_back(MLP(D, D, D / 8, 3));
  register_module("output_hypernetworks_mlps", output_hypernetworks_mlps);
  iou_prediction_head = register_module(
      "iou_prediction_head", MLP(D, c.iou_head_hidden_dim, num_mask_tokens, c.iou_head_depth));
}

namespace {

// A ConvTranspose2d with kernel 2 and stride 2 on channels-last input is one matrix product per
// pixel: y[b, 2i+di, 2j+dj, o] = sum_c x[b, i, j, c] W[c, o, di, dj] + bias[o].
// x: [B, h, w, C] -> [B, 2h, 2w, O].
torch::Tensor conv_transpose_2x2(const torch::Tensor& x, const torch::nn::ConvTranspose2dImpl& conv) {
  const auto& wt = conv.weight;  // [C, O, 2, 2]
  const int64_t B = x.size(0), h = x.size(1), w = x.size(2), C = x.size(3), O = wt.size(1);
  auto y = torch::matmul(x.reshape({B * h * w, C}), wt.reshape({C, O * 4}));  // [BHW, O*2*2]
  y = y.view({B, h, w, O, 2, 2}).permute({0, 1, 4, 2, 5, 3}).reshape({B, 2 * h, 2 * w, O});
  return conv.bias.defined() ? y + conv.bias : y;
}

}  // namespace

torch::Tensor MaskDecoderImpl::upscale(const torch::Tensor& keys, int64_t h, int64_t w) {
  // The reference's output_upscaling (ConvT, LayerNorm2d, GELU, ConvT, GELU) on channels-last
  // tensors, which turns both transposed convolutions into plain matrix products.
  const int64_t B = keys.size(0), D = keys.size(2);
  const auto& ct1 = *output_upscaling[0]->as<torch::nn::ConvTranspose2dImpl>();
  const auto& ln = *output_upscaling[1]->as<LayerNorm2dImpl>();
  const auto& ct2 = *output_upscaling[3]->as<torch::nn::ConvTranspose2dImpl>();
  auto x = conv_transpose_2x2(keys.reshape({B, h, w, D}), ct1);
  // LayerNorm2d normalises over channels: the last dimension here (same mean/variance arithmetic).
  auto u = x.mean(-1, true);
  auto d = x - u;
  auto var = d.pow(2).mean(-1, true);
  x = torch::gelu(d / (var + ln.eps).sqrt() * ln.weight + ln.bias);
  return torch::gelu(conv_transpose_2x2(x, ct2));
}

DecoderOutput MaskDecoderImpl::predict_all(const torch::Tensor& image_embeddings,
                                           const torch::Tensor& image_pe,
                                           const torch::Tensor& sparse,
                                           const torch::Tensor& dense) {
  const int64_t B = sparse.size(0);
  auto output_tokens = torch::cat({iou_token->weight, mask_tokens->weight}, 0);  // [1 + M, D]
  auto tokens = torch::cat(
      {output_tokens.unsqueeze(0).expand({B, output_tokens.size(0), output_tokens.size(1)}),
       sparse},
      1);
  TORCH_CHECK(image_embeddings.size(0) == 1 || image_embeddings.size(0) == B,
              "image embeddings must be [1 or B, D, G, G] for B = ", B, " prompts; got ",
              image_embeddings.sizes());
  auto src = image_embeddings + dense;  // broadcasts a shared embedding over the prompts
  if (src.size(0) != B) src = src.expand({B, src.size(1), src.size(2), src.size(3)});
  const int64_t D = src.size(1), h = src.size(2), w = src.size(3);
  auto [hs, keys] = transformer->forward(src, image_pe, tokens);
  auto iou_token_out = hs.select(1, 0);
  (void)D;
  auto up = upscale(keys, h, w);  // [B, 4h, 4w, D/8] channels-last
  std::vector<torch::Tensor> hyper;
  for (int64_t i = 0; i < num_mask_tokens; ++i)
    hyper.push_back(output_hypernetworks_mlps[i]->as<MLP>()->forward(hs.select(1, i + 1)));
  auto hyper_in = torch::stack(hyper, 1);  // [B, M, D/8]
  const int64_t c = up.size(3), uh = up.size(1), uw = up.size(2);
  // masks[b, m, p] = sum_c hyper_in[b, m, c] up[b, p, c]
  auto masks = batched_matmul(up.reshape({B, uh * uw, c}), hyper_in.transpose(1, 2))
                   .transpose(1, 2)
                   .reshape({B, -1, uh, uw});
  auto iou = iou_prediction_head->forward(iou_token_out);
  return {masks, iou};
}

DecoderOutput MaskDecoderImpl::forward(const torch::Tensor& image_embeddings,
                                       const torch::Tensor& image_pe, const torch::Tensor& sparse,
                                       const torch::Tensor& dense, bool multimask) {
  auto all = predict_all(image_embeddings, image_pe, sparse, dense);
  using torch::indexing::Slice;
  auto sl = multimask ? Slice(1, torch::indexing::None) : Slice(0, 1);
  return {all.masks.index({Slice(), sl}), all.iou.index({Slice(), sl})};
}

}  // namespace sam
