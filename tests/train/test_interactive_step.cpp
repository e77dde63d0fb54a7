// The interactive training step on the tiny architecture: finite losses, gradients reaching every
// part, determinism, activation checkpointing equivalence, and that repeated steps fit a batch.
#include <catch2/catch.hpp>

#include <map>

#include "sam/sam_model.h"
#include "sam/amp.h"
#include "train/interactive.h"
#include "train/optim.h"
#include "test_util.h"

using namespace sam::train;
using sam::AutocastGuard;
using sam::autocast_enabled;

namespace {

sam::ModelConfig tiny() {
  return sam::model_config_resolve((sam_test::source_dir() / "configs" / "model_tiny.json").string());
}

// Two images with coloured rectangles and their masks (h, w <= 256, different aspect ratios).
StepBatch make_batch() {
  StepBatch b;
  const int64_t sizes[2][2] = {{192, 256}, {256, 200}};
  for (int i = 0; i < 2; ++i) {
    const int64_t h = sizes[i][0], w = sizes[i][1];
    auto img = torch::full({3, h, w}, 40, torch::kUInt8);
    auto masks = torch::zeros({3, h, w}, torch::kUInt8);
    const int64_t boxes[3][4] = {{10, 20, 80, 90}, {100, 30, 60, 120}, {40, 140, 100, 40}};
    const uint8_t colours[3][3] = {{220, 30, 30}, {30, 200, 40}, {30, 60, 230}};
    for (int k = 0; k < 3; ++k) {
      auto [y, x, bh, bw] = std::make_tuple(boxes[k][0], boxes[k][1], boxes[k][2], boxes[k][3]);
      for (int c = 0; c < 3; ++c) img[c].narrow(0, y, bh).narrow(1, x, bw).fill_(colours[k][c]);
      masks[k].narrow(0, y, bh).narrow(1, x, bw).fill_(1);
    }
    b.images.push_back(img);
    b.masks.push_back(masks);
    b.keys.push_back(i);
  }
  return b;
}

double grad_norm(torch::nn::Module& m, const std::string& prefix) {
  double s = 0;
  for (auto& p : m.named_parameters())
    if (p.key().rfind(prefix, 0) == 0 && p.value().grad().defined()) s += p.value().grad().pow(2).sum().item<double>();
  return std::sqrt(s);
}

}  // namespace

TEST_CASE("an interactive step is finite, reaches every module and is deterministic", "[train][step]") {
  torch::manual_seed(0);
  sam::Sam model(tiny());
  model->train();
  StepOptions o;
  o.seed = 7;
  o.step = 3;
  auto batch = make_batch();
  auto st = interactive_step(model, batch, o, torch::kCPU);
  CHECK(st.finite);
  CHECK(st.masks == 6);
  CHECK(st.rounds == 11);
  CHECK(st.iou_per_round.size() == 11);
  CHECK(st.loss > 0);
  CHECK(grad_norm(*model, "image_encoder.blocks.0") > 0);
  CHECK(grad_norm(*model, "image_encoder.patch_embed") > 0);
  CHECK(grad_norm(*model, "prompt_encoder.point_embeddings") > 0);
  CHECK(grad_norm(*model, "prompt_encoder.mask_downscaling") > 0);
  CHECK(grad_norm(*model, "mask_decoder.iou_prediction_head") > 0);
  for (auto& p : model->parameters()) p.mutable_grad() = torch::Tensor();
  auto st2 = interactive_step(model, batch, o, torch::kCPU);
  CHECK(st2.loss == st.loss);  // same seed and step: bitwise the same
  o.step = 4;
  auto st3 = interactive_step(model, batch, o, torch::kCPU);
  CHECK(st3.loss != st.loss);
}

