// train/lora.h: the merged forward and its gradients against LoRA's unmerged form computed here
// (y = x W^T + b + s (x A^T) B^T, differentiated by autograd), dropout's masks, the merged state
// dict loaded strictly into a plain model with the adapted model's outputs, adapters stacked on a
// base, and the errors. (Meta's segment_anything loading a merged export and its own unmerged
// forward: tests/train/test_lora_peer.cpp.)
#include <catch2/catch.hpp>

#include <filesystem>
#include <string>

#include "peer_reference.h"
#include "sam/sam_model.h"
#include "small_model.h"
#include "test_util.h"
#include "train/freeze.h"
#include "train/lora.h"

namespace fs = std::filesystem;
using sam::train::LoraAdapters;
using sam::train::LoraConfig;
using sam_test::small_model;

namespace {

LoraConfig config(int64_t rank, double alpha, double dropout = 0) {
  LoraConfig c;
  c.rank = rank;
  c.alpha = alpha;
  c.dropout = dropout;
  c.targets = {"image_encoder.blocks.*.attn.qkv", "*.mlp.lin1",
               "mask_decoder.transformer.layers.*.cross_attn_token_to_image.*_proj"};
  return c;
}

torch::nn::LinearImpl* linear_named(torch::nn::Module& model, const std::string& name) {
  for (const auto& item : model.named_modules("", false))
    if (item.key() == name) return item.value()->as<torch::nn::LinearImpl>();
  return nullptr;
}

// B is zero at the start (the base model exactly); give it values so the adapters change outputs.
void randomize_b(torch::nn::Module& model, double std) {
  torch::NoGradGuard ng;
  for (auto& kv : model.named_parameters(true))
    if (kv.key().size() > 7 && kv.key().substr(kv.key().size() - 7) == ".lora_B")
      kv.value().normal_(0, std);
}

double max_rel(const torch::Tensor& a, const torch::Tensor& b) {
  return ((a - b).abs().max() / b.abs().max().clamp_min(1e-12)).item<double>();
}

}  // namespace

TEST_CASE("lora: an adapted layer's forward and gradients equal the unmerged LoRA to 1e-5",
          "[train][lora]") {
  auto model = small_model();
  const auto c = config(4, 8);
  LoraAdapters lora(*model, c);
  // 2 blocks x (qkv, lin1) + 2 decoder layers x 4 projections + the decoder layers' lin1 (2).
  REQUIRE(lora.layers() == 2 + 2 + 8 + 2);
  CHECK_THAT(lora.summary(), Catch::Contains("rank 4, alpha 8 on 14 Linear layers"));
  sam::train::apply_freeze(*model, {}, {"*.lora_A", "*.lora_B"});
  randomize_b(*model, 0.2);
  lora.materialize(true);
  const double s = c.alpha / c.rank;
  torch::manual_seed(11);
  struct Case {
    std::string name;
    torch::Tensor x, r, y;
  };
  std::vector<Case> cases;
  torch::Tensor total = torch::zeros({});
  for (const auto& name : lora.names()) {
    auto* lin = linear_named(*model, name);
    REQUIRE(lin);
    Case k{
        name, torch::randn({7, lin->weight.size(1)}), torch::randn({7, lin->weight.size(0)}), {}};
    k.y = lin->forward(k.x);  // the merged weight, as the model's kernels see it
    total = total + (k.y * k.r).sum();
    cases.push_back(k);
  }
  total.backward();
  lora.pull_grads();
  for (const auto& k : cases) {
    INFO(k.name);
    auto* lin = linear_named(*model, k.name);
    auto params = lin->named_parameters(false);
    auto base = params["weight"], bias = params["bias"];
    CHECK_FALSE(base.requires_grad());
    CHECK_FALSE(base.grad().defined());
    auto a = params["lora_A"].detach().clone().requires_grad_(true);
    auto b = params["lora_B"].detach().clone().requires_grad_(true);
    auto y = torch::nn::functional::linear(k.x, base, bias) + s * k.x.mm(a.t()).mm(b.t());
    (y * k.r).sum().backward();
    CHECK(max_rel(k.y, y) < 1e-5);
    REQUIRE(params["lora_A"].grad().defined());
    REQUIRE(params["lora_B"].grad().defined());
    CHECK(max_rel(params["lora_A"].grad(), a.grad()) < 1e-5);
    CHECK(max_rel(params["lora_B"].grad(), b.grad()) < 1e-5);
  }
}

