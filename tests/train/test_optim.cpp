// The optimiser's parameter groups (layer-wise decay, weight-decay exclusions), the schedule, and
// AdamW's arithmetic against a hand-computed step.
#include <catch2/catch.hpp>

#include <ATen/CPUGeneratorImpl.h>

#include <cmath>
#include <thread>

#include "sam/sam_model.h"
#include "train/distributed.h"
#include "train/optim.h"
#include "test_util.h"

using namespace sam::train;
using sam::NamedTensors;

TEST_CASE("layer ids follow ViTDet's rule", "[train][optim]") {
  CHECK(layer_id("image_encoder.pos_embed", 12) == 0);
  CHECK(layer_id("image_encoder.patch_embed.proj.weight", 12) == 0);
  CHECK(layer_id("image_encoder.blocks.0.attn.qkv.weight", 12) == 1);
  CHECK(layer_id("image_encoder.blocks.11.attn.rel_pos_h", 12) == 12);
  CHECK(layer_id("image_encoder.neck.0.weight", 12) == 13);
  CHECK(layer_id("mask_decoder.iou_token.weight", 12) == 13);
}

TEST_CASE("parameter groups: lr scales and weight-decay exclusions", "[train][optim]") {
  auto c = sam::model_config_resolve((sam_test::source_dir() / "configs" / "model_tiny.json").string());
  sam::Sam model(c);
  OptimOptions o;
  o.layer_decay = 0.5;
  o.weight_decay = 0.1;
  auto groups = make_param_groups(*model, c.depth, o);
  std::map<std::string, std::pair<double, double>> by_name;  // name -> (lr scale, wd)
  size_t total = 0;
  for (const auto& g : groups)
    for (const auto& n : g.names) {
      by_name[n] = {g.lr_scale, g.weight_decay};
      ++total;
    }
  CHECK(total == model->parameters().size());
  auto expect = [&](const std::string& n, double scale, double wd) {
    INFO(n);
    REQUIRE(by_name.count(n));
    CHECK(by_name[n].first == Approx(scale));
    CHECK(by_name[n].second == wd);
  };
  const int d = c.depth;  // 4
  expect("image_encoder.pos_embed", std::pow(0.5, d + 1), 0.0);
  expect("image_encoder.patch_embed.proj.weight", std::pow(0.5, d + 1), 0.1);
  expect("image_encoder.patch_embed.proj.bias", std::pow(0.5, d + 1), 0.0);
  expect("image_encoder.blocks.0.attn.qkv.weight", std::pow(0.5, d), 0.1);
  expect("image_encoder.blocks.0.attn.rel_pos_h", std::pow(0.5, d), 0.0);
  expect("image_encoder.blocks.0.norm1.weight", std::pow(0.5, d), 0.0);
  expect("image_encoder.blocks.3.mlp.lin2.weight", std::pow(0.5, 1), 0.1);
  expect("image_encoder.neck.0.weight", 1.0, 0.1);
  expect("image_encoder.neck.1.weight", 1.0, 0.0);  // LayerNorm2d
  expect("prompt_encoder.mask_downscaling.1.weight", 1.0, 0.0);
  expect("mask_decoder.transformer.layers.0.norm1.weight", 1.0, 0.0);
  expect("mask_decoder.transformer.layers.0.self_attn.q_proj.weight", 1.0, 0.1);
  expect("mask_decoder.iou_token.weight", 1.0, 0.1);
  // The Fourier matrix is a buffer, never optimised.
  CHECK_FALSE(by_name.count("prompt_encoder.pe_layer.positional_encoding_gaussian_matrix"));
}

TEST_CASE("warmup then step decay", "[train][optim]") {
  OptimOptions o;
  o.lr = 8e-4;
  o.warmup_iters = 250;
  o.decay_steps = {60000, 86666};
  CHECK(lr_at(o, 0) == Approx(8e-4 / 250));
  CHECK(lr_at(o, 124) == Approx(8e-4 * 125 / 250));
  CHECK(lr_at(o, 249) == Approx(8e-4));
  CHECK(lr_at(o, 59999) == Approx(8e-4));
  CHECK(lr_at(o, 60000) == Approx(8e-5));
  CHECK(lr_at(o, 86666) == Approx(8e-6));
  o.warmup_start_factor = 0.5;
  CHECK(lr_at(o, 0) == Approx(8e-4 * (0.5 + 0.5 / 250)));
}

