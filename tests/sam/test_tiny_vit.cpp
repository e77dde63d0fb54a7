// The TinyViT-style encoder (sam/tiny_vit.h): MobileSAM's key names and shapes (worked out from
// its architecture by hand), the attention-bias offsets, the configuration's checks, a SAM model
// with it (checkpoint round trip, MobileSAM's classifier head dropped on load), and its
// embeddings against a plain PyTorch TinyViT (tests/peers/tiny_vit_reference.py) that loads our
// file strictly, in eval and train mode.
#include <catch2/catch.hpp>

#include <map>

#include "data/npy.h"
#include "peer_reference.h"
#include "peers.h"
#include "sam/sam_model.h"
#include "sam/tiny_vit.h"
#include "test_util.h"

namespace {

sam::ModelConfig mobile_sam_layout() {
  sam::ModelConfig c;  // vit_b's decoder side: prompt_dim 256, S = 1024
  c.encoder = "tiny_vit";
  return c;  // the tiny_vit defaults are MobileSAM's (TinyViT-5M, windows 7, 7, 14, 7)
}

// A small one: S = 64, 4 stages; the last stage's window (3) does not divide its 4 x 4 grid, so
// its windows are padded.
sam::ModelConfig small_layout() {
  sam::ModelConfig c;
  c.encoder = "tiny_vit";
  c.img_size = 64;
  c.tiny_vit_dims = {16, 24, 32, 48};
  c.tiny_vit_depths = {1, 1, 2, 1};
  c.tiny_vit_heads = {1, 2, 2, 3};
  c.tiny_vit_windows = {4, 4, 4, 3};
  c.prompt_dim = 32;
  c.decoder_mlp_dim = 64;
  c.iou_head_hidden_dim = 32;
  return c;
}

std::map<std::string, std::vector<int64_t>> shapes(const torch::nn::Module& m) {
  std::map<std::string, std::vector<int64_t>> out;
  for (const auto& [k, v] : sam::state_dict(m)) out[k] = v.sizes().vec();
  return out;
}

}  // namespace

TEST_CASE("tiny_vit: MobileSAM's key names and shapes, and a 64 x 64 grid of 256 channels at 1024", "[sam][tiny_vit]") {
  torch::manual_seed(0);
  sam::Sam model(mobile_sam_layout());
  const auto s = shapes(*model);
  using V = std::vector<int64_t>;
  // Stem 3 -> 32 -> 64; stage 0 MBConv hidden 4 x 64; merges 64 -> 128 -> 160 -> 320 (the last
  // depthwise stride 1); attention qkv 3 x width, 7 x 7 windows (49 offsets), 14 x 14 (196) in stage 2.
  const std::map<std::string, V> want = {
      {"image_encoder.patch_embed.seq.0.c.weight", V{32, 3, 3, 3}},
      {"image_encoder.patch_embed.seq.2.bn.running_var", V{64}},
      {"image_encoder.layers.0.blocks.1.conv2.c.weight", V{256, 1, 3, 3}},
      {"image_encoder.layers.0.blocks.1.conv3.bn.weight", V{64}},
      {"image_encoder.layers.0.downsample.conv1.c.weight", V{128, 64, 1, 1}},
      {"image_encoder.layers.1.blocks.0.attn.attention_biases", V{4, 49}},
      {"image_encoder.layers.1.blocks.0.attn.qkv.weight", V{384, 128}},
      {"image_encoder.layers.1.blocks.1.local_conv.c.weight", V{128, 1, 3, 3}},
      {"image_encoder.layers.2.blocks.5.attn.attention_biases", V{5, 196}},
      {"image_encoder.layers.2.blocks.5.mlp.fc1.weight", V{640, 160}},
      {"image_encoder.layers.2.blocks.5.mlp.norm.bias", V{160}},
      {"image_encoder.layers.2.downsample.conv2.c.weight", V{320, 1, 3, 3}},
      {"image_encoder.layers.3.blocks.1.attn.proj.weight", V{320, 320}},
      {"image_encoder.layers.3.blocks.1.local_conv.bn.num_batches_tracked", V{}},
      {"image_encoder.neck.0.weight", V{256, 320, 1, 1}},
      {"image_encoder.neck.3.bias", V{256}},
  };
  for (const auto& [k, shape] : want) {
    INFO(k);
    REQUIRE(s.count(k));
    CHECK(s.at(k) == shape);
  }
  CHECK_FALSE(s.count("image_encoder.layers.3.downsample.conv1.c.weight"));  // the last stage has no merge
  CHECK_FALSE(s.count("image_encoder.layers.1.blocks.0.attn.bias_index"));   // not part of the state dict
  CHECK(s.count("mask_decoder.iou_prediction_head.layers.2.weight"));
  // Blocks: 2 MBConv, 2 + 6 + 2 attention.
  int mb = 0, attn = 0;
  for (const auto& [k, v] : s) {
    mb += k.find(".conv3.c.weight") != std::string::npos && k.find("layers.0.blocks.") != std::string::npos;
    attn += k.find(".attn.attention_biases") != std::string::npos;
  }
  CHECK(mb == 2);
  CHECK(attn == 10);
  model->eval();
  torch::NoGradGuard ng;
  const auto e = model->image_encoder->forward(torch::randn({1, 3, 1024, 1024}));
  CHECK(e.sizes() == torch::IntArrayRef({1, 256, 64, 64}));
  CHECK(torch::isfinite(e).all().item<bool>());
}

