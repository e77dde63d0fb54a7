#include "sam/mask_decoder.h"

#include "sam/amp.h"
#include "sam/attention.h"
#include "sam/cpu_gemm.h"
#include "sam/decoder_kernels.h"
#include "sam/image_pass.h"

#include <ATen/Parallel.h>

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

namespace {

// a [Ba, n, k] @ b [Bb, k, m] -> [max(Ba, Bb), n, m], a batch of one broadcast against the other
// without copies: a shared right factor takes every left row in one product, a shared left factor
// is the transposed case.
torch::Tensor bmm_bcast(const torch::Tensor& a, const torch::Tensor& b) {
  const int64_t Ba = a.size(0), Bb = b.size(0), n = a.size(1), k = a.size(2), m = b.size(2);
  if (Ba == Bb) return batched_matmul(a, b);
  if (Bb == 1) return sam::matmul(a.reshape({Ba * n, k}), b[0]).view({Ba, n, m});
  TORCH_CHECK(Ba == 1, "bmm_bcast: batch sizes ", Ba, " and ", Bb);
  return sam::matmul(b.transpose(1, 2).reshape({Bb * m, k}), a[0].t()).view({Bb, m, n}).transpose(1, 2);
}

// softmax(s * scale) over the last dimension: the fused CPU kernel in inference.
torch::Tensor softmax_scaled(const torch::Tensor& s, double scale) {
  if (decoder_kernels_apply(s)) return softmax_last_dim(s, scale);
  return torch::softmax(s * scale, -1);
}

// The probabilities of the image-to-token order from projected queries q [Bq, Nq, I] and keys
// k [Bk, Nk, I]: [B, Nq, h, Nk].
torch::Tensor values_order_probs(const torch::Tensor& q, const torch::Tensor& k, int64_t heads, double scale) {
  const int64_t Bq = q.size(0), Nq = q.size(1), Bk = k.size(0), Nk = k.size(1), B = std::max(Bq, Bk);
  const int64_t ch = q.size(2) / heads;
  auto kh = k.view({Bk, Nk, heads, ch}).permute({2, 3, 0, 1}).reshape({heads, ch, Bk * Nk});
  if (Bq == 1) {  // one query set (a shared image) against every prompt's keys
    auto qh = q[0].view({Nq, heads, ch}).transpose(0, 1).contiguous();  // [h, Nq, ch]
    auto s = batched_matmul(qh, kh.contiguous()).view({heads, Nq, Bk, Nk});
    return softmax_scaled(s, scale).permute({2, 1, 0, 3});
  }
  auto qh = q.view({Bq, Nq, heads, ch}).transpose(1, 2).reshape({Bq * heads, Nq, ch});
  auto kb = kh.view({heads, ch, Bk, Nk}).permute({2, 0, 1, 3}).reshape({Bk * heads, ch, Nk});
  if (Bk != B) kb = kb.repeat({B, 1, 1});
  auto s = batched_matmul(qh, kb).view({B, heads, Nq, Nk});
  return softmax_scaled(s, scale).transpose(1, 2);
}

}  // namespace

DecoderAttentionImpl::Order DecoderAttentionImpl::choose_order(int64_t Bq, int64_t Bk, int64_t Nq, int64_t Nk,
                                                               int64_t D, bool q_given, bool kv_given) const {
  if (is_training() && dropout > 0) return Order::kPlain;  // dropout acts on the probabilities
  if (kv_given) return Order::kPlain;  // the keys' projections are what the other orders avoid
  const int64_t B = std::max(Bq, Bk), I = internal_dim;
  // Multiply-accumulates of each order (projections of a shared batch counted once).
  const double q = q_given ? 0.0 : static_cast<double>(Bq) * Nq * D * I;
  const double plain = q + 2.0 * Bk * Nk * D * I + 2.0 * B * Nq * Nk * I + 1.0 * B * Nq * I * D;
  const double keys = q + static_cast<double>(Bq) * Nq * I * D + 2.0 * B * heads * Nq * Nk * D +
                      2.0 * B * Nq * I * D;
  const double values = q + 2.0 * Bk * Nk * D * I + 1.0 * B * Nq * Nk * I + 1.0 * Bk * Nk * I * D +
                        1.0 * B * Nq * heads * Nk * D;
  if (keys < plain && keys <= values) return Order::kKeys;
  if (values < plain) return Order::kValues;
  return Order::kPlain;
}

