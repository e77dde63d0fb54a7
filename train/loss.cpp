#include "train/loss.h"

#include <algorithm>
#include <cmath>

#include <ATen/Parallel.h>

#include "sam/fast_math.h"

namespace sam::train {

torch::Tensor focal_loss(const torch::Tensor& logits, const torch::Tensor& targets, double alpha,
                         double gamma) {
  auto t = targets.to(logits.dtype());
  auto p = torch::sigmoid(logits);
  // Stable BCE with logits, written out so that targets [N, 1, H, W] broadcast over M candidates.
  auto ce = torch::relu(logits) - logits * t + torch::log1p(torch::exp(-logits.abs()));
  auto p_t = p * t + (1 - p) * (1 - t);
  auto loss = ce * (1 - p_t).pow(gamma);
  if (alpha >= 0) loss = loss * (alpha * t + (1 - alpha) * (1 - t));
  return loss.flatten(2).mean(-1);
}

torch::Tensor dice_loss(const torch::Tensor& logits, const torch::Tensor& targets) {
  auto p = torch::sigmoid(logits).flatten(2);
  auto t = targets.to(logits.dtype()).flatten(2);
  auto num = 2 * (p * t).sum(-1);
  auto den = p.sum(-1) + t.sum(-1);  // t.sum is [N, 1] and broadcasts
  return 1 - (num + 1) / (den + 1);
}

torch::Tensor actual_iou(const torch::Tensor& logits, const torch::Tensor& targets) {
  torch::NoGradGuard ng;
  auto pred = (logits > 0).flatten(2);
  auto gt = (targets.to(torch::kFloat) > 0.5).flatten(2);
  auto inter = (pred & gt).sum(-1).to(torch::kFloat);
  auto uni = (pred | gt).sum(-1).to(torch::kFloat);
  return inter / uni.clamp_min(1.0);
}

// ---------------------------------------------------------------------------------------------
// Fused focal + dice + IoU on the CPU

namespace {

#define SAM_LOSS_MULTIVERSION __attribute__((target_clones("avx2", "default")))

struct PixelTerms {
  float p, ce, q;  // sigmoid, cross-entropy, 1 - p_t
};

inline PixelTerms pixel_terms(float x, float t) {
  const float e = fastmath::exp(-(x < 0.f ? -x : x));
  const float p = (x >= 0 ? 1.f : e) / (1.f + e);
  const float ce = (x > 0.f ? x : 0.f) - x * t + fastmath::log1p_unit(e);
  const float q = t > 0.5f ? 1.f - p : p;
  return {p, ce, q};
}

// q^gamma and q^(gamma - 1): gamma = 2 (the paper's) as products, so that the loops vectorise;
// other gammas through std::pow.
template <bool kGamma2>
inline float pow_gamma(float q, float gamma) {
  return kGamma2 ? q * q : std::pow(q, gamma);
}
template <bool kGamma2>
inline float pow_gamma_m1(float q, float gamma) {
  return kGamma2 ? q : std::pow(q, gamma - 1.f);
}

// Per (n, m): focal sum, sum p, sum p t, |pred & gt|, |pred | gt|. Float partial sums in 16 lanes
// (the loop vectorises; a single running sum would not), folded into doubles every 1024 pixels.
template <bool kGamma2>
SAM_LOSS_MULTIVERSION void loss_sums_impl(const float* x, const uint8_t* t, int64_t hw, float a_pos, float a_neg,
                                          float gamma, double* out5) {
  constexpr int kLanes = 16;
  double focal = 0, sp = 0, spt = 0;
  int64_t inter = 0, uni = 0;
  for (int64_t i0 = 0; i0 < hw; i0 += 1024) {
    const int64_t n = std::min<int64_t>(hw - i0, 1024);
    float f[kLanes] = {}, ps[kLanes] = {}, pts[kLanes] = {};
    int32_t in[kLanes] = {}, un[kLanes] = {};
    auto add = [&](int l, int64_t i) {
      const float ti = t[i] ? 1.f : 0.f;
      const auto k = pixel_terms(x[i], ti);
      f[l] += (t[i] ? a_pos : a_neg) * k.ce * pow_gamma<kGamma2>(k.q, gamma);
      ps[l] += k.p;
      pts[l] += k.p * ti;
      const int32_t pred = x[i] > 0 ? 1 : 0, gt = t[i] ? 1 : 0;
      in[l] += pred & gt;
      un[l] += pred | gt;
    };
    int64_t j = 0;
    for (; j + kLanes <= n; j += kLanes)
      for (int l = 0; l < kLanes; ++l) add(l, i0 + j + l);
    for (; j < n; ++j) add(0, i0 + j);
    for (int l = 0; l < kLanes; ++l) {
      focal += f[l];
      sp += ps[l];
      spt += pts[l];
      inter += in[l];
      uni += un[l];
    }
  }
  out5[0] = focal;
  out5[1] = sp;
  out5[2] = spt;
  out5[3] = static_cast<double>(inter);
  out5[4] = static_cast<double>(uni);
}

void loss_sums(const float* x, const uint8_t* t, int64_t hw, float alpha, float gamma, double* out5) {
  const float a_pos = alpha >= 0 ? alpha : 1.f, a_neg = alpha >= 0 ? 1.f - alpha : 1.f;
  if (gamma == 2.f) loss_sums_impl<true>(x, t, hw, a_pos, a_neg, gamma, out5);
  else loss_sums_impl<false>(x, t, hw, a_pos, a_neg, gamma, out5);
}

// d focal_mean / dx = g_focal * a_t [ (p - t) q^g + ce g q^(g-1) (1 - 2t) p (1 - p) ]
// d dice / dx = -(2 t D - N) / D^2 * p (1 - p), with N = 2 sum(p t) + 1, D = sum p + sum t + 1
template <bool kGamma2>
SAM_LOSS_MULTIVERSION void loss_grad_impl(const float* x, const uint8_t* t, int64_t hw, float a_pos, float a_neg,
                                          float gamma, float g_focal, float g_dice, float d_num, float d_den,
                                          float* gx) {
  const float c_dice = -g_dice / (d_den * d_den);
  for (int64_t i = 0; i < hw; ++i) {
    const float ti = t[i] ? 1.f : 0.f;
    const auto k = pixel_terms(x[i], ti);
    const float at = t[i] ? a_pos : a_neg;
    const float dp = k.p * (1.f - k.p);
    const float qg1 = pow_gamma_m1<kGamma2>(k.q, gamma);
    const float df = at * ((k.p - ti) * qg1 * k.q + k.ce * gamma * qg1 * (1.f - 2.f * ti) * dp);
    const float dd = c_dice * (2.f * ti * d_den - d_num) * dp;
    gx[i] = g_focal * df + dd;
  }
}

void loss_grad(const float* x, const uint8_t* t, int64_t hw, float alpha, float gamma, float g_focal, float g_dice,
               float d_num, float d_den, float* gx) {
  const float a_pos = alpha >= 0 ? alpha : 1.f, a_neg = alpha >= 0 ? 1.f - alpha : 1.f;
  if (gamma == 2.f) loss_grad_impl<true>(x, t, hw, a_pos, a_neg, gamma, g_focal, g_dice, d_num, d_den, gx);
  else loss_grad_impl<false>(x, t, hw, a_pos, a_neg, gamma, g_focal, g_dice, d_num, d_den, gx);
}

class FusedMaskLoss : public torch::autograd::Function<FusedMaskLoss> {
 public:
  static torch::autograd::variable_list forward(torch::autograd::AutogradContext* ctx, torch::Tensor logits,
                                                torch::Tensor targets, double alpha, double gamma) {
    const int64_t N = logits.size(0), M = logits.size(1), hw = logits.size(2) * logits.size(3);
    auto sums = torch::empty({N, M, 5}, torch::kDouble);
    auto tsum = targets.reshape({N, hw}).sum(1, false, torch::kDouble);  // [N]
    const float* x = logits.data_ptr<float>();
    const uint8_t* t = targets.data_ptr<uint8_t>();
    double* s = sums.data_ptr<double>();
    at::parallel_for(0, N * M, 1, [&](int64_t b0, int64_t b1) {
      for (int64_t b = b0; b < b1; ++b)
        loss_sums(x + b * hw, t + (b / M) * hw, hw, static_cast<float>(alpha), static_cast<float>(gamma), s + b * 5);
    });
    auto ts = tsum.unsqueeze(1);
    auto focal = (sums.select(2, 0) / static_cast<double>(hw)).to(torch::kFloat);
    auto num = 2 * sums.select(2, 2) + 1, den = sums.select(2, 1) + ts + 1;
    auto dice = (1 - num / den).to(torch::kFloat);
    auto iou = (sums.select(2, 3) / sums.select(2, 4).clamp_min(1.0)).to(torch::kFloat);
    ctx->save_for_backward({logits, targets, num.to(torch::kFloat).contiguous(), den.to(torch::kFloat).contiguous()});
    ctx->saved_data["alpha"] = alpha;
    ctx->saved_data["gamma"] = gamma;
    ctx->mark_non_differentiable({iou});
    return {focal, dice, iou};
  }

  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grads) {
    auto saved = ctx->get_saved_variables();
    auto logits = saved[0], targets = saved[1], num = saved[2], den = saved[3];
    const float alpha = static_cast<float>(ctx->saved_data["alpha"].toDouble());
    const float gamma = static_cast<float>(ctx->saved_data["gamma"].toDouble());
    const int64_t N = logits.size(0), M = logits.size(1), hw = logits.size(2) * logits.size(3);
    auto zeros = torch::zeros({N, M});
    auto gf = (grads[0].defined() ? grads[0] : zeros).to(torch::kFloat).contiguous();
    auto gd = (grads[1].defined() ? grads[1] : zeros).to(torch::kFloat).contiguous();
    auto gx = torch::empty_like(logits);
    const float* x = logits.data_ptr<float>();
    const uint8_t* t = targets.data_ptr<uint8_t>();
    const float *pf = gf.data_ptr<float>(), *pd = gd.data_ptr<float>(), *pn = num.data_ptr<float>(),
                *pden = den.data_ptr<float>();
    float* g = gx.data_ptr<float>();
    at::parallel_for(0, N * M, 1, [&](int64_t b0, int64_t b1) {
      for (int64_t b = b0; b < b1; ++b) {
        if (pf[b] == 0.f && pd[b] == 0.f) {  // an unsupervised candidate
          std::fill(g + b * hw, g + (b + 1) * hw, 0.f);
          continue;
        }
        loss_grad(x + b * hw, t + (b / M) * hw, hw, alpha, gamma, pf[b] / static_cast<float>(hw), pd[b], pn[b],
                  pden[b], g + b * hw);
      }
    });
    return {gx, torch::Tensor(), torch::Tensor(), torch::Tensor()};
  }
};

}  // namespace

