// The image encoder's inference shortcuts against the formulation the training path runs.
#include <catch2/catch.hpp>

#include "sam/config.h"
#include "sam/image_encoder.h"

namespace {

// A windowed block's output without autograd (the CPU path that projects only the real tokens
// and writes q, k and v straight into window order) against the same block with autograd on
// (padding after the norm, partition, attention on every padded window, unpartition).
void check_windowed_block(int64_t grid_h, int64_t grid_w, int64_t ws) {
  INFO("grid " << grid_h << " x " << grid_w << ", window " << ws);
  auto c = sam::model_config_preset("vit_b");
  c.embed_dim = 48;
  c.num_heads = 3;
  sam::EncoderBlock block(c, ws, 0.0);
  block->eval();
  // Relative-position tables and biases that are not zero, so that a padding token's q, k and v
  // (the qkv bias) and the terms they get matter.
  {
    torch::NoGradGuard ng;
    for (auto& p : block->parameters()) p.copy_(torch::randn_like(p) * 0.5);
  }
  auto x = torch::randn({2, grid_h, grid_w, c.embed_dim});
  torch::Tensor fast, reference;
  {
    torch::NoGradGuard ng;
    fast = block->forward(x);
  }
  reference = block->forward(x.clone().requires_grad_(true)).detach();
  REQUIRE(fast.sizes() == reference.sizes());
  // Outputs up to about 50 here; the two formulations normalise the attention at different points
  // (inference scales P V's rows, training's kernel the probabilities): 3e-5 apart at most.
  CHECK(torch::allclose(fast, reference, 1e-4, 1e-4));
  CHECK((fast - reference).abs().max().item<float>() <= 1e-4f * reference.abs().max().item<float>());
}

}  // namespace

TEST_CASE("a windowed block without autograd equals partition, attention and unpartition",
          "[sam][image_encoder]") {
  torch::manual_seed(11);
  check_windowed_block(8, 8, 4);    // no padding
  check_windowed_block(10, 7, 4);   // padding on both sides, a non-square grid
  check_windowed_block(5, 5, 14);   // one window larger than the grid
}
