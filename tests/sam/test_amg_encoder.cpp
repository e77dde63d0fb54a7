// The generator's fused mask stage (sam/amg/mask_encoder.h) against the reference computed
// with libtorch ops: postprocess_masks (two bilinear interpolations with a crop between), the
// stability score, thresholding, batched_mask_to_box, uncrop and RLE. Pixels may differ only where
// a reference logit lies within float rounding of a threshold.
#include <catch2/catch.hpp>

#include <cmath>
#include <vector>

#include "data/image.h"
#include "data/mask/rle.h"
#include "sam/amg/amg_utils.h"
#include "sam/amg/mask_encoder.h"

using namespace sam::amg;
namespace F = torch::nn::functional;

namespace {

torch::Tensor reference_upscale(const torch::Tensor& low, int64_t S, int64_t ih, int64_t iw,
                                int64_t ch, int64_t cw) {
  auto opts = F::InterpolateFuncOptions().mode(torch::kBilinear).align_corners(false);
  auto up = F::interpolate(low, opts.size(std::vector<int64_t>{S, S}));
  using torch::indexing::Slice;
  up = up.index({Slice(), Slice(), Slice(0, ih), Slice(0, iw)});
  return F::interpolate(up, opts.size(std::vector<int64_t>{ch, cw}));
}

// Smooth logits with large flat regions and sharp-ish boundaries, like a decoder's output.
torch::Tensor smooth_logits(int64_t n, int64_t lr, uint64_t seed) {
  torch::manual_seed(seed);
  auto coarse = torch::randn({n, 1, 6, 6}) * 12.0;
  auto opts = F::InterpolateFuncOptions().mode(torch::kBilinear).align_corners(false);
  auto low = F::interpolate(coarse, opts.size(std::vector<int64_t>{lr, lr}));
  low[0].fill_(-20.0);  // an empty mask
  low[1].fill_(5.0);    // a full mask
  return low.contiguous();
}

void check_geometry(int64_t img_h, int64_t img_w, CropBox crop, double offset) {
  const int64_t lr = 64, S = 256, N = 12;
  const auto [ih, iw] = sam::data::preprocess_shape(static_cast<int>(crop.height()),
                                                    static_cast<int>(crop.width()), S);
  INFO("image " << img_h << "x" << img_w << " crop " << crop.x0 << "," << crop.y0 << "," << crop.x1
                << "," << crop.y1 << " input " << ih << "x" << iw << " offset " << offset);
  auto low = smooth_logits(N, lr, static_cast<uint64_t>(crop.x0 * 31 + crop.y1));
  auto ref = reference_upscale(low, S, ih, iw, crop.height(), crop.width()).contiguous();
  auto ref_stab = calculate_stability_score(ref, 0.0, offset);
  auto ref_mask = (ref > 0.0).squeeze(1).contiguous();
  auto ref_box = batched_mask_to_box(ref_mask);
  const MaskEncoder enc(lr, S, ih, iw, crop, img_h, img_w, 0.0, offset);
  const float thr_hi = static_cast<float>(offset), thr_lo = static_cast<float>(-offset);
  for (int64_t i = 0; i < N; ++i) {
    INFO("mask " << i);
    auto r = ref[i][0];
    const float* low_p = low[i][0].data_ptr<float>();
    // Values: within a few float roundings of libtorch's interpolation.
    auto vals = enc.upscale(low_p);
    auto ours = torch::from_blob(vals.data(), {crop.height(), crop.width()}, torch::kFloat);
    const double max_err = (ours - r).abs().max().item<double>();
    CHECK(max_err <= 1e-5 * std::max(1.0, r.abs().max().item<double>()));

    const EncodedMask m = enc.encode(low_p, true);
    // Pixels where rounding may flip a comparison.
    const auto near0 = r.abs().lt(1e-4).sum().item<int64_t>();
    const auto near_hi = (r - thr_hi).abs().lt(1e-4).sum().item<int64_t>();
    const auto near_lo = (r - thr_lo).abs().lt(1e-4).sum().item<int64_t>();
    CHECK(std::abs(m.n_hi - (r > thr_hi).sum().item<int64_t>()) <= near_hi);
    CHECK(std::abs(m.n_lo - (r > thr_lo).sum().item<int64_t>()) <= near_lo);
    CHECK(std::abs(m.area - ref_mask[i].sum().item<int64_t>()) <= near0);
    if (near0 == 0) {
      for (int k = 0; k < 4; ++k) CHECK(m.box[k] == ref_box[i][k].item<int64_t>());
      auto crop_rle =
          sam::mask::rle_encode(ref_mask[i].to(torch::kUInt8).contiguous().data_ptr<uint8_t>(),
                                crop.height(), crop.width());
      const auto want = uncrop_rle(crop_rle, crop, img_h, img_w);
      CHECK(m.rle.h == img_h);
      CHECK(m.rle.w == img_w);
      CHECK(m.rle.counts == want.counts);
      const float stab = static_cast<float>(m.n_hi) / static_cast<float>(m.n_lo);
      const float want_stab = ref_stab[i][0].item<float>();
      if (std::isnan(want_stab))
        CHECK(std::isnan(stab));
      else
        CHECK(stab == Approx(want_stab).margin(1e-6));
    }
    // The fast path decides exactly as the dense one.
    const EncodedMask d = enc.encode_dense(low_p, true);
    CHECK(d.n_hi == m.n_hi);
    CHECK(d.n_lo == m.n_lo);
    CHECK(d.area == m.area);
    CHECK(d.box == m.box);
    CHECK(d.rle.counts == m.rle.counts);
    // Without the RLE the statistics are the same.
    const EncodedMask s = enc.encode(low_p, false);
    CHECK(s.n_hi == m.n_hi);
    CHECK(s.area == m.area);
    CHECK(s.box == m.box);
    CHECK(s.rle.counts.empty());
  }
}

}  // namespace

