// engine/retrain.h without training: the configuration a retraining round synthesises (hand-set
// expectations from the engine's rules), and a round with no masks yet is skipped without a run.
#include <catch2/catch.hpp>

#include <filesystem>
#include <string>
#include <vector>

#include "engine/engine_config.h"
#include "engine/retrain.h"
#include "test_util.h"

namespace fs = std::filesystem;
using namespace sam::engine;

namespace {

// The engine's configuration with these overrides, the tiny model found from any working folder.
EngineConfig config(std::vector<std::string> overrides) {
  overrides.insert(
      overrides.begin(),
      "model.arch=" + (sam_test::source_dir() / "configs" / "model_tiny.json").string());
  return load_engine_config("", overrides);
}

}  // namespace

TEST_CASE("retrain: a round's training configuration follows the engine's rules",
          "[engine][retrain]") {
  const auto root = sam_test::temp_dir("engine_retrain_cfg");
  fs::create_directories(root / "manual" / "data");  // semi's folder has no data/ yet
  EngineConfig c = config({"seed=40", "device=cpu", "threads=2", "retrain.iterations=12",
                           "retrain.batch_size=3", "retrain.max_masks=5", "retrain.lr=0.0003",
                           "retrain.warmup_iters=4", "retrain.prompt_rounds=2",
                           "retrain.minutes=1.5", "retrain.extra_data=[\"sa1b:/x/extra\"]"});
  const auto tc =
      retrain_config(c, 3, root / "run", {root / "manual", root / "semi"}, "/w/model.pth");
  CHECK(tc.run_dir == (root / "run").string());
  CHECK(tc.model_arch == c.model_arch);
  CHECK(tc.init.kind == "sam");
  CHECK(tc.init.checkpoint == "/w/model.pth");
  CHECK(tc.data.train ==
        std::vector<std::string>{"sa1b:" + (root / "manual" / "data").string(), "sa1b:/x/extra"});
  CHECK(tc.data.val.empty());
  CHECK(tc.data.max_masks == 5);
  CHECK(tc.data.min_mask_area_frac == 0.0);
  CHECK(tc.train.ema_decay == 0.0);
  CHECK(tc.train.iterations == 12);
  CHECK(tc.train.time_limit_min == 1.5);
  CHECK(tc.train.batch_size == 3);
  CHECK(tc.train.seed == 43);  // engine seed + round
  CHECK(tc.train.threads == 2);
  CHECK(tc.train.val_every == 0);
  CHECK(tc.train.ckpt_every == 12);
  CHECK(tc.train.log_every == 3);  // iterations / 4, within [1, 50]
  CHECK(tc.optim.lr == 0.0003);
  CHECK(tc.optim.warmup_iters == 4);
  CHECK(tc.optim.decay_steps.empty());
  CHECK(tc.prompt.rounds == 2);
  CHECK(tc.prompt.mask_only_rounds == 1);  // below the rounds: the default 2 would leave none

  // Random weights when there is no checkpoint; retrain.overrides win over the engine's choices.
  EngineConfig o =
      config({"retrain.overrides=[\"data.min_mask_area_frac=0.01\",\"train.ema_decay=0.5\"]"});
  const auto to = retrain_config(o, 1, root / "run1", {}, "");
  CHECK(to.init.kind == "random");
  CHECK(to.data.min_mask_area_frac == 0.01);
  CHECK(to.train.ema_decay == 0.5);
  CHECK(to.data.train.empty());

  // A bad override is an error naming the round.
  EngineConfig bad = config({"retrain.overrides=[\"train.iterations=-1\"]"});
  CHECK_THROWS_WITH(retrain_config(bad, 2, root / "run2", {}, ""),
                    Catch::Contains("retrain round 2") && Catch::Contains("iterations"));
  fs::remove_all(root);
}

TEST_CASE("retrain: a round with no masks yet is skipped without a training run",
          "[engine][retrain]") {
  const auto root = sam_test::temp_dir("engine_retrain_skip");
  fs::create_directories(root / "manual" / "records");
  std::vector<std::string> logged;
  const RetrainRound r = retrain(config({}), root / "manual", 1, 4, {root / "manual"}, "",
                                 [&](const std::string& m) { logged.push_back(m); });
  CHECK(r.skipped);
  CHECK(r.round == 1);
  CHECK(r.after_images == 4);
  CHECK(r.masks == 0);
  CHECK(r.checkpoint.empty());
  CHECK_FALSE(fs::exists(root / "manual" / "retrain"));
  REQUIRE(logged.size() == 1);
  CHECK_THAT(logged[0], Catch::Contains("no masks yet"));
  fs::remove_all(root);
}
