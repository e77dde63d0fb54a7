#pragma once
// The data engine's configuration (configs/engine.yaml): one YAML/JSON document over built-in
// defaults, then `key.sub=value` overrides; unknown keys are rejected with the valid ones listed
// (data/config_file.h). Each key is declared once, in engine_config.cpp's schema (its default is the
// member's initialiser below); docs/ENGINE.md's key tables are generated from it.
#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "sam/amg/generator.h"
#include "engine/annotator_sim.h"
#include "engine/box_detector.h"

namespace sam::engine {

/// How the model is retrained on the masks collected so far (each round is a short train::Trainer
/// run initialised from the current checkpoint).
struct RetrainConfig {
  std::string config;       ///< base training configuration (.yaml/.json; "" = trainer defaults)
  int64_t iterations = 20;  ///< optimiser steps per round
  int batch_size = 1;
  int max_masks = 8;  ///< masks per image per step
  double lr = 1e-4;
  int64_t warmup_iters = 2;
  int prompt_rounds = 4;               ///< simulated interactive rounds per mask (paper: 11)
  /// Minutes per round, at most (0: `iterations` alone decide): a round stops at whichever comes
  /// first, so a slower host trains fewer steps in the same time.
  double minutes = 0;
  /// Dataset specs trained on beside the stages' annotated masks (e.g. the data the starting
  /// model was trained on, so a round adds to it rather than replaces it).
  std::vector<std::string> extra_data;
  std::vector<std::string> overrides;  ///< more training-config key=value overrides, applied last
  /// A fixed held-out set (dataset spec) on which the manual and semi stages evaluate every model
  /// round (the stage's starting model and each retrained one) with eval/points.h's protocol, so
  /// the rounds are compared on the same images; "" = none.
  std::string eval_data;
  int eval_clicks = 9;  ///< clicks per object of that evaluation
};

struct ManualConfig {
  int images = 8;          ///< the first `images` images of the dataset
  int retrain_rounds = 2;  ///< retrain after every images/retrain_rounds images
};

struct SemiConfig {
  int images = 8;  ///< the next `images` images after the manual stage's
  int retrain_rounds = 1;
  double prefill_iou_thresh =
      0.8;  ///< keep a detector box's SAM mask when its predicted IoU >= this
  double prefill_nms_thresh =
      0.7;  ///< drop a pre-filled mask overlapping a kept one above this IoU
  DetectorOptions detector;
};

/// The paper's generator settings for SA-1B (appendix B), the auto stage's default: a 32x32 grid,
/// two crop layers with grids halved per layer, predicted IoU 0.88, stability 0.95, NMS 0.7, regions
/// under 100 px cleaned, masks covering 95 % of the image or more dropped. (The reference's
/// SamAutomaticMaskGenerator defaults are amg::AmgOptions'.)
amg::AmgOptions sa1b_generator_options();

struct AutoConfig {
  int images = 0;  ///< 0: every image of the dataset
  /// Images per tar shard of the output (SA-1B's release format); 0: keep the SA-1B folder only.
  int shard_images = 1000;
  /// Keep the loose SA-1B folder (data/) after packing it into shards.
  bool keep_folder = false;
  amg::AmgOptions generator = sa1b_generator_options();
};

struct EngineConfig {
  std::string out_dir = "runs/engine";
  std::string data;  ///< dataset spec (data/dataset.h make_dataset)
  std::string model_arch = "configs/model_tiny.json";
  std::string checkpoint;  ///< starting weights (.pth); "" = random initialisation
  std::string device = "cpu";
  int threads = 0;
  uint64_t seed = 0;
  double match_iou = 0.9;  ///< a produced mask "matches" ground truth at IoU >= this
  AnnotatorOptions annotator;
  ManualConfig manual;
  SemiConfig semi;
  AutoConfig autom;
  RetrainConfig retrain;
  nlohmann::json resolved;  ///< the whole resolved document
};

/// Every valid key with its default value.
nlohmann::json engine_config_defaults();
/// The key table of one section as docs/ENGINE.md shows it (Markdown: key, default, allowed,
/// meaning), from the schema that reads them: "top", "model", "annotator", "manual", "semi",
/// "semi.detector", "auto", "auto.generator" or "retrain".
std::string engine_config_markdown(const std::string& section);
/// The sections engine_config_markdown knows, in docs/ENGINE.md's order.
const std::vector<std::string>& engine_config_sections();
/// Loads `path` ("" = defaults only) over the defaults strictly, applies `overrides`
/// ("a.b=value"), validates. Throws std::invalid_argument naming the file, key or value at fault.
EngineConfig load_engine_config(const std::string& path, const std::vector<std::string>& overrides);
/// Parses a resolved document (every key present) and validates it.
EngineConfig engine_config_from_json(const nlohmann::json& doc, const std::string& where);

}  // namespace sam::engine
