// The training configuration (train/train_config.h): defaults, files, overrides and their checks,
// against the values stated in docs/CONFIG.md and configs/.
#include <catch2/catch.hpp>

#include <filesystem>

#include "data/config_schema.h"
#include "train/train_config.h"
#include "test_text.h"
#include "test_util.h"

using namespace sam::train;
namespace fs = std::filesystem;
using Catch::Matchers::Contains;

TEST_CASE("train config: the defaults are the paper's recipe") {
  const auto c = load_train_config("", {});
  CHECK(c.train.iterations == 90000);
  CHECK(c.optim.lr == Approx(8e-4));
  CHECK(c.optim.weight_decay == Approx(0.1));
  CHECK(c.optim.layer_decay == Approx(0.8));
  CHECK(c.optim.warmup_iters == 250);
  CHECK(c.optim.decay_steps == std::vector<int64_t>{60000, 86666});
  CHECK(c.prompt.rounds == 11);
  CHECK(c.init.kind == "random");
  CHECK(c.loss.resolution == "full");
  // Every default key is in the resolved document, with the default's value.
  const auto d = train_config_defaults();
  CHECK(c.resolved["train"]["iterations"] == d["train"]["iterations"]);
  CHECK(c.resolved["optim"]["lr"] == d["optim"]["lr"]);
}

TEST_CASE("train config: a file over the defaults, then overrides over the file") {
  const auto dir = sam_test::temp_dir("train_config");
  const auto path = sam_test::write_text(dir / "run.yaml",
                                         "model:\n  arch: vit_b\ntrain:\n  iterations: 300\n  batch_size: 4\n"
                                         "optim:\n  lr: 1.0e-3\n");
  const auto c = load_train_config(path, {"train.batch_size=2", "prompt.rounds=3", "run_dir=/tmp/x"});
  CHECK(c.train.iterations == 300);
  CHECK(c.train.batch_size == 2);
  CHECK(c.optim.lr == Approx(1e-3));
  CHECK(c.prompt.rounds == 3);
  CHECK(c.run_dir == "/tmp/x");
  CHECK(c.train.log_every == 10);  // untouched: the default
  // The resolved document parses back to the same configuration (what a run dir keeps).
  const auto again = train_config_from_json(c.resolved, "resolved");
  CHECK(again.train.batch_size == 2);
  CHECK(again.prompt.rounds == 3);
  CHECK(again.resolved == c.resolved);
  fs::remove_all(dir);
}

TEST_CASE("train config: bad keys and values are errors naming the key") {
  const auto dir = sam_test::temp_dir("train_config_bad");
  const auto path = sam_test::write_text(dir / "bad.yaml", "train:\n  iteratons: 5\n");
  CHECK_THROWS_WITH(load_train_config(path, {}), Contains("iteratons") && Contains(path));
  CHECK_THROWS_WITH(load_train_config("", {"train.batch_size=1.5"}), Contains("batch_size"));
  CHECK_THROWS_WITH(load_train_config("", {"train.batch_size=0"}), Contains("batch_size"));
  CHECK_THROWS_WITH(load_train_config("", {"prompt.rounds=0"}), Contains("prompt.rounds"));
  CHECK_THROWS_WITH(load_train_config("", {"train.amp=fp8"}), Contains("train.amp"));
  CHECK_THROWS_WITH(load_train_config("", {"train.ema_decay=1"}), Contains("ema_decay"));
  CHECK_THROWS_WITH(load_train_config("", {"init.kind=sam"}), Contains("init.checkpoint"));
  CHECK_THROWS_WITH(load_train_config("", {"init.kind=imagenet"}), Contains("init.kind"));
  CHECK_THROWS_WITH(load_train_config("", {"optim.betas=[0.9]"}), Contains("betas"));
  CHECK_THROWS_WITH(load_train_config("", {"data.train=[\"sa1b:a\",\"sa1b:b\"]", "data.weights=[2]"}),
                    Contains("data.weights has 1 values for 2 data.train entries"));
  CHECK_THROWS_WITH(load_train_config("", {"data.train=[\"sa1b:a\"]", "data.weights=[-1]"}),
                    Contains("data.weights must be positive"));
  CHECK(load_train_config("", {"data.train=[\"sa1b:a\",\"sa1b:b\"]", "data.weights=[2, 0.5]"}).data.weights ==
        std::vector<double>{2, 0.5});
  CHECK_THROWS_WITH(load_train_config("", {"loss.resolution=half"}), Contains("loss.resolution"));
  CHECK_THROWS_WITH(load_train_config((dir / "missing.yaml").string(), {}), Contains("missing.yaml"));
  fs::remove_all(dir);
}

