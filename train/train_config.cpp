#include "train/train_config.h"

#include <cmath>

#include <stdexcept>

#include "data/config_file.h"
#include "data/config_schema.h"

namespace sam::train {

namespace {

// Each key of the training configuration, once (data/config_schema.h): the struct member holds its
// type and default, the line its name, what it may hold and its doc. docs/CONFIG.md's tables are
// these lines (train_config_markdown; tests/train/test_train_config.cpp compares them).
struct Schema {
  cfg::Section<TrainConfig> top{""};
  cfg::Section<InitConfig> init{"init"};
  cfg::Section<LoraConfig> lora{"lora"};
  cfg::Section<DataConfig> data{"data"};
  cfg::Section<RunConfig> train{"train"};
  cfg::Section<OptimOptions> optim{"optim"};
  cfg::Section<PromptSimOptions> prompt{"prompt"};
  cfg::Section<LossConfig> loss{"loss"};
  cfg::Section<DistillConfig> distill{"distill"};
};

Schema make_schema() {
  using cfg::above;
  using cfg::at_least;
  using cfg::in_range;
  using cfg::in_range_open_hi;
  using cfg::in_range_open_lo;
  using cfg::one_of;
  Schema s;
  s.top.key("run_dir", &TrainConfig::run_dir,
            "run directory: config.json, train.log, metrics.jsonl, checkpoint.pth, model.pth, loss.svg, iou.svg; a "
            "checkpoint.pth already there is resumed (`init` is then ignored)");
  s.init
      .key("kind", &InitConfig::kind,
           "starting weights: `random` (seeded construction, `train.seed`), `sam` (official or this project's SAM "
           ".pth), `mae` (MAE ViT encoder .pth; pos_embed, patch kernel and rel-pos tables resized to the model; "
           "rest random), `run` (model weights of a run's checkpoint.pth; not its optimiser, step or weight average)",
           one_of({"random", "sam", "mae", "run"}))
      .key("checkpoint", &InitConfig::checkpoint,
           "the .pth for `sam`/`mae`; for `run` a run directory or its checkpoint.pth; required unless `kind` is "
           "`random` (read at start)")
      .key("adapters", &InitConfig::adapters,
           "LoRA adapter files (`sam_train export --adapters`) added onto the starting weights in order (W += "
           "scale × B A each), e.g. a domain's adapters stacked on the released checkpoint; a target or shape "
           "the model lacks is an error naming the file");
  s.lora
      .key("rank", &LoraConfig::rank,
           "rank r of the LoRA adapters (W + (alpha / r) B A, A r × in, B out × r; docs/TRAINING.md); 0 = no "
           "adapters. With adapters every other parameter is frozen unless `train.trainable` names it",
           at_least(0))
      .key("alpha", &LoraConfig::alpha, "the adapters' scale is alpha / rank", above(0))
      .key("dropout", &LoraConfig::dropout,
           "probability of dropping each input feature of A for a step (one mask per layer and step, kept "
           "features scaled by 1 / (1 − p)); 0 = none",
           in_range_open_hi(0, 1))
      .key("targets", &LoraConfig::targets,
           "Linear-module name patterns that get adapters, e.g. `[\"image_encoder.blocks.*.attn.qkv\", "
           "\"image_encoder.blocks.*.attn.proj\"]`, `*.mlp.lin1`, `mask_decoder.transformer.layers.*.*_proj`; "
           "with `rank` > 0 must match at least one Linear each (at start)");
  s.data
      .key("train", &DataConfig::train,
           "training dataset specs (`data/dataset.h`: `sa1b:PATH`, `coco:JSON[:IMAGE_DIR]`, `folder:DIR`, ...; "
           "`images:DIR`, images without masks, for `train.objective: mae`), concatenated; must not be empty (at "
           "start)")
      .key("weights", &DataConfig::weights,
           "one weight per `data.train` entry: a dataset's samples are visited this many times per epoch on "
           "average (SAM 2's repeat factors; 0.5 = a different half each epoch, 2 = every sample twice); `[]` = 1 "
           "each. The log gives each dataset's samples per epoch")
      .key("embeddings", &DataConfig::embeddings,
           "a folder of the image encoder's embeddings of `data.train` (written by `sam_data embed` with this "
           "configuration): the loader reads them instead of the images and the encoder does not run (it is "
           "frozen; the store must be of this run's encoder, and jitter and flips off); `\"\"` = run the encoder")
      .key("val", &DataConfig::val, "dataset spec for validation (1-click mIoU on rank 0); `\"\"` = no validation")
      .key("val_max_samples", &DataConfig::val_max_samples,
           "validate on the first N objects of `data.val` in dataset order; 0 = all", at_least(0))
      .key("max_masks", &DataConfig::max_masks,
           "masks per image: the first N (in a random order) that are non-empty after the transform", at_least(1))
      .key("max_mask_area_frac", &DataConfig::max_mask_area_frac,
           "drop masks covering more than this fraction of the image", in_range_open_lo(0, 1))
      .key("min_mask_area_frac", &DataConfig::min_mask_area_frac,
           "drop masks covering less than this fraction of the image; below `max_mask_area_frac` (at start); 0 = "
           "keep all non-empty",
           at_least(0))
      .key("large_scale_jitter", &DataConfig::large_scale_jitter,
           "true: scale the longest-side-resized image by U(lsj_min, lsj_max) and take a random window of at most "
           "S × S; false: longest side = S")
      .key("lsj_min", &DataConfig::lsj_min, "smallest jitter scale; with jitter on, at most `lsj_max` (at start)",
           above(0))
      .key("lsj_max", &DataConfig::lsj_max, "largest jitter scale", above(0))
      .key("hflip", &DataConfig::hflip, "mirror each sample left-right with probability 1/2")
      .key("random_resized_crop", &DataConfig::random_resized_crop,
           "`train.objective: mae` only: a window of `rrc_min_scale` to all of the image's area with an aspect "
           "ratio in [3/4, 4/3] resized to S × S (torchvision's RandomResizedCrop, MAE's augmentation); false: "
           "longest side = S, padded")
      .key("rrc_min_scale", &DataConfig::rrc_min_scale, "smallest area share of the random resized crop (MAE: 0.2)",
           in_range_open_lo(0, 1))
      .key("workers", &DataConfig::workers, "loader threads per rank; 0 = load synchronously in the training thread",
           in_range(0, 256))
      .key("prefetch", &DataConfig::prefetch, "samples ready or in flight ahead of the trainer, per rank",
           at_least(1));
  s.train
      .key("objective", &RunConfig::objective,
           "`sam`: promptable segmentation with simulated interactive prompting (the paper's training); `mae`: "
           "masked-autoencoder pre-training of a plain ViT of `model`'s encoder size on images alone (section "
           "`mae`; no masks, prompts or SAM losses; `model.pth` in MAE's format, which `init.kind: mae` loads); "
           "`distill`: `model`'s image encoder (the student) learns a SAM teacher's embeddings (section `distill`; "
           "mean squared error, images alone; `model.pth` is a SAM checkpoint of the student's architecture "
           "with the teacher's prompt encoder and mask decoder)",
           one_of({"sam", "mae", "distill"}))
      .key("iterations", &RunConfig::iterations,
           "optimiser steps of the whole run (skipped non-finite steps count; a resumed run continues to this)",
           at_least(0))
      .key("batch_size", &RunConfig::batch_size,
           "images per rank per micro-step; global batch = ranks × batch_size × grad_accum", at_least(1))
      .key("grad_accum", &RunConfig::grad_accum, "micro-steps whose gradients are summed per optimiser step",
           at_least(1))
      .key("seed", &RunConfig::seed,
           "seeds model construction, the loader's order and augmentation, the per-mask prompt draws (by seed, "
           "step, sample) and each rank's generator (seed × 1000003 + rank: drop path, dropout)")
      .key("device", &RunConfig::device,
           "torch device string (`cpu`, `cuda`, `cuda:N`); `cuda` without an index: each process takes the GPU of "
           "its local rank (`LOCAL_RANK`, `SLURM_LOCALID`), or GPU 0 where the launcher shows each task one GPU "
           "(Slurm `--gpus-per-task=1`), and makes it the current device before NCCL starts (`train/distributed.h`)")
      .key("dist_backend", &RunConfig::dist_backend,
           "several processes: `auto` = NCCL on GPUs, Gloo on the CPU; `gloo` also carries GPU tensors (through the "
           "host: two ranks on one GPU, which NCCL refuses); `nccl`",
           one_of({"auto", "nccl", "gloo"}))
      .key("threads", &RunConfig::threads,
           "torch intra-op threads per process; 0 = hardware threads / min(ranks, hardware threads)", at_least(0))
      .key("clip_grad_norm", &RunConfig::clip_grad_norm,
           "clip the global L2 norm of the summed gradients to this; 0 = off", at_least(0))
      .key("activation_checkpointing", &RunConfig::activation_checkpointing,
           "recompute the encoder blocks' activations in the backward pass (memory for time)")
      .key("shard_optimizer", &RunConfig::shard_optimizer,
           "ZeRO stage 1 over the ranks: each keeps the AdamW moments of its share of the parameters (whole "
           "tensors, balanced by size), receives their summed gradients only (a reduce onto each owner: the "
           "reduce-scatter) and updates them, then broadcasts them; updates equal the unsharded ones bit for bit on "
           "2 ranks, the checkpoint is the one unsharded file (any world size resumes it); no effect on 1 rank")
      .key("amp", &RunConfig::amp,
           "`auto`: bf16 autocast of the forward passes on CUDA, fp32 on CPU; `bf16`: bf16 autocast on any device "
           "(CPU autocast is for checks: slow on CPUs without bf16 units); `off`: fp32. Losses, fed-back logits and "
           "click sampling stay fp32 (`sam/amp.h`)",
           one_of({"auto", "off", "bf16"}))
      .key("max_nonfinite", &RunConfig::max_nonfinite,
           "stop (checkpoint, exit status 2) after this many non-finite steps in a row; a non-finite loss on any "
           "rank skips the step on all; <= 1 stops at the first")
      .key("log_every", &RunConfig::log_every,
           "a train.log / metrics.jsonl line every N steps and at the last step (values < 1 become 1)")
      .key("val_every", &RunConfig::val_every,
           "validate every N steps, and at the end if the last step was not one; 0 = only at the end; nothing "
           "without `data.val`",
           at_least(0))
      .key("val_at_start", &RunConfig::val_at_start,
           "also validate the starting weights before the first step of a new run (a `val` line at step 0: the "
           "baseline a fine-tuning run is measured against); nothing without `data.val`")
      .key("ckpt_every", &RunConfig::ckpt_every,
           "write checkpoint.pth every N steps; 0 = only at the end (one is always written at the end or when "
           "stopping)",
           at_least(0))
      .key("time_limit_min", &RunConfig::time_limit_min,
           "stop after the step that reaches this many minutes of this process's training loop (then checkpoint, "
           "validation, model.pth as at a normal end; exit 0); 0 = no limit",
           at_least(0))
      .key("ema_decay", &RunConfig::ema_decay,
           "keep an exponential moving average of the weights with this decay (rank 0; model.pth and `sam_train "
           "export` hold it, see docs/TRAINING.md); 0 = none",
           in_range_open_hi(0, 1))
      .key("freeze", &RunConfig::freeze,
           "parameter-name patterns (`*` any characters, `?` one; names as in the state dict) kept fixed: no "
           "gradient, no optimiser state, no all-reduce, e.g. `[\"image_encoder.*\"]`; a pattern that matches "
           "nothing is an error")
      .key("trainable", &RunConfig::trainable,
           "when not empty, only parameters matching one of these patterns train (e.g. `[\"mask_decoder.*\"]`); "
           "`freeze` applies on top")
      .key("tensorboard", &RunConfig::tensorboard,
           "also write the numbers of metrics.jsonl (training and validation lines) as TensorBoard scalars, "
           "`events.out.tfevents.*` in the run directory (`tensorboard --logdir runs/`; docs/TRAINING.md)");
  s.optim
      .key("lr", &OptimOptions::lr,
           "base learning rate (after warmup, before decay; scaled per group by `layer_decay`)", at_least(0))
      .key_as(
          "betas", [](const OptimOptions& o) { return nlohmann::json{o.beta1, o.beta2}; },
          [](const nlohmann::json& v, OptimOptions& o) {
            const auto b = v.get<std::vector<double>>();
            if (b.size() != 2) throw std::invalid_argument("needs two values, got " + v.dump());
            o.beta1 = b[0];
            o.beta2 = b[1];
          },
          "Adam beta1, beta2; exactly two values", in_range_open_hi(0, 1))
      .key("eps", &OptimOptions::eps, "Adam epsilon", above(0))
      .key("weight_decay", &OptimOptions::weight_decay,
           "decoupled weight decay; none on biases, norms and position tables", at_least(0))
      .key("layer_decay", &OptimOptions::layer_decay,
           "lr scale ld^(depth − i) for encoder block i, ld^(depth + 1) for patch and position embedding, 1 for the "
           "rest (neck, prompt encoder, decoder; a `tiny_vit` encoder's layers); 1 = off",
           in_range_open_lo(0, 1))
      .key("warmup_iters", &OptimOptions::warmup_iters,
           "steps of linear warmup: lr × (f + (1 − f)(step + 1) / warmup_iters) with f = warmup_start_factor; 0 = "
           "none",
           at_least(0))
      .key("warmup_start_factor", &OptimOptions::warmup_start_factor, "f above: warmup starts near f × lr",
           in_range(0, 1))
      .key("decay_steps", &OptimOptions::decay_steps,
           "0-based steps from which the lr is multiplied by `decay_factor` once more each; `[]` = no decay",
           at_least(0))
      .key("decay_factor", &OptimOptions::decay_factor, "lr multiplier at each decay step", at_least(0))
      .key("schedule", &OptimOptions::schedule,
           "after warmup: `step` (× `decay_factor` at each of `decay_steps`) or `cosine` (half a cosine from lr to "
           "`min_lr_factor` × lr at `train.iterations`, MAE's; `decay_steps` unused)",
           one_of({"step", "cosine"}))
      .key("min_lr_factor", &OptimOptions::min_lr_factor, "the cosine schedule's last lr as a share of `lr`",
           in_range(0, 1))
      .key("fused", &OptimOptions::fused,
           "`auto`: libtorch's fused AdamW kernel (`at::_fused_adamw_`, libtorch 2.x) for parameters on a GPU, the "
           "per-tensor update (bit-compatible with `torch.optim.AdamW`) on the CPU; `on`: fused on the CPU too "
           "(libtorch >= 2.4); `off`: per-tensor everywhere",
           one_of({"auto", "on", "off"}));
  s.prompt
      .key("rounds", &PromptSimOptions::rounds, "rounds per mask, the initial point or box included", at_least(1))
      .key("mask_only_rounds", &PromptSimOptions::mask_only_rounds,
           "rounds that feed back only the previous logits, no new click; clamped to [0, rounds − 1]; one is last, "
           "the others go before random point rounds")
      .key("prob_box", &PromptSimOptions::prob_box,
           "probability that a mask's initial prompt is a noisy box rather than a point (sampled per mask)",
           in_range(0, 1))
      .key_as(
          "box_noise",
          [](const PromptSimOptions& o) { return nlohmann::json(o.box_noise == BoxNoise::kGaussian ? "gaussian" : "uniform"); },
          [](const nlohmann::json& v, PromptSimOptions& o) {
            o.box_noise = v.get<std::string>() == "gaussian" ? BoxNoise::kGaussian : BoxNoise::kUniform;
          },
          "`gaussian` (std = box_noise_frac × side, clipped to ±box_noise_max px; the paper) or `uniform` (U(−1, 1) "
          "× min(box_noise_frac × side, box_noise_max); SAM 2)",
          one_of({"gaussian", "uniform"}))
      .key("box_noise_frac", &PromptSimOptions::box_noise_frac,
           "noise scale as a fraction of the box side (width for x, height for y)", at_least(0))
      .key("box_noise_max", &PromptSimOptions::box_noise_max, "noise limit in px of the S × S input frame",
           at_least(0))
      .key("box_multimask", &PromptSimOptions::box_multimask,
           "true: a box alone gets the multimask outputs (`model.num_multimask_outputs`, 3); false: one mask (SAM "
           "2); points always start multimask");
  s.loss.key("focal", &LossConfig::focal, "weight of the sigmoid focal loss", at_least(0))
      .key("dice", &LossConfig::dice, "weight of the dice loss", at_least(0))
      .key("iou", &LossConfig::iou, "weight of the IoU head's mean-squared error against the actual IoU", at_least(0))
      .key("focal_alpha", &LossConfig::focal_alpha, "focal alpha; < 0 disables the alpha weighting")
      .key("focal_gamma", &LossConfig::focal_gamma, "focal gamma", at_least(0))
      .key("supervise_all_iou", &LossConfig::supervise_all_iou,
           "true: the IoU head's squared error on every candidate (mean over the 3), as SAM 2's "
           "`supervise_all_iou`; false: only on the supervised (lowest-loss) candidate, the paper's wording. "
           "Single-mask rounds are the same either way")
      .key("resolution", &LossConfig::resolution,
           "`full`: logits upsampled to S × S against the full mask (SAM 2); `low`: 4G × 4G logits against the "
           "area-downsampled mask",
           one_of({"full", "low"}));
  s.distill
      .key("teacher_arch", &DistillConfig::teacher_arch,
           "the teacher's architecture (as `model.arch`: preset or file); its input size, embedding grid, prompt "
           "encoder and mask decoder must be the student's (at start)")
      .key("teacher_checkpoint", &DistillConfig::teacher_checkpoint,
           "the teacher's SAM .pth (official or this project's); required with `train.objective: distill`. Its "
           "prompt encoder and mask decoder become the student's, frozen; its encoder runs beside the student's "
           "unless `data.embeddings` holds its embeddings (`sam_data embed` with the teacher's configuration)");
  return s;
}

const Schema& schema() {
  static const Schema s = make_schema();
  return s;
}

// The model section: `arch`, then every architecture key, null = the arch's value.
const char* kArchDoc =
    "`vit_b`, `vit_l`, `vit_h` (`default` = vit_h), or a path (from the working directory) to a .json/.yaml "
    "architecture file holding only the keys below (e.g. `configs/model_tiny.json`)";

}  // namespace

nlohmann::json train_config_defaults() {
  const auto& s = schema();
  const TrainConfig d;
  nlohmann::json model = {{"arch", d.model_arch}};
  for (const auto& k : model_config_schema().keys()) model[k] = nullptr;  // null: keep the arch's value
  nlohmann::json doc = s.top.to_json(d);
  doc["model"] = model;
  doc["init"] = s.init.to_json(d.init);
  doc["lora"] = s.lora.to_json(d.lora);
  doc["data"] = s.data.to_json(d.data);
  doc["train"] = s.train.to_json(d.train);
  doc["optim"] = s.optim.to_json(d.optim);
  doc["prompt"] = s.prompt.to_json(d.prompt);
  doc["loss"] = s.loss.to_json(d.loss);
  doc["mae"] = mae_config_schema().to_json(d.mae);
  doc["distill"] = s.distill.to_json(d.distill);
  return doc;
}

const std::vector<std::string>& train_config_sections() {
  static const std::vector<std::string> sections{"top",   "model", "init",   "lora", "data",
                                                 "train", "optim", "prompt", "loss", "mae", "distill"};
  return sections;
}

std::string train_config_markdown(const std::string& section) {
  const auto& s = schema();
  const TrainConfig d;
  if (section == "top") return cfg::markdown_table(s.top.docs(d));
  if (section == "init") return cfg::markdown_table(s.init.docs(d.init));
  if (section == "lora") return cfg::markdown_table(s.lora.docs(d.lora));
  if (section == "data") return cfg::markdown_table(s.data.docs(d.data));
  if (section == "train") return cfg::markdown_table(s.train.docs(d.train));
  if (section == "optim") return cfg::markdown_table(s.optim.docs(d.optim));
  if (section == "prompt") return cfg::markdown_table(s.prompt.docs(d.prompt));
  if (section == "loss") return cfg::markdown_table(s.loss.docs(d.loss));
  if (section == "mae") return cfg::markdown_table(mae_config_schema().docs(d.mae));
  if (section == "distill") return cfg::markdown_table(s.distill.docs(d.distill));
  if (section == "model") {
    // Defaults: null, with vit_b's value and vit_l's / vit_h's where they differ.
    const auto b = model_config_to_json(model_config_preset("vit_b"));
    const auto l = model_config_to_json(model_config_preset("vit_l"));
    const auto h = model_config_to_json(model_config_preset("vit_h"));
    std::vector<cfg::KeyDoc> rows{{"model.arch", cfg::doc_value(d.model_arch), "", kArchDoc}};
    for (const auto& k : model_config_schema().docs()) {
      std::string shown = cfg::doc_value(b[k.key]);
      if (l[k.key] != b[k.key] || h[k.key] != b[k.key])
        shown += "; l " + cfg::doc_value(l[k.key]) + ", h " + cfg::doc_value(h[k.key]);
      rows.push_back({"model." + k.key, "null (" + shown + ")", "", k.doc});
    }
    return cfg::markdown_table(rows);
  }
  throw std::invalid_argument("train_config_markdown: no section '" + section +
                              "' (top, model, init, lora, data, train, optim, prompt, loss, mae, distill)");
}

TrainConfig train_config_from_json(const nlohmann::json& doc, const std::string& where) {
  nlohmann::json d = train_config_defaults();
  // Run folders written before the test hook left the schema hold train.inject_nonfinite: [] in
  // their resolved config.json: read them as they are. Anything else in it is refused (the hook is
  // $SAM_TRAIN_NONFINITE_AT now, train/run_state.h).
  if (doc.contains("train") && doc["train"].is_object() && doc["train"].contains("inject_nonfinite")) {
    const auto& v = doc["train"]["inject_nonfinite"];
    if (!(v.is_array() && v.empty()))
      throw std::invalid_argument(where + ": train.inject_nonfinite is no longer a configuration key (the "
                                  "tests' fault injection is $SAM_TRAIN_NONFINITE_AT)");
    nlohmann::json old = doc;
    old["train"].erase("inject_nonfinite");
    cfg::merge_strict(d, old, where);
  } else {
    cfg::merge_strict(d, doc, where);
  }
  const auto& s = schema();
  TrainConfig c;
  c.resolved = d;
  s.top.read(nlohmann::json{{"run_dir", d.at("run_dir")}}, c, where);

  // Model: an arch (preset or file) with single fields overridden.
  const auto& m = d.at("model");
  cfg::read(m, "arch", c.model_arch, where + " [model]");
  c.model = model_config_resolve(c.model_arch);
  nlohmann::json mj = model_config_to_json(c.model);
  for (auto it = m.begin(); it != m.end(); ++it)
    if (it.key() != "arch" && !it.value().is_null()) mj[it.key()] = it.value();
  c.model = model_config_from_json(mj, where + " [model]");

  s.init.read(d.at("init"), c.init, where);
  if (c.init.kind != "random" && c.init.checkpoint.empty())
    throw std::invalid_argument(where + ": init.kind " + c.init.kind + " needs init.checkpoint");
  s.lora.read(d.at("lora"), c.lora, where);
  if (c.lora.rank > 0 && c.lora.targets.empty())
    throw std::invalid_argument(where + ": lora.rank " + std::to_string(c.lora.rank) +
                                " needs lora.targets (Linear-module name patterns)");
  s.data.read(d.at("data"), c.data, where);
  if (!c.data.weights.empty() && c.data.weights.size() != c.data.train.size())
    throw std::invalid_argument(where + ": data.weights has " + std::to_string(c.data.weights.size()) +
                                " values for " + std::to_string(c.data.train.size()) +
                                " data.train entries (one each, or [] for 1 each)");
  for (double w : c.data.weights)
    if (!(w > 0) || !std::isfinite(w))
      throw std::invalid_argument(where + ": data.weights must be positive, got " + std::to_string(w));
  if (!c.data.embeddings.empty() && (c.data.large_scale_jitter || c.data.hflip))
    throw std::invalid_argument(where + ": data.embeddings holds the embeddings of the unaugmented images: "
                                "data.large_scale_jitter and data.hflip must be false with it");
  s.train.read(d.at("train"), c.train, where);
  if (c.train.log_every < 1) c.train.log_every = 1;
  s.optim.read(d.at("optim"), c.optim, where);
  s.prompt.read(d.at("prompt"), c.prompt, where);
  s.loss.read(d.at("loss"), c.loss, where);
  mae_config_schema().read(d.at("mae"), c.mae, where);
  s.distill.read(d.at("distill"), c.distill, where);
  // What the objectives other than sam refuse, naming the key.
  const auto refuse = [&](bool bad, const std::string& what) {
    if (bad) throw std::invalid_argument(where + ": train.objective " + c.train.objective + ": " + what);
  };
  if (c.train.objective == "distill") {
    refuse(c.distill.teacher_checkpoint.empty(), "distill.teacher_checkpoint is required (the teacher's SAM .pth)");
    refuse(c.lora.rank > 0, "lora.rank must be 0 (the student's encoder trains in full)");
    // The student answers the teacher's decoder: the same input, grid and everything after the encoder.
    const ModelConfig t = model_config_resolve(c.distill.teacher_arch);
    const nlohmann::json tj = model_config_to_json(t), sj = model_config_to_json(c.model);
    for (const char* k : {"img_size", "prompt_dim", "mask_in_chans", "decoder_depth", "decoder_mlp_dim", "decoder_heads",
                          "attention_downsample_rate", "num_multimask_outputs", "iou_head_depth", "iou_head_hidden_dim",
                          "pixel_mean", "pixel_std"})
      refuse(tj.at(k) != sj.at(k), std::string("model.") + k + " is " + sj.at(k).dump() + ", the teacher's (" +
                                       c.distill.teacher_arch + ") " + tj.at(k).dump() + ": they must be equal");
    refuse(t.grid_size() != c.model.grid_size(), "the student's embedding grid " + std::to_string(c.model.grid_size()) +
                                                     " is not the teacher's " + std::to_string(t.grid_size()) +
                                                     " (model.img_size / model.patch_size)");
  }
  if (c.data.random_resized_crop && c.train.objective != "mae")
    throw std::invalid_argument(where + ": data.random_resized_crop is for train.objective mae (masks would be "
                                "cut and stretched)");
  if (c.train.objective == "mae") {
    refuse(c.lora.rank > 0, "lora.rank must be 0 (adapters are for fine-tuning a SAM model)");
    refuse(!c.data.embeddings.empty(), "data.embeddings is for SAM decoder training");
    refuse(!c.data.val.empty(), "data.val is SAM's 1-click validation; leave it empty");
    refuse(c.init.kind != "random", "init.kind must be random (the pre-training starts from scratch; resume by "
                                    "the run directory's checkpoint.pth)");
    refuse(c.data.random_resized_crop && c.data.large_scale_jitter, "data.random_resized_crop and "
                                                                   "data.large_scale_jitter exclude each other");
    refuse(c.model.embed_dim % 4 != 0, "model.embed_dim must be divisible by 4 (sine-cosine positions)");
    refuse(c.model.encoder != "vit", "the masked autoencoder is a ViT: model.encoder must be vit");
  }
  if (c.init.kind == "mae" && c.model.encoder != "vit")
    throw std::invalid_argument(where + ": init.kind mae loads a ViT encoder; model.encoder is " + c.model.encoder);
  return c;
}

TrainConfig load_train_config(const std::string& path, const std::vector<std::string>& overrides) {
  nlohmann::json doc = train_config_defaults();
  if (!path.empty()) cfg::merge_strict(doc, cfg::load_file(path), path);
  cfg::apply_overrides(doc, overrides);
  return train_config_from_json(doc, path.empty() ? "config" : path);
}

}  // namespace sam::train