TEST_CASE("lora: dropout masks A's input features for a step, and evaluation uses none",
          "[train][lora]") {
  auto model = small_model();
  const auto c = config(2, 4, 0.5);
  LoraAdapters lora(*model, c);
  sam::train::apply_freeze(*model, {}, {"*.lora_A", "*.lora_B"});
  randomize_b(*model, 0.3);
  const std::string name = "image_encoder.blocks.0.attn.qkv";
  auto* lin = linear_named(*model, name);
  auto params = lin->named_parameters(false);
  const auto base = params["weight"], a = params["lora_A"], b = params["lora_B"];
  const double s = c.alpha / c.rank;
  torch::manual_seed(5);
  lora.materialize(true);
  auto d = (lin->weight - base).detach();  // s B (A m) / (1 - p)
  auto full = (s * b.mm(a)).detach();      // s B A
  auto dropped = d.abs().sum(0).eq(0);     // the input features dropped this step
  const int64_t n_dropped = dropped.sum().item<int64_t>();
  CHECK(n_dropped > 0);
  CHECK(n_dropped < a.size(1));
  auto kept = dropped.logical_not();
  CHECK(max_rel(d.index({torch::indexing::Slice(), kept}),
                2 * full.index({torch::indexing::Slice(), kept})) < 1e-6);
  // The gradient reaches A only through the kept features.
  (lin->forward(torch::randn({3, a.size(1)})).sum()).backward();
  lora.pull_grads();
  REQUIRE(a.grad().defined());
  CHECK(a.grad().index({torch::indexing::Slice(), dropped}).abs().max().item<double>() == 0);
  CHECK(a.grad().index({torch::indexing::Slice(), kept}).abs().max().item<double>() > 0);
  // Evaluation: W + s B A, a weight that records no graph.
  lora.materialize(false);
  CHECK(max_rel(lin->weight - base, full) < 1e-6);
  CHECK_FALSE(lin->weight.requires_grad());
}

TEST_CASE(
    "lora: the merged state dict loads strictly into a plain model and gives the adapted model's "
    "outputs",
    "[train][lora]") {
  auto adapted = small_model();
  LoraAdapters lora(*adapted, config(4, 16));
  randomize_b(*adapted, 0.2);
  lora.materialize(false);
  const auto sd = sam::state_dict(*adapted);
  CHECK(sam::train::has_lora(sd));
  const auto merged = sam::train::merge_lora(sd);
  CHECK_FALSE(sam::train::has_lora(merged));
  auto plain = small_model(99);  // other starting weights: all of them come from the merged dict
  REQUIRE_NOTHROW(sam::load_state_dict(*plain, merged, "merged"));
  // The merged weights differ from the base where adapted, and only there.
  const auto base = sam::state_dict(*small_model());
  REQUIRE(base.size() == merged.size());
  int changed = 0;
  for (size_t i = 0; i < base.size(); ++i) {
    REQUIRE(base[i].first == merged[i].first);
    if (!torch::equal(base[i].second, merged[i].second)) ++changed;
  }
  CHECK(changed == static_cast<int>(lora.layers()));

  adapted->eval();
  plain->eval();
  torch::NoGradGuard ng;
  torch::manual_seed(8);
  const auto image = torch::randn({1, 3, 64, 64});
  const auto e1 = adapted->image_encoder->forward(image), e2 = plain->image_encoder->forward(image);
  CHECK(max_rel(e1, e2) < 1e-5);
  auto base_model = small_model();
  base_model->eval();
  CHECK(max_rel(base_model->image_encoder->forward(image), e2) > 1e-3);  // the adapters matter
  const auto coords = torch::tensor({{{20.0f, 30.0f}}}), labels = torch::tensor({{1}}, torch::kInt);
  auto run = [&](sam::Sam& m, const torch::Tensor& emb) {
    auto p = m->prompt_encoder->forward(coords, labels, {}, {});
    return m->mask_decoder->forward(emb, m->prompt_encoder->get_dense_pe(), p.sparse, p.dense,
                                    true);
  };
  const auto o1 = run(adapted, e1), o2 = run(plain, e1);
  CHECK(max_rel(o1.masks, o2.masks) < 1e-5);
  CHECK(max_rel(o1.iou, o2.iou) < 1e-5);
}

