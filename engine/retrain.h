#pragma once
// Retraining between and within the data engine's stages (paper section 4: the model was
// retrained 6 times in the assisted-manual stage and 5 in the semi-automatic one): a short
// Trainer run on the masks annotated so far, starting from the current weights.
#include <filesystem>
#include <functional>
#include <string>
#include <vector>

#include "engine/engine_config.h"
#include "engine/stage_report.h"
#include "train/train_config.h"

namespace sam::engine {

/// The training configuration of retraining round `round` (1-based) writing to `run_dir`: the
/// trainer's defaults, then retrain.config's file, then the engine's choices (the SA-1B folders
/// data/ of `stage_dirs` that exist, then retrain.extra_data, no validation; every mask whatever
/// its area; no EMA; retrain.iterations / minutes / batch_size / max_masks / lr / warmup_iters /
/// prompt_rounds, mask-only rounds below prompt_rounds; seed = engine seed + round; the engine's
/// model, device and threads; init from `init`, random when ""), then retrain.overrides, which
/// win. Throws what train_config_from_json throws, naming the round.
train::TrainConfig retrain_config(const EngineConfig& cfg, int round,
                                  const std::filesystem::path& run_dir,
                                  const std::vector<std::filesystem::path>& stage_dirs,
                                  const std::string& init);

/// Runs round `round` after `after_images` images of the stage in `dir`
/// (<dir>/retrain/round_<round>/, loss and IoU curves beside the run), training on the masks of
/// `stage_dirs`. A round with no masks yet is skipped (RetrainRound::skipped, no run). Throws when
/// the training run fails or writes no model.
RetrainRound retrain(const EngineConfig& cfg, const std::filesystem::path& dir, int round,
                     int after_images, const std::vector<std::filesystem::path>& stage_dirs,
                     const std::string& init, const std::function<void(const std::string&)>& log);

}  // namespace sam::engine
