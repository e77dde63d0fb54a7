// The analytic FLOP counts behind MFU, against the published figures (PERF_ANCHORS: the encoders'
// forward TFLOP per image, EfficientViT-SAM's 2973 G multiply-adds for ViT-H, about 3.5 GFLOP per
// prompt through the decoder, about 7 TFLOP of decoder rounds per ViT-H training image).
#include <catch2/catch.hpp>

#include "sam/flops.h"

TEST_CASE("encoder FLOPs match the published counts", "[sam][flops]") {
  CHECK(sam::encoder_forward_flops(sam::model_config_resolve("vit_b")) / 1e12 == Approx(0.97).epsilon(0.02));
  CHECK(sam::encoder_forward_flops(sam::model_config_resolve("vit_l")) / 1e12 == Approx(2.99).epsilon(0.02));
  const double h = sam::encoder_forward_flops(sam::model_config_resolve("vit_h"));
  CHECK(h / 1e12 == Approx(5.96).epsilon(0.02));
  CHECK(h / 2 / 1e9 == Approx(2973).epsilon(0.02));  // multiply-adds
}

TEST_CASE("decoder and training-step FLOPs", "[sam][flops]") {
  const auto h = sam::model_config_resolve("vit_h");
  CHECK(sam::decoder_forward_flops(h, 2) / 1e9 == Approx(3.5).epsilon(0.05));
  // More prompt tokens cost a little more; the image side dominates.
  CHECK(sam::decoder_forward_flops(h, 12) > sam::decoder_forward_flops(h, 2));
  CHECK(sam::decoder_forward_flops(h, 12) < 1.05 * sam::decoder_forward_flops(h, 2));
  // The paper's load: 1 image x 64 masks x 11 rounds: 17.9 TFLOP of encoder plus about 7 of decoder.
  const double step = sam::train_step_flops(h, 64, 11) / 1e12;
  CHECK(step == Approx(17.9 + 7.4).epsilon(0.05));
}

TEST_CASE("the TinyViT-style encoder's FLOPs, a small case counted by hand", "[sam][flops][tiny_vit]") {
  sam::ModelConfig c;
  c.encoder = "tiny_vit";
  c.img_size = 16;
  c.patch_size = 4;
  c.tiny_vit_dims = {4, 8};
  c.tiny_vit_depths = {1, 1};
  c.tiny_vit_heads = {1, 1};
  c.tiny_vit_windows = {2, 2};
  c.prompt_dim = 8;
  // Stem: 8x8x2 outputs of 3x3x3 (6912) and 4x4x4 of 3x3x2 (2304); MBConv at 4x4, 4 -> 16 -> 4
  // channels: 2 x 16 x 4 x 16 x 2 = 4096 and the depthwise 2 x 16 x 16 x 9 = 4608; the merge into
  // the last stage (stride 1): 1024 + 2304 + 2048; the attention block at 4x4, width 8, 2x2
  // windows: qkv and proj 8192, q k^T and attention v 4 x 4 x 16 x 8 = 2048, depthwise 2304, MLP
  // 16384; the neck 2048 + 18432.
  CHECK(sam::encoder_forward_flops(c) == 6912 + 2304 + 4096 + 4608 + 1024 + 2304 + 2048 + 8192 + 2048 + 2304 + 16384 +
                                             2048 + 18432);
}
