#include "sam/attention.h"

#include "sam/amp.h"
#include "sam/cpu_gemm.h"
#include "sam/fast_math.h"
#include "sam/simd_avx2.h"

#include <ATen/Parallel.h>
#include <torch/version.h>

#include <algorithm>
#include <cmath>
#include <vector>

namespace sam {

namespace {
// Out-variants writing into a slice (a temporary view) of a preallocated tensor.
void mm_into(torch::Tensor dst, const torch::Tensor& a, const torch::Tensor& b) {
  torch::mm_out(dst, a, b);
}
void sum_into(torch::Tensor dst, const torch::Tensor& x, int64_t dim) {
  torch::sum_out(dst, x, {dim});
}
}  // namespace

torch::Tensor attention_core_reference(const torch::Tensor& q, const torch::Tensor& k,
                                       const torch::Tensor& v, double scale, double dropout,
                                       bool training) {
  auto attn = torch::softmax(sam::matmul(q, k.transpose(-2, -1)) * scale, -1);
  if (dropout > 0 && training) attn = torch::dropout(attn, dropout, true);
  return sam::matmul(attn, v);
}

namespace {

// The raw kernel: one (batch*head) slice per task, plain loops over contiguous rows (no tensor
// operations inside, so no per-operation overhead), compiled for AVX2 and baseline x86-64 with
// run-time dispatch. Inner loops run over the keys (j), the long dimension of the decoder's
// token-to-image attention; K and V are transposed once per slice so they are contiguous in j.

// Scores, softmax and output of one slice. q [Nq, c], kt [c, Nk], vt [cv, Nk] -> out [Nq, cv],
// probabilities into p [Nq, Nk] (scratch or saved), with an optional dropout multiplier.
// Optional decomposed relative-position terms: with rh [Nq, H] and rw [Nq, W] (Nk = H * W), the
// score of key (ky, kx) gets rh[i][ky] + rw[i][kx] added before the softmax.
struct RelTerms {
  const float* rh = nullptr;
  const float* rw = nullptr;
  int64_t H = 0, W = 0;
};

// Row-wise softmax of s [Nq, Nk] in place, after adding the relative terms when there are any.
SAM_MULTIVERSION_TRAIN
void rel_softmax_rows(float* s, int64_t Nq, int64_t Nk, RelTerms rel) {
  for (int64_t i = 0; i < Nq; ++i) {
    float* pi = s + i * Nk;
    if (rel.rh) {
      const float* rhi = rel.rh + i * rel.H;
      const float* rwi = rel.rw + i * rel.W;
      for (int64_t ky = 0; ky < rel.H; ++ky) {
        float* row = pi + ky * rel.W;
        const float h = rhi[ky];
        for (int64_t kx = 0; kx < rel.W; ++kx) row[kx] += h + rwi[kx];
      }
    }
    const float mx = fastmath::max8(pi, Nk);
    for (int64_t j = 0; j < Nk; ++j) pi[j] = fastmath::exp(pi[j] - mx);
    const float inv = 1.f / fastmath::sum8(pi, Nk);
    for (int64_t k = 0; k < Nk; ++k) pi[k] *= inv;
  }
}

// Inference's form of the above (no probabilities are kept), in two steps around the scores'
// product. fill_rel_rows writes the relative terms into the scores' buffer, s[i, (ky, kx)] =
// rh[i][ky] + rw[i][kx], and the product then accumulates onto them (beta = 1: BLAS skips the
// pass that zeroes its output for beta = 0). exp_rows then makes exp(s - row max), unnormalised,
// and inv[i] = 1 / (row i's sum): the caller scales the rows of P V by inv instead of the Nk
// probabilities of every row. Two passes over a row after the product where rel_softmax_rows makes
// five. Where the CPU has AVX2 and FMA, exp_rows is explicit 8-lane code (unaligned loads, a
// masked tail: the same bits whatever the buffers' alignment); elsewhere the same steps in loops.
void fill_rel_rows(float* s, int64_t Nq, RelTerms rel) {
  const int64_t Nk = rel.H * rel.W;
  for (int64_t i = 0; i < Nq; ++i) {
    const float* rhi = rel.rh + i * rel.H;
    const float* rwi = rel.rw + i * rel.W;
    for (int64_t ky = 0; ky < rel.H; ++ky) {
      float* row = s + i * Nk + ky * rel.W;
      const float h = rhi[ky];
      for (int64_t kx = 0; kx < rel.W; ++kx) row[kx] = h + rwi[kx];
    }
  }
}

void exp_rows_plain(float* s, int64_t Nq, int64_t Nk, float* inv) {
  for (int64_t i = 0; i < Nq; ++i) {
    float* pi = s + i * Nk;
    const float mx = fastmath::max8(pi, Nk);
    for (int64_t j = 0; j < Nk; ++j) pi[j] = fastmath::exp(pi[j] - mx);
    inv[i] = 1.f / fastmath::sum8(pi, Nk);
  }
}

#ifdef SAM_HAVE_AVX2_PATH
__attribute__((target("avx2,fma"))) void exp_rows_avx2(float* s, int64_t Nq, int64_t Nk, float* inv) {
  const __m256 lowest = _mm256_set1_ps(-3.0e38f);
  // The last Nk % 8 keys: lanes 0 .. Nk % 8 - 1 of the tail's mask.
  const __m256i tail = avx2::lanes_below(Nk % 8);
  const __m256 tail_ps = _mm256_castsi256_ps(tail);
  const int64_t body = Nk / 8 * 8;
  for (int64_t i = 0; i < Nq; ++i) {
    float* pi = s + i * Nk;
    __m256 mx = lowest;
    for (int64_t j = 0; j < body; j += 8) mx = _mm256_max_ps(mx, _mm256_loadu_ps(pi + j));
    if (body < Nk) mx = _mm256_max_ps(mx, _mm256_blendv_ps(lowest, _mm256_maskload_ps(pi + body, tail), tail_ps));
    const __m256 m = _mm256_set1_ps(avx2::hmax(mx));
    __m256 sum = _mm256_setzero_ps();
    for (int64_t j = 0; j < body; j += 8) {
      const __m256 e = avx2::exp8(_mm256_sub_ps(_mm256_loadu_ps(pi + j), m));
      _mm256_storeu_ps(pi + j, e);
      sum = _mm256_add_ps(sum, e);
    }
    if (body < Nk) {
      const __m256 e = avx2::exp8(_mm256_sub_ps(_mm256_maskload_ps(pi + body, tail), m));
      _mm256_maskstore_ps(pi + body, tail, e);
      sum = _mm256_add_ps(sum, _mm256_and_ps(e, tail_ps));
    }
    inv[i] = 1.f / avx2::hsum(sum);
  }
}

#endif

void exp_rows(float* s, int64_t Nq, int64_t Nk, float* inv) {
#ifdef SAM_HAVE_AVX2_PATH
  if (avx2::has_avx2_fma()) return exp_rows_avx2(s, Nq, Nk, inv);
#endif
  exp_rows_plain(s, Nq, Nk, inv);
}

// The relative terms' gradients of one query row: the score gradients ds [H * W] summed over kx
// (into gh [H]) and over ky (into gw [W]).
inline void rel_grads_row(const float* ds, float* gh, float* gw, int64_t H, int64_t W) {
  for (int64_t kx = 0; kx < W; ++kx) gw[kx] = 0.f;
  for (int64_t ky = 0; ky < H; ++ky) {
    const float* row = ds + ky * W;
    float acc = 0.f;
    for (int64_t kx = 0; kx < W; ++kx) {
      acc += row[kx];
      gw[kx] += row[kx];
    }
    gh[ky] = acc;
  }
}

SAM_MULTIVERSION_TRAIN
void slice_forward(const float* q, const float* kt, const float* vt, float* out, float* p,
                   const float* drop, int64_t Nq, int64_t Nk, int64_t c, int64_t cv, float scale,
                   RelTerms rel) {
  for (int64_t i = 0; i < Nq; ++i) {
    float* pi = p + i * Nk;
    for (int64_t j = 0; j < Nk; ++j) pi[j] = 0.f;
    for (int64_t d = 0; d < c; ++d) {
      const float qd = q[i * c + d] * scale;
      const float* kd = kt + d * Nk;
      for (int64_t j = 0; j < Nk; ++j) pi[j] += qd * kd[j];
    }
    RelTerms row_rel;
    if (rel.rh) row_rel = {rel.rh + i * rel.H, rel.rw + i * rel.W, rel.H, rel.W};
    rel_softmax_rows(pi, 1, Nk, row_rel);
    const float* di = drop ? drop + i * Nk : nullptr;
    for (int64_t e = 0; e < cv; ++e) {
      const float* ve = vt + e * Nk;
      float acc = 0.f;
      if (di) {
        for (int64_t j = 0; j < Nk; ++j) acc += pi[j] * di[j] * ve[j];
      } else {
        for (int64_t j = 0; j < Nk; ++j) acc += pi[j] * ve[j];
      }
      out[i * cv + e] = acc;
    }
  }
}

// Gradients of one slice from the saved probabilities p [Nq, Nk] and dO [Nq, cv]:
// dV = P'^T dO, dP' = dO V^T, dS = P (dP - rowsum(dP P)), dQ = scale dS K, dK = scale dS^T Q.
// Outputs transposed where that keeps the loops in j: gkt [c, Nk], gvt [cv, Nk]; gq [Nq, c].
SAM_MULTIVERSION_TRAIN
void slice_backward(const float* q, const float* kt, const float* vt, const float* p,
                    const float* drop, const float* go, float* gq, float* gkt, float* gvt,
                    float* ds, int64_t Nq, int64_t Nk, int64_t c, int64_t cv, float scale,
                    float* grh, float* grw, int64_t H, int64_t W) {
  for (int64_t x = 0; x < c * Nk; ++x) gkt[x] = 0.f;
  for (int64_t x = 0; x < cv * Nk; ++x) gvt[x] = 0.f;
  for (int64_t i = 0; i < Nq; ++i) {
    const float* pi = p + i * Nk;
    const float* di = drop ? drop + i * Nk : nullptr;
    const float* goi = go + i * cv;
    // dP' and dV.
    for (int64_t j = 0; j < Nk; ++j) ds[j] = 0.f;
    for (int64_t e = 0; e < cv; ++e) {
      const float g = goi[e];
      const float* ve = vt + e * Nk;
      float* gve = gvt + e * Nk;
      for (int64_t j = 0; j < Nk; ++j) ds[j] += g * ve[j];
      if (di) {
        for (int64_t j = 0; j < Nk; ++j) gve[j] += g * pi[j] * di[j];
      } else {
        for (int64_t j = 0; j < Nk; ++j) gve[j] += g * pi[j];
      }
    }
    if (di)
      for (int64_t j = 0; j < Nk; ++j) ds[j] *= di[j];
    float dot = 0.f;
    for (int64_t j = 0; j < Nk; ++j) dot += ds[j] * pi[j];
    for (int64_t j = 0; j < Nk; ++j) ds[j] = pi[j] * (ds[j] - dot);
    if (grh) rel_grads_row(ds, grh + i * H, grw + i * W, H, W);
    for (int64_t j = 0; j < Nk; ++j) ds[j] *= scale;
    // dQ and dK.
    for (int64_t d = 0; d < c; ++d) {
      const float* kd = kt + d * Nk;
      float acc = 0.f;
      for (int64_t j = 0; j < Nk; ++j) acc += ds[j] * kd[j];
      gq[i * c + d] = acc;
      const float qd = q[i * c + d];
      float* gkd = gkt + d * Nk;
      for (int64_t j = 0; j < Nk; ++j) gkd[j] += qd * ds[j];
    }
  }
}

// The same slice with the three products in BLAS (q [Nq, c], k [Nk, c], v [Nk, cv], all
// row-major as given): the loops above are memory-bound once Nq and c are not small (the
// encoder's windows and global blocks), where a blocked product reuses what it loads.
// pd: scratch [Nq, Nk] for P * dropout when there is dropout.
// keep: p must hold the probabilities afterwards (training's backward reads them); without it and
// without dropout, p holds unnormalised exponentials and the output's rows are scaled instead.
void slice_forward_gemm(const float* q, const float* k, const float* v, float* out, float* p,
                        const float* drop, float* pd, int64_t Nq, int64_t Nk, int64_t c, int64_t cv,
                        float scale, RelTerms rel, bool keep) {
  if (!keep && !drop) {
    if (rel.rh) fill_rel_rows(p, Nq, rel);
    gemm_rm(false, true, Nq, Nk, c, scale, q, c, k, c, rel.rh ? 1.f : 0.f, p, Nk);
    thread_local std::vector<float> inv;
    inv.resize(static_cast<size_t>(Nq));
    exp_rows(p, Nq, Nk, inv.data());
    gemm_rm(false, false, Nq, cv, Nk, 1.f, p, Nk, v, cv, 0.f, out, cv);
    for (int64_t i = 0; i < Nq; ++i)
      for (int64_t e = 0; e < cv; ++e) out[i * cv + e] *= inv[static_cast<size_t>(i)];
    return;
  }
  gemm_rm(false, true, Nq, Nk, c, scale, q, c, k, c, 0.f, p, Nk);
  rel_softmax_rows(p, Nq, Nk, rel);
  const float* pv = p;
  if (drop) {
    for (int64_t x = 0; x < Nq * Nk; ++x) pd[x] = p[x] * drop[x];
    pv = pd;
  }
  gemm_rm(false, false, Nq, cv, Nk, 1.f, pv, Nk, v, cv, 0.f, out, cv);
}

// dV = P'^T dO, dP' = dO V^T, dS = P (dP - rowsum(dP P)) (dP = dP' * dropout), the relative terms'
// gradients from dS, dQ = scale dS K, dK = scale dS^T Q. ds and pd: scratch [Nq, Nk].
SAM_MULTIVERSION_TRAIN
void slice_backward_gemm(const float* q, const float* k, const float* v, const float* p,
                         const float* drop, const float* go, float* gq, float* gk, float* gv,
                         float* ds, float* pd, int64_t Nq, int64_t Nk, int64_t c, int64_t cv,
                         float scale, float* grh, float* grw, int64_t H, int64_t W) {
  const float* pv = p;
  if (drop) {
    for (int64_t x = 0; x < Nq * Nk; ++x) pd[x] = p[x] * drop[x];
    pv = pd;
  }
  gemm_rm(true, false, Nk, cv, Nq, 1.f, pv, Nk, go, cv, 0.f, gv, cv);
  gemm_rm(false, true, Nq, Nk, cv, 1.f, go, cv, v, cv, 0.f, ds, Nk);
  for (int64_t i = 0; i < Nq; ++i) {
    float* dsi = ds + i * Nk;
    const float* pi = p + i * Nk;
    if (drop) {
      const float* di = drop + i * Nk;
      for (int64_t j = 0; j < Nk; ++j) dsi[j] *= di[j];
    }
    float dot = 0.f;
    for (int64_t j = 0; j < Nk; ++j) dot += dsi[j] * pi[j];
    for (int64_t j = 0; j < Nk; ++j) dsi[j] = pi[j] * (dsi[j] - dot);
    if (grh) rel_grads_row(dsi, grh + i * H, grw + i * W, H, W);
  }
  gemm_rm(false, false, Nq, c, Nk, scale, ds, Nk, k, c, 0.f, gq, c);
  gemm_rm(true, false, Nk, c, Nq, scale, ds, Nk, q, c, 0.f, gk, c);
}

AttentionKernel g_kernel = AttentionKernel::kAuto;

// The loops win for few query rows (the decoder's token-to-image attention: 5-8 tokens against
// thousands of keys); BLAS wins once a slice has enough rows and channels to block.
bool use_gemm(int64_t Nq, int64_t Nk, int64_t c) {
  if (!cpu_sgemm_available() || g_kernel == AttentionKernel::kLoop) return false;
  if (g_kernel == AttentionKernel::kGemm) return true;
  return Nq >= 16 && Nk >= 16 && c >= 16;
}

// rel_h [BH, Nq, H] / rel_w [BH, Nq, W] may be empty tensors: no relative terms. (Empty, not
// undefined: libtorch 1.13's Function inputs must be defined tensors.)
struct SlicedAttention : torch::autograd::Function<SlicedAttention> {
  static torch::Tensor forward(torch::autograd::AutogradContext* ctx, const torch::Tensor& q_in,
                               const torch::Tensor& k_in, const torch::Tensor& v_in,
                               const torch::Tensor& rh_in, const torch::Tensor& rw_in, double scale,
                               double dropout, bool keep) {
    auto q = q_in.contiguous();
    const bool has_rel = rh_in.numel() > 0;
    auto rh = has_rel ? rh_in.contiguous() : torch::Tensor();
    auto rw = has_rel ? rw_in.contiguous() : torch::Tensor();
    const int64_t RH = has_rel ? rh.size(2) : 0, RW = has_rel ? rw.size(2) : 0;
    const int64_t BH = q.size(0), Nq = q.size(1), c = q.size(2), Nk = k_in.size(1),
                  cv = v_in.size(2);
    const bool gemm = use_gemm(Nq, Nk, c);
    // The loops want K and V transposed (contiguous in the keys); BLAS takes them as they are.
    auto kk =
        gemm ? k_in.contiguous() : k_in.transpose(1, 2).contiguous();  // [BH, Nk, c] or [BH, c, Nk]
    auto vv = gemm ? v_in.contiguous()
                   : v_in.transpose(1, 2).contiguous();  // [BH, Nk, cv] or [BH, cv, Nk]
    auto out = torch::empty({BH, Nq, cv}, q.options());
    torch::Tensor probs = keep ? torch::empty({BH, Nq, Nk}, q.options()) : torch::Tensor();
    torch::Tensor drop;
    if (dropout > 0)
      drop = torch::empty({BH, Nq, Nk}, q.options()).bernoulli_(1.0 - dropout).div_(1.0 - dropout);
    const float* qp = q.data_ptr<float>();
    const float* kp = kk.data_ptr<float>();
    const float* vp = vv.data_ptr<float>();
    const float* dp = drop.defined() ? drop.data_ptr<float>() : nullptr;
    float* op = out.data_ptr<float>();
    float* pp = keep ? probs.data_ptr<float>() : nullptr;
    at::parallel_for(0, BH, 1, [&](int64_t b0, int64_t b1) {
      std::vector<float> scratch(keep ? 0 : Nq * Nk);
      std::vector<float> pd(gemm && dp ? Nq * Nk : 0);
      for (int64_t b = b0; b < b1; ++b) {
        float* pb = keep ? pp + b * Nq * Nk : scratch.data();
        RelTerms rel;
        if (has_rel)
          rel = {rh.data_ptr<float>() + b * Nq * RH, rw.data_ptr<float>() + b * Nq * RW, RH, RW};
        const float* db = dp ? dp + b * Nq * Nk : nullptr;
        if (gemm)
          slice_forward_gemm(qp + b * Nq * c, kp + b * Nk * c, vp + b * Nk * cv, op + b * Nq * cv,
                             pb, db, pd.data(), Nq, Nk, c, cv, static_cast<float>(scale), rel,
                             keep);
        else
          slice_forward(qp + b * Nq * c, kp + b * c * Nk, vp + b * cv * Nk, op + b * Nq * cv, pb,
                        db, Nq, Nk, c, cv, static_cast<float>(scale), rel);
      }
    });
    if (keep) {
      // (An undefined tensor cannot be saved: the dropout mask goes in only when there is one.)
      if (drop.defined())
        ctx->save_for_backward({q, kk, vv, probs, drop});
      else
        ctx->save_for_backward({q, kk, vv, probs});
      ctx->saved_data["scale"] = scale;
      ctx->saved_data["rel_h"] = RH;
      ctx->saved_data["rel_w"] = RW;
      ctx->saved_data["gemm"] = gemm;
    }
    return out;
  }

  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grads) {
    auto saved = ctx->get_saved_variables();
    auto q = saved[0], kk = saved[1], vv = saved[2], probs = saved[3];
    auto drop = saved.size() > 4 ? saved[4] : torch::Tensor();
    const float scale = static_cast<float>(ctx->saved_data["scale"].toDouble());
    const bool gemm = ctx->saved_data["gemm"].toBool();
    auto go = grads[0].contiguous();
    const int64_t BH = q.size(0), Nq = q.size(1), c = q.size(2), Nk = probs.size(2),
                  cv = go.size(2);
    auto gq = torch::empty_like(q), gk = torch::empty_like(kk), gv = torch::empty_like(vv);
    const int64_t RH = ctx->saved_data["rel_h"].toInt(), RW = ctx->saved_data["rel_w"].toInt();
    torch::Tensor grh, grw;
    if (RH > 0) {
      grh = torch::empty({BH, Nq, RH}, q.options());
      grw = torch::empty({BH, Nq, RW}, q.options());
    }
    float* grhp = RH > 0 ? grh.data_ptr<float>() : nullptr;
    float* grwp = RH > 0 ? grw.data_ptr<float>() : nullptr;
    const float* qp = q.data_ptr<float>();
    const float* kp = kk.data_ptr<float>();
    const float* vp = vv.data_ptr<float>();
    const float* pp = probs.data_ptr<float>();
    const float* dp = drop.defined() ? drop.data_ptr<float>() : nullptr;
    const float* gop = go.data_ptr<float>();
    float *gqp = gq.data_ptr<float>(), *gkp = gk.data_ptr<float>(), *gvp = gv.data_ptr<float>();
    at::parallel_for(0, BH, 1, [&](int64_t b0, int64_t b1) {
      std::vector<float> ds(gemm ? Nq * Nk : Nk), pd(gemm && dp ? Nq * Nk : 0);
      for (int64_t b = b0; b < b1; ++b) {
        const float* db = dp ? dp + b * Nq * Nk : nullptr;
        float* gh = grhp ? grhp + b * Nq * RH : nullptr;
        float* gw = grwp ? grwp + b * Nq * RW : nullptr;
        if (gemm)
          slice_backward_gemm(qp + b * Nq * c, kp + b * Nk * c, vp + b * Nk * cv, pp + b * Nq * Nk,
                              db, gop + b * Nq * cv, gqp + b * Nq * c, gkp + b * Nk * c,
                              gvp + b * Nk * cv, ds.data(), pd.data(), Nq, Nk, c, cv, scale, gh, gw,
                              RH, RW);
        else
          slice_backward(qp + b * Nq * c, kp + b * c * Nk, vp + b * cv * Nk, pp + b * Nq * Nk, db,
                         gop + b * Nq * cv, gqp + b * Nq * c, gkp + b * c * Nk, gvp + b * cv * Nk,
                         ds.data(), Nq, Nk, c, cv, scale, gh, gw, RH, RW);
      }
    });
    if (gemm) return {gq, gk, gv, grh, grw, torch::Tensor(), torch::Tensor(), torch::Tensor()};
    return {gq,  gk.transpose(1, 2), gv.transpose(1, 2), grh,
            grw, torch::Tensor(),    torch::Tensor(),    torch::Tensor()};
  }
};

}  // namespace

