#include "sam/image_encoder.h"

#include "sam/amp.h"
#include "sam/attention.h"
#include "sam/common.h"
#include "sam/decoder_kernels.h"

#include <ATen/Parallel.h>

#include <algorithm>
#include <cmath>
#include <cstring>

namespace sam {

namespace F = torch::nn::functional;

torch::Tensor get_rel_pos(int64_t q_size, int64_t k_size, const torch::Tensor& rel_pos) {
  const int64_t max_rel_dist = 2 * std::max(q_size, k_size) - 1;
  torch::Tensor table = rel_pos;
  if (rel_pos.size(0) != max_rel_dist) {
    // Linear interpolation of the table along its length (e.g. another input size).
    auto t = rel_pos.reshape({1, rel_pos.size(0), -1}).permute({0, 2, 1});
    t = F::interpolate(t, F::InterpolateFuncOptions()
                              .size(std::vector<int64_t>{max_rel_dist})
                              .mode(torch::kLinear)
                              .align_corners(false));
    table = t.reshape({-1, max_rel_dist}).permute({1, 0});
  }
  const double qs = std::max(static_cast<double>(k_size) / q_size, 1.0);
  const double ks = std::max(static_cast<double>(q_size) / k_size, 1.0);
  // The indices are made on the table's device: built on the host, their copy up would make the
  // host wait for the GPU in every block (what segment-anything-fast removed).
  auto opts = torch::TensorOptions().dtype(torch::kFloat64).device(table.device());
  auto q_coords = torch::arange(q_size, opts).unsqueeze(1) * qs;
  auto k_coords = torch::arange(k_size, opts).unsqueeze(0) * ks;
  auto rel = (q_coords - k_coords) + (k_size - 1) * ks;
  return table.index({rel.to(torch::kLong)});
}

std::pair<torch::Tensor, std::pair<int64_t, int64_t>> window_partition(const torch::Tensor& x,
                                                                       int64_t ws) {
  const int64_t B = x.size(0), H = x.size(1), W = x.size(2), C = x.size(3);
  const int64_t ph = (ws - H % ws) % ws, pw = (ws - W % ws) % ws;
  auto xp = (ph > 0 || pw > 0) ? torch::constant_pad_nd(x, {0, 0, 0, pw, 0, ph}) : x;
  const int64_t Hp = H + ph, Wp = W + pw;
  auto win = xp.view({B, Hp / ws, ws, Wp / ws, ws, C})
                 .permute({0, 1, 3, 2, 4, 5})
                 .reshape({-1, ws, ws, C});
  return {win, {Hp, Wp}};
}

torch::Tensor window_unpartition(const torch::Tensor& windows, int64_t ws,
                                 std::pair<int64_t, int64_t> padded, int64_t h, int64_t w) {
  const int64_t Hp = padded.first, Wp = padded.second;
  const int64_t B = windows.size(0) / (Hp * Wp / ws / ws);
  auto x = windows.view({B, Hp / ws, Wp / ws, ws, ws, -1})
               .permute({0, 1, 3, 2, 4, 5})
               .reshape({B, Hp, Wp, -1});
  if (Hp > h || Wp > w) x = x.index({torch::indexing::Slice(), torch::indexing::Slice(0, h),
                                     torch::indexing::Slice(0, w)})
                                .contiguous();
  return x;
}

EncoderAttentionImpl::EncoderAttentionImpl(int64_t dim, int64_t heads, int64_t input_size, bool use_rel_pos)
    : num_heads(heads), head_dim(dim / heads) {
  scale = 1.0 / std::sqrt(static_cast<double>(head_dim));
  // Registration order matches the reference state dict: own tables first, then submodules.
  if (use_rel_pos) {
    rel_pos_h = register_parameter("rel_pos_h", torch::zeros({2 * input_size - 1, head_dim}));
    rel_pos_w = register_parameter("rel_pos_w", torch::zeros({2 * input_size - 1, head_dim}));
  }
  qkv = register_module("qkv", torch::nn::Linear(torch::nn::LinearOptions(dim, 3 * dim).bias(true)));
  proj = register_module("proj", torch::nn::Linear(dim, dim));
}

torch::Tensor EncoderAttentionImpl::forward(const torch::Tensor& x) {
  using torch::indexing::Slice;
  const int64_t B = x.size(0), H = x.size(1), W = x.size(2), C = x.size(3);
  const int64_t L = H * W, BH = B * num_heads, hd = head_dim;
  // [B, L, 3, nH, hd] -> [3, B*nH, L, hd]
  auto qkv_t = qkv->forward(x).reshape({B, L, 3, num_heads, hd}).permute({2, 0, 3, 1, 4}).reshape(
      {3, BH, L, hd});
  auto o = attend(qkv_t, H, W);  // [BH, L, hd]
  o = o.view({B, num_heads, H, W, hd}).permute({0, 2, 3, 1, 4}).reshape({B, H, W, C});
  return proj->forward(o);
}

torch::Tensor EncoderAttentionImpl::attend(const torch::Tensor& qkv_t, int64_t H, int64_t W) {
  const int64_t BH = qkv_t.size(1), hd = head_dim;
  auto q = qkv_t[0], k = qkv_t[1], v = qkv_t[2];
  if (!rel_pos_h.defined())  // plain attention (the reference's use_rel_pos=False; MAE's ViT)
    return sam::matmul(torch::softmax(sam::matmul(q * scale, k.transpose(-2, -1)), -1), v);

  // Decomposed relative positions, computed from the unscaled q as in the reference:
  // rel_h[b, y, x, ky] = sum_c q[b, y, x, c] Rh[y, ky, c]; rel_w[b, y, x, kx] likewise with Rw[x].
  auto Rh = get_rel_pos(H, H, rel_pos_h);  // [H, H, hd]
  auto Rw = get_rel_pos(W, W, rel_pos_w);  // [W, W, hd]
  auto q4 = q.view({BH, H, W, hd});
  auto rel_h = batched_matmul(q4.permute({1, 0, 2, 3}).reshape({H, BH * W, hd}), Rh.transpose(1, 2))
                   .view({H, BH, W, H})
                   .permute({1, 0, 2, 3});  // [BH, H, W, kh]
  auto rel_w = batched_matmul(q4.permute({2, 0, 1, 3}).reshape({W, BH * H, hd}), Rw.transpose(1, 2))
                   .view({W, BH, H, W})
                   .permute({1, 2, 0, 3});  // [BH, H, W, kw]

  return rel_pos_attention(q, k, v, rel_h, rel_w, scale, H, W);  // [BH, L, hd]
}

torch::Tensor EncoderAttentionImpl::forward_windows(const torch::Tensor& x, int64_t ws) {
  const int64_t B = x.size(0), H = x.size(1), W = x.size(2), C = x.size(3), nH = num_heads,
                hd = head_dim;
  const int64_t Hp = H + (ws - H % ws) % ws, Wp = W + (ws - W % ws) % ws;
  const int64_t wy = Hp / ws, wx = Wp / ws, nW = B * wy * wx, L = ws * ws;
  // The projections of the real tokens only: a padding token is a zero vector after the norm, so
  // its q, k and v are the projection's bias (exactly), and its outputs are dropped.
  const auto qkv_rows = qkv->forward(x).contiguous();  // [B, H, W, 3C]
  const auto bias = qkv->bias.contiguous();
  auto qkv_t = torch::empty({3, nW * nH, L, hd}, x.options());
  const float* src = qkv_rows.data_ptr<float>();
  const float* bp = bias.data_ptr<float>();
  float* dst = qkv_t.data_ptr<float>();
  const int64_t plane = nW * nH * L * hd;
  // Window n = (b, iy, ix), position p = (r, c) <- token (iy * ws + r, ix * ws + c) or the bias.
  at::parallel_for(0, nW * L, 64, [&](int64_t i0, int64_t i1) {
    for (int64_t i = i0; i < i1; ++i) {
      const int64_t n = i / L, p = i % L, b = n / (wy * wx), iy = n / wx % wy, ix = n % wx;
      const int64_t y = iy * ws + p / ws, xx = ix * ws + p % ws;
      const float* row = (y < H && xx < W) ? src + ((b * H + y) * W + xx) * 3 * C : bp;
      for (int64_t part = 0; part < 3; ++part)
        for (int64_t h = 0; h < nH; ++h)
          std::memcpy(dst + part * plane + ((n * nH + h) * L + p) * hd, row + part * C + h * hd,
                      sizeof(float) * hd);
    }
  });
  const auto o = attend(qkv_t, ws, ws).contiguous();  // [nW * nH, L, hd]
  // The heads merged back into the token grid, the padding's rows skipped.
  auto merged = torch::empty({B, H, W, C}, x.options());
  const float* op = o.data_ptr<float>();
  float* mp = merged.data_ptr<float>();
  at::parallel_for(0, B * H * W, 64, [&](int64_t t0, int64_t t1) {
    for (int64_t t = t0; t < t1; ++t) {
      const int64_t b = t / (H * W), y = t / W % H, xx = t % W;
      const int64_t n = (b * wy + y / ws) * wx + xx / ws, p = (y % ws) * ws + xx % ws;
      for (int64_t h = 0; h < nH; ++h)
        std::memcpy(mp + t * C + h * hd, op + ((n * nH + h) * L + p) * hd, sizeof(float) * hd);
    }
  });
  return proj->forward(merged);
}

EncoderBlockImpl::EncoderBlockImpl(const ModelConfig& c, int64_t ws, double dpr, bool rel_pos)
    : window_size(ws), drop_path_rate(dpr) {
  const int64_t C = c.embed_dim;
  norm1 = register_module(
      "norm1", torch::nn::LayerNorm(torch::nn::LayerNormOptions({C}).eps(c.layer_norm_eps)));
  attn = register_module("attn", EncoderAttention(C, c.num_heads, ws > 0 ? ws : c.grid_size(), rel_pos));
  norm2 = register_module(
      "norm2", torch::nn::LayerNorm(torch::nn::LayerNormOptions({C}).eps(c.layer_norm_eps)));
  mlp = register_module("mlp", MLPBlock(C, static_cast<int64_t>(C * c.mlp_ratio), /*relu=*/false));
}

namespace {

// Activation checkpointing of one block: the forward runs without a graph; the backward re-runs
// the block with gradients and back-propagates through it, which also accumulates the block's
// parameter gradients. The re-run must compute what the forward computed: drop path draws its
// masks from the generator of the tensor's device (the CPU's or the GPU's), whose state is saved
// and replayed, and the forward's autocast state is restored around it (the backward runs outside
// the caller's autocast region, on CUDA on another thread).
struct CheckpointedBlock : torch::autograd::Function<CheckpointedBlock> {
  static torch::Tensor forward(torch::autograd::AutogradContext* ctx, torch::Tensor x,
                               int64_t block_address) {
    auto* block = reinterpret_cast<EncoderBlockImpl*>(block_address);
    ctx->saved_data["block"] = block_address;
    ctx->saved_data["rng"] = generator_state(x.device());
    const auto a = autocast_state(x.device().type());
    ctx->saved_data["autocast"] = a.enabled;
    ctx->saved_data["autocast_dtype"] = static_cast<int64_t>(a.dtype);
    ctx->save_for_backward({x});
    torch::NoGradGuard ng;
    return block->forward_impl(x);
  }

  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grad_out) {
    auto* block = reinterpret_cast<EncoderBlockImpl*>(ctx->saved_data["block"].toInt());
    auto x = ctx->get_saved_variables()[0].detach().requires_grad_(true);
    const auto now = generator_state(x.device());
    set_generator_state(x.device(), ctx->saved_data["rng"].toTensor());
    torch::Tensor y;
    {
      AutocastState a;
      a.enabled = ctx->saved_data["autocast"].toBool();
      a.dtype = static_cast<c10::ScalarType>(ctx->saved_data["autocast_dtype"].toInt());
      AutocastGuard autocast(x.device().type(), a);
      torch::AutoGradMode enable(true);
      y = block->forward_impl(x);
    }
    set_generator_state(x.device(), now);
    torch::autograd::backward({y}, {grad_out[0]});
    return {x.grad(), torch::Tensor()};
  }
};

}  // namespace

