// The decoder's fused inference kernels (sam/decoder_kernels.h) against the tensor-op formulation
// they replace: the scaled softmax on short and long rows, the transposed convolutions' epilogues
// (bias, LayerNorm2d, exact GELU) against libtorch's ConvTranspose2d, the whole upscaling fused
// with the masks' products against the layers, and whole decoder outputs
// with the kernels on and off (cached and uncached, one prompt and several). Also the fast erf and
// GELU against libm, the few-rows linear against libtorch's, and the two-way transformer's image
// passes against the same attention written in tensor operations.
#include <catch2/catch.hpp>

#include <array>
#include <cmath>
#include <stdexcept>
#include <vector>

#include "sam/config.h"
#include "sam/cpu_gemm.h"
#include "sam/decoder_kernels.h"
#include "sam/fast_math.h"
#include "sam/image_pass.h"
#include "sam/mask_decoder.h"
#include "test_util.h"

namespace {

double max_abs(const torch::Tensor& a, const torch::Tensor& b) {
  return (a - b).abs().max().item<double>();
}

struct KernelsOff {
  KernelsOff() { sam::set_decoder_kernels_enabled(false); }
  ~KernelsOff() { sam::set_decoder_kernels_enabled(true); }
};

}  // namespace

TEST_CASE("fast erf and GELU agree with libm to float rounding", "[sam][kernels]") {
  double worst_erf = 0, worst_gelu = 0;
  for (int i = -120000; i <= 120000; ++i) {
    const float x = static_cast<float>(i) * 1e-4f;  // [-12, 12]
    worst_erf = std::max(worst_erf, std::abs(double(sam::fastmath::erf(x)) - std::erf(double(x))));
    const double g = 0.5 * x * (1.0 + std::erf(double(x) / std::sqrt(2.0)));
    worst_gelu = std::max(worst_gelu, std::abs(double(sam::fastmath::gelu(x)) - g) / std::max(1.0, std::abs(g)));
  }
  CHECK(worst_erf < 6e-7);  // Abramowitz and Stegun 7.1.26: 1.5e-7, plus float rounding (ulp 6e-8 to 1.2e-7)
  CHECK(worst_gelu < 1e-6);
  CHECK(sam::fastmath::erf(0.f) == Approx(0.0).margin(2e-7));
  CHECK(sam::fastmath::gelu(-20.f) == 0.f);
  CHECK(sam::fastmath::gelu(20.f) == 20.f);
}

TEST_CASE("gelu_inplace (8-lane FMA form where the CPU has AVX2) agrees with libm, tails included", "[sam][kernels]") {
  // 240001 values over [-12, 12] (not a multiple of 8: every chunk of the parallel loop ends in
  // a masked tail somewhere), then lengths 1 to 17 alone.
  auto x = torch::arange(-120000, 120001, torch::kFloat) * 1e-4f;
  std::vector<float> in(x.data_ptr<float>(), x.data_ptr<float>() + x.numel());
  sam::gelu_inplace(x);
  double worst = 0;
  for (size_t i = 0; i < in.size(); ++i) {
    const double v = in[i], g = 0.5 * v * (1.0 + std::erf(v / std::sqrt(2.0)));
    worst = std::max(worst, std::abs(double(x.data_ptr<float>()[i]) - g) / std::max(1.0, std::abs(g)));
  }
  CHECK(worst < 1e-6);
  for (int64_t n = 1; n <= 17; ++n) {
    auto t = torch::linspace(-3, 3, n);
    auto expect = 0.5 * t.to(torch::kDouble) * (1 + torch::erf(t.to(torch::kDouble) / std::sqrt(2.0)));
    CHECK(max_abs(sam::gelu_inplace(t.clone()).to(torch::kDouble), expect) < 1e-6);
  }
  auto ends = torch::tensor({-20.f, 20.f, 0.f});
  sam::gelu_inplace(ends);
  CHECK(ends[0].item<float>() == 0.f);
  CHECK(ends[1].item<float>() == 20.f);
  CHECK(ends[2].item<float>() == 0.f);
}

