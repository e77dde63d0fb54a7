#include "sam/image_pass.h"

#include "sam/cpu_gemm.h"
#include "sam/fast_math.h"

#include <ATen/Parallel.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

namespace sam {

namespace {

// Image rows per task: the tile's keys, their sum with the positional encoding and the attention
// terms (about 4 x 128 KB for D = 256) stay in a core's L2 cache.
constexpr int64_t kTile = 64;

// softmax(scale * s) within each group of g consecutive columns of s [T, R] (R a multiple of g):
// the groups' maxima, one exp over the whole tile (contiguous, so it vectorises), the sums.
SAM_MULTIVERSION
void group_softmax(float* s, int64_t T, int64_t R, int64_t g, float scale) {
  for (int64_t i = 0; i < T * R; i += g) {
    float* x = s + i;
    float m = x[0];
    for (int64_t j = 1; j < g; ++j) m = x[j] > m ? x[j] : m;
    const float ms = m * scale;  // scale > 0
    for (int64_t j = 0; j < g; ++j) x[j] = x[j] * scale - ms;
  }
  for (int64_t i = 0; i < T * R; ++i) s[i] = fastmath::exp(s[i]);
  for (int64_t i = 0; i < T * R; i += g) {
    float* x = s + i;
    float sum = 0.f;
    for (int64_t j = 0; j < g; ++j) sum += x[j];
    const float inv = 1.f / sum;
    for (int64_t j = 0; j < g; ++j) x[j] *= inv;
  }
}

// out = LayerNorm(keys + (o + bo)) row by row (T rows of D), as the block's residual and norm4.
SAM_MULTIVERSION
void residual_norm(const float* keys, const float* o, const float* bo, const float* w, const float* b,
                   float eps, float* out, int64_t T, int64_t D) {
  for (int64_t t = 0; t < T; ++t) {
    const float* k = keys + t * D;
    const float* ot = o + t * D;
    float* y = out + t * D;
    for (int64_t d = 0; d < D; ++d) y[d] = k[d] + (ot[d] + bo[d]);
    const float mean = fastmath::sum8(y, D) / static_cast<float>(D);
    const float var = fastmath::sum_sq_dev8(y, D, mean) / static_cast<float>(D);
    const float inv = 1.f / std::sqrt(var + eps);
    for (int64_t d = 0; d < D; ++d) y[d] = (y[d] - mean) * inv * w[d] + b[d];
  }
}

SAM_MULTIVERSION
void add_rows(const float* a, const float* b, float* out, int64_t n) {
  for (int64_t i = 0; i < n; ++i) out[i] = a[i] + b[i];
}

// One tile's scores s [R2, T] into the running softmax of each row: m the maximum of the scaled
// scores so far, l the sum of exp(scaled score - m), acc [R2, D] the weighted sum of the keys (the
// caller adds this tile's e keys to it). s becomes exp(scale * s - m_new); acc and l are rescaled
// to the new maxima.
SAM_MULTIVERSION
void online_softmax_tile(float* s, int64_t R2, int64_t T, float scale, float* m, float* l, float* acc,
                         int64_t D) {
  std::vector<float> factor(static_cast<size_t>(R2));
  for (int64_t r = 0; r < R2; ++r) {
    float* x = s + r * T;
    const float tm = fastmath::max8(x, T);
    const float nm = std::max(m[r], tm * scale);
    factor[r] = m[r] == -std::numeric_limits<float>::infinity() ? 0.f : fastmath::exp(m[r] - nm);
    m[r] = nm;
    for (int64_t j = 0; j < T; ++j) x[j] = x[j] * scale - nm;
  }
  for (int64_t i = 0; i < R2 * T; ++i) s[i] = fastmath::exp(s[i]);
  for (int64_t r = 0; r < R2; ++r) {
    l[r] = l[r] * factor[r] + fastmath::sum8(s + r * T, T);
    if (factor[r] != 1.f) {
      float* a = acc + r * D;
      const float f = factor[r];
      for (int64_t d = 0; d < D; ++d) a[d] *= f;
    }
  }
}

bool f32cpu(const torch::Tensor& t) {
  return t.defined() && t.is_cpu() && t.scalar_type() == torch::kFloat;
}

// The pass: with key_pe, the scores' rows are keys (after the update) + key_pe and the values'
// rows the keys; without, keys are the values' rows and score_rows [1, N, Ds] the scores'.
std::pair<torch::Tensor, torch::Tensor> pass(const torch::Tensor& keys, const torch::Tensor& key_pe,
                                             const torch::Tensor& score_rows, const ImageToTokenTerms* i2t,
                                             const torch::Tensor& qk, double t2i_scale) {
  TORCH_CHECK(cpu_sgemm_available(), "image_pass: built without BLAS");
  const torch::Tensor& srows = key_pe.defined() ? key_pe : score_rows;
  TORCH_CHECK(f32cpu(keys) && keys.dim() == 3 && f32cpu(srows) && srows.dim() == 3 && f32cpu(qk) && qk.dim() == 3,
              "image_pass: float32 CPU keys [Bk, N, D], key_pe or score rows [1, N, Ds], qk [B, R2, Ds]");
  const int64_t Bk = keys.size(0), N = keys.size(1), D = keys.size(2), B = qk.size(0), R2 = qk.size(1);
  const int64_t Ds = srows.size(2);
  TORCH_CHECK((Bk == 1 || Bk == B) && srows.size(0) == 1 && srows.size(1) == N && qk.size(2) == Ds &&
                  (!key_pe.defined() || Ds == D),
              "image_pass: keys ", keys.sizes(), ", key_pe or score rows ", srows.sizes(), ", qk ", qk.sizes());
  TORCH_CHECK(t2i_scale > 0, "image_pass: the scale must be positive");
  const auto kc = keys.contiguous(), pc = srows.contiguous(), qc = qk.contiguous();
  const float *kp = kc.data_ptr<float>(), *pp = pc.data_ptr<float>(), *qp = qc.data_ptr<float>();
  const bool add_pe = key_pe.defined();

  torch::Tensor xc, mc, cc, voc, boc, lwc, lbc, keys_out = kc;
  int64_t Din = D, R = 0, group = 1;
  if (i2t) {
    TORCH_CHECK(add_pe, "image_pass: an image-to-token update needs key_pe");
    TORCH_CHECK(f32cpu(i2t->m) && i2t->m.dim() == 3 && i2t->m.size(0) == B, "image_pass: m must be [B, Din, R]");
    mc = i2t->m.contiguous();
    Din = mc.size(1);
    R = mc.size(2);
    TORCH_CHECK(i2t->heads > 0 && R % i2t->heads == 0 && i2t->scale > 0, "image_pass: ", R,
                " score columns for ", i2t->heads, " heads");
    group = R / i2t->heads;
    if (i2t->x_rows.defined()) {
      TORCH_CHECK(f32cpu(i2t->x_rows) && i2t->x_rows.sizes() == torch::IntArrayRef({1, N, Din}),
                  "image_pass: x_rows must be [1, N, Din]; got ", i2t->x_rows.sizes());
      xc = i2t->x_rows.contiguous();
    } else {
      TORCH_CHECK(Din == D, "image_pass: m must be [B, D, R] when x = keys + key_pe");
    }
    if (i2t->c.defined()) {
      TORCH_CHECK(f32cpu(i2t->c) && i2t->c.numel() == B * R, "image_pass: c must be [B, R]");
      cc = i2t->c.contiguous();
    }
    TORCH_CHECK(f32cpu(i2t->vo) && i2t->vo.sizes() == torch::IntArrayRef({B, R, D}) && i2t->bo.numel() == D &&
                    i2t->ln_weight.numel() == D && i2t->ln_bias.numel() == D,
                "image_pass: vo [B, R, D], bo, ln_weight and ln_bias [D]");
    voc = i2t->vo.contiguous();
    boc = i2t->bo.contiguous();
    lwc = i2t->ln_weight.contiguous();
    lbc = i2t->ln_bias.contiguous();
    keys_out = i2t->in_place && Bk == B && keys.is_contiguous() ? kc : torch::empty({B, N, D}, keys.options());
  }
  const float* xp = xc.defined() ? xc.data_ptr<float>() : nullptr;
  const float* cp = cc.defined() ? cc.data_ptr<float>() : nullptr;
  float* kop = keys_out.data_ptr<float>();

  // Tasks (prompt, tile) in equal contiguous chunks, one per thread, each chunk with its own running
  // softmax state per prompt (m, l, acc): no two chunks write the same state whatever the scheduling.
  const int64_t tiles = (N + kTile - 1) / kTile, tasks = B * tiles;
  const int64_t chunks = std::max<int64_t>(1, std::min<int64_t>(at::get_num_threads(), tasks));
  const int64_t per_state = R2 * (D + 2);
  std::vector<float> state(static_cast<size_t>(chunks * B * per_state), 0.f);
  for (int64_t s = 0; s < chunks * B; ++s)
    std::fill_n(state.data() + s * per_state, R2, -std::numeric_limits<float>::infinity());
  const float ts = static_cast<float>(t2i_scale);

  at::parallel_for(0, chunks, 1, [&](int64_t c0, int64_t c1) {
    std::vector<float> xb(i2t && !xp ? kTile * D : 0), sb(kTile * std::max<int64_t>(R, 1)), ob(i2t ? kTile * D : 0),
        kpe(add_pe ? kTile * D : 0), s2(R2 * kTile);
    for (int64_t chunk = c0; chunk < c1; ++chunk) {
      const int64_t task0 = tasks * chunk / chunks, task1 = tasks * (chunk + 1) / chunks;
      for (int64_t task = task0; task < task1; ++task) {
        const int64_t b = task / tiles, r0 = (task % tiles) * kTile, T = std::min(kTile, N - r0);
        const float* kin = kp + ((Bk == 1 ? 0 : b) * N + r0) * D;
        const float* pe = pp + r0 * Ds;
        const float* kt = kin;  // the tile's keys after the update
        if (i2t) {
          const float* x = xp ? xp + r0 * Din : xb.data();
          if (!xp) add_rows(kin, pe, xb.data(), T * D);
          gemm_rm(false, false, T, R, Din, 1.f, x, Din, mc.data_ptr<float>() + b * Din * R, R, 0.f, sb.data(), R);
          if (cp)
            for (int64_t t = 0; t < T; ++t)
              for (int64_t j = 0; j < R; ++j) sb[t * R + j] += cp[b * R + j];
          group_softmax(sb.data(), T, R, group, static_cast<float>(i2t->scale));
          gemm_rm(false, false, T, D, R, 1.f, sb.data(), R, voc.data_ptr<float>() + b * R * D, D, 0.f, ob.data(), D);
          float* ko = kop + (b * N + r0) * D;
          residual_norm(kin, ob.data(), boc.data_ptr<float>(), lwc.data_ptr<float>(), lbc.data_ptr<float>(),
                        static_cast<float>(i2t->ln_eps), ko, T, D);
          kt = ko;
        }
        const float* sr = pe;  // the scores' rows
        if (add_pe) {
          add_rows(kt, pe, kpe.data(), T * D);
          sr = kpe.data();
        }
        gemm_rm(false, true, R2, T, Ds, 1.f, qp + b * R2 * Ds, Ds, sr, Ds, 0.f, s2.data(), T);
        float* st = state.data() + (chunk * B + b) * per_state;
        online_softmax_tile(s2.data(), R2, T, ts, st, st + R2, st + 2 * R2, D);
        gemm_rm(false, false, R2, D, T, 1.f, s2.data(), T, kt, D, 1.f, st + 2 * R2, D);
      }
    }
  });

  // Merge the chunks' running softmaxes: pv = sum_c acc_c e^(m_c - M) / sum_c l_c e^(m_c - M).
  auto pv = torch::zeros({B, R2, D}, keys.options());
  float* pvp = pv.data_ptr<float>();
  for (int64_t b = 0; b < B; ++b)
    for (int64_t r = 0; r < R2; ++r) {
      float M = -std::numeric_limits<float>::infinity();
      for (int64_t c = 0; c < chunks; ++c) M = std::max(M, state[(c * B + b) * per_state + r]);
      double L = 0.0;
      float* out = pvp + (b * R2 + r) * D;
      for (int64_t c = 0; c < chunks; ++c) {
        const float* st = state.data() + (c * B + b) * per_state;
        if (st[r] == -std::numeric_limits<float>::infinity()) continue;  // no tile of b in chunk c
        const float f = std::exp(st[r] - M);
        L += static_cast<double>(st[R2 + r]) * f;
        const float* a = st + 2 * R2 + r * D;
        for (int64_t d = 0; d < D; ++d) out[d] += a[d] * f;
      }
      const float inv = static_cast<float>(1.0 / L);
      for (int64_t d = 0; d < D; ++d) out[d] *= inv;
    }
  return {keys_out, pv};
}

}  // namespace

std::pair<torch::Tensor, torch::Tensor> image_pass(const torch::Tensor& keys, const torch::Tensor& key_pe,
                                                   const ImageToTokenTerms* i2t, const torch::Tensor& qk,
                                                   double t2i_scale) {
  TORCH_CHECK(key_pe.defined(), "image_pass: key_pe [1, N, D] is needed");
  return pass(keys, key_pe, {}, i2t, qk, t2i_scale);
}

torch::Tensor attend_image_rows(const torch::Tensor& score_rows, const torch::Tensor& value_rows,
                                const torch::Tensor& qk, double scale) {
  TORCH_CHECK(score_rows.defined() && value_rows.defined() && value_rows.size(0) == 1,
              "attend_image_rows: score rows and value rows [1, N, .]");
  return pass(value_rows, {}, score_rows, nullptr, qk, scale).second;
}

}  // namespace sam
