// Every parameter name and shape of vit_b / vit_l / vit_h against the official key lists, and
// the tiny golden config loading as is.
#include <catch2/catch.hpp>

#include <fstream>
#include <sstream>

#include <nlohmann/json.hpp>

#include "sam/config.h"
#include "sam/sam_model.h"
#include "test_util.h"

namespace {

// Parses "name (a, b, c)" lines of the shared key lists.
std::vector<std::pair<std::string, std::vector<int64_t>>> read_key_list(const std::string& path) {
  std::ifstream in(path);
  REQUIRE(in.good());
  std::vector<std::pair<std::string, std::vector<int64_t>>> out;
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty()) continue;
    const auto sp = line.find(' ');
    std::string name = line.substr(0, sp);
    std::vector<int64_t> shape;
    std::string dims = line.substr(sp + 1);
    for (char& ch : dims)
      if (ch == '(' || ch == ')' || ch == ',') ch = ' ';
    std::istringstream ds(dims);
    int64_t d;
    while (ds >> d) shape.push_back(d);
    out.emplace_back(name, shape);
  }
  return out;
}

}  // namespace

TEST_CASE("presets match the official state-dict keys, order and shapes", "[sam][keys]") {
  struct Want {
    const char* name;
    int64_t tensors;
    int64_t params;
  };
  // Counts from SAM_SPEC section 1.
  for (const Want w : {Want{"vit_b", 314, 93735472}, Want{"vit_l", 482, 312342832},
                       Want{"vit_h", 594, 641090608}}) {
    DYNAMIC_SECTION(w.name) {
      torch::NoGradGuard ng;
      sam::Sam model(sam::model_config_preset(w.name));
      auto sd = sam::state_dict(*model);
      auto want = read_key_list(
          (sam_test::require_shared(sam_test::shared_dir() / "docs") / (std::string("sam_") + w.name + "_state_dict_keys.txt"))
              .string());
      REQUIRE(static_cast<int64_t>(want.size()) == w.tensors);
      REQUIRE(sd.size() == want.size());
      int64_t total = 0;
      for (size_t i = 0; i < sd.size(); ++i) {
        INFO("entry " << i << ": " << sd[i].first);
        CHECK(sd[i].first == want[i].first);
        CHECK(sd[i].second.sizes().vec() == want[i].second);
        total += sd[i].second.numel();
      }
      // The buffer is in the state dict but is not a parameter; pixel_mean/std are in neither.
      CHECK(total == w.params + 256);
    }
  }
}

TEST_CASE("golden tiny config.json loads with its keys as the schema", "[sam][config]") {
  auto c = sam::model_config_resolve((sam_test::golden_tiny() / "config.json").string());
  CHECK(c.img_size == 256);
  CHECK(c.embed_dim == 96);
  CHECK(c.depth == 4);
  CHECK(c.num_heads == 3);
  CHECK(c.window_size == 6);
  CHECK(c.global_attn_indexes == std::vector<int>{1, 3});
  CHECK(c.prompt_dim == 64);
  CHECK(c.decoder_mlp_dim == 128);
  CHECK(c.iou_head_hidden_dim == 64);
  CHECK(c.grid_size() == 16);
  CHECK(c.low_res_size() == 64);
}

TEST_CASE("unknown models and config keys are rejected by name", "[sam][config]") {
  REQUIRE_THROWS_WITH(sam::model_config_resolve("vit_q"), Catch::Contains("vit_q"));
  nlohmann::json j = {{"embed_dim", 96}, {"embd_dim", 3}};
  REQUIRE_THROWS_WITH(sam::model_config_from_json(j, "x.json"),
                      Catch::Contains("x.json") && Catch::Contains("embd_dim") &&
                          Catch::Contains("valid keys"));
  nlohmann::json bad_type = {{"depth", "four"}};
  REQUIRE_THROWS_WITH(sam::model_config_from_json(bad_type, "y.yaml"),
                      Catch::Contains("depth") && Catch::Contains("y.yaml"));
  nlohmann::json bad_idx = {{"global_attn_indexes", {12}}};
  REQUIRE_THROWS_WITH(sam::model_config_from_json(bad_idx, "z.json"),
                      Catch::Contains("global_attn_indexes"));
}

TEST_CASE("a checkpoint with wrong keys or shapes lists what is wrong", "[sam][keys]") {
  auto c = sam::model_config_resolve((sam_test::golden_tiny() / "config.json").string());
  sam::Sam model(c);
  auto sd = sam::state_dict(*model);
  sam::NamedTensors bad;
  for (auto& kv : sd) {
    if (kv.first == "mask_decoder.iou_token.weight") continue;  // missing
    if (kv.first == "image_encoder.pos_embed") {
      bad.emplace_back(kv.first, torch::zeros({1, 8, 8, 96}));  // mis-shaped
      continue;
    }
    bad.emplace_back(kv.first, kv.second.clone());
  }
  bad.emplace_back("image_encoder.cls_token", torch::zeros({1, 1, 96}));  // unexpected
  REQUIRE_THROWS_WITH(sam::load_state_dict(*model, bad, "ckpt.pth"),
                      Catch::Contains("ckpt.pth") &&
                          Catch::Contains("missing keys (1)") &&
                          Catch::Contains("mask_decoder.iou_token.weight") &&
                          Catch::Contains("unexpected keys (1)") &&
                          Catch::Contains("image_encoder.cls_token") &&
                          Catch::Contains("image_encoder.pos_embed (checkpoint (1, 8, 8, 96)"));
}