TEST_CASE("train config: every shipped config loads") {
  for (const char* name : {"tiny.yaml", "demo.yaml", "vit_b.yaml", "vit_l.yaml", "vit_h.yaml", "finetune_vit_b.yaml", "finetune_vit_b_lora.yaml"}) {
    INFO(name);
    const auto path = (fs::path(SAM_SOURCE_DIR) / "configs" / name).string();
    CHECK_NOTHROW(load_train_config(path, {}));
  }
}

TEST_CASE("train config: run folders from before the test hook left the schema still read") {
  // A resolved config.json of an older run holds train.inject_nonfinite: []; it reads, and the key
  // is not in the resolved document any more. A non-empty list is refused, naming the new hook.
  nlohmann::json old = train_config_defaults();
  old["train"]["inject_nonfinite"] = nlohmann::json::array();
  old["train"]["iterations"] = 7;
  const auto c = train_config_from_json(old, "run/config.json");
  CHECK(c.train.iterations == 7);
  CHECK_FALSE(c.resolved["train"].contains("inject_nonfinite"));
  old["train"]["inject_nonfinite"] = {1, 3};
  CHECK_THROWS_WITH(train_config_from_json(old, "run/config.json"),
                    Contains("run/config.json") && Contains("SAM_TRAIN_NONFINITE_AT"));
  CHECK_FALSE(train_config_defaults()["train"].contains("inject_nonfinite"));
}

TEST_CASE("train config: docs/CONFIG.md's key tables are the schema's") {
  // Each table follows a "<!-- schema: train.SECTION -->" line; `sam_train config-docs --write
  // docs/CONFIG.md` regenerates them.
  const std::string doc = sam_test::read_text(fs::path(SAM_SOURCE_DIR) / "docs" / "CONFIG.md");
  REQUIRE_FALSE(doc.empty());
  for (const auto& sec : train_config_sections()) {
    INFO("section " << sec << ": run build/bin/sam_train config-docs --write docs/CONFIG.md");
    const std::string table = train_config_markdown(sec);
    CHECK(sam::cfg::replace_marked_table(doc, "train." + sec, table) == doc);
  }
  // Every key of the defaults document has a row.
  const auto d = train_config_defaults();
  for (auto s = d.begin(); s != d.end(); ++s) {
    if (!s->is_object()) {
      CHECK_THAT(doc, Contains("| `" + s.key() + "` |"));
      continue;
    }
    for (auto k = s->begin(); k != s->end(); ++k) CHECK_THAT(doc, Contains("| `" + s.key() + "." + k.key() + "` |"));
  }
}

TEST_CASE("train config: the allowed values are checked at load, naming the key and the range") {
  CHECK_THROWS_WITH(load_train_config("", {"data.workers=300"}), Contains("data.workers") && Contains("[0, 256]"));
  CHECK_THROWS_WITH(load_train_config("", {"optim.warmup_iters=-1"}), Contains("optim.warmup_iters must be >= 0"));
  CHECK_THROWS_WITH(load_train_config("", {"prompt.box_noise=laplace"}),
                    Contains("prompt.box_noise must be one of `gaussian`, `uniform`"));
  CHECK_THROWS_WITH(load_train_config("", {"optim.betas=[0.9, 1.5]"}), Contains("optim.betas"));
  CHECK_THROWS_WITH(load_train_config("", {"train.dist_backend=mpi"}), Contains("train.dist_backend"));
  const auto c = load_train_config("", {"prompt.box_noise=uniform", "optim.betas=[0.8, 0.95]", "loss.resolution=low"});
  CHECK(c.prompt.box_noise == BoxNoise::kUniform);
  CHECK(c.optim.beta1 == Approx(0.8));
  CHECK(c.optim.beta2 == Approx(0.95));
  CHECK(c.loss.resolution == "low");
  CHECK(c.resolved["optim"]["betas"] == nlohmann::json{0.8, 0.95});
}