TEST_CASE("softmax_last_dim equals torch::softmax(x * scale)", "[sam][kernels]") {
  torch::manual_seed(3);
  torch::NoGradGuard ng;
  for (const auto& shape : std::vector<std::vector<int64_t>>{{8, 4096, 1, 7}, {1, 56, 4096}, {3, 5, 1}, {2, 300, 33}}) {
    auto x = torch::randn(shape) * 6;
    INFO("shape " << x.sizes());
    const double scale = 0.17677669529663687;  // 1 / sqrt(32)
    auto ref = torch::softmax(x * scale, -1);
    auto got = sam::softmax_last_dim(x, scale);
    CHECK(got.sizes() == ref.sizes());
    CHECK(max_abs(got, ref) < 1e-6);
    CHECK(max_abs(got.sum(-1), torch::ones_like(ref.sum(-1))) < 1e-5);  // float sums of 4096 terms
  }
  // Non-contiguous input (a transposed view) and extreme scores.
  auto x = torch::randn({16, 9}).t();
  CHECK(max_abs(sam::softmax_last_dim(x, 1.0), torch::softmax(x, -1)) < 1e-6);
  auto big = torch::tensor({{1000.f, 0.f, -1000.f}});
  CHECK(max_abs(sam::softmax_last_dim(big, 1.0), torch::tensor({{1.f, 0.f, 0.f}})) < 1e-30);  // exp clamped at -87
  CHECK_THROWS(sam::softmax_last_dim(x.to(torch::kDouble), 1.0));
}

TEST_CASE("convt2x2_epilogue equals ConvTranspose2d, LayerNorm2d and GELU", "[sam][kernels]") {
  torch::manual_seed(5);
  torch::NoGradGuard ng;
  const int64_t B = 2, C = 24, O = 12, h = 5, w = 7;
  torch::nn::ConvTranspose2d ct(torch::nn::ConvTranspose2dOptions(C, O, 2).stride(2));
  auto x = torch::randn({B, C, h, w});
  auto ref = ct->forward(x);  // [B, O, 2h, 2w]
  // y in (di, dj, o) column order from channels-last input.
  auto wt = ct->weight.permute({0, 2, 3, 1}).reshape({C, 4 * O});
  auto y = torch::mm(x.permute({0, 2, 3, 1}).reshape({B * h * w, C}), wt);
  SECTION("bias and GELU") {
    auto got = sam::convt2x2_epilogue(y, B, h, w, O, ct->bias, {}, {}, 0.0);
    CHECK(got.sizes() == torch::IntArrayRef({B, 2 * h, 2 * w, O}));
    CHECK(max_abs(got.permute({0, 3, 1, 2}), torch::gelu(ref)) < 1e-5);
  }
  SECTION("bias, LayerNorm2d over channels and GELU") {
    auto lw = torch::randn({O}), lb = torch::randn({O});
    const double eps = 1e-6;
    auto u = ref.mean(1, true);
    auto s = (ref - u).pow(2).mean(1, true);
    auto expect = torch::gelu((ref - u) / (s + eps).sqrt() * lw.view({1, O, 1, 1}) + lb.view({1, O, 1, 1}));
    auto got = sam::convt2x2_epilogue(y, B, h, w, O, ct->bias, lw, lb, eps);
    CHECK(max_abs(got.permute({0, 3, 1, 2}), expect) < 2e-5);
  }
  CHECK_THROWS(sam::convt2x2_epilogue(y, B, h, w + 1, O, ct->bias, {}, {}, 0.0));
}

