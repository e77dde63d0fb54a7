#include "engine/engine_context.h"

#include <torch/torch.h>

#include "data/atomic_file.h"
#include "data/log.h"
#include "engine/stage_io.h"

namespace fs = std::filesystem;

namespace sam::engine {

void EngineContext::log(const std::string& s) const {
  if (env.rank == 0 || env.world_size == 1) log::info("[engine] " + s);
}

void EngineContext::ensure_model() {
  if (model) return;
  torch::manual_seed(cfg.seed);
  model = Sam(model_config_resolve(cfg.model_arch));
  model->to(device);
  model->eval();
  predictor = std::make_unique<Predictor>(model, device);
}

// Loads `ckpt` unless it is already loaded ("" = the random initialisation, only at the start).
void EngineContext::use_weights(const std::string& ckpt) {
  ensure_model();
  if (ckpt == loaded_ckpt) return;
  if (!ckpt.empty()) {
    load_checkpoint(model, ckpt);
    model->eval();
  } else if (loaded_ckpt != "<none>") {
    throw std::runtime_error("cannot return to random weights after loading " + loaded_ckpt);
  }
  loaded_ckpt = ckpt;
}

// The weights a stage starts from: the previous stage's final model when it exists.
std::string EngineContext::input_checkpoint(const std::string& st) const {
  std::vector<std::string> before;
  if (st == "semi") before = {"manual"};
  if (st == "auto") before = {"semi", "manual"};
  for (const auto& b : before) {
    const fs::path p = stage_dir(b) / "model.pth";
    if (fs::exists(p)) return p.string();
  }
  return cfg.checkpoint;
}

std::vector<mask::Rle> EngineContext::gt_rles(const data::Sample& s) const {
  std::vector<mask::Rle> out;
  for (const auto& a : s.annotations) {
    if (a.iscrowd) continue;
    try {
      mask::Rle r = a.rle();
      if (r.h == s.height && r.w == s.width) out.push_back(std::move(r));
    } catch (const std::exception& e) {
      log("ignoring an annotation of " + s.id + ": " + e.what());
    }
  }
  return out;
}

// Reads sample i and its image; on bad input marks `rec` skipped, writes its record and returns false.
bool EngineContext::read_sample(size_t i, const fs::path& dir, std::chrono::steady_clock::time_point t0,
                                data::Sample& s, cv::Mat& rgb, ImageRecord& rec) const {
  rec.index = int64_t(i);
  rec.id = ds->sample_id(i);
  rec.stem = safe_stem(rec.id);
  try {
    s = ds->get(i);
    rgb = s.load_image();
    rec.width = rgb.cols;
    rec.height = rgb.rows;
    return true;
  } catch (const data::DataError& e) {
    rec.problem = data::problem_name(e.problem());
    log("skipping " + rec.id + ": " + e.what());
  } catch (const std::exception& e) {
    rec.problem = "other";
    log("skipping " + rec.id + ": " + e.what());
  }
  rec.wall_s = seconds_since(t0);
  rec.skipped = true;
  write_skip_record(dir, rec);
  return false;
}

nlohmann::json EngineContext::finish_stage(const std::string& st, const fs::path& dir,
                                           const std::vector<ImageRecord>& recs,
                                           const std::vector<RetrainRound>& rounds,
                                           nlohmann::json manifest) {
  const nlohmann::json summary =
      stage_summary(st, recs, rounds, cfg.match_iou, manifest.value("heldout", nlohmann::json::array()));
  manifest["finished"] = now_iso();
  manifest["counts"] = {{"images", summary["images"]},
                        {"images_done", summary["images_done"]},
                        {"images_skipped", summary["images_skipped"]},
                        {"masks", summary["masks"]},
                        {"retrain_rounds", summary["retrain_rounds"]}};
  data::write_file_atomic((dir / "manifest.json").string(), manifest.dump(2) + "\n");
  data::write_file_atomic((dir / "report.json").string(), summary.dump(2) + "\n");
  data::write_file_atomic((dir / "report.html").string(), stage_report_html(summary, recs, rounds));
  log(stage_summary_line(summary) + "; report " + (dir / "report.html").string());
  return summary;
}

nlohmann::json EngineContext::base_manifest(const std::string& st, const fs::path& dir,
                                            size_t first, size_t count,
                                            const std::string& ckpt_in) const {
  return {{"stage", st},
          {"started", now_iso()},
          {"data", cfg.data},
          {"dataset", ds->describe()},
          {"images", {{"first", first}, {"count", count}}},
          {"model", {{"arch", cfg.model_arch}, {"input_checkpoint", ckpt_in}}},
          {"outputs",
           {{"sa1b", (dir / "data").string()},
            {"records", (dir / "records").string()},
            {"report", (dir / "report.html").string()}}},
          {"ranks", env.world_size},
          {"config", cfg.resolved}};
}

}  // namespace sam::engine
