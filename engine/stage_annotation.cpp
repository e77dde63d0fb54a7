// The assisted-manual and semi-automatic stages (paper section 4): the simulated annotator works
// through each image with the model in the loop (semi: after the detector's pre-fill), the
// model is retrained at the stage's retraining points, and every finished image is on disk.
#include <algorithm>
#include <chrono>

#include <torch/torch.h>

#include "data/atomic_file.h"
#include "data/progress.h"
#include "eval/points.h"
#include "sam/amg/amg_io.h"
#include "engine/engine_context.h"
#include "engine/retrain.h"
#include "engine/stage_io.h"

namespace fs = std::filesystem;

namespace sam::engine {

nlohmann::json EngineContext::evaluate_heldout(const fs::path& dir, const std::string& start,
                                               const std::vector<RetrainRound>& rounds) {
  if (cfg.retrain.eval_data.empty()) return nlohmann::json::array();
  const fs::path file = dir / "heldout.json";
  nlohmann::json done = fs::exists(file) ? read_json_file(file) : nlohmann::json::array();
  if (!done.is_array()) throw std::runtime_error(file.string() + ": not a JSON array");
  // The model rounds as the image records count them: the retraining rounds that ran.
  std::vector<std::string> models{start};
  for (const auto& r : rounds)
    if (!r.skipped) models.push_back(r.checkpoint);
  for (size_t k = 0; k < models.size(); ++k) {
    const bool have = std::any_of(done.begin(), done.end(), [&](const nlohmann::json& e) {
      return e.at("model_round").get<size_t>() == k;
    });
    if (have) continue;
    if (!heldout) heldout = data::make_dataset(cfg.retrain.eval_data);
    use_weights(models[k]);
    eval::PointsOptions po;
    po.clicks = cfg.retrain.eval_clicks;
    const auto t0 = std::chrono::steady_clock::now();
    const eval::PointsResult r = eval::evaluate_points(model, *heldout, po, device);
    model->eval();
    nlohmann::json e = r.to_json();
    e.erase("samples");
    e["model_round"] = k;
    e["checkpoint"] = models[k];
    e["seconds"] = seconds_since(t0);
    log("held-out " + heldout->describe() + ", model round " + std::to_string(k) + ": mIoU 1 click " +
        std::to_string(r.miou_1click) + ", " + std::to_string(po.clicks) + " clicks " +
        std::to_string(r.miou_at_k.empty() ? 0.0 : r.miou_at_k.back()) + " (" + std::to_string(r.n) + " objects)");
    done.push_back(e);
    data::write_file_atomic(file.string(), done.dump(2) + "\n");
  }
  std::sort(done.begin(), done.end(), [](const nlohmann::json& a, const nlohmann::json& b) {
    return a.at("model_round").get<size_t>() < b.at("model_round").get<size_t>();
  });
  return done;
}

nlohmann::json EngineContext::run_annotation_stage(const std::string& st) {
  const bool semi = st == "semi";
  const fs::path dir = stage_dir(st);
  fs::create_directories(dir / "records");
  fs::create_directories(dir / "data");
  const size_t n_ds = ds->size();
  const size_t first = semi ? std::min(n_ds, size_t(cfg.manual.images)) : 0;
  const size_t count = std::min(n_ds - first, size_t(semi ? cfg.semi.images : cfg.manual.images));
  const int rounds_cfg = semi ? cfg.semi.retrain_rounds : cfg.manual.retrain_rounds;
  const std::string ckpt_in = input_checkpoint(st);
  nlohmann::json manifest = base_manifest(st, dir, first, count, ckpt_in);
  log(st + ": images " + std::to_string(first) + ".." + std::to_string(first + count) + " of " +
      ds->describe() + ", starting from " + (ckpt_in.empty() ? "random weights" : ckpt_in));
  use_weights(ckpt_in);
  std::vector<fs::path> train_dirs;
  if (semi && fs::exists(stage_dir("manual") / "data")) train_dirs.push_back(stage_dir("manual"));
  train_dirs.push_back(dir);

  BoxDetector det{nullptr};
  if (semi) det = prepare_detector(dir, manifest);

  InteractiveSegmenter seg(*predictor);
  AnnotationSession session(seg, cfg.annotator);
  const std::vector<int> points = retrain_points(int(count), rounds_cfg);
  std::vector<RetrainRound> rounds = load_rounds(dir);
  std::string current = ckpt_in;
  for (const auto& r : rounds)
    if (!r.skipped) current = r.checkpoint;
  evaluate_heldout(dir, ckpt_in, rounds);  // the starting model (and rounds a killed run left)
  std::vector<ImageRecord> recs;
  size_t round_idx = 0;  // next retraining point
  data::Progress progress(0);
  size_t ran = 0;  // images processed by this run (a resumed run skips the others)
  for (size_t k = 0; k < count; ++k) {
    const size_t i = first + k;
    const std::string stem = safe_stem(ds->sample_id(i));
    const fs::path rec_path = dir / "records" / (stem + ".json");
    if (fs::exists(rec_path)) {
      recs.push_back(ImageRecord::from_json(read_json_file(rec_path), rec_path.string()));
    } else {
      // Weights of the rounds finished before this image (a resumed run reloads them).
      std::string want = ckpt_in;
      for (const auto& r : rounds)
        if (!r.skipped && r.after_images <= int(k)) want = r.checkpoint;
      use_weights(want);
      const auto t0 = std::chrono::steady_clock::now();
      data::Sample s;
      cv::Mat rgb;
      ImageRecord base;
      if (!read_sample(i, dir, t0, s, rgb, base)) {
        recs.push_back(base);
      } else {
        const auto gts = gt_rles(s);
        std::vector<cv::Mat> gt;
        for (const auto& r : gts) gt.push_back(rle_to_mat(r));
        seg.set_image(rgb);
        std::vector<PrefillMask> pre;
        int proposals = 0;
        if (semi) pre = prefill(det, rgb.rows, rgb.cols, proposals);
        ImageAnnotation ia = session.annotate_image(gt, pre, uint64_t(i));
        std::vector<mask::Rle> produced;
        for (const auto& a : ia.annotations) produced.push_back(a.segmentation.rle);
        const GtMatch gm = match_ground_truth(produced, gts, cfg.match_iou);
        ImageRecord rec = ia.record;
        rec.id = base.id;
        rec.stem = base.stem;
        rec.index = base.index;
        rec.width = base.width;
        rec.height = base.height;
        rec.masks_matched = gm.masks_matched;
        rec.gt_matched = gm.gt_matched;
        rec.proposals = proposals;
        for (size_t m = 0; m < rec.masks.size(); ++m) rec.masks[m].gt_iou = gm.best_iou[m];
        int done_rounds = 0;
        for (const auto& r : rounds)
          if (!r.skipped && r.after_images <= int(k)) ++done_rounds;
        rec.model_round = done_rounds;
        data::ImageInfo info;
        info.id = amg::sa1b_image_id(stem, int64_t(i) + 1);
        info.width = rgb.cols;
        info.height = rgb.rows;
        info.file_name = stem + image_ext(s.image);
        rec.wall_s = seconds_since(t0);
        write_image_outputs(dir, s, stem, data::sa1b_json(info, ia.annotations), rec);
        log(st + " " + std::to_string(k + 1) + "/" + std::to_string(count) + " " + rec.id + ": " +
            std::to_string(rec.masks.size()) + " masks (" + std::to_string(pre.size()) +
            " pre-filled of " + std::to_string(proposals) + " proposals), " +
            std::to_string(rec.attempted) + " annotated, " + std::to_string(rec.given_up) +
            " given up, " + std::to_string(rec.wall_s) + " s" +
            eta_text(progress, ++ran, count - k - 1));
        recs.push_back(rec);
      }
    }
    // Retraining point after this image?
    if (round_idx < points.size() && int(k) + 1 == points[round_idx]) {
      const int round = int(round_idx) + 1;
      ++round_idx;
      const bool done = std::any_of(rounds.begin(), rounds.end(),
                                    [&](const RetrainRound& r) { return r.round == round; });
      if (!done) {
        RetrainRound rr = retrain(cfg, dir, round, int(k) + 1, train_dirs, current,
                                  [this](const std::string& m) { log(m); });
        if (!rr.skipped) current = rr.checkpoint;
        rounds.push_back(rr);
        save_rounds(dir, rounds);
        evaluate_heldout(dir, ckpt_in, rounds);
      }
    }
  }
  // The stage's final weights: the last round's, else those it started from.
  use_weights(current);
  const fs::path final_model = dir / "model.pth";
  save_checkpoint(model, final_model.string() + ".tmp");
  fs::rename(final_model.string() + ".tmp", final_model);
  manifest["model"]["output_checkpoint"] = final_model.string();
  manifest["retrain_rounds"] = nlohmann::json::array();
  for (const auto& r : rounds) manifest["retrain_rounds"].push_back(r.to_json());
  manifest["heldout"] = evaluate_heldout(dir, ckpt_in, rounds);
  use_weights(current);
  return finish_stage(st, dir, recs, rounds, manifest);
}

}  // namespace sam::engine