TEST_CASE("make_resize_axis: torch's source indices and weights", "[amg]") {
  // 64 -> 256: ratio 0.25, src = 0.25 (i + 0.5) - 0.5 clamped at 0.
  auto a = make_resize_axis(64, 256);
  CHECK(a.i0[0] == 0);
  CHECK(a.w1[0] == 0.0f);  // src = -0.375 -> 0
  CHECK(a.i0[2] == 0);
  CHECK(a.w1[2] == 0.125f);  // src = 0.125
  CHECK(a.i0[255] == 63);
  CHECK(a.i1[255] == 63);  // the last sample has no right neighbour
  auto same = make_resize_axis(10, 10);
  for (int i = 0; i < 10; ++i) {
    CHECK(same.i0[i] == i);
    CHECK(same.w0[i] == 1.0f);
  }
  // Downscale 183 -> 50: src = 3.66 (i + 0.5) - 0.5.
  auto d = make_resize_axis(183, 50);
  CHECK(d.i0[1] == 4);
  CHECK(d.w1[1] == Approx(0.99).margin(1e-5));
}

TEST_CASE("MaskEncoder matches postprocess_masks + stability + box + uncropped RLE", "[amg]") {
  check_geometry(480, 640, CropBox{0, 0, 640, 480, 0}, 1.0);      // the whole golden image
  check_geometry(480, 640, CropBox{239, 159, 640, 480, 1}, 1.0);  // a layer-1 crop
  check_geometry(480, 640, CropBox{0, 159, 402, 480, 1}, 0.5);    // another, other offset
  check_geometry(300, 400, CropBox{100, 50, 356, 242, 1}, 1.0);   // crop == input size
  check_geometry(200, 200, CropBox{30, 40, 100, 90, 2}, 1.0);     // smaller than S: downscale
  check_geometry(400, 150, CropBox{0, 0, 100, 300, 1}, 2.0);      // tall crop
}

TEST_CASE("MaskEncoder: the fast path equals the dense path on many masks", "[amg]") {
  // Logits with features at every scale, values crowding the thresholds, flat plateaus exactly
  // at a threshold, and very large magnitudes.
  const int64_t lr = 64, S = 256;
  const CropBox crops[3] = {{0, 0, 640, 480, 0}, {239, 0, 640, 322, 1}, {10, 10, 60, 50, 2}};
  for (const auto& crop : crops) {
    const auto [ih, iw] = sam::data::preprocess_shape(static_cast<int>(crop.height()),
                                                      static_cast<int>(crop.width()), S);
    for (double offset : {1.0, 0.0, 0.25}) {
      const MaskEncoder enc(lr, S, ih, iw, crop, 480, 640, 0.0, offset);
      torch::manual_seed(static_cast<uint64_t>(crop.x0 + 100 * offset));
      auto opts = F::InterpolateFuncOptions().mode(torch::kBilinear).align_corners(false);
      for (int t = 0; t < 40; ++t) {
        const int64_t g = 2 + t % 20;
        auto low = F::interpolate(torch::randn({1, 1, g, g}) * (1.0 + t % 7),
                                  opts.size(std::vector<int64_t>{lr, lr}));
        if (t % 5 == 1) low = low.round();                          // plateaus at -1, 0, 1
        if (t % 5 == 2) low = low * 1e3;                            // huge magnitudes
        if (t % 5 == 3) low = low + 0.01 * torch::randn_like(low);  // noise near thresholds
        low = low.contiguous();
        const float* p = low.data_ptr<float>();
        const EncodedMask a = enc.encode(p, true), b = enc.encode_dense(p, true);
        INFO("crop " << crop.x0 << "," << crop.y0 << " offset " << offset << " case " << t);
        REQUIRE(a.n_hi == b.n_hi);
        REQUIRE(a.n_lo == b.n_lo);
        REQUIRE(a.area == b.area);
        REQUIRE(a.box == b.box);
        REQUIRE(a.rle.counts == b.rle.counts);
      }
    }
  }
}

TEST_CASE("MaskEncoder rejects inconsistent geometry", "[amg]") {
  CHECK_THROWS_AS(MaskEncoder(64, 256, 300, 256, CropBox{0, 0, 10, 10, 0}, 10, 10, 0.0, 1.0),
                  std::invalid_argument);
  CHECK_THROWS_AS(MaskEncoder(64, 256, 256, 256, CropBox{0, 0, 20, 10, 0}, 10, 10, 0.0, 1.0),
                  std::invalid_argument);
}