namespace {

void bmm_slices(torch::Tensor out, const torch::Tensor& a, const torch::Tensor& b) {
  at::parallel_for(0, a.size(0), 1, [&](int64_t i0, int64_t i1) {
    torch::NoGradGuard ng;
    for (int64_t i = i0; i < i1; ++i) mm_into(out[i], a[i], b[i]);
  });
}

struct BatchedMatmul : torch::autograd::Function<BatchedMatmul> {
  static torch::Tensor forward(torch::autograd::AutogradContext* ctx, const torch::Tensor& a,
                               const torch::Tensor& b) {
    auto out = torch::empty({a.size(0), a.size(1), b.size(2)}, a.options());
    bmm_slices(out, a, b);
    ctx->save_for_backward({a, b});
    return out;
  }
  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grads) {
    auto saved = ctx->get_saved_variables();
    const auto& a = saved[0];
    const auto& b = saved[1];
    auto go = grads[0];
    auto ga = torch::empty_like(a, torch::MemoryFormat::Contiguous);
    auto gb = torch::empty_like(b, torch::MemoryFormat::Contiguous);
    bmm_slices(ga, go, b.transpose(1, 2));
    bmm_slices(gb, a.transpose(1, 2), go);
    return {ga, gb};
  }
};

}  // namespace

