// train/freeze.h: the glob rule, and which parameters a SAM model keeps fixed for freeze /
// trainable patterns (counted independently from the state dict's names), with the errors.
#include <catch2/catch.hpp>

#include <string>

#include "sam/sam_model.h"
#include "small_model.h"
#include "train/freeze.h"

using sam::train::apply_freeze;
using sam::train::name_matches;
using sam_test::small_model;

namespace {

bool starts(const std::string& s, const std::string& p) { return s.rfind(p, 0) == 0; }

}  // namespace

TEST_CASE("freeze: glob patterns over parameter names", "[train][freeze]") {
  CHECK(name_matches("image_encoder.*", "image_encoder.blocks.0.attn.qkv.weight"));
  CHECK_FALSE(name_matches("image_encoder.*", "mask_decoder.iou_token.weight"));
  CHECK(name_matches("*.attn.qkv.*", "image_encoder.blocks.11.attn.qkv.bias"));
  CHECK_FALSE(name_matches("*.attn.qkv.*", "image_encoder.blocks.11.attn.proj.bias"));
  CHECK(name_matches("image_encoder.blocks.?.mlp.*", "image_encoder.blocks.3.mlp.lin1.weight"));
  CHECK_FALSE(name_matches("image_encoder.blocks.?.mlp.*", "image_encoder.blocks.10.mlp.lin1.weight"));
  CHECK(name_matches("*", "x"));
  CHECK(name_matches("a*b*c", "aXXbYYc"));
  CHECK_FALSE(name_matches("a*b*c", "aXXbYY"));
  CHECK(name_matches("mask_decoder.iou_token.weight", "mask_decoder.iou_token.weight"));
  CHECK_FALSE(name_matches("mask_decoder.iou_token", "mask_decoder.iou_token.weight"));
}

TEST_CASE("freeze: frozen parameters get no gradient, counts and summary", "[train][freeze]") {
  auto model = small_model();
  int64_t tensors = 0, encoder_tensors = 0, decoder_elems = 0, all_elems = 0;
  for (const auto& kv : model->named_parameters(true)) {
    ++tensors;
    all_elems += kv.value().numel();
    if (starts(kv.key(), "image_encoder.")) ++encoder_tensors;
    if (starts(kv.key(), "mask_decoder.")) decoder_elems += kv.value().numel();
  }
  const auto r = apply_freeze(*model, {"image_encoder.*"}, {});
  CHECK(r.tensors == tensors);
  CHECK(r.frozen_tensors == encoder_tensors);
  CHECK(r.params == all_elems);
  CHECK_THAT(r.summary(), Catch::Contains("of " + std::to_string(tensors) + " tensors frozen"));
  for (const auto& kv : model->named_parameters(true))
    CHECK(kv.value().requires_grad() == !starts(kv.key(), "image_encoder."));

  // A backward pass through the whole model leaves the frozen ones without a gradient.
  auto x = torch::randn({1, 3, 64, 64});
  auto emb = model->image_encoder->forward(x);
  CHECK_FALSE(emb.requires_grad());  // nothing of the encoder is recorded
  auto pe = model->prompt_encoder->forward(torch::tensor({10.0f, 20.0f}).view({1, 1, 2}),
                                           torch::ones({1, 1}, torch::kLong), {}, {});
  const auto out = model->mask_decoder->forward(emb, model->prompt_encoder->get_dense_pe(), pe.sparse,
                                                pe.dense, true);
  (out.masks.sum() + out.iou.sum()).backward();
  int64_t with_grad = 0;
  for (const auto& kv : model->named_parameters(true))
    with_grad += kv.value().grad().defined() ? 1 : 0;
  CHECK(with_grad > 0);  // the decoder's did get gradients
  for (const auto& kv : model->named_parameters(true))
    if (starts(kv.key(), "image_encoder.")) CHECK_FALSE(kv.value().grad().defined());

  // trainable: only the decoder; freeze applies on top of it.
  auto m2 = small_model();
  const auto r2 = apply_freeze(*m2, {"mask_decoder.iou_prediction_head.*"}, {"mask_decoder.*"});
  int64_t head = 0;
  for (const auto& kv : m2->named_parameters(true)) {
    const bool trains = starts(kv.key(), "mask_decoder.") && !starts(kv.key(), "mask_decoder.iou_prediction_head.");
    CHECK(kv.value().requires_grad() == trains);
    if (starts(kv.key(), "mask_decoder.iou_prediction_head.")) head += kv.value().numel();
  }
  CHECK(r2.trainable_params == decoder_elems - head);
}

TEST_CASE("freeze: a pattern matching nothing, or nothing left to train, is an error", "[train][freeze]") {
  auto model = small_model();
  CHECK_THROWS_WITH(apply_freeze(*model, {"image_encodr.*"}, {}),
                    Catch::Contains("train.freeze") && Catch::Contains("image_encodr.*"));
  CHECK_THROWS_WITH(apply_freeze(*model, {}, {"decoder.*"}),
                    Catch::Contains("train.trainable") && Catch::Contains("decoder.*"));
  CHECK_THROWS_WITH(apply_freeze(*model, {"*"}, {}), Catch::Contains("nothing would train"));
}