torch::Tensor DecoderAttentionImpl::keys_order_queries(const torch::Tensor& q) const {
  const int64_t Bq = q.size(0), Nq = q.size(1), D = k_proj->weight.size(1), ch = internal_dim / heads;
  auto qh = q.reshape({Bq * Nq, heads, ch}).transpose(0, 1);  // [h, Bq*Nq, ch]
  auto qk = batched_matmul(qh.contiguous(), k_proj->weight.view({heads, ch, D}));  // [h, Bq*Nq, D]
  return qk.view({heads, Bq, Nq, D}).transpose(0, 1).reshape({Bq, heads * Nq, D});
}

torch::Tensor DecoderAttentionImpl::keys_order_output(const torch::Tensor& pv, int64_t Nq) {
  const int64_t B = pv.size(0), D = pv.size(2), ch = internal_dim / heads;
  auto pvh = pv.view({B, heads, Nq, D}).transpose(0, 1).reshape({heads, B * Nq, D});
  auto wv = v_proj->weight.view({heads, ch, D}).transpose(1, 2);            // [h, D, ch]
  auto oh = batched_matmul(pvh, wv) + v_proj->bias.view({heads, 1, ch});  // [h, B*Nq, ch]
  auto o = oh.view({heads, B, Nq, ch}).permute({1, 2, 0, 3}).reshape({B, Nq, internal_dim});
  return linear(*out_proj, o);
}

std::pair<torch::Tensor, torch::Tensor> DecoderAttentionImpl::folded_scores(const torch::Tensor& k) const {
  const int64_t Bk = k.size(0), Nk = k.size(1), D = q_proj->weight.size(1), ch = internal_dim / heads;
  auto kh4 = k.view({Bk, Nk, heads, ch}).transpose(1, 2);                   // [Bk, h, Nk, ch]
  auto mt = sam::matmul(kh4, q_proj->weight.view({heads, ch, D}));           // [Bk, h, Nk, D]
  auto c = sam::matmul(kh4, q_proj->bias.view({heads, ch, 1})).view({Bk, heads * Nk});
  return {mt.reshape({Bk, heads * Nk, D}), c};
}

torch::Tensor DecoderAttentionImpl::values_through_out(const torch::Tensor& v) const {
  const int64_t Bk = v.size(0), Nk = v.size(1), D = out_proj->weight.size(0), ch = internal_dim / heads;
  auto wo = out_proj->weight.view({D, heads, ch}).permute({1, 2, 0});   // [h, ch, D]
  auto vh = v.view({Bk * Nk, heads, ch}).transpose(0, 1).contiguous();  // [h, Bk*Nk, ch]
  return batched_matmul(vh, wo.contiguous())                            // [h, Bk*Nk, D]
      .view({heads, Bk, Nk, D})
      .transpose(0, 1)
      .reshape({Bk, heads * Nk, D});
}