torch::Tensor batched_matmul(const torch::Tensor& a, const torch::Tensor& b) {
  if (!a.is_cpu() || a.scalar_type() != torch::kFloat || b.scalar_type() != torch::kFloat)
    return sam::matmul(a, b);  // torch::bmm, in fp32 accumulation where CPU bf16 needs it
  return BatchedMatmul::apply(a, b);
}

torch::Tensor rel_pos_attention_reference(const torch::Tensor& q, const torch::Tensor& k,
                                          const torch::Tensor& v, const torch::Tensor& rel_h,
                                          const torch::Tensor& rel_w, double scale, int64_t H,
                                          int64_t W) {
  const int64_t BH = q.size(0);
  auto s = sam::matmul(q * scale, k.transpose(-2, -1)).view({BH, H, W, H, W});
  s = s + rel_h.unsqueeze(-1) + rel_w.unsqueeze(-2);
  auto p = torch::softmax(s.view({BH, H * W, H * W}), -1);
  return sam::matmul(p, v);
}

namespace {

// Query rows per task of the BLAS path: about 2 MiB of scores (128 rows of a 64 x 64 global
// block: the L2 of a core), a multiple of 8 between 8 and 512. Measured on the ViT-B global block
// (12 heads x 4096 tokens, 2 threads): 16 rows 510 ms, 64 rows 410, 128 rows 390, 512 rows 420.
int64_t query_rows_per_task(int64_t L) {
  const int64_t rows = (int64_t{1} << 19) / std::max<int64_t>(1, L);
  return std::clamp<int64_t>(rows / 8 * 8, 8, 512);
}

// The same for the tensor-operation path, in whole grid rows (its relative terms are added
// through [rows, W, H, W] views): about 1 MiB of scores.
int64_t grid_rows_per_task(int64_t H, int64_t W) {
  const int64_t L = H * W;
  const int64_t target = int64_t{1} << 18;
  return std::max<int64_t>(1, std::min<int64_t>(H, target / std::max<int64_t>(1, W * L)));
}

struct RelPosAttention : torch::autograd::Function<RelPosAttention> {
  static torch::Tensor forward(torch::autograd::AutogradContext* ctx, const torch::Tensor& q_in,
                               const torch::Tensor& k_in, const torch::Tensor& v_in,
                               const torch::Tensor& rh_in, const torch::Tensor& rw_in, double scale,
                               int64_t H, int64_t W, bool keep) {
    auto q = q_in.contiguous(), k = k_in.contiguous(), v = v_in.contiguous();
    auto rh = rh_in.contiguous(), rw = rw_in.contiguous();
    const int64_t BH = q.size(0), L = H * W, c = q.size(2), cv = v.size(2);
    auto out = torch::empty({BH, L, cv}, q.options());
    torch::Tensor probs = keep ? torch::empty({BH, L, L}, q.options()) : torch::Tensor();
    if (cpu_sgemm_available()) {
      // Per chunk of query rows, the sliced kernel's BLAS form (slice_forward_gemm): the scores
      // with the scale in the product, the relative terms added and the softmax taken in place
      // while they are in cache, then the product with v (no tensor operations, allocations or
      // thread wake-ups per chunk).
      const float* qp = q.data_ptr<float>();
      const float* kp = k.data_ptr<float>();
      const float* vp = v.data_ptr<float>();
      const float* rhp = rh.data_ptr<float>();
      const float* rwp = rw.data_ptr<float>();
      float* op = out.data_ptr<float>();
      float* pp = keep ? probs.data_ptr<float>() : nullptr;
      const int64_t R = query_rows_per_task(L), chunks = (L + R - 1) / R;
      at::parallel_for(0, BH * chunks, 1, [&](int64_t t0, int64_t t1) {
        std::vector<float> scratch(keep ? 0 : R * L);
        for (int64_t t = t0; t < t1; ++t) {
          const int64_t b = t / chunks, i0 = (t % chunks) * R, rows = std::min(L, i0 + R) - i0;
          const int64_t r0 = b * L + i0;  // the chunk's first row over all slices
          float* s = keep ? pp + r0 * L : scratch.data();
          slice_forward_gemm(qp + r0 * c, kp + b * L * c, vp + b * L * cv, op + r0 * cv, s,
                             nullptr, nullptr, rows, L, c, cv, static_cast<float>(scale),
                             RelTerms{rhp + r0 * H, rwp + r0 * W, H, W}, keep);
        }
      });
    } else {
      const int64_t ry = grid_rows_per_task(H, W), chunks = (H + ry - 1) / ry;
      at::parallel_for(0, BH * chunks, 1, [&](int64_t t0, int64_t t1) {
        torch::NoGradGuard ng;
        for (int64_t t = t0; t < t1; ++t) {
          const int64_t b = t / chunks, y0 = (t % chunks) * ry, y1 = std::min(H, y0 + ry);
          auto qb = q[b].narrow(0, y0 * W, (y1 - y0) * W);
          auto s = torch::mm(qb, k[b].t()).mul_(scale);  // [rows, L]
          auto s5 = s.view({y1 - y0, W, H, W});
          s5.add_(rh[b].narrow(0, y0, y1 - y0).unsqueeze(-1));
          s5.add_(rw[b].narrow(0, y0, y1 - y0).unsqueeze(-2));
          auto p = torch::softmax(s, -1);
          if (keep) probs[b].narrow(0, y0 * W, (y1 - y0) * W).copy_(p);
          auto o = out[b].narrow(0, y0 * W, (y1 - y0) * W);
          mm_into(o, p, v[b]);
        }
      });
    }
    if (keep) {
      ctx->save_for_backward({q, k, v, probs});
      ctx->saved_data["scale"] = scale;
      ctx->saved_data["H"] = H;
      ctx->saved_data["W"] = W;
    }
    return out;
  }

  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grads) {
    auto saved = ctx->get_saved_variables();
    auto q = saved[0], k = saved[1], v = saved[2], probs = saved[3];
    const double scale = ctx->saved_data["scale"].toDouble();
    const int64_t H = ctx->saved_data["H"].toInt(), W = ctx->saved_data["W"].toInt();
    auto go = grads[0].contiguous();
    const int64_t BH = q.size(0);
    auto gq = torch::empty_like(q), gk = torch::empty_like(k), gv = torch::empty_like(v);
    auto grh = torch::empty({BH, H, W, H}, q.options()),
         grw = torch::empty({BH, H, W, W}, q.options());
    at::parallel_for(0, BH, 1, [&](int64_t b0, int64_t b1) {
      torch::NoGradGuard ng;
      for (int64_t b = b0; b < b1; ++b) {
        auto p = probs[b];
        mm_into(gv[b], p.t(), go[b]);
        auto dp = torch::mm(go[b], v[b].t());
        auto ds = (dp - (dp * p).sum(-1, true)).mul_(p);  // d(scores)
        auto ds5 = ds.view({H, W, H, W});
        sum_into(grh[b], ds5, 3);
        sum_into(grw[b], ds5, 2);
        ds.mul_(scale);
        mm_into(gq[b], ds, k[b]);
        mm_into(gk[b], ds.t(), q[b]);
      }
    });
    return {
        gq, gk, gv, grh, grw, torch::Tensor(), torch::Tensor(), torch::Tensor(), torch::Tensor()};
  }
};

}  // namespace