TEST_CASE("bf16 autocast: the forward passes in bf16, the loss near fp32's, fp32 gradients", "[train][step]") {
  // CPU autocast exercises the code path that train.amp=auto takes on CUDA.
  torch::manual_seed(3);
  sam::Sam model(tiny());
  model->train();
  StepOptions o;
  o.prompt.rounds = 3;
  o.prompt.mask_only_rounds = 1;
  auto batch = make_batch();
  auto fp32 = interactive_step(model, batch, o, torch::kCPU);
  std::vector<torch::Tensor> g32;
  for (auto& p : model->parameters()) {
    g32.push_back(p.grad().defined() ? p.grad().clone() : torch::Tensor());
    p.mutable_grad() = torch::Tensor();
  }
  o.autocast_bf16 = true;
  auto bf16 = interactive_step(model, batch, o, torch::kCPU);
  CHECK_FALSE(autocast_enabled(torch::kCPU));  // the guard restored the previous state
  CHECK(bf16.finite);
  CHECK(bf16.loss != fp32.loss);  // it really ran in lower precision
  CHECK(bf16.loss == Approx(fp32.loss).epsilon(0.05));
  size_t i = 0;
  double dot = 0, n32 = 0, n16 = 0;
  for (auto& p : model->parameters()) {
    const auto& a = g32[i++];
    REQUIRE(a.defined() == p.grad().defined());
    if (!a.defined()) continue;
    CHECK(p.grad().scalar_type() == torch::kFloat);
    dot += (a * p.grad()).sum().item<double>();
    n32 += a.pow(2).sum().item<double>();
    n16 += p.grad().pow(2).sum().item<double>();
  }
  // The same descent direction. Where libtorch's CPU bf16 products sum in bf16 (libtorch 1.13 on
  // CPUs without AVX-512 bf16, sam::cpu_bf16_matmul_lossy: its backward products too, which the
  // model's code does not choose) the two directions were 0.83-0.84 apart in cosine on an AMD
  // Zen 3 host; elsewhere above 0.95.
  const double cosine = dot / std::sqrt(n32 * n16);
  INFO("gradient cosine " << cosine << ", libtorch's CPU bf16 product "
                          << (sam::cpu_bf16_matmul_lossy() ? "sums in bf16 on this host" : "sums in fp32"));
  CHECK(cosine > (sam::cpu_bf16_matmul_lossy() ? 0.75 : 0.95));

  // Guards nest and restore what was there before.
  {
    AutocastGuard outer(torch::kCPU, true);
    CHECK(autocast_enabled(torch::kCPU));
    {
      AutocastGuard inner(torch::kCPU, false);
      CHECK(autocast_enabled(torch::kCPU));
    }
    auto y = torch::matmul(torch::ones({2, 2}), torch::ones({2, 2}));
    CHECK(y.scalar_type() == torch::kBFloat16);
  }
  CHECK_FALSE(autocast_enabled(torch::kCPU));
}

namespace {

// One step with and without activation checkpointing, drop path on, from the same weights and
// seeds, on `device`, in fp32 or under bf16 autocast: the recomputation must draw the same drop
// path masks (the generator of the device) and run under the forward's autocast state, so the
// gradients agree to rounding.
void check_checkpointing(const torch::Device& device, bool bf16) {
  INFO(device.str() << (bf16 ? ", bf16 autocast" : ", fp32"));
  torch::manual_seed(1);
  auto c = tiny();
  c.drop_path_rate = 0.3;  // exercises the RNG replay in the recomputation
  sam::Sam a(c), b(c);
  {
    torch::NoGradGuard ng;
    auto sa = sam::state_dict(*a), sb = sam::state_dict(*b);
    for (size_t i = 0; i < sa.size(); ++i) sb[i].second.copy_(sa[i].second);
  }
  a->to(device);
  b->to(device);
  a->train();
  b->train();
  b->image_encoder->set_activation_checkpointing(true);
  StepOptions o;
  o.prompt.rounds = 3;
  o.autocast_bf16 = bf16;
  auto batch = make_batch();
  torch::manual_seed(5);
  auto sa = interactive_step(a, batch, o, device);
  torch::manual_seed(5);
  auto sb = interactive_step(b, batch, o, device);
  CHECK(sa.loss == Approx(sb.loss).epsilon(1e-6));
  auto pa = a->named_parameters(), pb = b->named_parameters();
  for (const auto& kv : pa) {
    INFO(kv.key());
    auto ga = kv.value().grad(), gb = pb[kv.key()].grad();
    REQUIRE(ga.defined() == gb.defined());
    if (ga.defined()) CHECK(torch::allclose(ga, gb, 1e-4, 1e-6));
  }
}

}  // namespace

TEST_CASE("activation checkpointing gives the same gradients", "[train][step]") {
  check_checkpointing(torch::kCPU, /*bf16=*/false);
  // CPU autocast: without the forward's autocast state restored in the recomputation, the
  // recomputed block would run in fp32 and the gradients differ by bf16 rounding.
  check_checkpointing(torch::kCPU, /*bf16=*/true);
}