TEST_CASE("lora: adapters alone stack onto the base to the merged weights, and bad files are named",
          "[train][lora]") {
  auto adapted = small_model();
  LoraAdapters lora(*adapted, config(4, 16));
  randomize_b(*adapted, 0.2);
  const auto sd = sam::state_dict(*adapted);
  const auto only = sam::train::lora_only(sd);
  CHECK(only.size() == 3 * lora.layers());
  for (const auto& kv : only) CHECK_THAT(kv.first, Catch::Contains(".lora_"));
  sam_test::ScratchDir tmp("lora_stack");
  const auto file = (tmp.path / "adapters.pth").string();
  sam::pth_write(file, only);

  auto base = small_model();
  CHECK(sam::train::stack_adapters(*base, file) == static_cast<int>(lora.layers()));
  const auto merged = sam::train::merge_lora(sd), stacked = sam::state_dict(*base);
  REQUIRE(merged.size() == stacked.size());
  for (size_t i = 0; i < merged.size(); ++i) {
    INFO(merged[i].first);
    CHECK(torch::equal(merged[i].second, stacked[i].second));  // the same double-precision sum
  }

  // A model without one of the layers (no decoder MLP named so) or with other shapes.
  sam::ModelConfig wide = adapted->config;
  wide.embed_dim = 48;
  wide.num_heads = 3;
  sam::Sam other(wide);
  try {
    sam::train::stack_adapters(*other, file);
    FAIL("no error");
  } catch (const std::exception& e) {
    CHECK_THAT(e.what(),
               Catch::Contains(file) && Catch::Contains("image_encoder.blocks.0.attn.qkv"));
  }
  // An entry missing.
  sam::NamedTensors partial(only.begin() + 1, only.end());
  const auto bad = (tmp.path / "partial.pth").string();
  sam::pth_write(bad, partial);
  try {
    sam::train::stack_adapters(*small_model(), bad);
    FAIL("no error");
  } catch (const std::exception& e) {
    CHECK_THAT(e.what(), Catch::Contains(bad) && Catch::Contains("incomplete"));
  }
  // A file without adapters.
  const auto none = (tmp.path / "none.pth").string();
  sam::pth_write(none, sam::state_dict(*small_model()));
  CHECK_THROWS_WITH(sam::train::stack_adapters(*small_model(), none),
                    Catch::Contains("no LoRA adapters"));
}

TEST_CASE("lora: a target that matches no Linear layer names lora.targets", "[train][lora]") {
  auto model = small_model();
  auto c = config(4, 16);
  c.targets = {"image_encoder.blocks.*.attn.qkv", "image_encoder.blocks.*.atn.proj"};
  CHECK_THROWS_WITH(LoraAdapters(*model, c),
                    Catch::Contains("lora.targets") && Catch::Contains("atn.proj"));
  // A parameter's name is not a layer's.
  c.targets = {"image_encoder.blocks.0.attn.qkv.weight"};
  CHECK_THROWS_WITH(LoraAdapters(*model, c), Catch::Contains("matches no Linear layer"));
  // Attached twice.
  c.targets = {"*.qkv"};
  LoraAdapters once(*model, c);
  CHECK_THROWS_WITH(LoraAdapters(*model, c), Catch::Contains("already has adapters"));
}

TEST_CASE(
    "lora: activation checkpointing gives the adapters the same gradients, the frozen patch "
    "embedding included",
    "[train][lora]") {
  // With the patch embedding frozen the first block's input starts no graph; the block is
  // recomputed all the same (sam/image_encoder.cpp), and every block's adapters get the gradients
  // of the pass without checkpointing.
  auto grads = [](bool checkpointing) {
    auto model = small_model();
    LoraAdapters lora(*model, config(4, 8));
    sam::train::apply_freeze(*model, {}, {"*.lora_A", "*.lora_B"});
    randomize_b(*model, 0.2);
    model->train();
    model->image_encoder->set_activation_checkpointing(checkpointing);
    lora.materialize(true);
    torch::manual_seed(21);
    const auto image = torch::randn({1, 3, 64, 64});
    auto out = model->image_encoder->forward(image);
    (out * torch::randn(out.sizes())).sum().backward();
    lora.pull_grads();
    std::vector<std::pair<std::string, torch::Tensor>> g;
    for (const auto& kv : model->named_parameters(true))
      if (kv.key().rfind("image_encoder.", 0) == 0 &&
          kv.key().find(".lora_") != std::string::npos) {
        REQUIRE(kv.value().grad().defined());
        g.emplace_back(kv.key(), kv.value().grad().clone());
      }
    return g;
  };
  const auto plain = grads(false), recomputed = grads(true);
  REQUIRE(plain.size() == 8);  // 2 blocks x (qkv, lin1) x (A, B)
  REQUIRE(recomputed.size() == plain.size());
  for (size_t i = 0; i < plain.size(); ++i) {
    INFO(plain[i].first);
    CHECK(max_rel(recomputed[i].second, plain[i].second) < 1e-5);
  }
}