torch::Tensor EncoderBlockImpl::forward(const torch::Tensor& x) {
  if (checkpoint && is_training() && torch::GradMode::is_enabled()) {
    if (x.requires_grad()) return CheckpointedBlock::apply(x, reinterpret_cast<int64_t>(this));
    // A frozen prefix (patch embedding, earlier blocks) before a block that trains (fine-tuning,
    // adapters): the block is recomputed like the others, from an input that starts a graph.
    for (const auto& p : parameters())
      if (p.requires_grad()) return CheckpointedBlock::apply(x.detach().requires_grad_(true), reinterpret_cast<int64_t>(this));
  }
  return forward_impl(x);
}

torch::Tensor EncoderBlockImpl::forward_impl(const torch::Tensor& x) {
  auto h = layer_norm(norm1, x);
  // The CPU inference kernels' conditions: no autograd, float32 on the CPU, no autocast.
  const bool cpu_inference = decoder_kernels_apply(h) && !is_training() &&
                             attn->qkv->weight.scalar_type() == torch::kFloat;
  if (window_size > 0 && cpu_inference && attn->qkv->bias.defined() && attn->rel_pos_h.defined()) {
    h = attn->forward_windows(h, window_size);  // inference on the CPU: no work on the padding
  } else if (window_size > 0) {
    const int64_t H = h.size(1), W = h.size(2);
    auto [win, padded] = window_partition(h, window_size);
    h = window_unpartition(attn->forward(win), window_size, padded, H, W);
  } else {
    h = attn->forward(h);
  }
  if (cpu_inference && h.scalar_type() == x.scalar_type()) {
    // Inference: the residual sums in place, into tensors this block made (no new 12 MiB
    // tensors per block; the same sums).
    auto y = h.is_contiguous() ? h.add_(x) : x + h;
    auto m = mlp->forward(layer_norm(norm2, y));
    return m.add_(y);
  }
  auto y = x + drop_path(h, drop_path_rate, is_training());
  return y + drop_path(mlp->forward(layer_norm(norm2, y)), drop_path_rate, is_training());
}