TEST_CASE("upscale_masks equals the upscaling layers and the masks' products", "[sam][kernels]") {
  if (!sam::cpu_sgemm_available()) {
    sam_test::skip("built without BLAS: the fused upscaling needs sgemm_");
    return;
  }
  torch::manual_seed(6);
  torch::NoGradGuard ng;
  const int64_t B = 2, D = 24, O1 = 12, O2 = 6, M = 3, h = 3, w = 5;
  torch::nn::ConvTranspose2d ct1(torch::nn::ConvTranspose2dOptions(D, O1, 2).stride(2));
  torch::nn::ConvTranspose2d ct2(torch::nn::ConvTranspose2dOptions(O1, O2, 2).stride(2));
  auto lw = torch::randn({O1}), lb = torch::randn({O1});
  const double eps = 1e-6;
  auto keys = torch::randn({B, h * w, D});
  auto hyper = torch::randn({B, M, O2});
  // The reference's layers on NCHW tensors.
  auto x = ct1->forward(keys.transpose(1, 2).reshape({B, D, h, w}));
  auto u = x.mean(1, true);
  auto var = (x - u).pow(2).mean(1, true);
  x = torch::gelu((x - u) / (var + eps).sqrt() * lw.view({1, O1, 1, 1}) + lb.view({1, O1, 1, 1}));
  auto up = torch::gelu(ct2->forward(x));  // [B, O2, 4h, 4w]
  auto expect = torch::einsum("bmo,bohw->bmhw", {hyper, up});
  auto w1 = ct1->weight.permute({0, 2, 3, 1}).reshape({D, 4 * O1});
  auto w2 = ct2->weight.permute({0, 2, 3, 1}).reshape({O1, 4 * O2});
  auto got = sam::upscale_masks(keys, h, w, w1, ct1->bias, lw, lb, eps, w2, ct2->bias, hyper);
  REQUIRE(got.sizes() == torch::IntArrayRef({B, M, 4 * h, 4 * w}));
  CHECK(max_abs(got, expect) < 1e-4 * (1 + expect.abs().max().item<double>()));
  CHECK_THROWS(sam::upscale_masks(keys, h, w + 1, w1, ct1->bias, lw, lb, eps, w2, ct2->bias, hyper));
  CHECK_THROWS(sam::upscale_masks(keys, h, w, w1, ct1->bias, lw, lb, eps, w2, ct2->bias, hyper.narrow(2, 0, O2 - 1)));
}

TEST_CASE("few_rows_linear equals torch::nn::functional::linear", "[sam][kernels]") {
  torch::manual_seed(12);
  for (int64_t rows : {1, 7, 8, 13}) {
    for (int64_t K : {5, 16, 70}) {
      auto x = torch::randn({rows, K}), w = torch::randn({9, K}), b = torch::randn({9});
      auto expect = torch::nn::functional::linear(x, w, b);
      CHECK(max_abs(sam::few_rows_linear(x, w, b), expect) < 1e-5 * (1 + expect.abs().max().item<double>()));
      CHECK(max_abs(sam::few_rows_linear(x.view({1, rows, K}), w, {}), expect - b) < 1e-4);
    }
  }
  CHECK_THROWS(sam::few_rows_linear(torch::randn({2, 4}), torch::randn({3, 5}), {}));
}

TEST_CASE("few_rows_linear inside run_with_helpers: the same bits, parts split over the threads", "[sam][kernels]") {
  torch::manual_seed(13);
  const int threads = torch::get_num_threads();
  torch::set_num_threads(2);
  // Weights above the split threshold (64K floats) and below it, outputs not a multiple of the
  // part size (64), one block of rows and several; many calls in a row, as a prompt's tokens make.
  std::vector<std::array<int64_t, 3>> shapes = {{7, 256, 2048}, {7, 2048, 256}, {13, 256, 300}, {3, 64, 64},
                                                {9, 256, 4100}};
  std::vector<torch::Tensor> xs, ws, bs, alone;
  for (const auto& [rows, K, N] : shapes) {
    xs.push_back(torch::randn({rows, K}));
    ws.push_back(torch::randn({N, K}));
    bs.push_back(torch::randn({N}));
    alone.push_back(sam::few_rows_linear(xs.back(), ws.back(), bs.back()));
  }
  std::vector<torch::Tensor> team;
  sam::run_with_helpers([&] {
    for (int rep = 0; rep < 50; ++rep)
      for (size_t i = 0; i < shapes.size(); ++i) {
        auto y = sam::few_rows_linear(xs[i], ws[i], bs[i]);
        if (rep == 0) team.push_back(y);
        else if (!torch::equal(y, team[i])) team[i] = torch::full_like(y, NAN);  // a repeat differs
      }
  });
  REQUIRE(team.size() == shapes.size());
  for (size_t i = 0; i < shapes.size(); ++i) {
    INFO("shape " << i);
    CHECK(torch::equal(team[i], alone[i]));  // each output by the same kernel: equal bits
  }
  // An exception in f reaches the caller, and the helpers are released (no hang).
  CHECK_THROWS_WITH(sam::run_with_helpers([] { throw std::runtime_error("from f"); }), Catch::Contains("from f"));
  // Nested: the inner call runs f alone.
  int inner = 0;
  sam::run_with_helpers([&] { sam::run_with_helpers([&] { ++inner; }); });
  CHECK(inner == 1);
  torch::set_num_threads(threads);
}

