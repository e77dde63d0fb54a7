#include "sam/decoder_kernels.h"

#include "sam/amp.h"
#include "sam/cpu_gemm.h"
#include "sam/fast_math.h"
#include "sam/simd_avx2.h"

#include <ATen/Parallel.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstring>
#include <thread>
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

// out[i] = gelu(x[i] + bias[i]) for i < n (bias may be null, out may be x). Where the CPU has
// AVX2 and FMA, 8 lanes with fused multiply-adds and a masked tail; GCC's "avx2" clones have no
// FMA, and the erf's polynomials and exp then cost half as many operations again.
#ifdef SAM_HAVE_AVX2_PATH
__attribute__((target("avx2,fma"))) void gelu_row_avx2(const float* x, const float* bias, float* out, int64_t n) {
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    __m256 v = _mm256_loadu_ps(x + i);
    if (bias) v = _mm256_add_ps(v, _mm256_loadu_ps(bias + i));
    _mm256_storeu_ps(out + i, avx2::gelu8(v));
  }
  if (i < n) {
    const __m256i m = avx2::lanes_below(n - i);
    __m256 v = _mm256_maskload_ps(x + i, m);
    if (bias) v = _mm256_add_ps(v, _mm256_maskload_ps(bias + i, m));
    _mm256_maskstore_ps(out + i, m, avx2::gelu8(v));
  }
}
#endif

SAM_MULTIVERSION
void gelu_row_plain(const float* x, const float* bias, float* out, int64_t n) {
  if (bias) {
    for (int64_t i = 0; i < n; ++i) out[i] = fastmath::gelu(x[i] + bias[i]);
  } else {
    for (int64_t i = 0; i < n; ++i) out[i] = fastmath::gelu(x[i]);
  }
}

void gelu_row(const float* x, const float* bias, float* out, int64_t n) {
#ifdef SAM_HAVE_AVX2_PATH
  if (avx2::has_avx2_fma()) return gelu_row_avx2(x, bias, out, n);
#endif
  gelu_row_plain(x, bias, out, n);
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
            for (int64_t o = 0; o < O; ++o) v[o] = s[o] + bias[o];
            const float mean = fastmath::sum8(v.data(), O) / static_cast<float>(O);
            const float var = fastmath::sum_sq_dev8(v.data(), O, mean) / static_cast<float>(O);
            const float inv = 1.f / std::sqrt(var + eps);
            for (int64_t o = 0; o < O; ++o) v[o] = (v[o] - mean) * inv * lw[o] + lb[o];
            gelu_row(v.data(), nullptr, d, O);
          } else {
            gelu_row(s, bias, d, O);
          }
        }
    }
  }
}

// Output rows of input row r = (b, i) for both di (y holds the products of rows y_r0...): per di,
// the 2w sub-pixels' gelu outputs in g [2w, O] (contiguous O-blocks of y), then the masks' row of
// every m at once as the product hyper [M, O] g^T (BLAS reads g transposed; a transposing copy
// with its 2w-float stride cost more than the product).
SAM_MULTIVERSION
void convt_masks_rows(const float* y, int64_t y_r0, float* masks, int64_t r0, int64_t r1, int64_t h,
                      int64_t w, int64_t O, int64_t M, const float* bias, const float* hyper) {
  const int64_t X = 2 * w;
  std::vector<float> g(static_cast<size_t>(X * O));
  for (int64_t r = r0; r < r1; ++r) {
    const int64_t b = r / h, i = r % h;
    for (int64_t di = 0; di < 2; ++di) {
      for (int64_t j = 0; j < w; ++j) {
        // Sub-pixels (di, 0) and (di, 1) of input pixel j: 2 * O consecutive values of y.
        const float* s = y + ((r - y_r0) * w + j) * 4 * O + di * 2 * O;
        float* d = g.data() + j * 2 * O;
        for (int64_t dj = 0; dj < 2; ++dj) gelu_row(s + dj * O, bias, d + dj * O, O);
      }
      // masks[b, m, row, :] for every m: rows 2h * X apart.
      const int64_t row = 2 * i + di;
      gemm_rm(false, true, M, X, O, 1.f, hyper + b * M * O, O, g.data(), O, 0.f,
              masks + (b * M * 2 * h + row) * X, 2 * h * X);
    }
  }
}