TEST_CASE("tiny_vit: the bias of a token pair is that of its (|dy|, |dx|) offset", "[sam][tiny_vit]") {
  sam::TinyVitAttention a(8, 2, 3);
  REQUIRE(a->bias_index.sizes() == torch::IntArrayRef({9, 9}));
  auto idx = [&](int y1, int x1, int y2, int x2) { return a->bias_index[y1 * 3 + x1][y2 * 3 + x2].item<int64_t>(); };
  CHECK(idx(0, 0, 0, 0) == 0);
  CHECK(idx(1, 1, 1, 1) == 0);
  CHECK(idx(0, 0, 2, 1) == 7);  // (2, 1) -> 2 * 3 + 1
  CHECK(idx(2, 1, 0, 0) == 7);
  CHECK(idx(2, 0, 0, 2) == 8);
  CHECK(idx(1, 2, 1, 0) == 2);
  CHECK(std::get<0>(torch::_unique(a->bias_index)).numel() == 9);
  // With zero q and k every token attends by the biases alone: a bias of +20 on offset (0, 1)
  // makes token (1, 1) take the mean of v at (1, 0) and (1, 2).
  torch::NoGradGuard ng;
  a->qkv->weight.zero_();
  a->qkv->bias.zero_();
  a->qkv->weight.narrow(0, 8, 4).copy_(torch::eye(4, 8));   // head 0's v: channels 0-3
  a->qkv->weight.narrow(0, 20, 4).copy_(torch::eye(4, 8).roll(4, 1));  // head 1's v: channels 4-7
  a->proj->weight.copy_(torch::eye(8));
  a->proj->bias.zero_();
  a->attention_biases.zero_();
  a->attention_biases.select(1, 1).fill_(20.0);  // offset (0, 1)
  a->norm->weight.fill_(1.0);
  a->norm->bias.zero_();
  const auto x = torch::randn({1, 9, 8});
  const auto xn = torch::layer_norm(x, {8}, {}, {}, 1e-5);
  const auto y = a->forward(x);
  const auto want = (xn[0][3] + xn[0][5]) / 2;  // tokens (1, 0) and (1, 2)
  CHECK(torch::allclose(y[0][4], want, 1e-4, 1e-5));
}

TEST_CASE("tiny_vit: the configuration is checked", "[sam][tiny_vit]") {
  auto c = small_layout();
  c.patch_size = 8;  // 4 stages reduce 16-fold
  CHECK_THROWS_WITH(c.validate(), Catch::Contains("patch_size must be 16"));
  c = small_layout();
  c.tiny_vit_heads = {1, 5, 2, 3};
  CHECK_THROWS_WITH(c.validate(), Catch::Contains("stage 1: tiny_vit_heads must divide"));
  c = small_layout();
  c.tiny_vit_windows = {4, 4, 4};
  CHECK_THROWS_WITH(c.validate(), Catch::Contains("one value per stage"));
  c = small_layout();
  c.encoder = "convnext";
  CHECK_THROWS_WITH(c.validate(), Catch::Contains("encoder must be vit or tiny_vit"));
  // Activation checkpointing is refused, not ignored.
  sam::Sam m(small_layout());
  CHECK_NOTHROW(m->image_encoder->set_activation_checkpointing(false));
  CHECK_THROWS_WITH(m->image_encoder->set_activation_checkpointing(true), Catch::Contains("tiny_vit"));
}

