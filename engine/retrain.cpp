#include "engine/retrain.h"

#include <algorithm>
#include <chrono>
#include <sstream>

#include "data/config_file.h"
#include "engine/stage_io.h"
#include "eval/report/training_curves.h"
#include "train/trainer.h"

namespace fs = std::filesystem;

namespace sam::engine {

train::TrainConfig retrain_config(const EngineConfig& cfg, int round, const fs::path& run_dir,
                                  const std::vector<fs::path>& stage_dirs,
                                  const std::string& init) {
  nlohmann::json doc = train::train_config_defaults();
  if (!cfg.retrain.config.empty())
    cfg::merge_strict(doc, cfg::load_file(cfg.retrain.config), cfg.retrain.config);
  doc["run_dir"] = run_dir.string();
  doc["model"]["arch"] = cfg.model_arch;
  doc["init"] = {{"kind", init.empty() ? "random" : "sam"}, {"checkpoint", init}};
  nlohmann::json specs = nlohmann::json::array();
  for (const auto& sd : stage_dirs)
    if (fs::exists(sd / "data")) specs.push_back("sa1b:" + (sd / "data").string());
  for (const auto& spec : cfg.retrain.extra_data) specs.push_back(spec);
  doc["data"]["train"] = specs;
  doc["data"]["val"] = "";
  doc["data"]["max_masks"] = cfg.retrain.max_masks;
  // Every annotated mask, whatever the training file's floor (configs/tiny.yaml draws only masks
  // of 5 % of the image and more, a choice for training from random weights); an override in
  // retrain.overrides still wins.
  doc["data"]["min_mask_area_frac"] = 0.0;
  auto& tr = doc["train"];
  // A short fine-tune from good weights: its result is the weights themselves, not an average
  // that still leans on the starting point.
  tr["ema_decay"] = 0.0;
  tr["iterations"] = cfg.retrain.iterations;
  tr["time_limit_min"] = cfg.retrain.minutes;
  tr["batch_size"] = cfg.retrain.batch_size;
  tr["seed"] = cfg.seed + uint64_t(round);
  tr["device"] = cfg.device;
  tr["threads"] = cfg.threads;
  tr["val_every"] = 0;
  tr["ckpt_every"] = cfg.retrain.iterations;
  tr["log_every"] = std::clamp<int64_t>(cfg.retrain.iterations / 4, 1, 50);
  doc["optim"]["lr"] = cfg.retrain.lr;
  doc["optim"]["warmup_iters"] = cfg.retrain.warmup_iters;
  doc["optim"]["decay_steps"] = nlohmann::json::array();
  doc["prompt"]["rounds"] = cfg.retrain.prompt_rounds;
  if (doc["prompt"]["mask_only_rounds"].get<int>() >= cfg.retrain.prompt_rounds)
    doc["prompt"]["mask_only_rounds"] = cfg.retrain.prompt_rounds - 1;
  cfg::apply_overrides(doc, cfg.retrain.overrides);
  return train::train_config_from_json(doc, "retrain round " + std::to_string(round));
}

RetrainRound retrain(const EngineConfig& cfg, const fs::path& dir, int round, int after_images,
                     const std::vector<fs::path>& stage_dirs, const std::string& init,
                     const std::function<void(const std::string&)>& log) {
  RetrainRound rr;
  rr.round = round;
  rr.after_images = after_images;
  rr.iterations = cfg.retrain.iterations;
  for (const auto& sd : stage_dirs) rr.masks += count_masks(sd);
  if (rr.masks == 0) {
    rr.skipped = true;
    log("retrain round " + std::to_string(round) + ": no masks yet, skipped");
    return rr;
  }
  const fs::path run_dir = dir / "retrain" / ("round_" + std::to_string(round));
  const train::TrainConfig tc = retrain_config(cfg, round, run_dir, stage_dirs, init);
  std::ostringstream budget;
  budget << rr.iterations << " iterations";
  if (cfg.retrain.minutes > 0) budget << " or " << cfg.retrain.minutes << " min";
  log("retrain round " + std::to_string(round) + " after " + std::to_string(after_images) +
      " image(s): " + std::to_string(rr.masks) + " masks, " + budget.str() + " -> " +
      run_dir.string());
  const auto t0 = std::chrono::steady_clock::now();
  train::Trainer trainer(tc, train::DistEnv{});
  const int rc = trainer.run();
  rr.seconds = seconds_since(t0);
  if (rc != 0)
    throw std::runtime_error("retrain round " + std::to_string(round) + " in " + run_dir.string() +
                             " stopped with status " + std::to_string(rc));
  rr.iterations = trainer.step();  // fewer than `iterations` when its time ran out first
  eval::write_training_curves(run_dir.string());
  const fs::path out = run_dir / "model.pth";
  if (!fs::exists(out))
    throw std::runtime_error(out.string() + ": the training run wrote no model");
  rr.checkpoint = out.string();
  return rr;
}

}  // namespace sam::engine
