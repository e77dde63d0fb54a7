#include "sam/flops.h"

#include <algorithm>
#include <cmath>

namespace sam {

namespace {

// The TinyViT-style encoder (sam/tiny_vit.h): stem, MBConv stage, merges, windowed attention stages
// (on the padded grid), neck.
double tiny_vit_forward_flops(const ModelConfig& c) {
  const auto& d = c.tiny_vit_dims;
  const size_t n = d.size();
  double R = c.img_size / 4.0, f = 0;
  f += 2 * (R * 2) * (R * 2) * (d[0] / 2.0) * 3 * 9 + 2 * R * R * d[0] * (d[0] / 2.0) * 9;  // stem
  for (size_t i = 0; i < n; ++i) {
    const double D = d[i], A = R * R;
    for (int b = 0; b < c.tiny_vit_depths[i]; ++b) {
      if (i == 0) {
        const double h = D * c.tiny_vit_mbconv_ratio;
        f += 2 * A * D * h * 2 + 2 * A * h * 9;  // 1x1 in and out, 3x3 depthwise
      } else {
        const double ws = c.tiny_vit_windows[i], side = std::ceil(R / ws) * ws, T = side * side, Lw = ws * ws;
        f += 2 * T * D * 3 * D + 2 * T * D * D;       // qkv and output projections (padded grid)
        f += (T / Lw) * 4 * Lw * Lw * D;               // q k^T and (attention) v
        f += 2 * A * D * 9 + 2 * 2 * A * D * D * c.mlp_ratio;  // depthwise 3x3, MLP
      }
    }
    if (i + 1 < n) {  // merge: 1x1 at this resolution, 3x3 depthwise and 1x1 at the next
      const double out = d[i + 1], next = i + 2 < n ? R / 2 : R;
      f += 2 * A * D * out + 2 * next * next * out * 9 + 2 * next * next * out * out;
      R = next;
    }
  }
  const double P = c.prompt_dim;
  return f + 2 * R * R * d[n - 1] * P + 2 * R * R * P * P * 9;  // neck
}

}  // namespace

double encoder_forward_flops(const ModelConfig& c) {
  if (c.encoder == "tiny_vit") return tiny_vit_forward_flops(c);
  const double G = c.grid_size(), C = c.embed_dim, L = G * G, p = c.patch_size;
  const double hidden = C * c.mlp_ratio, D = c.prompt_dim;
  double f = 2 * L * C * 3 * p * p;  // patch embedding
  for (int i = 0; i < c.depth; ++i) {
    const bool global =
        std::find(c.global_attn_indexes.begin(), c.global_attn_indexes.end(), i) != c.global_attn_indexes.end();
    const double ws = global ? G : c.window_size;
    const double side = global ? G : std::ceil(G / ws) * ws;  // the padded grid of windowed blocks
    const double T = side * side, windows = (side / ws) * (side / ws), Lw = ws * ws;
    f += 2 * T * C * 3 * C + 2 * T * C * C;  // qkv and output projections
    f += windows * 4 * Lw * Lw * C;          // q k^T and (attention) v, all heads
    f += 2 * T * 2 * ws * C;                 // the decomposed relative-position terms
    f += 2 * 2 * L * C * hidden;             // MLP
  }
  f += 2 * L * C * D + 2 * L * D * D * 9;  // neck: 1x1 and 3x3 convolutions
  return f;
}

double decoder_forward_flops(const ModelConfig& c, int64_t prompt_tokens) {
  const double D = c.prompt_dim, Di = D / c.attention_downsample_rate, E = double(c.grid_size()) * c.grid_size();
  const double M = c.num_multimask_outputs + 1, N = double(prompt_tokens) + 1 + M;  // IoU and mask tokens
  const double mlp = c.decoder_mlp_dim;
  auto cross = [&](double nq, double nk) {  // projections q, k, v, out and the two products
    return 2 * nq * D * Di + 2 * 2 * nk * D * Di + 2 * 2 * nq * nk * Di + 2 * nq * Di * D;
  };
  double f = 0;
  for (int l = 0; l < c.decoder_depth; ++l) {
    f += 4 * 2 * N * D * D + 2 * 2 * N * N * D;  // token self-attention (full width)
    f += cross(N, E);                            // tokens to image
    f += 2 * 2 * N * D * mlp;                    // token MLP
    f += cross(E, N);                            // image to tokens
  }
  f += cross(N, E);  // the final tokens-to-image attention
  f += 2 * E * D * (D / 4) * 4 + 2 * (4 * E) * (D / 4) * (D / 8) * 4;  // two 2x2 transposed convolutions
  f += M * 2 * (D * D + D * D + D * (D / 8));                           // hypernetwork MLPs
  f += 2 * M * (D / 8) * (16 * E);                                      // mask products
  f += 2 * (D * c.iou_head_hidden_dim + c.iou_head_hidden_dim * c.iou_head_hidden_dim + c.iou_head_hidden_dim * M);
  return f;
}

double train_step_flops(const ModelConfig& c, int64_t masks, int64_t rounds) {
  double dec = 0;
  for (int64_t r = 0; r < rounds; ++r) dec += decoder_forward_flops(c, r + 2);
  return 3 * encoder_forward_flops(c) + 3 * static_cast<double>(masks) * dec;
}

}  // namespace sam
