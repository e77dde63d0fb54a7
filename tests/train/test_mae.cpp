// MAE pre-training (sam/mae.h, train.objective mae): positions, patchify, masking and loss on hand-computed cases, the
// key layout of Meta's MAE, the {"model": ...} file that init_from_mae reads into a SAM encoder,
// and a loss that falls on a fixed batch.
#include <catch2/catch.hpp>

#include <cmath>

#include "sam/mae.h"
#include "sam/pth_io.h"
#include "sam/sam_model.h"
#include "test_util.h"
#include "train/optim.h"
#include "train/trainer.h"

namespace {

// A small encoder: 16 x 16 input, 4 x 4 patches (a 4 x 4 grid), width 32, 2 blocks.
sam::ModelConfig small_encoder() {
  sam::ModelConfig c;
  c.img_size = 16;
  c.patch_size = 4;
  c.embed_dim = 32;
  c.depth = 2;
  c.num_heads = 2;
  c.window_size = 2;
  c.global_attn_indexes = {1};
  c.prompt_dim = 16;
  c.decoder_mlp_dim = 32;
  c.iou_head_hidden_dim = 16;
  return c;
}

sam::MaeConfig small_mae() {
  sam::MaeConfig m;
  m.decoder_dim = 16;
  m.decoder_depth = 1;
  m.decoder_heads = 2;
  return m;
}

}  // namespace

TEST_CASE("MAE: the 2-D sine-cosine positions match the formula by hand", "[sam][mae]") {
  auto t = sam::sincos_pos_embed_2d(8, 2);  // quarters of 2 channels: w = 1, 10000^-0.5 = 0.01
  REQUIRE(t.sizes() == torch::IntArrayRef({5, 8}));
  CHECK(torch::equal(t[0], torch::zeros({8})));  // the class token's row
  // Token (i, j) = (1, 0) is row 1 + 1 * 2 + 0 = 3: x-part of column 0, y-part of row 1.
  const std::vector<double> want3{0, 0, 1, 1, std::sin(1.0), std::sin(0.01), std::cos(1.0), std::cos(0.01)};
  // Token (0, 1), row 2: the x-part of column 1.
  const std::vector<double> want2{std::sin(1.0), std::sin(0.01), std::cos(1.0), std::cos(0.01), 0, 0, 1, 1};
  for (int k = 0; k < 8; ++k) {
    CHECK(t[3][k].item<double>() == Approx(want3[k]).margin(1e-6));
    CHECK(t[2][k].item<double>() == Approx(want2[k]).margin(1e-6));
  }
  CHECK_THROWS_WITH(sam::sincos_pos_embed_2d(6, 2), Catch::Contains("divisible by 4"));
}

TEST_CASE("MAE: patchify orders patches row-major, pixels row-major, channels innermost", "[sam][mae]") {
  torch::manual_seed(0);
  sam::ModelConfig c = small_encoder();
  c.img_size = 4;
  c.patch_size = 2;
  sam::MaskedAutoencoder m(c, small_mae());
  // value = 100 c + 10 y + x
  auto img = torch::zeros({1, 3, 4, 4});
  for (int ch = 0; ch < 3; ++ch)
    for (int y = 0; y < 4; ++y)
      for (int x = 0; x < 4; ++x) img[0][ch][y][x] = 100 * ch + 10 * y + x;
  auto p = m->patchify(img);
  REQUIRE(p.sizes() == torch::IntArrayRef({1, 4, 12}));
  // Patch 1 is row 0, column 1 (x 2..3); its pixel (1, 0) channel 2 is entry (1 * 2 + 0) * 3 + 2.
  CHECK(p[0][1][8].item<float>() == 200 + 10 * 1 + 2);
  // Patch 2 is row 1, column 0; pixel (0, 1) channel 0 is entry 3.
  CHECK(p[0][2][3].item<float>() == 0 + 10 * 2 + 1);
  CHECK(torch::equal(m->unpatchify(p), img));
}

