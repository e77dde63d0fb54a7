// The decoder's fused inference kernels (sam/decoder_kernels.h) against the tensor-op formulation
// they replace: the scaled softmax on short and long rows, the transposed convolutions' epilogues
// (bias, LayerNorm2d, exact GELU) against libtorch's ConvTranspose2d, the whole upscaling fused
// with the masks' products against the layers, and whole decoder outputs
// with the kernels on and off. Also the fast erf and GELU against libm.
#include <catch2/catch.hpp>

#include <cmath>

#include "sam/config.h"
#include "sam/cpu_gemm.h"
#include "sam/decoder_kernels.h"
#include "sam/fast_math.h"
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
  // With gradients on, the kernels stay out (training uses the tensor ops and their autograd).
  torch::AutoGradMode grad(true);
  CHECK_FALSE(sam::decoder_kernels_apply(emb));
}
