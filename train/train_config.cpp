#include "train/train_config.h"

#include "data/config_file.h"

namespace sam::train {

nlohmann::json train_config_defaults() {
  nlohmann::json model = {{"arch", "vit_b"}};
  for (const auto& k : model_config_keys()) model[k] = nullptr;  // null: keep the arch's value
  return {
      {"run_dir", "runs/default"},
      {"model", model},
      {"init", {{"kind", "random"}, {"checkpoint", ""}}},
      {"data",
       {{"train", nlohmann::json::array()},
        {"val", ""},
        {"val_max_samples", 100},
        {"max_masks", 64},
        {"max_mask_area_frac", 0.9},
        {"min_mask_area_frac", 0.0},
        {"large_scale_jitter", false},
        {"lsj_min", 0.1},
        {"lsj_max", 2.0},
        {"hflip", false},
        {"workers", 2},
        {"prefetch", 4}}},
      {"train",
       {{"iterations", 90000},
        {"batch_size", 1},
        {"grad_accum", 1},
        {"seed", 0},
        {"device", "cpu"},
        {"dist_backend", "auto"},
        {"threads", 0},
        {"clip_grad_norm", 0.0},
        {"activation_checkpointing", false},
        {"amp", "auto"},
        {"max_nonfinite", 10},
        {"log_every", 10},
        {"val_every", 500},
        {"ckpt_every", 500},
        {"time_limit_min", 0.0},
        {"ema_decay", 0.0},
        {"tensorboard", true}}},
      {"optim",
       {{"lr", 8e-4},
        {"betas", {0.9, 0.999}},
        {"eps", 1e-8},
        {"weight_decay", 0.1},
        {"layer_decay", 0.8},
        {"warmup_iters", 250},
        {"warmup_start_factor", 0.0},
        {"decay_steps", {60000, 86666}},
        {"decay_factor", 0.1},
        {"fused", "auto"}}},
      {"prompt",
       {{"rounds", 11},
        {"mask_only_rounds", 2},
        {"prob_box", 0.5},
        {"box_noise", "gaussian"},
        {"box_noise_frac", 0.1},
        {"box_noise_max", 20.0},
        {"box_multimask", true}}},
      {"loss",
       {{"focal", 20.0},
        {"dice", 1.0},
        {"iou", 1.0},
        {"focal_alpha", 0.25},
        {"focal_gamma", 2.0},
        {"supervise_all_iou", false},
        {"resolution", "full"}}},
  };
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
  TrainConfig c;
  c.resolved = d;
  auto sect = [&](const char* name) -> const nlohmann::json& { return d.at(name); };
  auto w = [&](const char* s) { return where + " [" + s + "]"; };
  cfg::read(d, "run_dir", c.run_dir, where);

  // Model: an arch (preset or file) with single fields overridden.
  const auto& m = sect("model");
  cfg::read(m, "arch", c.model_arch, w("model"));
  c.model = model_config_resolve(c.model_arch);
  nlohmann::json mj = model_config_to_json(c.model);
  for (auto it = m.begin(); it != m.end(); ++it)
    if (it.key() != "arch" && !it.value().is_null()) mj[it.key()] = it.value();
  c.model = model_config_from_json(mj, where + " [model]");

  const auto& in = sect("init");
  cfg::read(in, "kind", c.init.kind, w("init"));
  cfg::read(in, "checkpoint", c.init.checkpoint, w("init"));
  if (c.init.kind != "random" && c.init.kind != "sam" && c.init.kind != "mae" && c.init.kind != "run")
    throw std::invalid_argument(where + ": init.kind '" + c.init.kind + "' must be random, sam, mae or run");
  if (c.init.kind != "random" && c.init.checkpoint.empty())
    throw std::invalid_argument(where + ": init.kind " + c.init.kind + " needs init.checkpoint");

  const auto& da = sect("data");
  cfg::read(da, "train", c.data.train, w("data"));
  cfg::read(da, "val", c.data.val, w("data"));
  cfg::read(da, "val_max_samples", c.data.val_max_samples, w("data"));
  cfg::read(da, "max_masks", c.data.max_masks, w("data"));
  cfg::read(da, "max_mask_area_frac", c.data.max_mask_area_frac, w("data"));
  cfg::read(da, "min_mask_area_frac", c.data.min_mask_area_frac, w("data"));
  cfg::read(da, "large_scale_jitter", c.data.large_scale_jitter, w("data"));
  cfg::read(da, "lsj_min", c.data.lsj_min, w("data"));
  cfg::read(da, "lsj_max", c.data.lsj_max, w("data"));
  cfg::read(da, "hflip", c.data.hflip, w("data"));
  cfg::read(da, "workers", c.data.workers, w("data"));
  cfg::read(da, "prefetch", c.data.prefetch, w("data"));
  if (c.data.max_masks < 1) throw std::invalid_argument(where + ": data.max_masks must be >= 1");

  const auto& tr = sect("train");
  cfg::read(tr, "iterations", c.train.iterations, w("train"));
  cfg::read(tr, "batch_size", c.train.batch_size, w("train"));
  cfg::read(tr, "grad_accum", c.train.grad_accum, w("train"));
  cfg::read(tr, "seed", c.train.seed, w("train"));
  cfg::read(tr, "device", c.train.device, w("train"));
  cfg::read(tr, "dist_backend", c.train.dist_backend, w("train"));
  if (c.train.dist_backend != "auto" && c.train.dist_backend != "nccl" && c.train.dist_backend != "gloo")
    throw std::invalid_argument(where + ": train.dist_backend must be auto, nccl or gloo");
  cfg::read(tr, "threads", c.train.threads, w("train"));
  cfg::read(tr, "clip_grad_norm", c.train.clip_grad_norm, w("train"));
  cfg::read(tr, "activation_checkpointing", c.train.activation_checkpointing, w("train"));
  cfg::read(tr, "amp", c.train.amp, w("train"));
  cfg::read(tr, "max_nonfinite", c.train.max_nonfinite, w("train"));
  cfg::read(tr, "log_every", c.train.log_every, w("train"));
  cfg::read(tr, "val_every", c.train.val_every, w("train"));
  cfg::read(tr, "ckpt_every", c.train.ckpt_every, w("train"));
  cfg::read(tr, "time_limit_min", c.train.time_limit_min, w("train"));
  cfg::read(tr, "ema_decay", c.train.ema_decay, w("train"));
  if (c.train.ema_decay < 0 || c.train.ema_decay >= 1)
    throw std::invalid_argument(where + ": train.ema_decay must be in [0, 1) (0 = no weight average)");
  cfg::read(tr, "tensorboard", c.train.tensorboard, w("train"));
  if (c.train.batch_size < 1 || c.train.grad_accum < 1 || c.train.iterations < 0)
    throw std::invalid_argument(where + ": train.batch_size and train.grad_accum must be >= 1, iterations >= 0");
  if (c.train.amp != "auto" && c.train.amp != "off" && c.train.amp != "bf16")
    throw std::invalid_argument(where + ": train.amp must be auto, off or bf16");
  if (c.train.log_every < 1) c.train.log_every = 1;

  const auto& op = sect("optim");
  cfg::read(op, "lr", c.optim.lr, w("optim"));
  std::vector<double> betas{c.optim.beta1, c.optim.beta2};
  cfg::read(op, "betas", betas, w("optim"));
  if (betas.size() != 2) throw std::invalid_argument(where + ": optim.betas needs two values");
  c.optim.beta1 = betas[0];
  c.optim.beta2 = betas[1];
  cfg::read(op, "eps", c.optim.eps, w("optim"));
  cfg::read(op, "weight_decay", c.optim.weight_decay, w("optim"));
  cfg::read(op, "layer_decay", c.optim.layer_decay, w("optim"));
  cfg::read(op, "warmup_iters", c.optim.warmup_iters, w("optim"));
  cfg::read(op, "warmup_start_factor", c.optim.warmup_start_factor, w("optim"));
  cfg::read(op, "decay_steps", c.optim.decay_steps, w("optim"));
  cfg::read(op, "decay_factor", c.optim.decay_factor, w("optim"));
  cfg::read(op, "fused", c.optim.fused, w("optim"));
  if (c.optim.fused != "auto" && c.optim.fused != "on" && c.optim.fused != "off")
    throw std::invalid_argument(where + ": optim.fused must be auto, on or off");

  const auto& pr = sect("prompt");
  cfg::read(pr, "rounds", c.prompt.rounds, w("prompt"));
  cfg::read(pr, "mask_only_rounds", c.prompt.mask_only_rounds, w("prompt"));
  cfg::read(pr, "prob_box", c.prompt.prob_box, w("prompt"));
  std::string noise = "gaussian";
  cfg::read(pr, "box_noise", noise, w("prompt"));
  if (noise != "gaussian" && noise != "uniform")
    throw std::invalid_argument(where + ": prompt.box_noise must be gaussian or uniform");
  c.prompt.box_noise = noise == "gaussian" ? BoxNoise::kGaussian : BoxNoise::kUniform;
  cfg::read(pr, "box_noise_frac", c.prompt.box_noise_frac, w("prompt"));
  cfg::read(pr, "box_noise_max", c.prompt.box_noise_max, w("prompt"));
  cfg::read(pr, "box_multimask", c.prompt.box_multimask, w("prompt"));
  if (c.prompt.rounds < 1) throw std::invalid_argument(where + ": prompt.rounds must be >= 1");

  const auto& lo = sect("loss");
  cfg::read(lo, "focal", c.loss.focal, w("loss"));
  cfg::read(lo, "dice", c.loss.dice, w("loss"));
  cfg::read(lo, "iou", c.loss.iou, w("loss"));
  cfg::read(lo, "focal_alpha", c.loss.focal_alpha, w("loss"));
  cfg::read(lo, "focal_gamma", c.loss.focal_gamma, w("loss"));
  cfg::read(lo, "supervise_all_iou", c.loss.supervise_all_iou, w("loss"));
  cfg::read(lo, "resolution", c.loss_resolution, w("loss"));
  if (c.loss_resolution != "full" && c.loss_resolution != "low")
    throw std::invalid_argument(where + ": loss.resolution must be full or low");
  return c;
}

TrainConfig load_train_config(const std::string& path, const std::vector<std::string>& overrides) {
  nlohmann::json doc = train_config_defaults();
  if (!path.empty()) cfg::merge_strict(doc, cfg::load_file(path), path);
  cfg::apply_overrides(doc, overrides);
  return train_config_from_json(doc, path.empty() ? "config" : path);
}

}  // namespace sam::train