PatchEmbedImpl::PatchEmbedImpl(int64_t patch, int64_t in_chans, int64_t dim) {
  proj = register_module(
      "proj", torch::nn::Conv2d(torch::nn::Conv2dOptions(in_chans, dim, patch).stride(patch)));
}

torch::Tensor PatchEmbedImpl::forward(const torch::Tensor& x) {
  // A convolution whose stride equals its kernel is one matrix product over the non-overlapping
  // patches: [B*G*G, 3*p*p] x [3*p*p, C], which lands channels-last directly (on CPU, ~2x faster
  // than the convolution and its permuted copy for the small training models, forward and back).
  const auto& w = proj->weight;  // [C, 3, p, p]
  const int64_t p = w.size(2), Cin = w.size(1), C = w.size(0);
  if (!x.is_cpu() || x.size(2) % p != 0 || x.size(3) % p != 0)
    return proj->forward(x).permute({0, 2, 3, 1}).contiguous();
  const int64_t B = x.size(0), gh = x.size(2) / p, gw = x.size(3) / p;
  auto patches = x.reshape({B, Cin, gh, p, gw, p}).permute({0, 2, 4, 1, 3, 5}).reshape({B * gh * gw, Cin * p * p});
  return torch::addmm(proj->bias, patches, w.view({C, Cin * p * p}).t()).view({B, gh, gw, C});
}

