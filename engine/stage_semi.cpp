// The semi-automatic stage's pre-fill (paper section 4): a box detector on the frozen image
// embedding, trained on the assisted-manual stage's masks, proposes boxes; SAM's confident masks
// for them are placed on the image before the annotator starts.
#include <algorithm>
#include <chrono>

#include <torch/torch.h>

#include "data/atomic_file.h"
#include "data/image_input.h"
#include "engine/engine_context.h"
#include "engine/stage_io.h"

namespace fs = std::filesystem;

namespace sam::engine {

// Trains (or reloads) the box detector on the manual stage's masks, embedded by the current
// model.
BoxDetector EngineContext::prepare_detector(const fs::path& dir, nlohmann::json& manifest) {
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
                         {"seconds", seconds_since(t0)}};
  save_detector(det, path.string());
  data::write_file_atomic((dir / "detector.json").string(), info.dump(2) + "\n");
  manifest["detector"] = info;
  log("semi: detector trained on " + std::to_string(embs.size()) + " image(s), " +
      std::to_string(n_boxes) + " boxes, loss " + std::to_string(info["loss_first"].get<double>()) +
      " -> " + std::to_string(info["loss_last"].get<double>()));
  return det;
}

// SAM's masks for the detector's boxes on the current image, confident ones only, deduplicated.
std::vector<PrefillMask> EngineContext::prefill(BoxDetector& det, int64_t h, int64_t w,
                                                int& proposals) {
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
  po.logits = false;  // the masks are read, not the full-size logits
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

}  // namespace sam::engine