TEST_CASE("warmup then a cosine to the floor (MAE's schedule)", "[train][optim]") {
  OptimOptions o;
  o.lr = 1e-3;
  o.warmup_iters = 10;
  o.schedule = "cosine";  // decay_steps are not used
  CHECK(lr_at(o, 4, 110) == Approx(1e-3 * 5 / 10));
  CHECK(lr_at(o, 10, 110) == Approx(1e-3));
  CHECK(lr_at(o, 60, 110) == Approx(0.5e-3));                                   // half way: cos(pi / 2) = 0
  CHECK(lr_at(o, 35, 110) == Approx(1e-3 * 0.5 * (1 + std::cos(M_PI / 4))));  // a quarter
  CHECK(lr_at(o, 110, 110) == Approx(0.0).margin(1e-15));
  o.min_lr_factor = 0.1;
  CHECK(lr_at(o, 60, 110) == Approx(1e-3 * (0.1 + 0.9 * 0.5)));
  CHECK(lr_at(o, 200, 110) == Approx(1e-4));  // past the end: the floor
}

TEST_CASE("AdamW matches a hand-computed step and round-trips its state", "[train][optim]") {
  auto p = torch::tensor({1.0f}).requires_grad_(true);
  ParamGroup g;
  g.names = {"p"};
  g.params = {p};
  g.weight_decay = 0.1;
  OptimOptions o;
  AdamW opt({g}, o);
  p.mutable_grad() = torch::tensor({0.5f});
  opt.step(0.1);
  // p = 1 * (1 - 0.1 * 0.1) = 0.99; m = 0.05, v = 0.00025; m^ = 0.5, sqrt(v^) = 0.5 -> 0.99 - 0.1.
  CHECK(p.item<float>() == Approx(0.89f).epsilon(1e-6));
  p.mutable_grad() = torch::tensor({-0.25f});
  opt.step(0.1);
  const double m = 0.9 * 0.05 + 0.1 * -0.25, v = 0.999 * 0.00025 + 0.001 * 0.0625;
  const double want = 0.89 * (1 - 0.01) - 0.1 / (1 - 0.81) * m / (std::sqrt(v) / std::sqrt(1 - 0.999 * 0.999) + 1e-8);
  CHECK(p.item<float>() == Approx(want).epsilon(1e-6));
  auto st = opt.state();
  auto q = torch::tensor({p.item<float>()}).requires_grad_(true);
  ParamGroup g2 = g;
  g2.params = {q};
  AdamW opt2({g2}, o);
  opt2.load_state(st);
  CHECK(opt2.steps() == 2);
  p.mutable_grad() = torch::tensor({0.3f});
  q.mutable_grad() = torch::tensor({0.3f});
  opt.step(0.05);
  opt2.step(0.05);
  CHECK(p.item<float>() == q.item<float>());
}

TEST_CASE("the weight average follows its decay rule, swaps in and out, and restores", "[train][optim]") {
  auto w = torch::tensor({1.0f, 2.0f});
  auto count = torch::tensor({7}, torch::kLong);
  WeightAverage avg({{"w", w}, {"count", count}}, 0.5);
  // d = min(decay, (1 + n) / (10 + n)): 0.1, 2/11, ..., 0.4 at n = 5, the cap 0.5 from n = 8 (9/18).
  CHECK(avg.decay_at(0) == Approx(0.1));
  CHECK(avg.decay_at(1) == Approx(2.0 / 11));
  CHECK(avg.decay_at(5) == Approx(0.4));
  CHECK(avg.decay_at(8) == Approx(0.5));
  CHECK(avg.decay_at(1000) == Approx(0.5));

  w.copy_(torch::tensor({3.0f, 4.0f}));
  count.fill_(9);
  avg.update();  // 0.1 * [1, 2] + 0.9 * [3, 4]
  const auto& a = avg.average();
  CHECK(a[0].second[0].item<float>() == Approx(2.8f).epsilon(1e-6));
  CHECK(a[0].second[1].item<float>() == Approx(3.8f).epsilon(1e-6));
  CHECK(a[1].second.item<int64_t>() == 9);  // integers are copied, not averaged
  w.copy_(torch::tensor({5.0f, 6.0f}));
  avg.update();  // 2/11 * [2.8, 3.8] + 9/11 * [5, 6]
  CHECK(a[0].second[0].item<float>() == Approx(4.6f).epsilon(1e-6));
  CHECK(a[0].second[1].item<float>() == Approx(5.6f).epsilon(1e-6));
  CHECK(avg.updates() == 2);

  // Swapping in puts the average into the tracked tensor; swapping again restores both exactly.
  avg.swap_in();
  CHECK(w[0].item<float>() == Approx(4.6f).epsilon(1e-6));
  CHECK(a[0].second[0].item<float>() == 5.0f);
  avg.swap_in();
  CHECK(w[0].item<float>() == 5.0f);
  CHECK(a[0].second[0].item<float>() == Approx(4.6f).epsilon(1e-6));

  // A restored average continues identically.
  auto w2 = w.clone();
  WeightAverage avg2({{"w", w2}, {"count", count.clone()}}, 0.5);
  avg2.load(avg.average(), avg.updates());
  CHECK(avg2.updates() == 2);
  w.copy_(torch::tensor({0.0f, 1.0f}));
  w2.copy_(w);
  avg.update();
  avg2.update();
  CHECK(torch::equal(avg.average()[0].second, avg2.average()[0].second));
  WeightAverage other({{"v", torch::zeros({2})}}, 0.5);
  CHECK_THROWS_WITH(other.load(avg.average(), 1), Catch::Contains("missing 'v'"));
}

