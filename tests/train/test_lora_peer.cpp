// LoRA against Meta's segment_anything (tests/peers/lora_reference.py): our merged export of a
// vit_b with adapters on the encoder's qkv and proj and every decoder attention projection loads
// with strict=True into sam_model_registry["vit_b"], and its outputs equal those of the base
// weights with our adapter file applied in LoRA's unmerged form, y = base(x) + s B(A(x)), written
// in the script: to 1e-5 of each output's largest magnitude.
#include <catch2/catch.hpp>

#include <fstream>
#include <string>

#include <nlohmann/json.hpp>

#include "peer_reference.h"
#include "peers.h"
#include "sam/sam_model.h"
#include "test_util.h"
#include "train/lora.h"

TEST_CASE(
    "lora peer: a merged vit_b export loads strictly in segment_anything and equals the unmerged "
    "adapters",
    "[train][lora][peers]") {
  SAM_REQUIRE_PEERS(py);
  sam_test::ScratchDir tmp("lora_peer");
  sam::train::LoraConfig c;
  c.rank = 8;
  c.alpha = 16;
  c.targets = {"image_encoder.blocks.*.attn.qkv", "image_encoder.blocks.*.attn.proj",
               "mask_decoder.transformer.*_proj"};
  sam::NamedTensors sd;
  size_t layers = 0;
  {
    torch::manual_seed(4);
    sam::Sam model(sam::model_config_preset("vit_b"));
    sam::train::LoraAdapters lora(*model, c);
    layers = lora.layers();
    torch::NoGradGuard ng;
    for (auto& kv : model->named_parameters(true))
      if (kv.key().find(".lora_B") != std::string::npos) kv.value().normal_(0, 0.02);
    sd = sam::state_dict(*model);
  }
  REQUIRE(layers == 12 * 2 + 2 * 3 * 4 +
                        4);  // encoder blocks; 2 decoder layers x 3 attentions; final attention
  sam::NamedTensors base;
  for (const auto& kv : sd)
    if (kv.first.find(".lora_") == std::string::npos) base.push_back(kv);
  const auto p = [&](const char* f) { return (tmp.path / f).string(); };
  sam::pth_write(p("base.pth"), base);
  sam::pth_write(p("adapters.pth"), sam::train::lora_only(sd));
  sam::pth_write(p("merged.pth"), sam::train::merge_lora(sd));
  sd.clear();
  base.clear();

  const std::string cmd =
      py + " " + (sam_test::source_dir() / "tests" / "peers" / "lora_reference.py").string() +
      " --preset vit_b --base " + p("base.pth") + " --adapters " + p("adapters.pth") +
      " --merged " + p("merged.pth") + " --out " + p("report.json") + " --threads " +
      std::to_string(sam_test::peer_threads());
  std::string out;
  const int rc = sam_test::run_command(cmd, &out);
  INFO(out);
  REQUIRE(rc == 0);
  std::ifstream in(p("report.json"));
  const auto r = nlohmann::json::parse(in);
  CHECK(r["wrapped_layers"].get<size_t>() == layers);
  for (const char* k : {"embedding", "masks", "iou"}) {
    INFO(k << ": merged against unmerged " << r["merged_vs_unmerged"][k]
           << ", base against unmerged " << r["base_vs_unmerged"][k]);
    CHECK(r["merged_vs_unmerged"][k].get<double>() < 1e-5);
    CHECK(r["base_vs_unmerged"][k].get<double>() > 1e-3);  // the adapters change the outputs
  }
  std::cout << "lora peer: merged vs unmerged (relative to max): " << r["merged_vs_unmerged"].dump()
            << "\n";
}