TEST_CASE("MAE: random masking keeps the lowest-noise tokens and restores the order", "[sam][mae]") {
  torch::manual_seed(0);
  sam::MaeConfig mc = small_mae();
  mc.mask_ratio = 0.5;
  sam::MaskedAutoencoder m(small_encoder(), mc);
  auto x = torch::arange(4 * 3, torch::kFloat).view({1, 4, 3});  // token t = [3t, 3t + 1, 3t + 2]
  auto noise = torch::tensor({0.3f, 0.1f, 0.9f, 0.5f}).view({1, 4});
  auto [kept, mask, restore] = m->random_masking(x, noise);
  REQUIRE(kept.sizes() == torch::IntArrayRef({1, 2, 3}));
  CHECK(torch::equal(kept[0][0], x[0][1]));  // lowest noise first
  CHECK(torch::equal(kept[0][1], x[0][0]));
  CHECK(torch::equal(mask, torch::tensor({0.f, 0.f, 1.f, 1.f}).view({1, 4})));
  CHECK(torch::equal(restore, torch::tensor({1, 0, 3, 2}, torch::kLong).view({1, 4})));

  // 0.75 of a 4 x 4 grid: the encoder sees int(16 * 0.25) = 4 tokens.
  sam::MaskedAutoencoder m75(small_encoder(), small_mae());
  auto [k75, mask75, r75] = m75->random_masking(torch::randn({3, 16, 32}), torch::rand({3, 16}));
  CHECK(k75.size(1) == 4);
  CHECK(torch::equal(mask75.sum(1), torch::full({3}, 12.f)));
}

TEST_CASE("MAE: the loss is the squared error of the hidden patches, raw or per-patch normalised", "[sam][mae]") {
  torch::manual_seed(0);
  sam::MaeConfig mc = small_mae();
  mc.norm_pix_loss = false;
  sam::MaskedAutoencoder raw(small_encoder(), mc);
  mc.norm_pix_loss = true;
  sam::MaskedAutoencoder normed(small_encoder(), mc);
  // Channel 0 is 1, the others 0: each patch holds 16 ones among 48 values.
  auto img = torch::zeros({1, 3, 16, 16});
  img[0][0].fill_(1.0);
  auto pred = torch::zeros({1, 16, 48});
  auto mask = torch::zeros({1, 16});
  mask[0][3] = 1;
  mask[0][7] = 1;
  CHECK(raw->loss_of(img, pred, mask).item<double>() == Approx(16.0 / 48));
  // Normalised: mean 1/3, unbiased variance (16 (2/3)^2 + 32 (1/3)^2) / 47 = (32/3) / 47; the
  // squared error of a zero prediction is the mean of the squared normalised values.
  const double var = (32.0 / 3) / 47, want = (32.0 / 3) / 48 / (var + 1e-6);
  CHECK(normed->loss_of(img, pred, mask).item<double>() == Approx(want).epsilon(1e-5));
  // Only hidden patches count: a wrong prediction on a visible patch changes nothing.
  auto pred2 = pred.clone();
  pred2[0][0].fill_(5.0);
  CHECK(raw->loss_of(img, pred2, mask).item<double>() == Approx(16.0 / 48));
  // Back to pixels (the reconstruction picture): a zero prediction is each patch's mean, 1/3; a
  // prediction of the normalised target is the patch itself (1 in channel 0, else 0); raw
  // predictions are the pixels already.
  CHECK(torch::allclose(normed->pred_to_pixels(img, pred), torch::full({1, 16, 48}, 1.0 / 3)));
  const double sd = std::sqrt(var + 1e-6);
  const auto target = (normed->patchify(img) - 1.0 / 3) / sd;
  CHECK(torch::allclose(normed->pred_to_pixels(img, target), normed->patchify(img), 1e-5, 1e-6));
  CHECK(torch::equal(raw->pred_to_pixels(img, pred2), pred2));
}

