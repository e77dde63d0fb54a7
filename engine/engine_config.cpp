#include "engine/engine_config.h"

#include <stdexcept>

#include "data/config_file.h"
#include "engine/amg/amg_io.h"

namespace sam::engine {

nlohmann::json engine_config_defaults() {
  // The auto stage's generator: the paper's SA-1B settings (appendix B), not the reference's
  // SamAutomaticMaskGenerator defaults.
  amg::AmgOptions gen;
  gen.points_per_side = 32;
  gen.crop_n_layers = 2;
  gen.crop_n_points_downscale_factor = 2;
  gen.pred_iou_thresh = 0.88;
  gen.stability_score_thresh = 0.95;
  gen.box_nms_thresh = 0.7;
  gen.min_mask_region_area = 100;
  gen.max_area_frac = 0.95;
  nlohmann::json genj = amg::amg_options_to_json(gen);
  genj.erase("point_grids");
  const AnnotatorOptions a;
  const DetectorOptions d;
  return {
      {"out_dir", "runs/engine"},
      {"data", ""},
      {"model", {{"arch", "configs/model_tiny.json"}, {"checkpoint", ""}}},
      {"device", "cpu"},
      {"threads", 0},
      {"seed", 0},
      {"match_iou", 0.9},
      {"annotator",
       {{"target_iou", a.target_iou},
        {"max_clicks", a.max_clicks},
        {"seconds_first_click", a.seconds_first_click},
        {"seconds_per_click", a.seconds_per_click},
        {"seconds_budget", a.seconds_budget},
        {"keep_iou", a.keep_iou},
        {"click_jitter", a.click_jitter},
        {"brush_seconds", a.brush_seconds},
        {"min_object_area", a.min_object_area},
        {"max_objects_per_image", a.max_objects_per_image}}},
      {"manual", {{"images", 8}, {"retrain_rounds", 2}}},
      {"semi",
       {{"images", 8},
        {"retrain_rounds", 1},
        {"prefill_iou_thresh", 0.8},
        {"prefill_nms_thresh", 0.7},
        {"detector",
         {{"hidden", d.hidden},
          {"epochs", d.epochs},
          {"lr", d.lr},
          {"weight_decay", d.weight_decay},
          {"score_thresh", d.score_thresh},
          {"nms_thresh", d.nms_thresh},
          {"max_boxes", d.max_boxes},
          {"center_radius", d.center_radius}}}}},
      {"auto", {{"images", 0}, {"shard_images", 1000}, {"keep_folder", false}, {"generator", genj}}},
      {"retrain",
       {{"config", ""},
        {"iterations", 20},
        {"batch_size", 1},
        {"max_masks", 8},
        {"lr", 1e-4},
        {"warmup_iters", 2},
        {"prompt_rounds", 4},
        {"minutes", 0.0},
        {"extra_data", nlohmann::json::array()},
        {"overrides", nlohmann::json::array()}}},
  };
}

EngineConfig engine_config_from_json(const nlohmann::json& doc, const std::string& where) {
  nlohmann::json d = engine_config_defaults();
  cfg::merge_strict(d, doc, where);
  EngineConfig c;
  c.resolved = d;
  auto w = [&](const std::string& s) { return where + " [" + s + "]"; };
  cfg::read(d, "out_dir", c.out_dir, where);
  cfg::read(d, "data", c.data, where);
  cfg::read(d.at("model"), "arch", c.model_arch, w("model"));
  cfg::read(d.at("model"), "checkpoint", c.checkpoint, w("model"));
  cfg::read(d, "device", c.device, where);
  cfg::read(d, "threads", c.threads, where);
  cfg::read(d, "seed", c.seed, where);
  cfg::read(d, "match_iou", c.match_iou, where);

  const auto& an = d.at("annotator");
  auto& a = c.annotator;
  cfg::read(an, "target_iou", a.target_iou, w("annotator"));
  cfg::read(an, "max_clicks", a.max_clicks, w("annotator"));
  cfg::read(an, "seconds_first_click", a.seconds_first_click, w("annotator"));
  cfg::read(an, "seconds_per_click", a.seconds_per_click, w("annotator"));
  cfg::read(an, "seconds_budget", a.seconds_budget, w("annotator"));
  cfg::read(an, "keep_iou", a.keep_iou, w("annotator"));
  cfg::read(an, "click_jitter", a.click_jitter, w("annotator"));
  cfg::read(an, "brush_seconds", a.brush_seconds, w("annotator"));
  cfg::read(an, "min_object_area", a.min_object_area, w("annotator"));
  cfg::read(an, "max_objects_per_image", a.max_objects_per_image, w("annotator"));
  a.seed = c.seed;

  cfg::read(d.at("manual"), "images", c.manual.images, w("manual"));
  cfg::read(d.at("manual"), "retrain_rounds", c.manual.retrain_rounds, w("manual"));

  const auto& se = d.at("semi");
  cfg::read(se, "images", c.semi.images, w("semi"));
  cfg::read(se, "retrain_rounds", c.semi.retrain_rounds, w("semi"));
  cfg::read(se, "prefill_iou_thresh", c.semi.prefill_iou_thresh, w("semi"));
  cfg::read(se, "prefill_nms_thresh", c.semi.prefill_nms_thresh, w("semi"));
  const auto& de = se.at("detector");
  auto& o = c.semi.detector;
  cfg::read(de, "hidden", o.hidden, w("semi.detector"));
  cfg::read(de, "epochs", o.epochs, w("semi.detector"));
  cfg::read(de, "lr", o.lr, w("semi.detector"));
  cfg::read(de, "weight_decay", o.weight_decay, w("semi.detector"));
  cfg::read(de, "score_thresh", o.score_thresh, w("semi.detector"));
  cfg::read(de, "nms_thresh", o.nms_thresh, w("semi.detector"));
  cfg::read(de, "max_boxes", o.max_boxes, w("semi.detector"));
  cfg::read(de, "center_radius", o.center_radius, w("semi.detector"));
  o.seed = c.seed;

  cfg::read(d.at("auto"), "images", c.autom.images, w("auto"));
  cfg::read(d.at("auto"), "shard_images", c.autom.shard_images, w("auto"));
  cfg::read(d.at("auto"), "keep_folder", c.autom.keep_folder, w("auto"));
  c.autom.generator = amg::amg_options_from_json(d.at("auto").at("generator"), w("auto.generator"));

  const auto& re = d.at("retrain");
  auto& r = c.retrain;
  cfg::read(re, "config", r.config, w("retrain"));
  cfg::read(re, "iterations", r.iterations, w("retrain"));
  cfg::read(re, "batch_size", r.batch_size, w("retrain"));
  cfg::read(re, "max_masks", r.max_masks, w("retrain"));
  cfg::read(re, "lr", r.lr, w("retrain"));
  cfg::read(re, "warmup_iters", r.warmup_iters, w("retrain"));
  cfg::read(re, "prompt_rounds", r.prompt_rounds, w("retrain"));
  cfg::read(re, "minutes", r.minutes, w("retrain"));
  cfg::read(re, "extra_data", r.extra_data, w("retrain"));
  cfg::read(re, "overrides", r.overrides, w("retrain"));

  // Validation: every message names the key.
  auto bad = [&](const std::string& key, const std::string& why) {
    throw std::invalid_argument(where + ": " + key + " " + why);
  };
  if (c.out_dir.empty()) bad("out_dir", "must not be empty");
  if (c.threads < 0) bad("threads", "must be >= 0");
  if (!(c.match_iou > 0 && c.match_iou <= 1)) bad("match_iou", "must be in (0, 1]");
  if (c.manual.images < 0) bad("manual.images", "must be >= 0");
  if (c.manual.retrain_rounds < 0) bad("manual.retrain_rounds", "must be >= 0");
  if (c.semi.images < 0) bad("semi.images", "must be >= 0");
  if (c.semi.retrain_rounds < 0) bad("semi.retrain_rounds", "must be >= 0");
  if (c.semi.prefill_iou_thresh < 0 || c.semi.prefill_iou_thresh > 1)
    bad("semi.prefill_iou_thresh", "must be in [0, 1]");
  if (c.semi.prefill_nms_thresh <= 0 || c.semi.prefill_nms_thresh > 1)
    bad("semi.prefill_nms_thresh", "must be in (0, 1]");
  if (c.autom.images < 0) bad("auto.images", "must be >= 0");
  if (c.autom.shard_images < 0) bad("auto.shard_images", "must be >= 0 (0: no shards)");
  if (r.iterations < 1) bad("retrain.iterations", "must be >= 1");
  if (r.batch_size < 1) bad("retrain.batch_size", "must be >= 1");
  if (r.max_masks < 1) bad("retrain.max_masks", "must be >= 1");
  if (!(r.lr > 0)) bad("retrain.lr", "must be > 0");
  if (r.warmup_iters < 0) bad("retrain.warmup_iters", "must be >= 0");
  if (r.prompt_rounds < 1) bad("retrain.prompt_rounds", "must be >= 1");
  if (!(r.minutes >= 0)) bad("retrain.minutes", "must be >= 0");
  try {
    a.validate();
    o.validate();
    c.autom.generator.validate();
  } catch (const std::invalid_argument& e) {
    throw std::invalid_argument(where + ": " + e.what());
  }
  return c;
}

EngineConfig load_engine_config(const std::string& path,
                                const std::vector<std::string>& overrides) {
  nlohmann::json doc = engine_config_defaults();
  if (!path.empty()) cfg::merge_strict(doc, cfg::load_file(path), path);
  cfg::apply_overrides(doc, overrides);
  return engine_config_from_json(doc, path.empty() ? "config" : path);
}

}  // namespace sam::engine