TEST_CASE("tiny_vit: a SAM checkpoint round trip, MobileSAM's classifier head dropped on load", "[sam][tiny_vit]") {
  sam_test::ScratchDir tmp("tiny_vit_ckpt");
  torch::manual_seed(1);
  sam::Sam a(small_layout());
  {
    torch::NoGradGuard ng;
    for (auto& t : a->parameters()) t.add_(torch::randn_like(t) * 0.05);
  }
  auto sd = sam::state_dict(*a);
  // What MobileSAM's released file also holds: its classifier head.
  sd.emplace_back("image_encoder.norm_head.weight", torch::ones({48}));
  sd.emplace_back("image_encoder.head.weight", torch::zeros({1000, 48}));
  const std::string path = (tmp.path / "m.pth").string();
  sam::pth_write(path, sd);
  torch::manual_seed(2);
  sam::Sam b(small_layout());
  sam::load_checkpoint(b, path);
  a->eval();
  b->eval();
  torch::NoGradGuard ng;
  const auto x = torch::randn({2, 3, 64, 64});
  CHECK(torch::equal(a->image_encoder->forward(x), b->image_encoder->forward(x)));
  // A ViT model does not drop those keys: they are unexpected there.
  sam::ModelConfig vit = small_layout();
  vit.encoder = "vit";
  vit.embed_dim = 48;
  vit.depth = 1;
  vit.num_heads = 3;
  vit.window_size = 0;
  vit.global_attn_indexes = {};
  sam::Sam v(vit);
  CHECK_THROWS_WITH(sam::load_checkpoint(v, path), Catch::Contains("unexpected keys"));
}

TEST_CASE("tiny_vit peer: our file loads strictly in a PyTorch TinyViT and gives its embeddings",
          "[sam][tiny_vit][peers]") {
  SAM_REQUIRE_PEERS(py);
  sam_test::ScratchDir tmp("tiny_vit_peer");
  const auto p = [&](const std::string& f) { return (tmp.path / f).string(); };
  torch::manual_seed(3);
  sam::Sam m(small_layout());
  {
    // Away from the initialisation: every weight, the attention biases and BatchNorm's running
    // statistics count.
    torch::NoGradGuard ng;
    for (auto& t : m->parameters()) t.add_(torch::randn_like(t) * 0.05);
    for (auto& b : m->named_buffers()) {
      if (b.key().find("running_mean") != std::string::npos) b.value().copy_(torch::randn_like(b.value()) * 0.1);
      if (b.key().find("running_var") != std::string::npos) b.value().copy_(torch::rand_like(b.value()) + 0.5);
    }
  }
  sam::save_checkpoint(m, p("w.pth"));
  const auto x = torch::randn({2, 3, 64, 64});
  sam::npy::write(p("x.npy"), x);
  for (const bool train : {false, true}) {
    INFO((train ? "train mode (batch statistics)" : "eval mode (running statistics)"));
    train ? m->train() : m->eval();
    torch::Tensor ours;
    {
      torch::NoGradGuard ng;
      ours = m->image_encoder->forward(x);
    }
    const std::string cmd = py + " " + (sam_test::source_dir() / "tests" / "peers" / "tiny_vit_reference.py").string() +
                            " --ckpt " + p("w.pth") + " --images " + p("x.npy") +
                            " --dims 16,24,32,48 --depths 1,1,2,1 --heads 1,2,2,3 --windows 4,4,4,3 --out-dim 32" +
                            (train ? " --train" : "") + " --out " + p("e.npy");
    std::string out;
    const int rc = sam_test::run_command(cmd, &out);
    INFO(out);
    REQUIRE(rc == 0);
    const auto ref = sam::npy::read(p("e.npy"));
    REQUIRE(ref.sizes() == ours.sizes());
    const double scale = ref.abs().max().item<double>(), diff = (ref - ours).abs().max().item<double>();
    INFO("largest difference " << diff << " of " << scale);
    CHECK(diff < 1e-5 * scale);
  }
}
