// The fully automatic stage (paper section 4): the generator with the paper's settings over every
// image, the images sharded over the ranks; rank 0 packs SA-1B's tar shards and reports.
#include <chrono>
#include <sstream>

#include <torch/torch.h>

#include "data/log.h"
#include "data/progress.h"
#include "sam/amg/amg_io.h"
#include "sam/amg/generator.h"
#include "engine/engine_context.h"
#include "engine/shards.h"
#include "engine/stage_io.h"

namespace fs = std::filesystem;

namespace sam::engine {

nlohmann::json EngineContext::run_auto() {
  const std::string st = "auto";
  const fs::path dir = stage_dir(st);
  fs::create_directories(dir / "records");
  fs::create_directories(dir / "data");
  const size_t count =
      cfg.autom.images == 0 ? ds->size() : std::min(ds->size(), size_t(cfg.autom.images));
  const std::string ckpt_in = input_checkpoint(st);
  nlohmann::json manifest = base_manifest(st, dir, 0, count, ckpt_in);
  manifest["generator"] = amg::amg_options_to_json(cfg.autom.generator);
  manifest["model"]["output_checkpoint"] = ckpt_in;
  log("auto: " + std::to_string(count) + " image(s) over " + std::to_string(env.world_size) +
      " rank(s), model " + (ckpt_in.empty() ? "random weights" : ckpt_in));
  use_weights(ckpt_in);
  amg::MaskGenerator gen(*predictor, cfg.autom.generator);
  data::Progress progress(0);
  size_t ran = 0;
  for (size_t i = size_t(env.rank); i < count; i += size_t(env.world_size)) {
    const std::string stem = safe_stem(ds->sample_id(i));
    if (fs::exists(dir / "records" / (stem + ".json"))) continue;
    const auto t0 = std::chrono::steady_clock::now();
    data::Sample s;
    cv::Mat rgb;
    ImageRecord rec;
    if (!read_sample(i, dir, t0, s, rgb, rec)) continue;
    auto t = torch::from_blob(rgb.data, {rgb.rows, rgb.cols, 3}, torch::kUInt8);
    std::vector<amg::AmgMask> masks;
    {
      torch::NoGradGuard ng;
      masks = gen.generate(t);
    }
    const auto gts = gt_rles(s);
    std::vector<mask::Rle> produced;
    for (const auto& m : masks) produced.push_back(m.segmentation);
    const GtMatch gm = match_ground_truth(produced, gts, cfg.match_iou);
    rec.gt_objects = int(gts.size());
    rec.masks_matched = gm.masks_matched;
    rec.gt_matched = gm.gt_matched;
    for (size_t m = 0; m < masks.size(); ++m) {
      MaskRecord mr;
      mr.source = "auto";
      mr.predicted_iou = masks[m].predicted_iou;
      mr.gt_iou = gm.best_iou[m];
      rec.masks.push_back(mr);
    }
    rec.wall_s = seconds_since(t0);
    const auto doc = amg::amg_to_sa1b(masks, amg::sa1b_image_id(stem, int64_t(i) + 1), rgb.cols,
                                      rgb.rows, stem + image_ext(s.image));
    write_image_outputs(dir, s, stem, doc, rec);
    std::ostringstream line;
    line << "[engine] auto " << (i + 1) << "/" << count << " " << rec.id << " (rank " << env.rank
         << "): " << masks.size() << " masks, " << rec.wall_s << " s"
         << eta_text(progress, ++ran, (count - 1 - i) / size_t(env.world_size));
    log::info(line.str());
  }
  if (comm) comm->barrier();
  if (env.rank != 0) return nlohmann::json::object();
  std::vector<ImageRecord> recs;
  for (size_t i = 0; i < count; ++i) {
    const fs::path p = dir / "records" / (safe_stem(ds->sample_id(i)) + ".json");
    if (fs::exists(p)) recs.push_back(ImageRecord::from_json(read_json_file(p), p.string()));
  }
  if (cfg.autom.shard_images > 0) {
    std::vector<std::string> stems;
    for (const auto& r : recs)
      if (!r.skipped) stems.push_back(r.stem);
    const auto listing = pack_shards(dir, stems, cfg.autom.shard_images, cfg.autom.keep_folder,
                                     [this](const std::string& m) { log(m); });
    manifest["outputs"]["shards"] = (dir / "shards").string();
    manifest["outputs"]["shard_listing"] = (dir / "shards.json").string();
    manifest["shards"] = listing["shards"].size();
    if (!cfg.autom.keep_folder) manifest["outputs"]["sa1b"] = (dir / "shards").string();
  }
  return finish_stage(st, dir, recs, {}, manifest);
}

}  // namespace sam::engine
