// sam_eval: the zero-shot evaluation suite (paper section 7). Each command prints a table and
// writes a JSON file plus an HTML page with plots next to it (same stem, .html):
//   points     single-point mIoU and interactive curves (GrabCut, Berkeley, DAVIS, COCO)
//   edges      edge detection on BSDS500 (ODS, OIS, AP, R50)
//   proposals  generator masks as object proposals (AR@10/100/1000 by size)
//   instances  box prompts -> mask AP (pycocotools COCOeval, segm)
#include <CLI/CLI.hpp>

#include <fstream>
#include <iostream>

#include "sam/amg/amg_cli.h"
#include "eval/report/eval_report.h"
#include "tools/tool_common.h"

namespace {

struct Common {
  std::string model, checkpoint, out, device = "cpu", resize = "exact";
  bool random_init = false;
  uint64_t seed = 0;
  int threads = 0, workers = 1;
  int64_t max_samples = 0;
};

void add_common(CLI::App* c, Common& o) {
  c->add_option("--model", o.model, "vit_b, vit_l, vit_h or an architecture .json/.yaml")
      ->required();
  c->add_option("--checkpoint", o.checkpoint, "weights (.pth)");
  c->add_flag("--random-init", o.random_init, "no checkpoint: a randomly initialised model");
  c->add_option("--seed", o.seed, "seed of --random-init and of --random-point");
  c->add_option("--out", o.out, "result JSON (an .html page is written next to it)")->required();
  c->add_option("--device", o.device, "cpu or cuda");
  c->add_option("--threads", o.threads, "libtorch CPU threads (0 = all cores)");
  c->add_option("--workers", o.workers, "images evaluated in parallel (one predictor each)");
  c->add_option("--resize", o.resize, "encoder resize: exact (PIL, reference) or fast")
      ->check(CLI::IsMember({"exact", "fast"}));
  c->add_option("--max-samples", o.max_samples, "evaluate only the first N (0 = all)");
}

sam::Sam load_model(const Common& o) {
  if (o.checkpoint.empty() && !o.random_init)
    throw std::invalid_argument("give --checkpoint FILE, or --random-init for a random model");
  if (!o.checkpoint.empty() && o.random_init)
    throw std::invalid_argument("--checkpoint and --random-init exclude each other");
  torch::manual_seed(o.seed);  // before construction: the random initialisation draws from it
  sam::Sam model(sam::model_config_resolve(o.model));
  if (!o.checkpoint.empty()) sam::load_checkpoint(model, o.checkpoint);
  return model;
}

nlohmann::json meta(const std::string& command, const Common& o, nlohmann::json extra) {
  extra["command"] = command;
  extra["model"] = o.model;
  extra["checkpoint"] =
      o.random_init ? "random init, seed " + std::to_string(o.seed) : o.checkpoint;
  extra["device"] = o.device;
  extra["resize"] = o.resize;
  extra["max_samples"] = o.max_samples;
  return extra;
}

void finish(const std::string& text, const Common& o, const nlohmann::json& result,
            const nlohmann::json& m, const std::string& html) {
  std::cout << text;
  const std::string page = sam::eval::write_report(o.out, result, m, html);
  std::cout << "wrote " << o.out << " and " << page << "\n";
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"SAM zero-shot evaluation suite (paper section 7)"};
  sam::tools::add_log_level_option(app);
  app.require_subcommand(1);
  Common c;
  std::string dataset, bsds = "../shared/data/BSDS500", split = "test", save_edges, detections,
                       results_out;
  int clicks = 20;
  bool random_point = false, no_band = false, no_nms = false, multimask = false,
       multimask_all = false;
  double min_score = 0;
  sam::eval::EdgesOptions eo;
  sam::amg::AmgOptions amg;

  auto* pts = app.add_subcommand("points", "single-point mIoU and interactive curves (paper 7.1)");
  add_common(pts, c);
  pts->add_option("--dataset", dataset, "grabcut:DIR, berkeley:DIR, davis:DIR, coco-mval:DIR, pascalvoc:DIR, sbd:DIR, coco:JSON:IMAGES (docs/EVAL.md: the protocols)")
      ->required();
  pts->add_option("--clicks", clicks, "clicks per object (N)");
  pts->add_flag("--random-point", random_point, "first click uniformly random in the object");
  pts->add_flag("--multimask-all", multimask_all,
                "not the paper's protocol: 3 masks at every click, the top-ranked one kept");

