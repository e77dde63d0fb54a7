// The data engine's configuration (engine/engine_config.h): the built-in defaults (the paper's
// generator settings for the auto stage), the allowed values checked at load naming the key, the
// shipped configs, and docs/ENGINE.md's key tables against the schema.
#include <catch2/catch.hpp>

#include <filesystem>

#include "data/config_schema.h"
#include "sam/amg/amg_io.h"
#include "engine/engine_config.h"
#include "test_text.h"
#include "test_util.h"

using namespace sam::engine;
using Catch::Matchers::Contains;
namespace fs = std::filesystem;

TEST_CASE("engine config: defaults, with the paper's generator settings for the auto stage") {
  const auto c = load_engine_config("", {});
  CHECK(c.out_dir == "runs/engine");
  CHECK(c.model_arch == "configs/model_tiny.json");
  CHECK(c.match_iou == Approx(0.9));
  CHECK(c.annotator.seconds_budget == Approx(30));
  CHECK(c.autom.generator.points_per_side == 32);
  CHECK(c.autom.generator.crop_n_layers == 2);
  CHECK(c.autom.generator.crop_n_points_downscale_factor == 2);
  CHECK(c.autom.generator.pred_iou_thresh == Approx(0.88));
  CHECK(c.autom.generator.stability_score_thresh == Approx(0.95));
  CHECK(c.autom.generator.min_mask_region_area == 100);
  CHECK(c.autom.generator.max_area_frac == Approx(0.95));
  CHECK(c.retrain.iterations == 20);
  CHECK(c.resolved["auto"]["generator"]["point_grids"] == nlohmann::json::array());
  // The resolved document reads back to the same configuration.
  const auto again = engine_config_from_json(c.resolved, "resolved");
  CHECK(again.resolved == c.resolved);
}

TEST_CASE("engine config: values outside the allowed ones fail at load, naming the key") {
  CHECK_THROWS_WITH(load_engine_config("", {"match_iou=0"}), Contains("match_iou must be (0, 1]"));
  CHECK_THROWS_WITH(load_engine_config("", {"retrain.iterations=0"}), Contains("retrain.iterations must be >= 1"));
  CHECK_THROWS_WITH(load_engine_config("", {"semi.detector.nms_thresh=0"}), Contains("semi.detector.nms_thresh"));
  CHECK_THROWS_WITH(load_engine_config("", {"auto.generator.points_per_batch=0"}),
                    Contains("generator.points_per_batch must be >= 1"));
  CHECK_THROWS_WITH(load_engine_config("", {"manual.images=2.5"}), Contains("manual.images") && Contains("whole number"));
  CHECK_THROWS_WITH(load_engine_config("", {"'out_dir=\"\"'"}), Contains("out_dir"));
  const auto c = load_engine_config("", {"auto.generator.points_per_side=16", "semi.detector.epochs=3"});
  CHECK(c.autom.generator.points_per_side == 16);
  CHECK(c.semi.detector.epochs == 3);
}

TEST_CASE("engine config: the shipped configs load") {
  for (const char* name : {"engine.yaml", "demo_engine.yaml"}) {
    INFO(name);
    CHECK_NOTHROW(load_engine_config((fs::path(SAM_SOURCE_DIR) / "configs" / name).string(), {}));
  }
}

TEST_CASE("engine config: docs/ENGINE.md's key tables are the schema's") {
  // Each table follows a "<!-- schema: engine.SECTION -->" line; `sam_engine config-docs --write
  // docs/ENGINE.md` regenerates them.
  const std::string doc = sam_test::read_text(fs::path(SAM_SOURCE_DIR) / "docs" / "ENGINE.md");
  REQUIRE_FALSE(doc.empty());
  for (const auto& sec : engine_config_sections()) {
    INFO("section " << sec << ": run build/bin/sam_engine config-docs --write docs/ENGINE.md");
    CHECK(sam::cfg::replace_marked_table(doc, "engine." + sec, engine_config_markdown(sec)) == doc);
  }
  // Every key of the defaults document has a row.
  std::function<void(const nlohmann::json&, const std::string&)> walk = [&](const nlohmann::json& j,
                                                                            const std::string& prefix) {
    for (auto it = j.begin(); it != j.end(); ++it) {
      const std::string key = prefix.empty() ? it.key() : prefix + "." + it.key();
      if (it->is_object()) {
        walk(*it, key);
      } else {
        INFO(key);
        CHECK_THAT(doc, Contains("| `" + key + "` |"));
      }
    }
  };
  walk(engine_config_defaults(), "");
}