torch::Tensor DecoderAttentionImpl::forward(const torch::Tensor& q_in, const torch::Tensor& k_in,
                                            const torch::Tensor& v_in, const torch::Tensor& q_proj_out,
                                            const std::pair<torch::Tensor, torch::Tensor>& kv_proj_out) {
  const int64_t Bq = q_in.size(0), Bk = k_in.size(0), B = std::max(Bq, Bk);
  TORCH_CHECK((Bq == B || Bq == 1) && (Bk == B || Bk == 1) && v_in.size(0) == Bk,
              "DecoderAttention: batch sizes of q ", Bq, ", k ", Bk, ", v ", v_in.size(0));
  const int64_t Nq = q_in.size(1), Nk = k_in.size(1), D = q_in.size(2), ch = internal_dim / heads;
  const double scale = 1.0 / std::sqrt(static_cast<double>(ch));
  const bool q_given = q_proj_out.defined(), kv_given = kv_proj_out.first.defined();
  TORCH_CHECK(!q_given || (q_proj_out.size(0) == Bq && q_proj_out.size(1) == Nq),
              "DecoderAttention: precomputed queries do not match");
  TORCH_CHECK(!kv_given || (kv_proj_out.first.size(0) == Bk && kv_proj_out.first.size(1) == Nk),
              "DecoderAttention: precomputed keys do not match");
  Order order = forced_order != Order::kAuto ? forced_order : choose_order(Bq, Bk, Nq, Nk, D, q_given, kv_given);
  if (kv_given) order = Order::kPlain;
  // [Bq, Nq, I]; the image-to-token order may do without it.
  torch::Tensor q;
  if (order != Order::kValues) q = q_given ? q_proj_out : linear(*q_proj, q_in);

  if (order == Order::kKeys) {
    // Few queries against many keys (token-to-image): the keys and values are never projected.
    // The score of head h is (q_h Wk_h) k_in^T (the key bias adds a per-row constant, which the
    // softmax ignores), and its output P_h (v_in Wv_h^T + bv_h) = (P_h v_in) Wv_h^T + bv_h (rows
    // of P sum to 1).
    auto qk = keys_order_queries(q);
    auto p = softmax_scaled(bmm_bcast(qk, k_in.transpose(1, 2)), scale);  // [B, h*Nq, Nk]
    return keys_order_output(bmm_bcast(p, v_in), Nq);
  }

  auto k = kv_given ? kv_proj_out.first : linear(*k_proj, k_in);  // [Bk, Nk, I]
  auto v = kv_given ? kv_proj_out.second : linear(*v_proj, v_in);
  if (order == Order::kValues) {
    // Many queries against few keys (image-to-token): out_proj goes through the values first,
    // V'_h = v_h Wo_h^T [Nk, D], so that out = sum_h P_h V'_h + bo is one product over h*Nk terms.
    torch::Tensor p;  // [B, Nq, h, Nk]
    if (!q_given && heads * Nk < internal_dim && !torch::GradMode::is_enabled()) {
      // The queries are never projected either (inference): the score of head h is
      // (x Wq_h^T + bq_h) k_h^T = x (Wq_h^T k_h^T) + bq_h k_h^T, one product of the image tokens
      // with a [D, h*Nk] matrix instead of one with the [D, I] projection (h*Nk < I).
      auto [mt, c] = folded_scores(k);
      auto s = bmm_bcast(q_in, mt.transpose(1, 2)) + c.unsqueeze(1);  // [B, Nq, h*Nk]
      p = softmax_scaled(s.view({B, Nq, heads, Nk}), scale);
    } else {
      q = q_given ? q_proj_out : linear(*q_proj, q_in);
      p = values_order_probs(q, k, heads, scale);
    }
    auto out = bmm_bcast(p.reshape({B, Nq, heads * Nk}), values_through_out(v));
    return out + out_proj->bias;
  }
  q = q_given ? q_proj_out : linear(*q_proj, q_in);
  if (kv_given && Bk == 1 && !(is_training() && dropout > 0)) {
    // The per-image cache's keys and values (one image, every prompt): each head's slice is
    // read where it lies ([Nk, I] rows, the head's ch columns) by strided products, so the two
    // 4096 x 128 tensors are never copied into per-head layouts.
    auto qh = q.view({Bq * Nq, heads, ch}).transpose(0, 1);             // [h, Bq*Nq, ch]
    auto kh = k[0].view({Nk, heads, ch}).transpose(0, 1);                 // [h, Nk, ch]
    auto vh = v[0].view({Nk, heads, ch}).transpose(0, 1);
    auto p = softmax_scaled(batched_matmul(qh, kh.transpose(1, 2)), scale);  // [h, Bq*Nq, Nk]
    auto out = batched_matmul(p, vh);                                     // [h, Bq*Nq, ch]
    return linear(*out_proj, out.view({heads, Bq, Nq, ch}).permute({1, 2, 0, 3}).reshape({Bq, Nq, internal_dim}));
  }
  // The reference's order. A shared key set (batch 1) is attended by every prompt's queries at
  // once (the prompts folded into the query rows); a shared query set is repeated.
  if (Bk == 1 && Bq > 1) {
    auto qh = q.view({Bq * Nq, heads, ch}).transpose(0, 1);  // [h, Bq*Nq, ch]
    auto kh = k[0].view({Nk, heads, ch}).transpose(0, 1), vh = v[0].view({Nk, heads, ch}).transpose(0, 1);
    auto out = attention_core(qh, kh, vh, scale, dropout, is_training());  // [h, Bq*Nq, ch]
    return linear(*out_proj, out.view({heads, Bq, Nq, ch}).permute({1, 2, 0, 3}).reshape({Bq, Nq, internal_dim}));
  }
  if (Bq != B) q = q.expand({B, Nq, internal_dim});
  auto split = [&](const torch::Tensor& x) {
    return x.view({x.size(0), x.size(1), heads, ch}).transpose(1, 2);  // [B, h, N, ch]
  };
  auto qs = split(q.contiguous()), ks = split(k), vs = split(v);
  auto out = attention_core(qs.reshape({B * heads, Nq, ch}), ks.reshape({B * heads, Nk, ch}),
                            vs.reshape({B * heads, Nk, ch}), scale, dropout, is_training());
  out = out.view({B, heads, Nq, ch}).transpose(1, 2).reshape({B, Nq, internal_dim});
  return linear(*out_proj, out);
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

torch::Tensor TwoWayAttentionBlockImpl::self_part(const torch::Tensor& queries, const torch::Tensor& query_pe) {
  if (skip_first_layer_pe) return layer_norm(norm1, self_attn->forward(queries, queries, queries));
  auto q = queries + query_pe;
  return layer_norm(norm1, queries + self_attn->forward(q, q, queries));
}

torch::Tensor TwoWayAttentionBlockImpl::mlp_part(const torch::Tensor& queries, const torch::Tensor& t2i_out) {
  auto x = layer_norm(norm2, queries + t2i_out);
  return layer_norm(norm3, x + mlp->forward(x));
}

std::pair<torch::Tensor, torch::Tensor> TwoWayAttentionBlockImpl::forward(
    torch::Tensor queries, torch::Tensor keys, const torch::Tensor& query_pe,
    const torch::Tensor& key_pe, const DecoderImageCache* cache) {
  queries = self_part(queries, query_pe);
  // With a cache, k_pe is only a shape: its projections are in the cache.
  auto k_pe = cache ? keys : keys + key_pe;
  const std::pair<torch::Tensor, torch::Tensor> kv =
      cache ? std::make_pair(cache->t2i_k, cache->t2i_v) : std::pair<torch::Tensor, torch::Tensor>{};
  queries = mlp_part(queries, cross_attn_token_to_image->forward(queries + query_pe, k_pe, keys, {}, kv));

  keys = keys + cross_attn_image_to_token->forward(k_pe, queries + query_pe, queries,
                                                   cache ? cache->i2t_q : torch::Tensor());
  keys = layer_norm(norm4, keys);
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

bool TwoWayTransformerImpl::image_pass_applies(const torch::Tensor& tokens) const {
  if (!decoder_kernels_apply(tokens) || !cpu_sgemm_available()) return false;
  auto dropping = [](const DecoderAttention& a) { return a->is_training() && a->dropout > 0; };
  if (dropping(final_attn_token_to_image)) return false;
  for (const auto& layer : *layers) {
    const auto& blk = *layer->as<TwoWayAttentionBlock>();
    if (dropping(blk.cross_attn_token_to_image) || dropping(blk.cross_attn_image_to_token)) return false;
  }
  return true;
}

namespace {

// x [B, N, H*ch] -> [B, H*N, H*ch], block diagonal by heads: row (h, i) holds x[b, i]'s head-h
// channels in head h's columns and zeros elsewhere. One product with it computes every head's
// products with its own channels only.
torch::Tensor head_block_diagonal(const torch::Tensor& x, int64_t H) {
  const int64_t B = x.size(0), N = x.size(1), ch = x.size(2) / H;
  auto out = torch::zeros({B, H, N, H, ch}, x.options());
  auto xh = x.view({B, N, H, ch});
  for (int64_t h = 0; h < H; ++h) out.select(1, h).select(2, h).copy_(xh.select(2, h));
  return out.view({B, H * N, H * ch});
}

}  // namespace

std::pair<torch::Tensor, torch::Tensor> TwoWayTransformerImpl::forward_image_passes(
    const torch::Tensor& image, const torch::Tensor& image_pe, const torch::Tensor& tokens,
    const DecoderImageCache* cache) {
  // Inference on the CPU: the token-side steps as in forward(), and per block one pass over the
  // image tokens (sam/image_pass.h) for its image-to-token attention and norm4 together with the
  // next token-to-image attention's reduction (the next block's, or the final one). The keys'
  // positional sum and every intermediate of the image side stay inside the pass's tiles.
  const int64_t B = tokens.size(0), Nt = tokens.size(1), n = static_cast<int64_t>(layers->size());
  auto keys = cache ? cache->keys : image.flatten(2).transpose(1, 2).contiguous();  // [B or 1, HW, D]
  auto key_pe = cache ? cache->key_pe : image_pe.flatten(2).transpose(1, 2).contiguous();
  auto block = [&](int64_t l) -> TwoWayAttentionBlockImpl& { return *layers[l]->as<TwoWayAttentionBlock>(); };
  auto t2i_of = [&](int64_t l) -> DecoderAttentionImpl& {
    return l < n ? *block(l).cross_attn_token_to_image : *final_attn_token_to_image;
  };
  auto t2i_scale = [&](int64_t l) {
    return 1.0 / std::sqrt(static_cast<double>(t2i_of(l).internal_dim / t2i_of(l).heads));
  };
  torch::Tensor queries, t2i_out, qk, pv;
  // The first token-to-image attention: with a cache, over its projected keys and values (each
  // head's queries against its own channels, block-diagonal); else in the keys order.
  const bool cached = n > 0 && cache;
  run_with_helpers([&] {
    queries = n > 0 ? block(0).self_part(tokens, tokens) : tokens;
    auto q = linear(*t2i_of(0).q_proj, queries + tokens);
    qk = cached ? head_block_diagonal(q, t2i_of(0).heads) : t2i_of(0).keys_order_queries(q);
  });
  pv = cached ? attend_image_rows(cache->t2i_k, cache->t2i_v, qk, t2i_scale(0))
              : image_pass(keys, key_pe, nullptr, qk, t2i_scale(0)).second;
  run_with_helpers([&] {
    if (cached) {
      // Each head's output rows are the diagonal blocks: [B, H, Nt, H, ch] -> [B, Nt, H*ch].
      auto& a = t2i_of(0);
      const int64_t H = a.heads, ch = a.internal_dim / H;
      auto o = torch::diagonal(pv.view({B, H, Nt, H, ch}), 0, 1, 3).permute({0, 1, 3, 2});  // [B, Nt, H, ch]
      t2i_out = linear(*a.out_proj, o.reshape({B, Nt, H * ch}));
    } else {
      t2i_out = t2i_of(0).keys_order_output(pv, Nt);
    }
  });
  for (int64_t l = 0; l < n; ++l) {
    auto& blk = block(l);
    ImageToTokenTerms terms;
    run_with_helpers([&] {
      queries = blk.mlp_part(queries, t2i_out);
      // The image-to-token attention of block l in the values order: the scores' matrix folds the
      // query projection in (or, for the cached first block, pairs each head's cached queries with
      // its token keys), the values pass through out_proj.
      auto& i2t = *blk.cross_attn_image_to_token;
      const auto k = linear(*i2t.k_proj, queries + tokens), v = linear(*i2t.v_proj, queries);
      if (l == 0 && cached) {
        // [B, I, h*Nt], block diagonal: head h's cached query channels against its Nt token keys.
        terms.x_rows = cache->i2t_q;
        terms.m = head_block_diagonal(k, i2t.heads).transpose(1, 2).contiguous();
      } else {
        auto [mt, c] = i2t.folded_scores(k);
        terms.m = mt.transpose(1, 2).contiguous();
        terms.c = c;
      }
      terms.vo = i2t.values_through_out(v);
      terms.bo = i2t.out_proj->bias;
      terms.ln_weight = blk.norm4->weight;
      terms.ln_bias = blk.norm4->bias;
      terms.ln_eps = blk.norm4->options.eps();
      terms.heads = i2t.heads;
      terms.scale = 1.0 / std::sqrt(static_cast<double>(i2t.internal_dim / i2t.heads));
      terms.in_place = l > 0;  // then the keys are the previous pass's output, needed no more
      // The next attention's queries are ready before the pass: the next block's self-attention
      // reads only the tokens.
      queries = l + 1 < n ? block(l + 1).self_part(queries, tokens) : queries;
      qk = t2i_of(l + 1).keys_order_queries(linear(*t2i_of(l + 1).q_proj, queries + tokens));
    });
    std::tie(keys, pv) = image_pass(keys, key_pe, &terms, qk, t2i_scale(l + 1));
    run_with_helpers([&] { t2i_out = t2i_of(l + 1).keys_order_output(pv, Nt); });
  }
  run_with_helpers([&] { queries = layer_norm(norm_final_attn, queries + t2i_out); });
  if (keys.size(0) != B) keys = keys.expand({B, keys.size(1), keys.size(2)});
  return {queries, keys};
}

std::pair<torch::Tensor, torch::Tensor> TwoWayTransformerImpl::forward(
    const torch::Tensor& image, const torch::Tensor& image_pe, const torch::Tensor& tokens,
    const DecoderImageCache* cache) {
  if (image_pass_applies(tokens)) return forward_image_passes(image, image_pe, tokens, cache);
  const int64_t B = tokens.size(0);
  // Token-major and contiguous: a transposed view here would send every projection of the image
  // tokens down libtorch's slow batched-matmul path.
  // A shared image (batch 1) stays shared until the first image-to-token attention makes the
  // image tokens depend on the prompt.
  auto keys = cache ? cache->keys : image.flatten(2).transpose(1, 2).contiguous();  // [B or 1, HW, D]
  auto key_pe = cache ? cache->key_pe : image_pe.flatten(2).transpose(1, 2).contiguous();  // [1, HW, D]
  auto queries = tokens;
  bool first = true;
  for (const auto& layer : *layers) {
    auto out = layer->as<TwoWayAttentionBlock>()->forward(queries, keys, tokens, key_pe, first ? cache : nullptr);
    first = false;
    queries = out.first;
    keys = out.second;
  }
  auto attn = final_attn_token_to_image->forward(queries + tokens, keys + key_pe, keys);
  queries = layer_norm(norm_final_attn, queries + attn);
  if (keys.size(0) != B) keys = keys.expand({B, keys.size(1), keys.size(2)});
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
  auto y = sam::matmul(x.reshape({B * h * w, C}), wt.reshape({C, O * 4}));  // [BHW, O*2*2]
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
  if (decoder_kernels_apply(keys)) {
    // Inference on the CPU: each product's output columns in (di, dj, o) order, then one pass
    // that adds the bias, normalises, applies GELU and writes the 2x2 sub-pixels in place.
    auto w1 = ct1.weight.permute({0, 2, 3, 1}).reshape({D, -1});  // [C, 2*2*O]
    const int64_t O1 = w1.size(1) / 4;
    auto x = convt2x2_epilogue(torch::mm(keys.reshape({B * h * w, D}), w1), B, h, w, O1, ct1.bias,
                               ln.weight, ln.bias, ln.eps);
    auto w2 = ct2.weight.permute({0, 2, 3, 1}).reshape({O1, -1});
    const int64_t O2 = w2.size(1) / 4;
    return convt2x2_epilogue(torch::mm(x.view({-1, O1}), w2), B, 2 * h, 2 * w, O2, ct2.bias, {}, {},
                             0.0);
  }
  auto x = conv_transpose_2x2(keys.reshape({B, h, w, D}), ct1);
  // LayerNorm2d normalises over channels: the last dimension here (same mean/variance arithmetic).
  auto u = x.mean(-1, true);
  auto d = x - u;
  auto var = d.pow(2).mean(-1, true);
  x = torch::gelu(d / (var + ln.eps).sqrt() * ln.weight + ln.bias);
  return torch::gelu(conv_transpose_2x2(x, ct2));
}

DecoderImageCache MaskDecoderImpl::prepare_image(const torch::Tensor& image_embedding,
                                                 const torch::Tensor& image_pe,
                                                 const torch::Tensor& no_mask_dense) {
  TORCH_CHECK(image_embedding.size(0) == 1, "prepare_image: one embedding [1, D, G, G], got ",
              image_embedding.sizes());
  torch::NoGradGuard ng;
  DecoderImageCache c;
  auto src = image_embedding + no_mask_dense.narrow(0, 0, 1);
  c.keys = src.flatten(2).transpose(1, 2).contiguous();
  c.key_pe = image_pe.flatten(2).transpose(1, 2).contiguous();
  if (transformer->layers->size() == 0) return c;
  auto& first = *transformer->layers[0]->as<TwoWayAttentionBlock>();
  auto k_pe = c.keys + c.key_pe;
  c.t2i_k = linear(*first.cross_attn_token_to_image->k_proj, k_pe);
  c.t2i_v = linear(*first.cross_attn_token_to_image->v_proj, c.keys);
  c.i2t_q = linear(*first.cross_attn_image_to_token->q_proj, k_pe);
  return c;
}

DecoderOutput MaskDecoderImpl::predict_all(const torch::Tensor& image_embeddings,
                                           const torch::Tensor& image_pe,
                                           const torch::Tensor& sparse,
                                           const torch::Tensor& dense,
                                           const DecoderImageCache* cache) {
  const int64_t B = sparse.size(0);
  TORCH_CHECK(image_embeddings.size(0) == 1 || image_embeddings.size(0) == B,
              "image embeddings must be [1 or B, D, G, G] for B = ", B, " prompts; got ",
              image_embeddings.sizes());
  // With no mask prompts the dense embedding is one vector broadcast (batch stride 0): the sum
  // with a shared embedding is then the same for every prompt and is computed once.
  const bool dense_shared = dense.size(0) == 1 || dense.stride(0) == 0;
  const bool shared = image_embeddings.size(0) == 1 && dense_shared;
  // A cache holds for the no-mask embedding only: one vector broadcast over the grid.
  const bool no_mask = dense.stride(2) == 0 && dense.stride(3) == 0;
  if (!shared || !no_mask || (cache && !cache->defined())) cache = nullptr;
  // (With a cache the sum is not needed: its image tokens are in the cache.)
  auto src = cache ? image_embeddings : shared ? image_embeddings + dense.narrow(0, 0, 1) : image_embeddings + dense;
  const int64_t h = src.size(2), w = src.size(3);
  auto [hs, keys] = transformer->forward(src, image_pe, tokens(sparse), cache);
  return heads(hs, keys, h, w);
}

torch::Tensor MaskDecoderImpl::tokens(const torch::Tensor& sparse) {
  const int64_t B = sparse.size(0);
  auto output_tokens = torch::cat({iou_token->weight, mask_tokens->weight}, 0);  // [1 + M, D]
  return torch::cat(
      {output_tokens.unsqueeze(0).expand({B, output_tokens.size(0), output_tokens.size(1)}),
       sparse},
      1);
}

DecoderOutput MaskDecoderImpl::heads(const torch::Tensor& hs, const torch::Tensor& keys, int64_t h, int64_t w) {
  const int64_t B = hs.size(0);
  torch::Tensor hyper_in, iou;
  auto token_heads = [&] {
    std::vector<torch::Tensor> hyper;
    for (int64_t i = 0; i < num_mask_tokens; ++i)
      hyper.push_back(output_hypernetworks_mlps[i]->as<MLP>()->forward(hs.select(1, i + 1)));
    hyper_in = torch::stack(hyper, 1);  // [B, M, D/8]
    iou = iou_prediction_head->forward(hs.select(1, 0));
  };
  // A few prompts: 13 products of a few rows each, their weights split over the threads. Batches
  // (the generator's 64 prompts) keep BLAS's own threads.
  if (decoder_kernels_apply(hs) && B <= 8)
    run_with_helpers(token_heads);
  else
    token_heads();
  if (decoder_kernels_apply(keys) && cpu_sgemm_available()) {
    // Inference on the CPU: the upscaling and the masks' products row by row in cache.
    const auto& ct1 = *output_upscaling[0]->as<torch::nn::ConvTranspose2dImpl>();
    const auto& ln = *output_upscaling[1]->as<LayerNorm2dImpl>();
    const auto& ct2 = *output_upscaling[3]->as<torch::nn::ConvTranspose2dImpl>();
    const int64_t D = keys.size(2), O1 = ct1.weight.size(1);
    auto w1 = ct1.weight.permute({0, 2, 3, 1}).reshape({D, -1});  // [D, (di, dj, o)]
    auto w2 = ct2.weight.permute({0, 2, 3, 1}).reshape({O1, -1});
    return {upscale_masks(keys, h, w, w1, ct1.bias, ln.weight, ln.bias, ln.eps, w2, ct2.bias, hyper_in), iou};
  }
  auto up = upscale(keys, h, w);  // [B, 4h, 4w, D/8] channels-last
  const int64_t c = up.size(3), uh = up.size(1), uw = up.size(2);
  // masks[b, m, p] = sum_c hyper_in[b, m, c] up[b, p, c]
  auto masks = batched_matmul(up.reshape({B, uh * uw, c}), hyper_in.transpose(1, 2))
                   .transpose(1, 2)
                   .reshape({B, -1, uh, uw});
  return {masks, iou};
}

DecoderOutput MaskDecoderImpl::forward(const torch::Tensor& image_embeddings,
                                       const torch::Tensor& image_pe, const torch::Tensor& sparse,
                                       const torch::Tensor& dense, bool multimask,
                                       const DecoderImageCache* cache) {
  auto all = predict_all(image_embeddings, image_pe, sparse, dense, cache);
  using torch::indexing::Slice;
  auto sl = multimask ? Slice(1, torch::indexing::None) : Slice(0, 1);
  return {all.masks.index({Slice(), sl}), all.iou.index({Slice(), sl})};
}

}  // namespace sam