std::vector<torch::Tensor> fused_mask_losses(const torch::Tensor& logits, const torch::Tensor& targets,
                                             double alpha, double gamma) {
  TORCH_CHECK(logits.dim() == 4 && targets.dim() == 3 && logits.size(0) == targets.size(0) &&
                  logits.size(2) == targets.size(1) && logits.size(3) == targets.size(2),
              "fused_mask_losses: logits [N, M, H, W] and targets [N, H, W] disagree: ", logits.sizes(), " vs ",
              targets.sizes());
  TORCH_CHECK(logits.device().is_cpu(), "fused_mask_losses runs on the CPU");
  auto x = logits.to(torch::kFloat).contiguous();
  auto t = targets.gt(0.5).to(torch::kUInt8).contiguous();
  return FusedMaskLoss::apply(x, t, alpha, gamma);
}

RoundLoss round_loss(const torch::Tensor& logits, const torch::Tensor& targets,
                     const torch::Tensor& iou_pred, const LossWeights& w) {
  TORCH_CHECK(logits.dim() == 4 && targets.dim() == 3 && logits.size(0) == targets.size(0) &&
                  logits.size(2) == targets.size(1) && logits.size(3) == targets.size(2),
              "round_loss: logits [N, M, H, W] and targets [N, H, W] disagree: ", logits.sizes(),
              " vs ", targets.sizes());
  const int64_t M = logits.size(1);
  auto tgt = targets.unsqueeze(1);  // broadcasts over the M candidates without copies
  torch::Tensor focal, dice, iou_all;  // [N, M]
  if (logits.device().is_cpu()) {
    auto f = fused_mask_losses(logits, targets, w.focal_alpha, w.focal_gamma);
    focal = f[0], dice = f[1], iou_all = f[2];
  } else {
    focal = focal_loss(logits, tgt, w.focal_alpha, w.focal_gamma);
    dice = dice_loss(logits, tgt);
    iou_all = actual_iou(logits, tgt);
  }
  auto mask_loss = w.focal * focal + w.dice * dice;
  RoundLoss out;
  out.best = M > 1 ? mask_loss.detach().argmin(1) : torch::zeros({logits.size(0)}, torch::TensorOptions().dtype(torch::kLong).device(logits.device()));
  auto pick = [&](const torch::Tensor& x) { return x.gather(1, out.best.unsqueeze(1)).squeeze(1); };
  out.iou = pick(iou_all);
  const auto pred = iou_pred.to(logits.dtype());
  auto iou_err = w.supervise_all_iou && M > 1 ? (pred - iou_all).pow(2).mean(1) : (pick(pred) - out.iou).pow(2);
  auto f = pick(focal), d = pick(dice);
  out.total = (w.focal * f + w.dice * d + w.iou * iou_err).sum();
  out.focal = f.detach().sum();
  out.dice = d.detach().sum();
  out.iou_mse = iou_err.detach().sum();
  return out;
}

}  // namespace sam::train
