// The composite upscale (sam/upscale.h) equals SAM's post-processing in libtorch ops (two bilinear
// resizes with a crop between, then "> 0"), as do both paths of postprocess_masks: on random
// logits, for the ViT and tiny geometries and odd sizes.
#include <catch2/catch.hpp>

#include "sam/upscale.h"
#include "sam/sam_model.h"

namespace {

void compare(int img_size, int patch, int H, int W, int64_t seed) {
  sam::ModelConfig c;
  c.img_size = img_size;
  c.patch_size = patch;
  // Only the geometry matters to postprocess_masks: a one-block, narrow encoder builds fast.
  c.depth = 1;
  c.embed_dim = 32;
  c.num_heads = 2;
  c.global_attn_indexes = {0};
  sam::Sam model(c);
  const int L = c.low_res_size();
  torch::manual_seed(seed);
  // Smooth-ish logits with plenty of sign changes, like a decoder's.
  auto low = (torch::randn({1, 1, L / 4, L / 4}) * 8).contiguous();
  low = torch::nn::functional::interpolate(low, torch::nn::functional::InterpolateFuncOptions()
                                                    .size(std::vector<int64_t>{L, L})
                                                    .mode(torch::kBilinear)
                                                    .align_corners(false))
            .contiguous();
  const double s = static_cast<double>(img_size) / std::max(H, W);
  const int ih = static_cast<int>(H * s + 0.5), iw = static_cast<int>(W * s + 0.5);
  // The reference's post-processing in libtorch ops (the interpolate path postprocess_masks takes
  // with gradients on).
  namespace F = torch::nn::functional;
  auto opts = F::InterpolateFuncOptions().mode(torch::kBilinear).align_corners(false);
  auto big = F::interpolate(low, opts.size(std::vector<int64_t>{img_size, img_size}));
  big = big.narrow(2, 0, ih).narrow(3, 0, iw);
  auto ref = F::interpolate(big, opts.size(std::vector<int64_t>{H, W}))[0][0].contiguous();
  {
    // postprocess_masks: the composite map on the CPU without gradients, its threshold in the
    // same pass.
    torch::NoGradGuard ng;
    torch::Tensor binary;
    auto fast = model->postprocess_masks(low, {ih, iw}, {H, W}, &binary)[0][0];
    CHECK((fast - ref).abs().max().item<double>() <= 1e-4 * (1 + ref.abs().max().item<double>()));
    CHECK((binary[0][0].ne(ref > 0) & ref.abs().gt(1e-4)).sum().item<int64_t>() == 0);
    // Without the logits (Predictor's PredictOptions::logits = false): the same masks, no logits.
    torch::Tensor binary_only;
    CHECK_FALSE(model->postprocess_masks(low, {ih, iw}, {H, W}, &binary_only, false).defined());
    CHECK(torch::equal(binary_only, binary));
    // With gradients on it is libtorch's interpolation, the reference's own arithmetic.
    torch::AutoGradMode grad(true);
    auto slow = model->postprocess_masks(low.clone().requires_grad_(true), {ih, iw}, {H, W})[0][0];
    CHECK((slow.detach() - ref).abs().max().item<double>() == 0.0);
  }
  auto ours = sam::upscale_logits(low.data_ptr<float>(), L, img_size, ih, iw, H, W);
  auto ours_t = torch::from_blob(ours.data(), {H, W}, torch::kFloat);
  INFO("S " << img_size << " out " << H << "x" << W);
  CHECK((ours_t - ref).abs().max().item<double>() <= 1e-4 * (1 + ref.abs().max().item<double>()));
  std::vector<uint8_t> mask(static_cast<size_t>(H * W));
  sam::upscale_threshold(low.data_ptr<float>(), L, img_size, ih, iw, H, W, mask.data());
  auto m = torch::from_blob(mask.data(), {H, W}, torch::kUInt8).to(torch::kBool);
  auto flips = m.ne(ref > 0) & ref.abs().gt(1e-4);
  CHECK(flips.sum().item<int64_t>() == 0);
  CHECK(m.sum().item<int64_t>() > 0);
  CHECK(m.sum().item<int64_t>() < H * W);
}

}  // namespace

TEST_CASE("upscale: equals postprocess_masks then > 0", "[sam][upscale]") {
  compare(256, 16, 480, 640, 1);   // the golden tiny geometry (downscale in the second resize)
  compare(256, 16, 1000, 333, 2);  // portrait, upscaled past S
  compare(256, 16, 256, 256, 3);   // the identity second resize
  compare(1024, 16, 480, 640, 4);  // ViT geometry
  compare(1024, 16, 1500, 2250, 5);
  compare(1024, 16, 7, 5, 6);  // tiny image
}

TEST_CASE("upscale: bad sizes throw", "[sam][upscale]") {
  std::vector<float> low(64 * 64);
  std::vector<uint8_t> out(10);
  CHECK_THROWS(sam::upscale_threshold(low.data(), 64, 256, 300, 10, 2, 5, out.data()));
  CHECK_THROWS(sam::upscale_threshold(low.data(), 64, 256, 0, 10, 2, 5, out.data()));
  CHECK_THROWS(sam::upscale_threshold(low.data(), 64, 256, 10, 10, 2, -5, out.data()));
}