  auto* edg = app.add_subcommand("edges", "edge detection on BSDS500 (paper 7.2)");
  add_common(edg, c);
  edg->add_option("--bsds", bsds, "BSDS500 root (images/, png_gt/boundaries/)");
  edg->add_option("--split", split, "test, val or train");
  edg->add_option("--points-per-side", eo.points_per_side, "prompt grid side");
  edg->add_option("--thresholds", eo.bsds.thresholds, "benchmark thresholds");
  edg->add_flag("--no-band", no_band, "keep Sobel responses away from mask boundaries too");
  edg->add_flag("--no-nms", no_nms, "skip edge NMS (the benchmark still thins)");
  edg->add_option("--save-edges", save_edges, "write the edge maps as PNG into this folder");

  auto* prp = app.add_subcommand("proposals", "generator masks as object proposals (paper 7.3)");
  add_common(prp, c);
  prp->add_option("--dataset", dataset, "coco:INSTANCES.json:IMAGE_DIR")->required();
  sam::amg::add_amg_flags(*prp, amg);

  auto* ins = app.add_subcommand("instances", "box prompts -> mask AP (paper 7.4)");
  add_common(ins, c);
  ins->add_option("--dataset", dataset, "coco:INSTANCES.json:IMAGE_DIR")->required();
  ins->add_option("--detections", detections,
                  "COCO results JSON of a detector (default: GT boxes)");
  ins->add_option("--min-score", min_score, "drop detections scoring below this");
  ins->add_flag("--multimask", multimask, "3 masks per box, keep the best-scored (default: 1)");
  ins->add_option("--results-out", results_out, "write the masks as a COCO results JSON");
  CLI11_PARSE(app, argc, argv);

  return sam::tools::run_main("sam_eval", [&]() {
    namespace ev = sam::eval;
    sam::tools::set_threads(c.threads);
    const torch::Device dev = sam::tools::parse_device(c.device);
    const auto resize = c.resize == "fast" ? sam::data::ResizeMode::kFast : sam::data::ResizeMode::kPilExact;
    sam::Sam model = load_model(c);
    if (pts->parsed()) {
      const auto ds = sam::data::make_dataset(dataset);
      ev::PointsOptions o{clicks, random_point, c.seed, c.max_samples, c.workers, resize};
      const auto r = ev::evaluate_points(model, *ds, o, dev, sam::data::log_progress("images"),
                                         ev::PointsProtocol{multimask_all});
      const auto m =
          meta("points", c,
               {{"dataset", dataset},
                {"clicks", clicks},
                {"first_click", random_point ? "random" : "centre"},
                {"later_clicks", multimask_all ? "3 masks, top-ranked" : "single mask (paper)"}});
      finish(ev::points_text(r), c, r.to_json(), m, ev::points_html(r, m));
    } else if (edg->parsed()) {
      eo.boundary_band = !no_band;
      eo.edge_nms = !no_nms;
      eo.max_samples = c.max_samples;
      eo.workers = c.workers;
      eo.resize = resize;
      eo.save_dir = save_edges;
      const auto r = ev::evaluate_edges(model, bsds, split, eo, dev, sam::data::log_progress("images"));
      const auto m = meta("edges", c,
                          {{"bsds", bsds},
                           {"split", split},
                           {"points_per_side", eo.points_per_side},
                           {"boundary_band", eo.boundary_band},
                           {"edge_nms", eo.edge_nms}});
      finish(ev::edges_text(r), c, r.to_json(), m, ev::edges_html(r, m));
    } else if (prp->parsed()) {
      const auto ds = sam::data::make_dataset(dataset);
      amg.resize = resize;
      ev::ProposalsOptions o;
      o.amg = amg;
      o.max_samples = c.max_samples;
      o.workers = c.workers;
      const auto r = ev::evaluate_proposals(model, *ds, o, dev, sam::data::log_progress("images"));
      const auto m = meta("proposals", c,
                          {{"dataset", dataset},
                           {"points_per_side", amg.points_per_side},
                           {"pred_iou_thresh", amg.pred_iou_thresh},
                           {"stability_score_thresh", amg.stability_score_thresh},
                           {"box_nms_thresh", amg.box_nms_thresh},
                           {"crop_n_layers", amg.crop_n_layers}});
      finish(ev::proposals_text(r), c, r.to_json(), m, ev::proposals_html(r, m));
    } else {
      const auto ds = sam::data::make_dataset(dataset);
      ev::InstancesOptions o;
      o.detections = detections;
      o.min_score = min_score;
      o.multimask = multimask;
      o.max_samples = c.max_samples;
      o.workers = c.workers;
      o.resize = resize;
      const auto r = ev::evaluate_instances(model, *ds, o, dev, sam::data::log_progress("images"));
      const auto m = meta("instances", c,
                          {{"dataset", dataset},
                           {"boxes", detections.empty() ? "ground truth" : detections},
                           {"multimask", multimask}});
      if (!results_out.empty()) std::ofstream(results_out) << r.results.dump() << "\n";
      finish(ev::instances_text(r), c, r.to_json(), m, ev::instances_html(r, m));
    }
    return 0;
  });
}