TEST_CASE("fused AdamW equals the per-tensor update, and skips on the device", "[train][optim]") {
  // The path taken for parameters on a GPU (optim.fused=auto), checked here on the CPU kernel.
  if (!fused_adamw_available(torch::kCPU)) {
    sam_test::skip("this libtorch has no fused AdamW for the CPU (libtorch >= 2.4 has)", true);
    return;
  }
  torch::manual_seed(9);
  auto make = [](const std::string& fused) {
    torch::manual_seed(9);
    std::vector<ParamGroup> groups(2);
    groups[0].lr_scale = 0.5;
    groups[0].weight_decay = 0.1;
    groups[1].lr_scale = 1.0;
    groups[1].weight_decay = 0.0;
    for (int g = 0; g < 2; ++g)
      for (int i = 0; i < 3; ++i) {
        groups[g].names.push_back("p" + std::to_string(g) + std::to_string(i));
        groups[g].params.push_back(torch::randn({7, 5 + i}).requires_grad_(true));
      }
    OptimOptions o;
    o.fused = fused;
    return std::make_pair(groups, o);
  };
  auto [ga, oa] = make("off");
  auto [gb, ob] = make("on");
  AdamW a(ga, oa), b(gb, ob);
  CHECK_FALSE(a.fused());
  CHECK(b.fused());
  for (int s = 0; s < 4; ++s) {
    torch::manual_seed(100 + s);
    for (int g = 0; g < 2; ++g)
      for (int i = 0; i < 3; ++i) {
        if (s == 1 && g == 1 && i == 2) continue;  // a parameter without a gradient this step
        auto grad = torch::randn_like(ga[g].params[i]);
        ga[g].params[i].mutable_grad() = grad.clone();
        gb[g].params[i].mutable_grad() = grad.clone();
      }
    // Step 2 is skipped through the device flag; the others run.
    auto skip = torch::full({}, s == 2 ? 1.0f : 0.0f);
    a.step(1e-2, skip);
    b.step(1e-2, skip);
    a.zero_grad();
    b.zero_grad();
  }
  CHECK(a.steps() == 3);
  CHECK(b.steps() == 3);
  for (int g = 0; g < 2; ++g)
    for (int i = 0; i < 3; ++i) {
      INFO("group " << g << " param " << i);
      CHECK(torch::allclose(ga[g].params[i], gb[g].params[i], 1e-6, 1e-7));
    }
  // The state round-trips into a per-tensor optimiser.
  auto st = b.state();
  AdamW c(ga, oa);
  c.load_state(st);
  CHECK(c.steps() == 3);
}