#if TORCH_VERSION_MAJOR > 2 || (TORCH_VERSION_MAJOR == 2 && TORCH_VERSION_MINOR >= 1)
#define SAM_HAVE_SDPA 1
#else
#define SAM_HAVE_SDPA 0
#endif

bool sdpa_available() { return SAM_HAVE_SDPA; }

namespace {
// at::scaled_dot_product_attention on [BH, N, c] slices, as [1, BH, N, c] (the fused kernels take
// 4-d inputs), with an optional additive bias [1, BH, Nq, Nk].
torch::Tensor sdpa_slices(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                          const torch::Tensor& bias, double dropout, double scale) {
#if SAM_HAVE_SDPA
  return at::scaled_dot_product_attention(q.unsqueeze(0), k.unsqueeze(0), v.unsqueeze(0),
                                          bias.defined() ? std::optional<torch::Tensor>(bias) : std::nullopt,
                                          dropout, false, scale)
      .squeeze(0);
#else
  TORCH_CHECK(false, "this libtorch (", TORCH_VERSION, ") has no scaled_dot_product_attention");
#endif
}
}  // namespace

torch::Tensor attention_core_sdpa(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                                  double scale, double dropout, bool training) {
  return sdpa_slices(q, k, v, {}, training ? dropout : 0.0, scale);
}

