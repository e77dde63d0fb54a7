// MAE against a plain PyTorch MAE (tests/peers/mae_reference.py: models_mae.py's model with timm's
// block, written from MAE's description): our file loads there with torch.load(...)["model"] and
// strict=True, and with the same images and masking noise its per-image loss and predictions
// equal ours, for per-patch-normalised and raw targets.
#include <catch2/catch.hpp>

#include "data/npy.h"
#include "peer_reference.h"
#include "peers.h"
#include "sam/mae.h"
#include "sam/sam_model.h"
#include "test_util.h"

TEST_CASE("mae peer: our MAE file loads strictly in a PyTorch MAE and gives the same loss and predictions",
          "[train][mae][peers]") {
  SAM_REQUIRE_PEERS(py);
  sam_test::ScratchDir tmp("mae_peer");
  const auto p = [&](const std::string& f) { return (tmp.path / f).string(); };
  sam::ModelConfig enc;
  enc.img_size = 64;
  enc.patch_size = 8;
  enc.embed_dim = 48;
  enc.depth = 2;
  enc.num_heads = 3;
  enc.window_size = 4;
  enc.global_attn_indexes = {1};
  for (const bool norm_pix : {true, false}) {
    INFO("norm_pix_loss " << norm_pix);
    sam::MaeConfig mc;
    mc.decoder_dim = 32;
    mc.decoder_depth = 2;
    mc.decoder_heads = 4;
    mc.norm_pix_loss = norm_pix;
    torch::manual_seed(5);
    sam::MaskedAutoencoder m(enc, mc);
    {
      // Weights away from the initialisation's zeros and ones, so every term counts.
      torch::NoGradGuard ng;
      for (auto& t : m->parameters()) t.add_(torch::randn_like(t) * 0.05);
    }
    m->eval();
    const auto imgs = torch::randn({2, 3, 64, 64});
    const auto noise = torch::rand({2, 64});
    torch::Tensor loss, pred;
    {
      torch::NoGradGuard ng;
      auto out = m->forward(imgs, noise);
      loss = out.loss;
      pred = out.pred;
    }
    sam::save_mae(p("mae.pth"), sam::mae_state_dict(sam::state_dict(*m)));
    sam::npy::write(p("imgs.npy"), imgs);
    sam::npy::write(p("noise.npy"), noise);
    const std::string cmd = py + " " + (sam_test::source_dir() / "tests" / "peers" / "mae_reference.py").string() +
                            " --ckpt " + p("mae.pth") + " --images " + p("imgs.npy") + " --noise " + p("noise.npy") +
                            " --patch 8 --embed 48 --depth 2 --heads 3 --dec-embed 32 --dec-depth 2 --dec-heads 4"
                            " --mask-ratio 0.75 --norm-pix " + (norm_pix ? "1" : "0") + " --loss " + p("loss.npy") +
                            " --pred " + p("pred.npy");
    std::string out;
    const int rc = sam_test::run_command(cmd, &out);
    INFO(out);
    REQUIRE(rc == 0);
    const auto ref_loss = sam::npy::read(p("loss.npy"));
    const auto ref_pred = sam::npy::read(p("pred.npy"));
    REQUIRE(ref_pred.sizes() == pred.sizes());
    const double scale = ref_pred.abs().max().item<double>();
    const double diff = (ref_pred - pred).abs().max().item<double>();
    INFO("loss " << loss << " reference " << ref_loss << ", largest prediction difference " << diff << " of " << scale);
    CHECK(diff < 1e-5 * scale);
    CHECK(torch::allclose(loss, ref_loss, 1e-5, 1e-7));
  }
}
