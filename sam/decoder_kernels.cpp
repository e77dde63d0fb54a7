#include "sam/decoder_kernels.h"

#include "sam/amp.h"
#include "sam/fast_math.h"

#include <ATen/Parallel.h>

#include <cmath>
#include <vector>

namespace sam {

namespace {

// Rows [r0, r1) of n scores each: out = softmax(scale * in) per row. Three passes over the block
// (row maxima, one exp over the whole block, row sums and scaling), so that the exp loop runs
// over contiguous memory whatever the row length.
SAM_MULTIVERSION
void softmax_rows(const float* in, float* out, int64_t r0, int64_t r1, int64_t n, float scale) {
  constexpr int64_t kBlock = 256;
  for (int64_t b0 = r0; b0 < r1; b0 += kBlock) {
    const int64_t b1 = std::min(r1, b0 + kBlock);
    for (int64_t r = b0; r < b1; ++r) {
      const float* x = in + r * n;
      float m = x[0];
      for (int64_t j = 1; j < n; ++j) m = x[j] > m ? x[j] : m;
      float* o = out + r * n;
      const float ms = m * scale;
      // scale > 0: the row's maximum of scale * x is scale * max(x).
      for (int64_t j = 0; j < n; ++j) o[j] = x[j] * scale - ms;
    }
    float* o = out + b0 * n;
    const int64_t len = (b1 - b0) * n;
    for (int64_t k = 0; k < len; ++k) o[k] = fastmath::exp(o[k]);
    for (int64_t r = b0; r < b1; ++r) {
      float* orow = out + r * n;
      float sum = 0.f;
      for (int64_t j = 0; j < n; ++j) sum += orow[j];
      const float inv = 1.f / sum;
      for (int64_t j = 0; j < n; ++j) orow[j] *= inv;
    }
  }
}

// Input rows [r0, r1) of the epilogue (row = (b, i) over the input grid).
SAM_MULTIVERSION
void convt_epilogue_rows(const float* y, float* out, int64_t r0, int64_t r1, int64_t h, int64_t w,
                         int64_t O, const float* bias, const float* lw, const float* lb,
                         float eps) {
  std::vector<float> v(static_cast<size_t>(O));
  for (int64_t r = r0; r < r1; ++r) {
    const int64_t b = r / h, i = r % h;
    for (int64_t j = 0; j < w; ++j) {
      const float* src = y + (r * w + j) * 4 * O;
      for (int64_t di = 0; di < 2; ++di)
        for (int64_t dj = 0; dj < 2; ++dj) {
          const float* s = src + (di * 2 + dj) * O;
          float* d = out + ((b * 2 * h + 2 * i + di) * 2 * w + 2 * j + dj) * O;
          if (lw) {
            float mean = 0.f;
            for (int64_t o = 0; o < O; ++o) {
              v[o] = s[o] + bias[o];
              mean += v[o];
            }
            mean /= static_cast<float>(O);
            float var = 0.f;
            for (int64_t o = 0; o < O; ++o) {
              v[o] -= mean;
              var += v[o] * v[o];
            }
            var /= static_cast<float>(O);
            const float inv = 1.f / std::sqrt(var + eps);
            for (int64_t o = 0; o < O; ++o) d[o] = fastmath::gelu(v[o] * inv * lw[o] + lb[o]);
          } else {
            for (int64_t o = 0; o < O; ++o) d[o] = fastmath::gelu(s[o] + bias[o]);
          }
        }
    }
  }
}

}  // namespace

namespace {
bool g_enabled = true;
}  // namespace

void set_decoder_kernels_enabled(bool on) {
  g_enabled = on;
}

bool decoder_kernels_apply(const torch::Tensor& x) {
  // Not under autocast either: the products before the epilogues would come out in bf16.
  return g_enabled && !torch::GradMode::is_enabled() && x.device().is_cpu() && x.scalar_type() == torch::kFloat &&
         !autocast_enabled(c10::DeviceType::CPU);
}

torch::Tensor softmax_last_dim(const torch::Tensor& x, double scale) {
  TORCH_CHECK(x.device().is_cpu() && x.scalar_type() == torch::kFloat && scale > 0,
              "softmax_last_dim: float32 CPU tensors and a positive scale");
  const auto xc = x.contiguous();
  auto out = torch::empty_like(xc);
  const int64_t n = xc.size(-1), rows = n == 0 ? 0 : xc.numel() / n;
  if (rows == 0) return out;
  const float* in = xc.data_ptr<float>();
  float* o = out.data_ptr<float>();
  const float s = static_cast<float>(scale);
  at::parallel_for(0, rows, std::max<int64_t>(1, 16384 / n), [&](int64_t r0, int64_t r1) {
    softmax_rows(in, o, r0, r1, n, s);
  });
  return out;
}

torch::Tensor convt2x2_epilogue(const torch::Tensor& y, int64_t B, int64_t h, int64_t w, int64_t O,
                                const torch::Tensor& bias, const torch::Tensor& ln_weight,
                                const torch::Tensor& ln_bias, double eps) {
  TORCH_CHECK(y.device().is_cpu() && y.scalar_type() == torch::kFloat && y.dim() == 2 &&
                  y.size(0) == B * h * w && y.size(1) == 4 * O,
              "convt2x2_epilogue: y must be float32 [B*h*w, 4*O] on the CPU; got ", y.sizes());
  const auto yc = y.contiguous();
  const auto bc = bias.defined() ? bias.contiguous() : torch::zeros({O});
  torch::Tensor lwc, lbc;
  if (ln_weight.defined()) {
    lwc = ln_weight.contiguous();
    lbc = ln_bias.contiguous();
  }
  auto out = torch::empty({B, 2 * h, 2 * w, O}, y.options());
  const float* yp = yc.data_ptr<float>();
  float* op = out.data_ptr<float>();
  const float* bp = bc.data_ptr<float>();
  const float* lw = lwc.defined() ? lwc.data_ptr<float>() : nullptr;
  const float* lb = lbc.defined() ? lbc.data_ptr<float>() : nullptr;
  const float e = static_cast<float>(eps);
  at::parallel_for(0, B * h, 1, [&](int64_t r0, int64_t r1) {
    convt_epilogue_rows(yp, op, r0, r1, h, w, O, bp, lw, lb, e);
  });
  return out;
}

}  // namespace sam