TEST_CASE("activation checkpointing on CUDA gives the same gradients, fp32 and bf16", "[train][step][cuda]") {
  SAM_REQUIRE_CUDA();
  // Drop path draws on the GPU: without the GPU generator's state replayed the gradients differ.
  check_checkpointing(torch::Device(torch::kCUDA, 0), /*bf16=*/false);
  check_checkpointing(torch::Device(torch::kCUDA, 0), /*bf16=*/true);
}

TEST_CASE("repeated steps fit a fixed batch", "[train][step]") {
  // From random weights the model first learns that most pixels are background (the IoU of the
  // thresholded masks falls) and only then the objects: about 60-90 steps on this batch.
  torch::manual_seed(2);
  torch::set_num_threads(2);
  sam::Sam model(tiny());
  model->train();
  OptimOptions oo;
  oo.lr = 2e-3;
  oo.warmup_iters = 5;
  oo.layer_decay = 1.0;
  AdamW opt(make_param_groups(*model, model->config.depth, oo), oo);
  StepOptions o;
  o.prompt.rounds = 3;
  o.prompt.mask_only_rounds = 1;
  auto batch = make_batch();
  batch.images.resize(1);
  batch.masks.resize(1);
  batch.keys.resize(1);
  double first = 0, last = 0, last_iou = 0;
  std::vector<double> iou_first_rounds;
  const int steps = 130;
  for (int s = 0; s < steps; ++s) {
    o.step = s;
    opt.zero_grad();
    auto st = interactive_step(model, batch, o, torch::kCPU);
    REQUIRE(st.finite);
    opt.step(lr_at(oo, s));
    if (s < 3) first += st.loss / 3;
    if (s >= steps - 5) {
      last += st.loss / 5;
      for (double v : st.iou_per_round) last_iou += v / st.masks / st.rounds / 5;
    }
  }
  INFO("loss " << first << " -> " << last << ", IoU over the rounds at the end " << last_iou);
  // The loss falls to about a third (0.29-0.35 of its start on the hosts measured: the figure moves
  // with the host's last bits over 130 steps); the IoU is the firmer sign of learning.
  CHECK(last < 0.45 * first);
  CHECK(last_iou > 0.4);  // from about 0.05 at random initialisation
}

TEST_CASE("embeddings given instead of images give the frozen encoder's step, bit for bit", "[train][step][embed]") {
  // What data.embeddings does (train/embed.h): the decoder sees the stored encoder outputs.
  torch::manual_seed(0);
  sam::Sam model(tiny());
  model->train();
  for (auto& p : model->image_encoder->parameters()) p.set_requires_grad(false);
  StepOptions o;
  o.seed = 5;
  o.step = 2;
  auto batch = make_batch();
  model->zero_grad();
  const auto ref = interactive_step(model, batch, o, torch::kCPU);
  std::map<std::string, torch::Tensor> ref_grads;
  for (auto& p : model->named_parameters())
    if (p.value().grad().defined()) ref_grads[p.key()] = p.value().grad().clone();
  CHECK(ref_grads.count("mask_decoder.iou_token.weight"));
  CHECK(!ref_grads.count("image_encoder.patch_embed.proj.weight"));

  StepBatch cached;
  cached.masks = batch.masks;
  cached.keys = batch.keys;
  {
    auto emb = model->image_encoder->forward(preprocess_batch(model, batch.images, torch::kCPU));
    CHECK(!emb.requires_grad());
    for (int64_t b = 0; b < emb.size(0); ++b) cached.embeddings.push_back(emb[b].clone());
  }
  model->zero_grad();
  const auto got = interactive_step(model, cached, o, torch::kCPU);
  CHECK(got.loss == ref.loss);
  CHECK(got.iou_per_round == ref.iou_per_round);
  int compared = 0;
  for (auto& p : model->named_parameters()) {
    INFO(p.key());
    const bool had = ref_grads.count(p.key()) > 0;
    REQUIRE(p.value().grad().defined() == had);
    if (had) CHECK(torch::equal(p.value().grad(), ref_grads[p.key()]));
    compared += had;
  }
  CHECK(compared == static_cast<int>(ref_grads.size()));
  // Embeddings of another shape are refused with both shapes named.
  StepBatch wrong = cached;
  for (auto& e : wrong.embeddings) e = torch::zeros({e.size(0), e.size(1) / 2, e.size(2) / 2});
  CHECK_THROWS_WITH(interactive_step(model, wrong, o, torch::kCPU), Catch::Contains("for a model whose encoder gives"));
}