// y [M, N] = x [M, K] w^T + b (w [N, K] row-major, as a Linear's weight), for x of kRows rows
// (padded by the caller): each weight row is read once against all kRows input rows, whose dot
// products run as kRows independent chains of 16-lane partial sums in registers (GCC's vector
// extension: one AVX-512 register, two AVX2 ones; no float reduction reassociated).
constexpr int64_t kRows = 8, kLanes = 16;
typedef float Lanes __attribute__((vector_size(kLanes * sizeof(float))));

SAM_MULTIVERSION
void few_rows_linear_block(const float* x, int64_t K, const float* w, const float* b, int64_t N, int64_t n0,
                           int64_t n1, float* y) {
  for (int64_t n = n0; n < n1; ++n) {
    const float* wn = w + n * K;
    Lanes acc[kRows];
    for (int64_t r = 0; r < kRows; ++r) acc[r] = Lanes{};
    int64_t k = 0;
    for (; k + kLanes <= K; k += kLanes) {
      Lanes wv, xv;
      std::memcpy(&wv, wn + k, sizeof wv);
      for (int64_t r = 0; r < kRows; ++r) {
        std::memcpy(&xv, x + r * K + k, sizeof xv);
        acc[r] += xv * wv;
      }
    }
    for (int64_t r = 0; r < kRows; ++r) {
      float sum = 0.f;
      for (int64_t j = 0; j < kLanes; ++j) sum += acc[r][j];
      for (int64_t kk = k; kk < K; ++kk) sum += x[r * K + kk] * wn[kk];
      y[r * N + n] = b ? sum + b[n] : sum;
    }
  }
}

#ifdef SAM_HAVE_AVX2_PATH
// few_rows_linear_block on 8-lane registers with FMA. The vector-extension clone's 8 rows of
// 16-lane sums are 16 AVX2 registers, all there are: GCC keeps them on the stack and every update
// goes through memory (about 4x slower on a Zen 3). Here each group of 4 rows keeps its sums in 8
// registers; the weight row (at most a few KB) is read once per group from L1. The lanes and the
// final left-to-right sum over them are the clone's; only the products are fused.
__attribute__((target("avx2,fma"))) void few_rows_linear_block_avx2(const float* x, int64_t K, const float* w,
                                                                     const float* b, int64_t N, int64_t n0,
                                                                     int64_t n1, float* y) {
  static_assert(kRows % 4 == 0 && kLanes == 16, "4-row groups of two 8-lane halves");
  const int64_t body = K / kLanes * kLanes;
  alignas(32) float lanes[4][kLanes];
  for (int64_t n = n0; n < n1; ++n) {
    const float* wn = w + n * K;
    for (int64_t r0 = 0; r0 < kRows; r0 += 4) {
      const float* x0 = x + r0 * K;
      const float *x1 = x0 + K, *x2 = x1 + K, *x3 = x2 + K;
      __m256 a0 = _mm256_setzero_ps(), b0 = a0, a1 = a0, b1 = a0, a2 = a0, b2 = a0, a3 = a0, b3 = a0;
      for (int64_t k = 0; k < body; k += kLanes) {
        const __m256 lo = _mm256_loadu_ps(wn + k), hi = _mm256_loadu_ps(wn + k + 8);
        a0 = _mm256_fmadd_ps(_mm256_loadu_ps(x0 + k), lo, a0);
        b0 = _mm256_fmadd_ps(_mm256_loadu_ps(x0 + k + 8), hi, b0);
        a1 = _mm256_fmadd_ps(_mm256_loadu_ps(x1 + k), lo, a1);
        b1 = _mm256_fmadd_ps(_mm256_loadu_ps(x1 + k + 8), hi, b1);
        a2 = _mm256_fmadd_ps(_mm256_loadu_ps(x2 + k), lo, a2);
        b2 = _mm256_fmadd_ps(_mm256_loadu_ps(x2 + k + 8), hi, b2);
        a3 = _mm256_fmadd_ps(_mm256_loadu_ps(x3 + k), lo, a3);
        b3 = _mm256_fmadd_ps(_mm256_loadu_ps(x3 + k + 8), hi, b3);
      }
      _mm256_store_ps(lanes[0], a0), _mm256_store_ps(lanes[0] + 8, b0);
      _mm256_store_ps(lanes[1], a1), _mm256_store_ps(lanes[1] + 8, b1);
      _mm256_store_ps(lanes[2], a2), _mm256_store_ps(lanes[2] + 8, b2);
      _mm256_store_ps(lanes[3], a3), _mm256_store_ps(lanes[3] + 8, b3);
      for (int64_t r = 0; r < 4; ++r) {
        const float* xr = x0 + r * K;
        float sum = 0.f;
        for (int64_t j = 0; j < kLanes; ++j) sum += lanes[r][j];
        for (int64_t kk = body; kk < K; ++kk) sum += xr[kk] * wn[kk];
        y[(r0 + r) * N + n] = b ? sum + b[n] : sum;
      }
    }
  }
}