TEST_CASE("image_pass and attend_image_rows equal the attention in tensor operations", "[sam][kernels]") {
  if (!sam::cpu_sgemm_available()) {
    sam_test::skip("built without BLAS: the image passes need sgemm_");
    return;
  }
  torch::manual_seed(13);
  torch::NoGradGuard ng;
  // N = 300 image rows: not a multiple of the pass's tile; a shared image for B = 3 prompts.
  const int64_t B = 3, N = 300, D = 24, H = 2, Nt = 5, R = H * Nt, R2 = 8;
  auto keys = torch::randn({1, N, D}), pe = torch::randn({1, N, D});
  auto qk = torch::randn({B, R2, D});
  sam::ImageToTokenTerms t;
  t.m = torch::randn({B, D, R}) * 0.3;
  t.c = torch::randn({B, R});
  t.vo = torch::randn({B, R, D});
  t.bo = torch::randn({D});
  t.ln_weight = torch::randn({D});
  t.ln_bias = torch::randn({D});
  t.ln_eps = 1e-5;
  t.heads = H;
  t.scale = 0.7;
  const double ts = 0.4;
  auto x = keys + pe;
  auto s = torch::matmul(x, t.m) + t.c.unsqueeze(1);                                // [B, N, R]
  auto p = torch::softmax(s.view({B, N, H, Nt}) * t.scale, -1).view({B, N, R});
  auto keys_exp = torch::layer_norm(keys + (torch::matmul(p, t.vo) + t.bo), {D}, t.ln_weight, t.ln_bias, t.ln_eps);
  auto pv_exp = torch::matmul(torch::softmax(torch::matmul(qk, (keys_exp + pe).transpose(1, 2)) * ts, -1), keys_exp);
  auto [keys_got, pv_got] = sam::image_pass(keys, pe, &t, qk, ts);
  REQUIRE(keys_got.sizes() == torch::IntArrayRef({B, N, D}));
  CHECK(max_abs(keys_got, keys_exp) < 1e-4);
  CHECK(max_abs(pv_got, pv_exp) < 1e-4 * (1 + pv_exp.abs().max().item<double>()));
  {
    // In place: per-prompt keys [B, N, D] are overwritten with the same figures; shared keys
    // [1, N, D] are not (the update makes them per prompt).
    auto t_in = t;
    t_in.in_place = true;
    auto owned = keys.expand({B, N, D}).clone();
    auto [keys_in, pv_in] = sam::image_pass(owned, pe, &t_in, qk, ts);
    CHECK(keys_in.data_ptr() == owned.data_ptr());
    CHECK(torch::equal(keys_in, keys_got));
    CHECK(torch::equal(pv_in, pv_got));
    const auto shared = keys.clone();
    auto keys_new = sam::image_pass(shared, pe, &t_in, qk, ts).first;
    CHECK(keys_new.data_ptr() != shared.data_ptr());
    CHECK(torch::equal(shared, keys));
  }
  // Per-prompt keys, no update: only the reduction.
  auto kb = torch::randn({B, N, D});
  auto pv2 = sam::image_pass(kb, pe, nullptr, qk, ts).second;
  auto pv2_exp = torch::matmul(torch::softmax(torch::matmul(qk, (kb + pe).transpose(1, 2)) * ts, -1), kb);
  CHECK(max_abs(pv2, pv2_exp) < 1e-4 * (1 + pv2_exp.abs().max().item<double>()));
  // Given score and value rows of other widths (the cached projections).
  auto sr = torch::randn({1, N, 16}), vr = torch::randn({1, N, 12}), q16 = torch::randn({B, R2, 16});
  auto pv3 = sam::attend_image_rows(sr, vr, q16, ts);
  auto pv3_exp = torch::matmul(torch::softmax(torch::matmul(q16, sr.transpose(1, 2)) * ts, -1), vr);
  CHECK(max_abs(pv3, pv3_exp) < 1e-4 * (1 + pv3_exp.abs().max().item<double>()));
  // Scores far apart (a tile's maximum far above another's): the running softmax rescales.
  auto far = qk * 40;
  auto pv4 = sam::image_pass(kb, pe, nullptr, far, ts).second;
  auto pv4_exp = torch::matmul(torch::softmax(torch::matmul(far, (kb + pe).transpose(1, 2)) * ts, -1), kb);
  CHECK(max_abs(pv4, pv4_exp) < 1e-4 * (1 + pv4_exp.abs().max().item<double>()));
  CHECK_THROWS(sam::image_pass(keys, pe.narrow(1, 0, N - 1), &t, qk, ts));
  CHECK_THROWS(sam::image_pass(torch::randn({2, N, D}), pe, nullptr, qk, ts));
}

