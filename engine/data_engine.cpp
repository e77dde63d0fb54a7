#include "engine/data_engine.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <set>
#include <sstream>

#include <torch/torch.h>
#include <opencv2/imgproc.hpp>

#include "data/atomic_file.h"
#include "data/config_file.h"
#include "data/dataset.h"
#include "data/image_input.h"
#include "data/log.h"
#include "data/progress.h"
#include "data/tar.h"
#include "engine/amg/amg_io.h"
#include "engine/amg/generator.h"
#include "engine/box_detector.h"
#include "eval/report/training_curves.h"
#include "sam/predictor.h"
#include "sam/sam_model.h"
#include "train/train_config.h"
#include "train/trainer.h"

namespace fs = std::filesystem;

namespace sam::engine {

// ---------------------------------------------------------------------------------------------
// Per-image annotation.

AnnotationSession::AnnotationSession(InteractiveSegmenter& seg, const AnnotatorOptions& opts)
    : seg_(seg), annotator_(opts) {}

data::Annotation mask_annotation(const cv::Mat& mask, int64_t id, double predicted_iou,
                                 const std::vector<Click>& clicks) {
  cv::Mat m = mask != 0;
  m /= 255;
  if (!m.isContinuous()) m = m.clone();
  data::Annotation a;
  a.id = id;
  a.segmentation.kind = data::Segmentation::Kind::rle;
  a.segmentation.h = m.rows;
  a.segmentation.w = m.cols;
  a.segmentation.rle = mask::rle_encode(m.data, m.rows, m.cols);
  const auto b = mask::rle_bbox_inclusive(a.segmentation.rle);
  a.bbox = {double(b[0]), double(b[1]), double(b[2] - b[0]), double(b[3] - b[1])};
  a.area = double(mask::rle_area(a.segmentation.rle));
  a.predicted_iou = predicted_iou;
  a.crop_box = std::array<double, 4>{0, 0, double(m.cols), double(m.rows)};
  if (!clicks.empty()) a.point_coords.push_back({clicks.front().x, clicks.front().y});
  return a;
}

ImageAnnotation AnnotationSession::annotate_image(const std::vector<cv::Mat>& gt,
                                                  const std::vector<PrefillMask>& prefill,
                                                  uint64_t stream) {
  ImageAnnotation out;
  auto& rec = out.record;
  rec.gt_objects = int(gt.size());
  for (const auto& p : prefill) {
    out.annotations.push_back(
        mask_annotation(p.mask, int64_t(out.annotations.size()), p.predicted_iou, {}));
    MaskRecord m;
    m.source = "prefill";
    m.predicted_iou = p.predicted_iou;
    rec.masks.push_back(m);
  }
  std::vector<int64_t> areas;
  for (const auto& g : gt) areas.push_back(cv::countNonZero(g));
  for (size_t k : prominence_order(areas, annotator_.options())) {
    // An object a pre-filled mask already covers well needs no work (the annotator sees it).
    bool covered = false;
    for (const auto& p : prefill)
      if (mask_iou(p.mask, gt[k]) >= annotator_.options().target_iou) covered = true;
    if (covered) {
      ++rec.gt_prefilled;
      continue;
    }
    ++rec.attempted;
    const ObjectResult r = annotator_.annotate(seg_, gt[k], stream * 1000003ull + k);
    if (!r.kept) {
      ++rec.given_up;
      continue;
    }
    out.annotations.push_back(
        mask_annotation(r.mask, int64_t(out.annotations.size()), r.predicted_iou, r.click_list));
    MaskRecord m;
    m.source = "manual";
    m.clicks = r.clicks;
    m.seconds = r.seconds;
    m.predicted_iou = r.predicted_iou;
    m.accepted = r.accepted;
    m.brushed = r.brushed;
    rec.masks.push_back(m);
  }
  return out;
}

GtMatch match_ground_truth(const std::vector<mask::Rle>& produced, const std::vector<mask::Rle>& gt,
                           double thr) {
  GtMatch m;
  std::vector<bool> gt_hit(gt.size(), false);
  for (const auto& p : produced) {
    double best = gt.empty() ? -1.0 : 0.0;
    for (size_t j = 0; j < gt.size(); ++j) {
      const double iou = mask::rle_iou(p, gt[j], false);
      best = std::max(best, iou);
      if (iou >= thr) gt_hit[j] = true;
    }
    m.best_iou.push_back(best);
    if (best >= thr) ++m.masks_matched;
  }
  for (bool h : gt_hit) m.gt_matched += h ? 1 : 0;
  return m;
}

std::vector<int> retrain_points(int n_images, int rounds) {
  std::vector<int> pts;
  if (n_images <= 0 || rounds <= 0) return pts;
  for (int k = 1; k <= rounds; ++k) {
    const int p = int((int64_t(k) * n_images + rounds - 1) / rounds);
    if (pts.empty() || pts.back() != p) pts.push_back(p);
  }
  return pts;
}

// ---------------------------------------------------------------------------------------------
// The engine.

namespace {

std::string now_iso() {
  const std::time_t t = std::time(nullptr);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", std::gmtime(&t));
  return buf;
}

// ", ETA 3m07s" once `done` images of this run are finished and `left` are to go (the images a
// resumed run skips count in neither).
std::string eta_text(data::Progress& p, size_t done, size_t left) {
  p.set_total(int64_t(done + left));
  p.set_done(int64_t(done));
  return ", " + p.eta_text();
}

double since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

// A file stem safe on every file system, from a sample id ("sa_12", "000000397133", "img#2").
std::string safe_stem(const std::string& id) {
  std::string s;
  for (char c : id)
    s +=
        (std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_' || c == '.') ? c : '_';
  return s.empty() ? "image" : s;
}

std::string image_ext(const data::ImageRef& r) {
  std::string name = r.member.empty() ? r.path : r.member;
  std::string ext = fs::path(name).extension().string();
  std::transform(ext.begin(), ext.end(), ext.begin(), ::tolower);
  if (ext != ".jpg" && ext != ".jpeg" && ext != ".png") ext = ".jpg";
  return ext;
}

nlohmann::json read_json_file(const fs::path& p) {
  std::ifstream f(p);
  if (!f) throw std::runtime_error(p.string() + ": cannot read");
  try {
    return nlohmann::json::parse(f);
  } catch (const nlohmann::json::exception& e) {
    throw std::runtime_error(p.string() + ": " + e.what());
  }
}

cv::Mat rle_to_mat(const mask::Rle& r) {
  cv::Mat m(int(r.h), int(r.w), CV_8UC1);
  mask::rle_decode(r, m.data);
  return m;
}

}  // namespace

struct DataEngine::Impl {
  EngineConfig cfg;
  train::DistEnv env;
  torch::Device device{torch::kCPU};
  std::shared_ptr<data::Dataset> ds;
  Sam model{nullptr};
  std::unique_ptr<Predictor> predictor;
  std::string loaded_ckpt = "<none>";
  std::unique_ptr<train::Communicator> comm;  // only with several ranks (the auto stage's shards)

