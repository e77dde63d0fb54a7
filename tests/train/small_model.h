#pragma once
// A small SAM (64 px input, 2 encoder blocks of width 32) for the training unit tests: built in
// milliseconds, seeded, with every kind of layer the full models have.
#include "sam/sam_model.h"

namespace sam_test {

inline sam::Sam small_model(uint64_t seed = 3) {
  sam::ModelConfig c;
  c.img_size = 64;
  c.patch_size = 16;
  c.depth = 2;
  c.embed_dim = 32;
  c.num_heads = 2;
  c.global_attn_indexes = {1};
  torch::manual_seed(seed);
  return sam::Sam(c);
}

}  // namespace sam_test