TEST_CASE("the decoder with fused kernels equals its tensor-op formulation", "[sam][kernels]") {
  torch::manual_seed(9);
  sam::ModelConfig c;
  c.prompt_dim = 64;
  c.decoder_heads = 4;
  c.decoder_mlp_dim = 128;
  sam::MaskDecoder dec(c);
  dec->eval();
  const int64_t G = 16, B = 3;
  auto emb = torch::randn({1, 64, G, G}), pe = torch::randn({1, 64, G, G});
  auto sparse = torch::randn({B, 3, 64});
  auto dense = torch::randn({1, 64, 1, 1}).expand({B, 64, G, G});
  torch::NoGradGuard ng;
  auto cache = dec->prepare_image(emb, pe, dense.narrow(0, 0, 1));
  auto fused = dec->predict_all(emb, pe, sparse, dense, &cache);
  sam::DecoderOutput plain;
  {
    KernelsOff off;
    plain = dec->predict_all(emb, pe, sparse, dense, &cache);
  }
  CHECK(fused.masks.sizes() == plain.masks.sizes());
  CHECK(max_abs(fused.masks, plain.masks) < 1e-4 * (1 + plain.masks.abs().max().item<double>()));
  CHECK(max_abs(fused.iou, plain.iou) < 1e-5);
  // Without the cache: one prompt on the shared embedding, and mask inputs (a dense embedding
  // per prompt) on per-prompt embeddings.
  auto dense_b = torch::randn({B, 64, G, G});
  auto embs = torch::randn({B, 64, G, G});
  for (const auto& [e, sp, de] : {std::make_tuple(emb, sparse.narrow(0, 0, 1), dense.narrow(0, 0, 1)),
                                   std::make_tuple(embs, sparse, dense_b)}) {
    auto f = dec->predict_all(e, pe, sp, de);
    sam::DecoderOutput q;
    {
      KernelsOff off;
      q = dec->predict_all(e, pe, sp, de);
    }
    CHECK(max_abs(f.masks, q.masks) < 1e-4 * (1 + q.masks.abs().max().item<double>()));
    CHECK(max_abs(f.iou, q.iou) < 1e-5);
  }
  // With gradients on, the kernels stay out (training uses the tensor ops and their autograd).
  torch::AutoGradMode grad(true);
  CHECK_FALSE(sam::decoder_kernels_apply(emb));
}
