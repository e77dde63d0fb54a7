#include "engine/engine_config.h"

#include <stdexcept>

#include "data/config_file.h"
#include "data/config_schema.h"
#include "sam/amg/amg_io.h"

namespace sam::engine {

amg::AmgOptions sa1b_generator_options() {
  amg::AmgOptions gen;
  gen.points_per_side = 32;
  gen.crop_n_layers = 2;
  gen.crop_n_points_downscale_factor = 2;
  gen.pred_iou_thresh = 0.88;
  gen.stability_score_thresh = 0.95;
  gen.box_nms_thresh = 0.7;
  gen.min_mask_region_area = 100;
  gen.max_area_frac = 0.95;
  return gen;
}

namespace {

// Each key of the engine's configuration, once (data/config_schema.h): the struct member holds its
// type and default, the line its name, what it may hold and its doc. docs/ENGINE.md's tables are
// these lines (engine_config_markdown; tests/engine/test_engine_config.cpp compares them). The
// generator's keys are amg::amg_options_schema()'s.
struct Schema {
  cfg::Section<EngineConfig> top{""};
  cfg::Section<EngineConfig> model{"model"};
  cfg::Section<AnnotatorOptions> annotator{"annotator"};
  cfg::Section<ManualConfig> manual{"manual"};
  cfg::Section<SemiConfig> semi{"semi"};
  cfg::Section<DetectorOptions> detector{"semi.detector"};
  cfg::Section<AutoConfig> autom{"auto"};
  cfg::Section<RetrainConfig> retrain{"retrain"};
};

Schema make_schema() {
  using cfg::above;
  using cfg::at_least;
  using cfg::in_range;
  using cfg::in_range_open_lo;
  Schema s;
  s.top.key("out_dir", &EngineConfig::out_dir, "output folder: one sub-folder per stage (the layout above)")
      .key("data", &EngineConfig::data,
           "dataset spec of the images (`data/dataset.h`: `sa1b:DIR`, `coco:JSON:DIR`, `folder:DIR`, ...); their "
           "ground-truth masks play the objects the simulated annotator sees")
      .key("device", &EngineConfig::device, "torch device string (`cpu`, `cuda`, `cuda:N`)")
      .key("threads", &EngineConfig::threads, "torch intra-op threads; 0 = all cores", at_least(0))
      .key("seed", &EngineConfig::seed, "seeds the annotator's click noise, the detector and the retraining")
      .key("match_iou", &EngineConfig::match_iou, "IoU at which a produced mask matches a ground-truth mask",
           in_range_open_lo(0, 1));
  s.model.key("arch", &EngineConfig::model_arch, "architecture: a preset (`vit_b`, ...) or a .json/.yaml file")
      .key("checkpoint", &EngineConfig::checkpoint, "starting weights (.pth); `\"\"` = random initialisation");
  s.annotator
      .key("target_iou", &AnnotatorOptions::target_iou, "accept the mask at this IoU with the object",
           in_range_open_lo(0, 1))
      .key("max_clicks", &AnnotatorOptions::max_clicks, "never more clicks than this per object", at_least(1))
      .key("seconds_first_click", &AnnotatorOptions::seconds_first_click,
           "modelled seconds to find the object and place the first click", at_least(0))
      .key("seconds_per_click", &AnnotatorOptions::seconds_per_click, "modelled seconds per correction click",
           at_least(0))
      .key("seconds_budget", &AnnotatorOptions::seconds_budget,
           "stop clicking when the next click would pass this many seconds on the object (paper: 30)", above(0))
      .key("keep_iou", &AnnotatorOptions::keep_iou,
           "at the budget, keep the best mask when its IoU is at least this", in_range(0, 1))
      .key("click_jitter", &AnnotatorOptions::click_jitter, "std of the annotator's click imprecision in px",
           at_least(0))
      .key("brush_seconds", &AnnotatorOptions::brush_seconds,
           "> 0: what clicks could not bring to the target is finished with the brush at this many extra seconds "
           "(the mask becomes the object); 0: the object is given up",
           at_least(0))
      .key("min_object_area", &AnnotatorOptions::min_object_area, "smaller objects (px) are not annotated",
           at_least(1))
      .key("max_objects_per_image", &AnnotatorOptions::max_objects_per_image,
           "annotate at most this many objects per image, largest first; 0 = every object", at_least(0));
  s.manual.key("images", &ManualConfig::images, "the first N images of the dataset", at_least(0))
      .key("retrain_rounds", &ManualConfig::retrain_rounds,
           "retrain after every images / retrain_rounds images (the last round after the last image)", at_least(0));
  s.semi.key("images", &SemiConfig::images, "the next N images after the manual stage's", at_least(0))
      .key("retrain_rounds", &SemiConfig::retrain_rounds, "retraining rounds during the stage", at_least(0))
      .key("prefill_iou_thresh", &SemiConfig::prefill_iou_thresh,
           "pre-fill a detector box's SAM mask when its predicted IoU is at least this", in_range(0, 1))
      .key("prefill_nms_thresh", &SemiConfig::prefill_nms_thresh,
           "drop a pre-filled mask overlapping a kept one above this mask IoU", in_range_open_lo(0, 1));
  s.detector.key("hidden", &DetectorOptions::hidden, "channels of the detector head's two 3x3 conv layers", at_least(1))
      .key("epochs", &DetectorOptions::epochs, "passes over the manual stage's images", at_least(0))
      .key("lr", &DetectorOptions::lr, "AdamW learning rate", above(0))
      .key("weight_decay", &DetectorOptions::weight_decay, "AdamW weight decay", at_least(0))
      .key("score_thresh", &DetectorOptions::score_thresh, "keep detections with objectness at least this",
           in_range(0, 1))
      .key("nms_thresh", &DetectorOptions::nms_thresh, "box IoU of the NMS between detections",
           in_range_open_lo(0, 1))
      .key("max_boxes", &DetectorOptions::max_boxes, "at most this many detections per image", at_least(1))
      .key("center_radius", &DetectorOptions::center_radius,
           "grid cells within this many cells of a box centre are positives", at_least(0));
  s.autom.key("images", &AutoConfig::images, "images of the stage; 0 = every image of the dataset", at_least(0))
      .key("shard_images", &AutoConfig::shard_images,
           "images per tar shard of the output (SA-1B's release format, `auto/shards/`); 0 = no shards, the SA-1B "
           "folder only",
           at_least(0))
      .key("keep_folder", &AutoConfig::keep_folder, "keep the loose SA-1B folder (`auto/data/`) after packing it");
  s.retrain
      .key("config", &RetrainConfig::config,
           "the training configuration each round starts from (.yaml/.json; `\"\"` = the trainer's defaults)")
      .key("iterations", &RetrainConfig::iterations, "optimiser steps per round", at_least(1))
      .key("batch_size", &RetrainConfig::batch_size, "images per step", at_least(1))
      .key("max_masks", &RetrainConfig::max_masks, "masks per image per step", at_least(1))
      .key("lr", &RetrainConfig::lr, "learning rate", above(0))
      .key("warmup_iters", &RetrainConfig::warmup_iters, "warmup steps per round", at_least(0))
      .key("prompt_rounds", &RetrainConfig::prompt_rounds,
           "simulated interactive rounds per mask (the paper: 11; the last is mask-only)", at_least(1))
      .key("minutes", &RetrainConfig::minutes,
           "time budget of a round in minutes: it stops at whichever of this and `iterations` comes first; 0 = "
           "`iterations` alone",
           at_least(0))
      .key("extra_data", &RetrainConfig::extra_data,
           "dataset specs trained on beside the stages' annotated masks (e.g. the starting model's own data)")
      .key("overrides", &RetrainConfig::overrides, "more training-config `key=value` overrides, applied last")
      .key("eval_data", &RetrainConfig::eval_data,
           "a fixed held-out set (dataset spec) on which the manual and semi stages evaluate every model round (the "
           "starting model and each retrained one; `sam_eval points`' protocol): the stage reports' held-out mIoU by "
           "round; `\"\"` = none")
      .key("eval_clicks", &RetrainConfig::eval_clicks, "clicks per object of that evaluation", at_least(1));
  return s;
}

const Schema& schema() {
  static const Schema s = make_schema();
  return s;
}

}  // namespace

nlohmann::json engine_config_defaults() {
  const auto& s = schema();
  const EngineConfig d;
  nlohmann::json doc = s.top.to_json(d);
  doc["model"] = s.model.to_json(d);
  doc["annotator"] = s.annotator.to_json(d.annotator);
  doc["manual"] = s.manual.to_json(d.manual);
  doc["semi"] = s.semi.to_json(d.semi);
  doc["semi"]["detector"] = s.detector.to_json(d.semi.detector);
  doc["auto"] = s.autom.to_json(d.autom);
  doc["auto"]["generator"] = amg::amg_options_schema().to_json(d.autom.generator);  // point_grids [] included
  doc["retrain"] = s.retrain.to_json(d.retrain);
  return doc;
}

const std::vector<std::string>& engine_config_sections() {
  static const std::vector<std::string> sections{"top",  "model",          "annotator", "manual", "semi", "semi.detector",
                                                 "auto", "auto.generator", "retrain"};
  return sections;
}

std::string engine_config_markdown(const std::string& section) {
  const auto& s = schema();
  const EngineConfig d;
  if (section == "top") return cfg::markdown_table(s.top.docs(d));
  if (section == "model") return cfg::markdown_table(s.model.docs(d));
  if (section == "annotator") return cfg::markdown_table(s.annotator.docs(d.annotator));
  if (section == "manual") return cfg::markdown_table(s.manual.docs(d.manual));
  if (section == "semi") return cfg::markdown_table(s.semi.docs(d.semi));
  if (section == "semi.detector") return cfg::markdown_table(s.detector.docs(d.semi.detector));
  if (section == "auto") return cfg::markdown_table(s.autom.docs(d.autom));
  if (section == "auto.generator") {
    auto rows = amg::amg_options_schema().docs(d.autom.generator);
    for (auto& r : rows) r.key = "auto." + r.key;
    return cfg::markdown_table(rows);
  }
  if (section == "retrain") return cfg::markdown_table(s.retrain.docs(d.retrain));
  throw std::invalid_argument("engine_config_markdown: no section '" + section +
                              "' (top, model, annotator, manual, semi, semi.detector, auto, auto.generator, retrain)");
}

EngineConfig engine_config_from_json(const nlohmann::json& doc, const std::string& where) {
  nlohmann::json d = engine_config_defaults();
  cfg::merge_strict(d, doc, where);
  const auto& s = schema();
  EngineConfig c;
  c.resolved = d;
  nlohmann::json top = d;
  for (const char* sub : {"model", "annotator", "manual", "semi", "auto", "retrain"}) top.erase(sub);
  s.top.read(top, c, where);
  s.model.read(d.at("model"), c, where);
  s.annotator.read(d.at("annotator"), c.annotator, where);
  c.annotator.seed = c.seed;
  s.manual.read(d.at("manual"), c.manual, where);
  nlohmann::json semi = d.at("semi");
  semi.erase("detector");
  s.semi.read(semi, c.semi, where);
  s.detector.read(d.at("semi").at("detector"), c.semi.detector, where);
  c.semi.detector.seed = c.seed;
  nlohmann::json au = d.at("auto");
  au.erase("generator");
  s.autom.read(au, c.autom, where);
  c.autom.generator = amg::amg_options_from_json(d.at("auto").at("generator"), where + " [auto.generator]");
  s.retrain.read(d.at("retrain"), c.retrain, where);
  if (c.out_dir.empty()) throw std::invalid_argument(where + ": out_dir must not be empty");
  try {
    c.annotator.validate();
    c.semi.detector.validate();
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
