#pragma once
// The training run's configuration: one YAML/JSON document (configs/*.yaml) over built-in
// defaults, then `key.sub=value` overrides; unknown keys are rejected with the valid ones listed.
// Each key is declared once, in train_config.cpp's schema (its default is the member's initialiser
// below); docs/CONFIG.md's tables are generated from it.
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "sam/config.h"
#include "sam/mae.h"
#include "train/optim.h"
#include "train/prompt_sim.h"
#include "train/loss.h"

namespace sam::train {

struct DataConfig {
  std::vector<std::string> train;  ///< dataset specs (see data/dataset.h), concatenated
  std::vector<double> weights;     ///< one per `train` entry (repeat factors), or empty: 1 each
  std::string embeddings;          ///< a store of sam_data embed: the encoder's outputs, read instead of running it
  std::string val;                 ///< dataset spec for periodic validation ("" = none)
  int val_max_samples = 100;
  int max_masks = 64;
  double max_mask_area_frac = 0.9;
  double min_mask_area_frac = 0.0;
  bool large_scale_jitter = false;
  double lsj_min = 0.1, lsj_max = 2.0;
  bool hflip = false;
  bool random_resized_crop = false;  ///< train.objective mae: RandomResizedCrop onto S x S
  double rrc_min_scale = 0.2;
  int workers = 2;
  int prefetch = 4;
};

struct RunConfig {
  std::string objective = "sam";  ///< sam (promptable segmentation), mae (masked-autoencoder pre-training) or
                                  ///< distill (a student encoder from a teacher's embeddings)
  int64_t iterations = 90000;
  int batch_size = 1;           ///< images per rank per optimiser step (per micro-step with grad_accum)
  int grad_accum = 1;
  uint64_t seed = 0;
  std::string device = "cpu";
  std::string dist_backend = "auto";  ///< auto (NCCL on GPUs, Gloo on the CPU), nccl or gloo
  int threads = 0;
  double clip_grad_norm = 0.0;  ///< 0 = off
  bool activation_checkpointing = false;
  bool shard_optimizer = false; ///< ZeRO stage 1: each rank keeps the AdamW moments of its share (train/optim.h)
  std::string amp = "auto";     ///< auto (bf16 on CUDA), off, bf16
  int max_nonfinite = 10;       ///< stop after this many non-finite losses in a row
  int log_every = 10;
  int val_every = 500;          ///< 0 = only at the end
  bool val_at_start = false;    ///< also validate the starting weights, before the first step
  int ckpt_every = 500;
  double time_limit_min = 0;    ///< stop (with a checkpoint) after this many minutes; 0 = none
  double ema_decay = 0;         ///< weight average (train/optim.h WeightAverage) kept and exported; 0 = none
  bool tensorboard = true;      ///< TensorBoard event files beside metrics.jsonl (train/tensorboard.h)
  std::vector<std::string> freeze;     ///< parameter-name patterns kept fixed (train/freeze.h)
  std::vector<std::string> trainable;  ///< when not empty, only these patterns train
};

struct InitConfig {
  std::string kind = "random";  ///< random, sam (official/our .pth), mae (MAE ViT), run (a run dir)
  std::string checkpoint;
  std::vector<std::string> adapters;  ///< LoRA adapter files added onto the starting weights, in order
};

/// LoRA adapters (train/lora.h): rank 0 = none.
struct LoraConfig {
  int64_t rank = 0;
  double alpha = 16;                 ///< the update is (alpha / rank) B A
  double dropout = 0;                ///< input features of A dropped per step (train/lora.h)
  std::vector<std::string> targets;  ///< Linear-module name patterns (train/freeze.h's globs)
};

/// Distillation of a student image encoder from a SAM teacher (train.objective distill): the
/// student is `model` (its encoder; its prompt encoder and mask decoder are the teacher's, frozen).
struct DistillConfig {
  std::string teacher_arch = "vit_h";  ///< the teacher's architecture: preset or file
  std::string teacher_checkpoint;      ///< the teacher's SAM .pth
};

/// The loss weights and the resolution the loss is computed at.
struct LossConfig : LossWeights {
  std::string resolution = "full";  ///< full (S x S, the default) or low (4G x 4G)
};

struct TrainConfig {
  std::string run_dir = "runs/default";
  ModelConfig model;
  std::string model_arch = "vit_b";
  InitConfig init;
  LoraConfig lora;
  DataConfig data;
  RunConfig train;
  OptimOptions optim;
  PromptSimOptions prompt;
  LossConfig loss;
  MaeConfig mae;                         ///< train.objective mae
  DistillConfig distill;                 ///< train.objective distill
  nlohmann::json resolved;               ///< the whole resolved document (written to the run dir)
};

/// The defaults as a document: every valid key with its default value.
nlohmann::json train_config_defaults();
/// Loads `path` (may be empty: defaults only) over the defaults, applies overrides, validates.
TrainConfig load_train_config(const std::string& path, const std::vector<std::string>& overrides);
/// Parses a resolved document (as written to a run dir) without defaults merging.
TrainConfig train_config_from_json(const nlohmann::json& doc, const std::string& where);
/// The key table of one section as docs/CONFIG.md shows it (Markdown: key, default, allowed,
/// meaning), from the schema that reads them: "top", "model", "init", "lora", "data", "train",
/// "optim", "prompt", "loss", "mae" or "distill".
std::string train_config_markdown(const std::string& section);
/// The sections train_config_markdown knows, in docs/CONFIG.md's order.
const std::vector<std::string>& train_config_sections();

}  // namespace sam::train