TEST_CASE("sharded AdamW on 2 ranks: each keeps its share of the moments, the updates are the unsharded ones bit "
          "for bit, and the gathered state resumes on any world size",
          "[train][optim][dist]") {
  const auto cfg = sam::model_config_resolve((sam_test::source_dir() / "configs" / "model_tiny.json").string());
  OptimOptions o;
  o.lr = 1e-2;
  o.warmup_iters = 0;
  o.fused = "off";
  // The gradients of step s (the same on every rank: they arrive all-reduced), drawn per name.
  const auto set_grads = [](sam::Sam& m, int step) {
    int k = 0;
    for (auto& p : m->named_parameters()) {
      auto gen = at::detail::createCPUGenerator(static_cast<uint64_t>(1000 * step + k++));
      p.value().mutable_grad() = torch::randn(p.value().sizes(), gen);
    }
  };
  const auto run = [&](sam::Sam& m, AdamW& opt, int from, int to) {
    for (int s = from; s < to; ++s) {
      set_grads(m, s);
      opt.step(o.lr);
    }
  };
  // The reference: one process, 3 steps, then 2 more from its state.
  torch::manual_seed(1);
  sam::Sam ref(cfg);
  AdamW ref_opt(make_param_groups(*ref, cfg.depth, o), o);
  const int64_t whole = ref_opt.state_bytes();
  run(ref, ref_opt, 0, 3);
  const auto ref_state3 = ref_opt.state();
  NamedTensors saved;
  for (const auto& kv : ref_state3) saved.emplace_back(kv.first, kv.second.clone());
  run(ref, ref_opt, 3, 5);

  std::vector<int64_t> bytes(2);
  std::vector<std::string> errors(2);
  std::vector<NamedTensors> weights(2), gathered(2);
  std::vector<std::thread> threads;
  const std::string name = "zero1_" + std::to_string(::getpid());
  std::vector<sam::Sam> models, restarted;  // built here: the seeded construction is not thread-safe
  for (int r = 0; r < 2; ++r) {
    torch::manual_seed(1);
    models.emplace_back(cfg);
    restarted.emplace_back(cfg);
  }
  for (int r = 0; r < 2; ++r)
    threads.emplace_back([&, r] {
      try {
        auto comm = Communicator::create_local(name, r, 2, torch::kCPU, "gloo");
        auto& m = models[r];
        AdamW opt(make_param_groups(*m, cfg.depth, o), o, comm.get());
        bytes[r] = opt.state_bytes();
        run(m, opt, 0, 3);
        gathered[r] = opt.state();
        // A sharded optimiser restarted from the unsharded checkpoint's state (2 ranks after 1).
        auto& m2 = restarted[r];
        {
          torch::NoGradGuard ng;
          auto dst = m2->named_parameters();
          for (auto& p : m->named_parameters()) dst[p.key()].copy_(p.value());
        }
        AdamW opt2(make_param_groups(*m2, cfg.depth, o), o, comm.get());
        opt2.load_state(saved);
        run(m2, opt2, 3, 5);
        for (auto& p : m2->named_parameters()) weights[r].emplace_back(p.key(), p.value().detach().clone());
      } catch (const std::exception& e) {
        errors[r] = e.what();
      }
    });
  for (auto& t : threads) t.join();
  REQUIRE(errors[0] == "");
  REQUIRE(errors[1] == "");
  // Each rank holds about half of the moments, together all of them.
  CHECK(bytes[0] + bytes[1] == whole);
  CHECK(bytes[0] > 0);
  CHECK(bytes[1] > 0);
  CHECK(std::max(bytes[0], bytes[1]) < whole * 0.6);
  // The state gathered on rank 0 after 3 steps is the unsharded one; rank 1 returns its own part.
  REQUIRE(gathered[0].size() == saved.size());
  for (size_t i = 0; i < saved.size(); ++i) {
    INFO(saved[i].first);
    CHECK(gathered[0][i].first == saved[i].first);
    CHECK(torch::equal(gathered[0][i].second, saved[i].second));
  }
  std::map<std::string, torch::Tensor> ref_by_name(saved.begin(), saved.end());
  CHECK(gathered[1].size() > 1);
  CHECK(gathered[1].size() < saved.size());
  for (const auto& [key, t] : gathered[1]) {
    INFO(key);
    CHECK(torch::equal(t, ref_by_name.at(key)));
  }
  // After 2 more steps every weight on both ranks equals the unsharded run's.
  auto ref_params = ref->named_parameters();
  for (int r = 0; r < 2; ++r)
    for (const auto& [key, w] : weights[r]) {
      INFO("rank " << r << " " << key);
      CHECK(torch::equal(w, ref_params[key]));
    }
}