#endif

// The block kernel this CPU runs: the AVX2+FMA one where AVX2 is the widest (AVX-512 hosts keep
// the clone, whose 16-lane sums fit their registers).
void few_rows_block(const float* x, int64_t K, const float* w, const float* b, int64_t N, int64_t n0,
                    int64_t n1, float* y) {
#ifdef SAM_HAVE_AVX2_PATH
  static const bool use_avx2 = !__builtin_cpu_supports("avx512f") && avx2::has_avx2_fma();
  if (use_avx2) return few_rows_linear_block_avx2(x, K, w, b, N, n0, n1, y);
#endif
  few_rows_linear_block(x, K, w, b, N, n0, n1, y);
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

torch::Tensor gelu_inplace(torch::Tensor x) {
  TORCH_CHECK(x.device().is_cpu() && x.scalar_type() == torch::kFloat && x.is_contiguous(),
              "gelu_inplace: a contiguous float32 CPU tensor");
  float* p = x.data_ptr<float>();
  at::parallel_for(0, x.numel(), 1 << 14, [&](int64_t i0, int64_t i1) { gelu_row(p + i0, nullptr, p + i0, i1 - i0); });
  return x;
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

torch::Tensor upscale_masks(const torch::Tensor& keys, int64_t h, int64_t w, const torch::Tensor& w1,
                            const torch::Tensor& b1, const torch::Tensor& ln_weight,
                            const torch::Tensor& ln_bias, double eps, const torch::Tensor& w2,
                            const torch::Tensor& b2, const torch::Tensor& hyper) {
  TORCH_CHECK(cpu_sgemm_available(), "upscale_masks: built without BLAS");
  const int64_t B = keys.size(0), D = keys.size(2), O1 = w1.size(1) / 4, O2 = w2.size(1) / 4;
  TORCH_CHECK(keys.device().is_cpu() && keys.scalar_type() == torch::kFloat && keys.dim() == 3 &&
                  keys.size(1) == h * w,
              "upscale_masks: keys must be float32 [B, h*w, D] on the CPU; got ", keys.sizes());
  TORCH_CHECK(w1.dim() == 2 && w1.size(0) == D && w1.size(1) == 4 * O1 && w2.dim() == 2 &&
                  w2.size(0) == O1 && w2.size(1) == 4 * O2,
              "upscale_masks: weights [D, 4*O1] and [O1, 4*O2]; got ", w1.sizes(), " and ", w2.sizes());
  TORCH_CHECK(hyper.dim() == 3 && hyper.size(0) == B && hyper.size(2) == O2 && hyper.scalar_type() == torch::kFloat,
              "upscale_masks: hyper must be float32 [B, M, O2]; got ", hyper.sizes());
  const auto kc = keys.contiguous(), w1c = w1.contiguous(), w2c = w2.contiguous(), hc = hyper.contiguous();
  const auto b1c = b1.contiguous(), b2c = b2.contiguous(), lwc = ln_weight.contiguous(), lbc = ln_bias.contiguous();
  const int64_t M = hc.size(1);
  auto masks = torch::empty({B, M, 4 * h, 4 * w}, keys.options());
  const float *kp = kc.data_ptr<float>(), *w1p = w1c.data_ptr<float>(), *w2p = w2c.data_ptr<float>();
  const float *b1p = b1c.data_ptr<float>(), *b2p = b2c.data_ptr<float>(), *hp = hc.data_ptr<float>();
  const float *lw = lwc.data_ptr<float>(), *lb = lbc.data_ptr<float>();
  const float e = static_cast<float>(eps);
  float* mp = masks.data_ptr<float>();
  // Per group of kGroup input rows, the first product [kGroup * w, 4*O1] (BLAS packs w1 once per
  // call: per row it cost about as much as the product's arithmetic); then per input row the
  // epilogue's two rows [2, 2w, O1], the second product [4w, 4*O2] and the masks' four rows, all in
  // buffers that stay in cache.
  constexpr int64_t kGroup = 4;
  at::parallel_for(0, B * h, kGroup, [&](int64_t r0, int64_t r1) {
    std::vector<float> y1(static_cast<size_t>(kGroup * w * 4 * O1)), x(static_cast<size_t>(4 * w * O1)),
        y2(static_cast<size_t>(4 * w * 4 * O2));
    for (int64_t g = r0; g < r1; g += kGroup) {
      const int64_t rows = std::min(kGroup, r1 - g);
      gemm_rm(false, false, rows * w, 4 * O1, D, 1.f, kp + g * w * D, D, w1p, 4 * O1, 0.f, y1.data(), 4 * O1);
      for (int64_t r = g; r < g + rows; ++r) {
        convt_epilogue_rows(y1.data() + (r - g) * w * 4 * O1, x.data(), 0, 1, 1, w, O1, b1p, lw, lb, e);
        gemm_rm(false, false, 4 * w, 4 * O2, O1, 1.f, x.data(), O1, w2p, 4 * O2, 0.f, y2.data(), 4 * O2);
        // The epilogue's rows are rows 2i and 2i + 1 of image b's 2h x 2w grid: global 2r, 2r + 1.
        convt_masks_rows(y2.data(), 2 * r, mp, 2 * r, 2 * r + 2, 2 * h, 2 * w, O2, M, b2p, hp);
      }
    }
  });
  return masks;
}

namespace {

// The team of run_with_helpers. The calling thread (the poster) posts a job of `chunks` parts;
// every member claims parts from one atomic counter until none is left, and the poster waits until
// every claimed part is finished. A helper that never arrives (fewer threads than asked) claims
// nothing, so nothing waits on it. Between jobs the counter is closed (kClosed), and the poster
// rewrites the job only once no helper is inside work(): a helper announces itself (inside) before
// it claims, so a claim is either closed or one of the current job's (the announce/claim and
// close/check pairs are sequentially consistent, so one side always sees the other).
struct Team {
  static constexpr int64_t kClosed = int64_t{1} << 62;
  std::atomic<uint64_t> seq{0};
  std::atomic<bool> done{false};
  std::atomic<int64_t> next{kClosed}, finished{0};
  std::atomic<int> inside{0};
  int64_t chunks = 0;
  const std::function<void(int64_t)>* job = nullptr;

  void work() {
    for (;;) {
      const int64_t c = next.fetch_add(1);
      if (c >= kClosed || c >= chunks) return;
      (*job)(c);
      finished.fetch_add(1, std::memory_order_release);
    }
  }
  // On the poster's thread: runs f over [0, n) with the helpers; returns when every part is done.
  void run(int64_t n, const std::function<void(int64_t)>& f) {
    job = &f;
    chunks = n;
    finished.store(0, std::memory_order_relaxed);
    next.store(0);
    seq.fetch_add(1, std::memory_order_release);
    work();
    while (finished.load(std::memory_order_acquire) < n) pause();
    next.store(kClosed);
    while (inside.load() != 0) pause();
  }
  // On a helper's thread: serves jobs until the poster is done. Spins briefly between jobs (they
  // follow each other within microseconds), then yields the core.
  void serve() {
    uint64_t seen = 0;
    int idle = 0;
    while (!done.load(std::memory_order_acquire)) {
      const uint64_t s = seq.load(std::memory_order_acquire);
      if (s != seen) {
        seen = s;
        idle = 0;
        inside.fetch_add(1);
        work();
        inside.fetch_sub(1);
      } else if (++idle < 4096) {
        pause();
      } else {
        std::this_thread::yield();
      }
    }
  }
  static void pause() {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#endif
  }
};

thread_local Team* t_team = nullptr;  // the team whose poster is this thread, while f runs

}  // namespace

void run_with_helpers(const std::function<void()>& f) {
  if (at::get_num_threads() <= 1 || at::in_parallel_region() || t_team) return f();
  Team team;
  at::parallel_for(0, at::get_num_threads(), 1, [&](int64_t b, int64_t) {
    if (b != 0) return team.serve();
    // Thread 0 is the calling thread: its thread-local state (grad mode) holds for f.
    struct Close {
      Team& t;
      ~Close() {
        t_team = nullptr;
        t.done.store(true, std::memory_order_release);
      }
    } close{team};
    t_team = &team;
    f();
  });
}

torch::Tensor few_rows_linear(const torch::Tensor& x, const torch::Tensor& weight, const torch::Tensor& bias) {
  const int64_t K = weight.size(1), N = weight.size(0);
  TORCH_CHECK(x.is_cpu() && x.scalar_type() == torch::kFloat && weight.scalar_type() == torch::kFloat &&
                  weight.dim() == 2 && x.size(-1) == K && (!bias.defined() || bias.numel() == N),
              "few_rows_linear: float32 CPU x [..., ", K, "] for a weight ", weight.sizes());
  const auto xc = x.contiguous(), wc = weight.contiguous();
  const auto bc = bias.defined() ? bias.contiguous() : torch::Tensor();
  auto shape = x.sizes().vec();
  shape.back() = N;
  auto y = torch::empty(shape, x.options());
  const int64_t M = K == 0 ? 0 : xc.numel() / K;
  // Blocks of kRows input rows, the last one padded with zero rows.
  std::vector<float> xb(static_cast<size_t>(kRows * K)), yb(static_cast<size_t>(kRows * N));
  const float* bp = bc.defined() ? bc.data_ptr<float>() : nullptr;
  // Inside run_with_helpers a large weight is split into parts of kSplit outputs over the team:
  // the weights stream from memory (a decoder's 15 MB per prompt), at about twice the rate on two
  // cores.
  constexpr int64_t kSplit = 64, kSplitMinWeights = 1 << 16;
  const float* wp = wc.data_ptr<float>();
  for (int64_t m0 = 0; m0 < M; m0 += kRows) {
    const int64_t rows = std::min(kRows, M - m0);
    std::fill(std::copy_n(xc.data_ptr<float>() + m0 * K, rows * K, xb.data()), xb.data() + xb.size(), 0.f);
    if (t_team && N * K >= kSplitMinWeights) {
      const std::function<void(int64_t)> part = [&](int64_t c) {
        few_rows_block(xb.data(), K, wp, bp, N, c * kSplit, std::min(N, (c + 1) * kSplit), yb.data());
      };
      t_team->run((N + kSplit - 1) / kSplit, part);
    } else {
      few_rows_block(xb.data(), K, wp, bp, N, 0, N, yb.data());
    }
    std::copy_n(yb.data(), rows * N, y.data_ptr<float>() + m0 * N);
  }
  return y;
}

}  // namespace sam
