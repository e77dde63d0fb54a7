#pragma once
// The state the data engine's stages share (engine/data_engine.h runs them): the configuration,
// the ranks, the dataset, the model and its predictor, and the steps every stage takes (weights,
// samples, manifests, the final report). Each stage is in its own file: the manual and semi
// stages' image loop in stage_annotation.cpp, the semi stage's box detector and pre-fill in
// stage_semi.cpp, the auto stage in stage_auto.cpp; retraining (retrain.h), the files
// (stage_io.h) and the tar shards (shards.h) are free functions with their own tests.
#include <chrono>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>
#include <opencv2/core.hpp>

#include "data/dataset.h"
#include "data/mask/rle.h"
#include "engine/annotation_session.h"
#include "engine/box_detector.h"
#include "engine/engine_config.h"
#include "engine/stage_report.h"
#include "sam/predictor.h"
#include "sam/sam_model.h"
#include "train/distributed.h"

namespace sam::engine {

struct EngineContext {
  EngineConfig cfg;
  train::DistEnv env;
  torch::Device device{torch::kCPU};
  std::shared_ptr<data::Dataset> ds;
  Sam model{nullptr};
  std::unique_ptr<Predictor> predictor;
  std::string loaded_ckpt = "<none>";
  std::unique_ptr<train::Communicator> comm;  // only with several ranks (the auto stage's shards)
  std::shared_ptr<data::Dataset> heldout;     // retrain.eval_data, opened on first use

  std::filesystem::path stage_dir(const std::string& st) const {
    return std::filesystem::path(cfg.out_dir) / st;
  }
  /// "[engine] ..." on rank 0.
  void log(const std::string& s) const;

  // --- engine_context.cpp ---
  /// Builds the model (random weights, seeded) and its predictor once.
  void ensure_model();
  /// Loads `ckpt` unless it is already loaded ("" = the random initialisation, only at the start).
  void use_weights(const std::string& ckpt);
  /// The weights a stage starts from: the previous stage's final model when it exists, else
  /// the configured checkpoint.
  std::string input_checkpoint(const std::string& st) const;
  /// The sample's non-crowd ground-truth masks of the image's size (others are logged, skipped).
  std::vector<mask::Rle> gt_rles(const data::Sample& s) const;
  /// Reads sample i and its image. On bad input marks `rec` skipped (its problem, the time since
  /// `t0`), writes its record into the stage folder `dir` (stage_io.h write_skip_record) and
  /// returns false: the caller counts it and goes on.
  bool read_sample(size_t i, const std::filesystem::path& dir, std::chrono::steady_clock::time_point t0,
                   data::Sample& s, cv::Mat& rgb, ImageRecord& rec) const;
  /// The manifest's inputs and outputs at a stage's start.
  nlohmann::json base_manifest(const std::string& st, const std::filesystem::path& dir,
                               size_t first, size_t count, const std::string& ckpt_in) const;
  /// Writes the stage's manifest, report.json and report.html; returns the summary.
  nlohmann::json finish_stage(const std::string& st, const std::filesystem::path& dir,
                              const std::vector<ImageRecord>& recs,
                              const std::vector<RetrainRound>& rounds, nlohmann::json manifest);

  // --- stage_annotation.cpp: manual and semi ---
  nlohmann::json run_annotation_stage(const std::string& st);
  /// With retrain.eval_data set: evaluates every model round of the stage in `dir` that has no
  /// held-out figures yet (0: `start`, the weights the stage started from; k: the k-th retraining
  /// round that ran) and keeps them in dir/heldout.json; returns that file's array (empty without
  /// a held-out set). Leaves the last evaluated weights loaded.
  nlohmann::json evaluate_heldout(const std::filesystem::path& dir, const std::string& start,
                                  const std::vector<RetrainRound>& rounds);

  // --- stage_semi.cpp ---
  /// Trains (or reloads) the box detector on the manual stage's masks, embedded by the current
  /// model.
  BoxDetector prepare_detector(const std::filesystem::path& dir, nlohmann::json& manifest);
  /// SAM's masks for the detector's boxes on the current image, confident ones only,
  /// deduplicated.
  std::vector<PrefillMask> prefill(BoxDetector& det, int64_t h, int64_t w, int& proposals);

  // --- stage_auto.cpp ---
  nlohmann::json run_auto();
};

}  // namespace sam::engine