TEST_CASE("MAE: the state dict has Meta's MAE keys in order, and init.kind mae reads the file into SAM's encoder",
          "[sam][mae]") {
  torch::manual_seed(1);
  const auto enc = small_encoder();
  sam::MaskedAutoencoder m(enc, small_mae());
  auto sd = sam::mae_state_dict(sam::state_dict(*m));
  std::vector<std::string> want{"cls_token", "pos_embed", "mask_token", "decoder_pos_embed", "patch_embed.proj.weight",
                                "patch_embed.proj.bias"};
  auto block = [&](const std::string& p) {
    for (const char* k : {"norm1.weight", "norm1.bias", "attn.qkv.weight", "attn.qkv.bias", "attn.proj.weight",
                           "attn.proj.bias", "norm2.weight", "norm2.bias", "mlp.fc1.weight", "mlp.fc1.bias",
                           "mlp.fc2.weight", "mlp.fc2.bias"})
      want.push_back(p + k);
  };
  block("blocks.0.");
  block("blocks.1.");
  for (const char* k : {"norm.weight", "norm.bias", "decoder_embed.weight", "decoder_embed.bias"}) want.push_back(k);
  block("decoder_blocks.0.");
  for (const char* k : {"decoder_norm.weight", "decoder_norm.bias", "decoder_pred.weight", "decoder_pred.bias"})
    want.push_back(k);
  std::vector<std::string> got;
  for (const auto& kv : sd) got.push_back(kv.first);
  CHECK(got == want);
  std::map<std::string, torch::Tensor> by(sd.begin(), sd.end());
  CHECK(by["pos_embed"].sizes() == torch::IntArrayRef({1, 17, 32}));
  CHECK(by["decoder_pos_embed"].sizes() == torch::IntArrayRef({1, 17, 16}));
  CHECK(by["decoder_pred.weight"].sizes() == torch::IntArrayRef({48, 16}));
  CHECK(by["blocks.0.attn.qkv.weight"].sizes() == torch::IntArrayRef({96, 32}));
  // MAE's initialisation: Linear biases 0, LayerNorms 1 / 0, tokens of std 0.02.
  CHECK(torch::equal(by["blocks.1.mlp.fc2.bias"], torch::zeros({32})));
  CHECK(torch::equal(by["decoder_norm.weight"], torch::ones({16})));
  CHECK(by["cls_token"].std().item<double>() < 0.05);

  const auto dir = sam_test::temp_dir("mae_keys");
  const std::string path = (dir / "mae.pth").string();
  sam::save_mae(path, sd);
  auto back = sam::pth_read(path);
  REQUIRE(back.size() == sd.size());
  for (size_t i = 0; i < sd.size(); ++i) {
    CHECK(back[i].first == "model." + sd[i].first);
    CHECK(torch::equal(back[i].second, sd[i].second));
  }
  // Into a SAM model of the same encoder: every block weight used, only SAM's own parts missing.
  sam::Sam s(enc);
  auto report = sam::train::init_from_mae(*s, path);
  for (const auto& k : report["missing"]) {
    const auto name = k.get<std::string>();
    INFO(name);
    CHECK((name.find("rel_pos") != std::string::npos || name.rfind("image_encoder.neck.", 0) == 0));
  }
  auto own = sam::state_dict(*s);
  std::map<std::string, torch::Tensor> sam_by(own.begin(), own.end());
  CHECK(torch::equal(sam_by["image_encoder.blocks.1.mlp.lin1.weight"], by["blocks.1.mlp.fc1.weight"]));
  CHECK(torch::equal(sam_by["image_encoder.blocks.0.attn.qkv.bias"], by["blocks.0.attn.qkv.bias"]));
  // pos_embed without its class token row, as the 4 x 4 grid.
  CHECK(torch::allclose(sam_by["image_encoder.pos_embed"].view({16, 32}), by["pos_embed"][0].narrow(0, 1, 16)));
}

TEST_CASE("MAE: training lowers the loss on a fixed batch, and the fixed positions do not train", "[sam][mae]") {
  torch::manual_seed(2);
  sam::MaskedAutoencoder m(small_encoder(), small_mae());
  // Smooth images: gradients of random colours.
  auto ramp = torch::linspace(0, 1, 16);
  auto img = torch::stack({ramp.view({1, 16}).expand({16, 16}), ramp.view({16, 1}).expand({16, 16}),
                           torch::full({16, 16}, 0.5)})
                 .unsqueeze(0)
                 .repeat({2, 1, 1, 1});
  img[1] = img[1].flip({2});
  const auto pos = m->pos_embed.clone();
  sam::train::OptimOptions oo;
  oo.lr = 2e-3;
  oo.weight_decay = 0.05;
  oo.warmup_iters = 0;
  oo.layer_decay = 1.0;
  sam::train::AdamW opt(sam::train::make_param_groups(*m, 2, oo), oo);
  auto loss_at = [&] {
    torch::manual_seed(7);  // the same masking each time
    return m->forward(img).loss.mean();
  };
  double first = 0, last = 0;
  for (int s = 0; s < 100; ++s) {
    opt.zero_grad();
    auto loss = loss_at();
    if (s == 0) first = loss.item<double>();
    loss.backward();
    opt.step(oo.lr);
  }
  {
    torch::NoGradGuard ng;
    last = loss_at().item<double>();
  }
  INFO("loss " << first << " -> " << last);
  CHECK(std::isfinite(first));
  CHECK(last < 0.5 * first);
  CHECK(torch::equal(m->pos_embed, pos));
  CHECK(m->cls_token.grad().defined());
}