torch::Tensor rel_pos_attention_sdpa(const torch::Tensor& q, const torch::Tensor& k,
                                     const torch::Tensor& v, const torch::Tensor& rel_h,
                                     const torch::Tensor& rel_w, double scale, int64_t H, int64_t W) {
  const int64_t BH = q.size(0), L = H * W;
  // bias[b, (y, x), (ky, kx)] = rel_h[b, y, x, ky] + rel_w[b, y, x, kx], in the inputs' type.
  auto bias = (rel_h.unsqueeze(-1) + rel_w.unsqueeze(-2)).reshape({1, BH, L, L}).to(q.scalar_type());
  return sdpa_slices(q, k, v, bias, 0.0, scale);
}

torch::Tensor rel_pos_attention(const torch::Tensor& q, const torch::Tensor& k,
                                const torch::Tensor& v, const torch::Tensor& rel_h,
                                const torch::Tensor& rel_w, double scale, int64_t H, int64_t W) {
  if (!q.is_cpu() && SAM_HAVE_SDPA) return rel_pos_attention_sdpa(q, k, v, rel_h, rel_w, scale, H, W);
  if (!q.is_cpu() || q.scalar_type() != torch::kFloat)
    return rel_pos_attention_reference(q, k, v, rel_h, rel_w, scale, H, W);
  // Inside a Function's forward grad mode is off, so whether to keep the probabilities for the
  // backward pass is decided here.
  const bool keep = torch::GradMode::is_enabled() &&
                    (q.requires_grad() || k.requires_grad() || v.requires_grad() ||
                     rel_h.requires_grad() || rel_w.requires_grad());
  const int64_t L = H * W, BH = q.size(0);
  // Long sequences (global blocks at 1024 input: 4096 keys, head dim 64) need BLAS for the two
  // products; shorter ones (windows, small inputs) run in the raw kernel without per-op costs.
  if (L >= 1024) return RelPosAttention::apply(q, k, v, rel_h, rel_w, scale, H, W, keep);
  return SlicedAttention::apply(q, k, v, rel_h.reshape({BH, L, H}), rel_w.reshape({BH, L, W}),
                                scale, 0.0, keep);
}

void set_attention_kernel(AttentionKernel kernel) {
  g_kernel = kernel;
}

torch::Tensor attention_core(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                             double scale, double dropout, bool training) {
  if (!q.is_cpu() && SAM_HAVE_SDPA) return attention_core_sdpa(q, k, v, scale, dropout, training);
  if (!q.is_cpu() || q.scalar_type() != torch::kFloat || k.scalar_type() != torch::kFloat ||
      v.scalar_type() != torch::kFloat)
    return attention_core_reference(q, k, v, scale, dropout, training);
  const bool keep = torch::GradMode::is_enabled() &&
                    (q.requires_grad() || k.requires_grad() || v.requires_grad());
  auto none = torch::empty({0}, q.options());
  return SlicedAttention::apply(q, k, v, none, none, scale, training ? dropout : 0.0, keep);
}

}  // namespace sam