  fs::path stage_dir(const std::string& st) const { return fs::path(cfg.out_dir) / st; }

  void log(const std::string& s) const {
    if (env.rank == 0 || env.world_size == 1) log::info("[engine] " + s);
  }

  void ensure_model() {
    if (model) return;
    torch::manual_seed(cfg.seed);
    model = Sam(model_config_resolve(cfg.model_arch));
    model->to(device);
    model->eval();
    predictor = std::make_unique<Predictor>(model, device);
  }

  // Loads `ckpt` unless it is already loaded ("" = the random initialisation, only at the start).
  void use_weights(const std::string& ckpt) {
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
  std::string input_checkpoint(const std::string& st) const {
    std::vector<std::string> before;
    if (st == "semi") before = {"manual"};
    if (st == "auto") before = {"semi", "manual"};
    for (const auto& b : before) {
      const fs::path p = stage_dir(b) / "model.pth";
      if (fs::exists(p)) return p.string();
    }
    return cfg.checkpoint;
  }

  std::vector<mask::Rle> gt_rles(const data::Sample& s) const {
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

  // Writes the image's SA-1B folder entry (image bytes, masks) and then its record, in that order:
  // the record is the marker that the image is done.
  void write_image_outputs(const fs::path& dir, const data::Sample& s, const std::string& stem,
                           const nlohmann::json& sa1b, const ImageRecord& rec) {
    const std::string ext = image_ext(s.image);
    const auto bytes = s.image.read();
    data::write_file_atomic((dir / "data" / (stem + ext)).string(),
                 std::string(reinterpret_cast<const char*>(bytes.data()), bytes.size()));
    data::write_file_atomic((dir / "data" / (stem + ".json")).string(), sa1b.dump() + "\n");
    data::write_file_atomic((dir / "records" / (stem + ".json")).string(), rec.to_json().dump() + "\n");
  }

  void write_skip_record(const fs::path& dir, ImageRecord rec) {
    rec.skipped = true;
    data::write_file_atomic((dir / "records" / (rec.stem + ".json")).string(), rec.to_json().dump() + "\n");
  }

  // Reads sample i and its image; on bad input fills `rec` as skipped and returns false.
  bool read_sample(size_t i, data::Sample& s, cv::Mat& rgb, ImageRecord& rec) const {
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
    return false;
  }

  std::vector<RetrainRound> load_rounds(const fs::path& dir) const {
    std::vector<RetrainRound> rounds;
    const fs::path p = dir / "rounds.json";
    if (!fs::exists(p)) return rounds;
    for (const auto& j : read_json_file(p)) rounds.push_back(RetrainRound::from_json(j));
    return rounds;
  }

  void save_rounds(const fs::path& dir, const std::vector<RetrainRound>& rounds) const {
    nlohmann::json a = nlohmann::json::array();
    for (const auto& r : rounds) a.push_back(r.to_json());
    data::write_file_atomic((dir / "rounds.json").string(), a.dump(2) + "\n");
  }

  int64_t count_masks(const fs::path& stage) const {
    int64_t n = 0;
    const fs::path rd = stage / "records";
    if (!fs::exists(rd)) return 0;
    for (const auto& e : fs::directory_iterator(rd))
      if (e.path().extension() == ".json")
        n += int64_t(read_json_file(e.path()).at("masks").size());
    return n;
  }

  // One retraining round: a short Trainer run on the SA-1B folders in `data_dirs`, initialised
  // from `init`. Returns the new weights (run_dir/model.pth).
  RetrainRound retrain(const fs::path& dir, int round, int after_images,
                       const std::vector<fs::path>& stage_dirs, const std::string& init) {
    RetrainRound rr;
    rr.round = round;
    rr.after_images = after_images;
    rr.iterations = cfg.retrain.iterations;
    for (const auto& sd : stage_dirs) rr.masks += count_masks(sd);
    if (rr.masks == 0) {
      rr.skipped = true;
      log("retrain round " + std::to_string(round) + ": no masks yet, skipped");
      return rr;
    }
    const fs::path run_dir = dir / "retrain" / ("round_" + std::to_string(round));
    nlohmann::json doc = train::train_config_defaults();
    if (!cfg.retrain.config.empty())
      cfg::merge_strict(doc, cfg::load_file(cfg.retrain.config), cfg.retrain.config);
    doc["run_dir"] = run_dir.string();
    doc["model"]["arch"] = cfg.model_arch;
    doc["init"] = {{"kind", init.empty() ? "random" : "sam"}, {"checkpoint", init}};
    nlohmann::json specs = nlohmann::json::array();
    for (const auto& sd : stage_dirs)
      if (fs::exists(sd / "data")) specs.push_back("sa1b:" + (sd / "data").string());
    for (const auto& spec : cfg.retrain.extra_data) specs.push_back(spec);
    doc["data"]["train"] = specs;
    doc["data"]["val"] = "";
    doc["data"]["max_masks"] = cfg.retrain.max_masks;
    // Every annotated mask, whatever the training file's floor (configs/tiny.yaml draws only masks
    // of 5 % of the image and more, a choice for training from random weights); an override in
    // retrain.overrides still wins.
    doc["data"]["min_mask_area_frac"] = 0.0;
    auto& tr = doc["train"];
    // A short fine-tune from good weights: its result is the weights themselves, not an average
    // that still leans on the starting point.
    tr["ema_decay"] = 0.0;
    tr["iterations"] = cfg.retrain.iterations;
    tr["time_limit_min"] = cfg.retrain.minutes;
    tr["batch_size"] = cfg.retrain.batch_size;
    tr["seed"] = cfg.seed + uint64_t(round);
    tr["device"] = cfg.device;
    tr["threads"] = cfg.threads;
    tr["val_every"] = 0;
    tr["ckpt_every"] = cfg.retrain.iterations;
    tr["log_every"] = std::clamp<int64_t>(cfg.retrain.iterations / 4, 1, 50);
    doc["optim"]["lr"] = cfg.retrain.lr;
    doc["optim"]["warmup_iters"] = cfg.retrain.warmup_iters;
    doc["optim"]["decay_steps"] = nlohmann::json::array();
    doc["prompt"]["rounds"] = cfg.retrain.prompt_rounds;
    if (doc["prompt"]["mask_only_rounds"].get<int>() >= cfg.retrain.prompt_rounds)
      doc["prompt"]["mask_only_rounds"] = cfg.retrain.prompt_rounds - 1;
    cfg::apply_overrides(doc, cfg.retrain.overrides);
    const train::TrainConfig tc =
        train::train_config_from_json(doc, "retrain round " + std::to_string(round));
    std::ostringstream budget;
    budget << rr.iterations << " iterations";
    if (cfg.retrain.minutes > 0) budget << " or " << cfg.retrain.minutes << " min";
    log("retrain round " + std::to_string(round) + " after " + std::to_string(after_images) +
        " image(s): " + std::to_string(rr.masks) + " masks, " + budget.str() + " -> " +
        run_dir.string());
    const auto t0 = std::chrono::steady_clock::now();
    train::Trainer trainer(tc, train::DistEnv{});
    const int rc = trainer.run();
    rr.seconds = since(t0);
    if (rc != 0)
      throw std::runtime_error("retrain round " + std::to_string(round) + " in " +
                               run_dir.string() + " stopped with status " + std::to_string(rc));
    rr.iterations = trainer.step();  // fewer than `iterations` when its time ran out first
    eval::write_training_curves(run_dir.string());
    const fs::path out = run_dir / "model.pth";
    if (!fs::exists(out))
      throw std::runtime_error(out.string() + ": the training run wrote no model");
    rr.checkpoint = out.string();
    return rr;
  }

  nlohmann::json finish_stage(const std::string& st, const fs::path& dir,
                              const std::vector<ImageRecord>& recs,
                              const std::vector<RetrainRound>& rounds, nlohmann::json manifest) {
    const nlohmann::json summary = stage_summary(st, recs, rounds, cfg.match_iou);
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

  nlohmann::json base_manifest(const std::string& st, const fs::path& dir, size_t first,
                               size_t count, const std::string& ckpt_in) const {
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

  // --- semi: the detector ---------------------------------------------------------------------

  // Trains (or reloads) the box detector on the manual stage's masks, embedded by the current
  // model.
  BoxDetector prepare_detector(const fs::path& dir, nlohmann::json& manifest) {
    const auto& o = cfg.semi.detector;
    const int64_t dim = model->config.prompt_dim;
    BoxDetector det(dim, o.hidden);
    const fs::path path = dir / "detector.pt";
    if (fs::exists(path)) {
      load_detector(det, path.string());
      manifest["detector"] = read_json_file(dir / "detector.json");
      log("semi: detector reloaded from " + path.string());
      return det;
    }
    const fs::path src = stage_dir("manual") / "data";
    if (!fs::exists(src))
      throw std::invalid_argument(
          "semi stage: the box detector trains on the manual stage's masks, "
          "but " +
          src.string() + " does not exist (run --stage manual first)");
    auto train_ds = data::open_sa1b(src.string());
    std::vector<torch::Tensor> embs;
    std::vector<std::vector<BoxXYXY>> boxes;
    const double S = double(model->config.img_size);
    const auto t0 = std::chrono::steady_clock::now();
    int64_t n_boxes = 0;
    for (size_t i = 0; i < train_ds->size(); ++i) {
      data::Sample s;
      cv::Mat rgb;
      try {
        s = train_ds->get(i);
        if (s.annotations.empty()) continue;
        rgb = s.load_image();
      } catch (const std::exception& e) {
        log("detector: skipping " + train_ds->sample_id(i) + ": " + e.what());
        continue;
      }
      auto t = torch::from_blob(rgb.data, {rgb.rows, rgb.cols, 3}, torch::kUInt8);
      {
        torch::NoGradGuard ng;
        predictor->set_image(t, data::resize_longest_side_fast);
      }
      const double scale = S / double(std::max(rgb.rows, rgb.cols));
      std::vector<BoxXYXY> bs;
      for (const auto& a : s.annotations)  // SA-1B boxes: inclusive x1 = x + w
        bs.push_back({a.bbox[0] * scale, a.bbox[1] * scale, (a.bbox[0] + a.bbox[2] + 1) * scale,
                      (a.bbox[1] + a.bbox[3] + 1) * scale});
      n_boxes += int64_t(bs.size());
      embs.push_back(predictor->embedding().detach().to(torch::kCPU).clone());
      boxes.push_back(std::move(bs));
    }
    if (embs.empty())
      throw std::invalid_argument("semi stage: no masks in " + src.string() +
                                  " to train the box detector on");
    const auto losses = train_detector(det, embs, boxes, S, o);
    nlohmann::json info = {{"trained_on", src.string()},
                           {"images", embs.size()},
                           {"boxes", n_boxes},
                           {"epochs", o.epochs},
                           {"loss_first", losses.empty() ? 0.0 : losses.front()},
                           {"loss_last", losses.empty() ? 0.0 : losses.back()},
                           {"losses", losses},
                           {"seconds", since(t0)}};
    save_detector(det, path.string());
    data::write_file_atomic((dir / "detector.json").string(), info.dump(2) + "\n");
    manifest["detector"] = info;
    log("semi: detector trained on " + std::to_string(embs.size()) + " image(s), " +
        std::to_string(n_boxes) + " boxes, loss " +
        std::to_string(info["loss_first"].get<double>()) + " -> " +
        std::to_string(info["loss_last"].get<double>()));
    return det;
  }

  // SAM's masks for the detector's boxes on the current image, confident ones only, deduplicated.
  std::vector<PrefillMask> prefill(BoxDetector& det, int64_t h, int64_t w, int& proposals) {
    const double S = double(model->config.img_size);
    const auto [ih, iw] = predictor->input_size();
    const double scale = double(iw) / double(w);
    auto dets = detect(det, predictor->embedding(), S, double(iw), double(ih), cfg.semi.detector);
    proposals = int(dets.size());
    std::vector<PrefillMask> out;
    if (dets.empty()) return out;
    auto boxes = torch::empty({int64_t(dets.size()), 4}, torch::kFloat32);
    for (size_t i = 0; i < dets.size(); ++i)
      for (int q = 0; q < 4; ++q) boxes[int64_t(i)][q] = dets[i].box[size_t(q)] / scale;
    torch::NoGradGuard ng;
    PredictOptions po;
    po.multimask = false;
    const auto pr = predictor->predict_batch(torch::Tensor(), torch::Tensor(), boxes.to(device),
                                             torch::Tensor(), po);
    const auto masks = pr.masks.select(1, 0).to(torch::kUInt8).to(torch::kCPU).contiguous();
    const auto ious = pr.iou.select(1, 0).to(torch::kFloat64).to(torch::kCPU);
    std::vector<std::pair<double, cv::Mat>> cand;
    for (int64_t i = 0; i < masks.size(0); ++i) {
      const double iou = ious[i].item<double>();
      if (iou < cfg.semi.prefill_iou_thresh) continue;
      cv::Mat m(int(h), int(w), CV_8UC1, masks[i].data_ptr<uint8_t>());
      if (cv::countNonZero(m) < cfg.annotator.min_object_area) continue;
      cand.emplace_back(iou, m.clone());
    }
    std::stable_sort(cand.begin(), cand.end(),
                     [](const auto& a, const auto& b) { return a.first > b.first; });
    for (auto& [iou, m] : cand) {
      bool dup = false;
      for (const auto& k : out)
        if (mask_iou(k.mask, m) > cfg.semi.prefill_nms_thresh) dup = true;
      if (!dup) out.push_back({m, iou});
    }
    return out;
  }

  // --- manual and semi ------------------------------------------------------------------------

  nlohmann::json run_annotation_stage(const std::string& st) {
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
        if (!read_sample(i, s, rgb, base)) {
          base.wall_s = since(t0);
          base.skipped = true;
          write_skip_record(dir, base);
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
          rec.wall_s = since(t0);
          write_image_outputs(dir, s, stem, data::sa1b_json(info, ia.annotations), rec);
          log(st + " " + std::to_string(k + 1) + "/" + std::to_string(count) + " " + rec.id + ": " +
              std::to_string(rec.masks.size()) + " masks (" + std::to_string(pre.size()) +
              " pre-filled of " + std::to_string(proposals) + " proposals), " +
              std::to_string(rec.attempted) + " annotated, " + std::to_string(rec.given_up) +
              " given up, " + std::to_string(rec.wall_s) + " s" + eta_text(progress, ++ran, count - k - 1));
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
          RetrainRound rr = retrain(dir, round, int(k) + 1, train_dirs, current);
          if (!rr.skipped) current = rr.checkpoint;
          rounds.push_back(rr);
          save_rounds(dir, rounds);
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
    return finish_stage(st, dir, recs, rounds, manifest);
  }

  // --- auto -----------------------------------------------------------------------------------

  // Packs the auto stage's finished images into tar shards, SA-1B's release format: shards/
  // sa_000000.tar, sa_000001.tar, ... each holding `shard_images` images (<stem>.<ext> then
  // <stem>.json) in dataset order; auto/shards.json lists the shards and their stems. The members
  // come from the loose folder (data/), or from the previous shards when an earlier run packed
  // them and removed the folder. New shards are written beside the old ones and swapped in by
  // renames, and the loose files are removed only after that, so an interruption at any point
  // loses nothing: the next run packs again. Returns the shard listing.
  nlohmann::json pack_shards(const fs::path& dir, const std::vector<ImageRecord>& recs) {
    const fs::path shards = dir / "shards", tmp = dir / "shards.tmp", old = dir / "shards.old";
    const fs::path listing = dir / "shards.json", loose = dir / "data";
    if (!fs::exists(shards) && fs::exists(old)) fs::rename(old, shards);  // an interrupted swap
    fs::remove_all(tmp);
    fs::remove_all(old);
    std::vector<std::string> stems;
    for (const auto& r : recs)
      if (!r.skipped) stems.push_back(r.stem);
    const int64_t per = cfg.autom.shard_images;
    nlohmann::json prev;
    if (fs::exists(listing)) prev = read_json_file(listing);
    auto listed = [&](const nlohmann::json& l) {
      std::vector<std::string> v;
      for (const auto& sh : l.at("shards"))
        for (const auto& st : sh.at("images")) v.push_back(st.get<std::string>());
      return v;
    };
    if (!prev.is_null() && prev.value("shard_images", int64_t(-1)) == per && listed(prev) == stems) {
      bool complete = true;
      for (const auto& sh : prev.at("shards"))
        complete = complete && fs::exists(shards / sh.at("file").get<std::string>());
      if (complete) {
        if (!cfg.autom.keep_folder) remove_loose(loose, stems);
        return prev;
      }
    }
    // Where each member is now: a loose file, or a member of an old shard.
    std::map<std::string, fs::path> on_disk;
    if (fs::exists(loose))
      for (const auto& e : fs::directory_iterator(loose))
        if (e.is_regular_file()) on_disk[e.path().filename().string()] = e.path();
    std::vector<std::unique_ptr<data::TarArchive>> archives;
    std::map<std::string, std::pair<const data::TarArchive*, data::TarMember>> in_tar;
    if (fs::exists(shards))
      for (const auto& e : fs::directory_iterator(shards)) {
        if (e.path().extension() != ".tar") continue;
        archives.push_back(std::make_unique<data::TarArchive>(e.path().string()));
        for (const auto& m : archives.back()->index().members) in_tar[m.name] = {archives.back().get(), m};
      }
    std::map<std::string, std::vector<std::string>> by_stem;  // stem -> member names, once
    for (const auto& [name, p] : on_disk) by_stem[fs::path(name).stem().string()].push_back(name);
    for (const auto& [name, src] : in_tar) by_stem[fs::path(name).stem().string()].push_back(name);
    auto members_of = [&](const std::string& stem) {
      std::map<std::string, std::vector<uint8_t>> out;  // name -> bytes
      auto take = [&](const std::string& name) {
        if (out.count(name)) return;
        const auto d = on_disk.find(name);
        if (d != on_disk.end()) {
          out[name] = data::read_file_range(d->second.string(), 0, fs::file_size(d->second));
          return;
        }
        const auto t = in_tar.find(name);
        if (t != in_tar.end()) out[name] = t->second.first->read(t->second.second);
      };
      const auto named = by_stem.find(stem);
      if (named != by_stem.end())
        for (const auto& name : named->second) take(name);
      if (!out.count(stem + ".json") || out.size() < 2)
        throw std::runtime_error(dir.string() + ": the outputs of finished image " + stem +
                                 " are missing from " + loose.string() + " and " +
                                 shards.string() + "; remove records/" + stem +
                                 ".json to redo it");
      return out;
    };
    fs::create_directories(tmp);
    nlohmann::json doc = {{"shard_images", per}, {"shards", nlohmann::json::array()}};
    for (size_t first = 0, n = 0; first < stems.size(); first += size_t(per), ++n) {
      char name[32];
      std::snprintf(name, sizeof name, "sa_%06zu.tar", n);
      data::TarWriter w((tmp / name).string(), std::time(nullptr));
      nlohmann::json list = nlohmann::json::array();
      for (size_t i = first; i < std::min(stems.size(), first + size_t(per)); ++i) {
        const auto members = members_of(stems[i]);
        for (const auto& [m, bytes] : members)  // the image before its JSON, as SA-1B's shards
          if (m != stems[i] + ".json") w.add(m, bytes);
        w.add(stems[i] + ".json", members.at(stems[i] + ".json"));
        list.push_back(stems[i]);
      }
      w.finish();
      doc["shards"].push_back({{"file", name}, {"images", list}, {"bytes", w.bytes_written()}});
    }
    archives.clear();
    if (fs::exists(shards)) fs::rename(shards, old);
    fs::rename(tmp, shards);
    data::write_file_atomic(listing.string(), doc.dump(2) + "\n");
    fs::remove_all(old);
    if (!cfg.autom.keep_folder) remove_loose(loose, stems);
    log("auto: packed " + std::to_string(stems.size()) + " image(s) into " +
        std::to_string(doc["shards"].size()) + " shard(s) in " + shards.string());
    return doc;
  }

  // Removes the loose SA-1B files of `stems` (and the folder when nothing else is left in it).
  static void remove_loose(const fs::path& loose, const std::vector<std::string>& stems) {
    if (!fs::exists(loose)) return;
    const std::set<std::string> keep(stems.begin(), stems.end());
    for (const auto& e : fs::directory_iterator(loose))
      if (e.is_regular_file() && keep.count(e.path().stem().string())) fs::remove(e.path());
    if (fs::is_empty(loose)) fs::remove(loose);
  }

  nlohmann::json run_auto() {
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
      if (!read_sample(i, s, rgb, rec)) {
        rec.wall_s = since(t0);
        write_skip_record(dir, rec);
        continue;
      }
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
      rec.wall_s = since(t0);
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
      const auto listing = pack_shards(dir, recs);
      manifest["outputs"]["shards"] = (dir / "shards").string();
      manifest["outputs"]["shard_listing"] = (dir / "shards.json").string();
      manifest["shards"] = listing["shards"].size();
      if (!cfg.autom.keep_folder) manifest["outputs"]["sa1b"] = (dir / "shards").string();
    }
    return finish_stage(st, dir, recs, {}, manifest);
  }
};

DataEngine::DataEngine(EngineConfig config, train::DistEnv env) : impl_(std::make_unique<Impl>()) {
  impl_->cfg = std::move(config);
  impl_->env = env;
  impl_->device = torch::Device(impl_->cfg.device);
  if (impl_->cfg.data.empty())
    throw std::invalid_argument("data: no dataset given (set data=SPEC, e.g. sa1b:DIR)");
  impl_->ds = data::make_dataset(impl_->cfg.data);
}

DataEngine::~DataEngine() = default;

nlohmann::json DataEngine::run(const std::string& stage) {
  std::vector<std::string> stages;
  if (stage == "all")
    stages = {"manual", "semi", "auto"};
  else if (stage == "manual" || stage == "semi" || stage == "auto")
    stages = {stage};
  else
    throw std::invalid_argument("--stage '" + stage + "': must be manual, semi, auto or all");
  fs::create_directories(impl_->cfg.out_dir);
  data::write_file_atomic((fs::path(impl_->cfg.out_dir) / "config.json").string(),
               impl_->cfg.resolved.dump(2) + "\n");
  auto& I = *impl_;
  if (I.env.world_size > 1 && !I.comm)  // the other ranks wait while rank 0 annotates
    I.comm = train::Communicator::create(I.env, torch::kCPU, "gloo", std::chrono::hours(48));
  nlohmann::json out = nlohmann::json::object();
  for (const auto& st : stages) {
    const bool annotation = st != "auto";
    // People annotate on one machine: rank 0 runs the annotation stages, the others wait.
    if (annotation && I.env.rank == 0) out[st] = I.run_annotation_stage(st);
    if (!annotation) out[st] = I.run_auto();
    if (I.comm) I.comm->barrier();
  }
  return out;
}

}  // namespace sam::engine