ImageEncoderImpl::ImageEncoderImpl(const ModelConfig& c) : config(c) {
  const int64_t G = c.grid_size(), C = c.embed_dim;
  pos_embed = register_parameter("pos_embed", torch::zeros({1, G, G, C}));
  patch_embed = register_module("patch_embed", PatchEmbed(c.patch_size, 3, C));
  for (int64_t i = 0; i < c.depth; ++i) {
    const bool global = std::find(c.global_attn_indexes.begin(), c.global_attn_indexes.end(), i) !=
                        c.global_attn_indexes.end();
    const double dpr = c.depth > 1 ? c.drop_path_rate * i / (c.depth - 1) : 0.0;
    blocks->push_back(EncoderBlock(c, global ? 0 : c.window_size, dpr));
  }
  register_module("blocks", blocks);
  neck = register_module("neck", make_neck(C, c.prompt_dim, c.layer_norm_eps));
}

torch::nn::Sequential make_neck(int64_t in, int64_t out, double eps) {
  return torch::nn::Sequential(torch::nn::Conv2d(torch::nn::Conv2dOptions(in, out, 1).bias(false)),
                               LayerNorm2d(out, eps),
                               torch::nn::Conv2d(torch::nn::Conv2dOptions(out, out, 3).padding(1).bias(false)),
                               LayerNorm2d(out, eps));
}

void ImageEncoderImpl::set_activation_checkpointing(bool on) {
  for (auto& b : *blocks) b->as<EncoderBlock>()->checkpoint = on;
}

torch::Tensor ImageEncoderImpl::forward_blocks(const torch::Tensor& x, int64_t n) {
  auto h = patch_embed->forward(x) + pos_embed;
  for (int64_t i = 0; i < n; ++i) h = blocks[i]->as<EncoderBlock>()->forward(h);
  return h;
}

torch::Tensor ImageEncoderImpl::forward(const torch::Tensor& x) {
  TORCH_CHECK(x.dim() == 4 && x.size(1) == 3 && x.size(2) == config.img_size &&
                  x.size(3) == config.img_size,
              "image encoder expects [B, 3, ", config.img_size, ", ", config.img_size, "], got ",
              x.sizes());
  auto h = forward_blocks(x, static_cast<int64_t>(blocks->size()));
  return neck->forward(h.permute({0, 3, 1, 2}));
}

}  // namespace sam
