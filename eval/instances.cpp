#include "eval/instances.h"

#include <fstream>
#include <iostream>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <stdexcept>

#include "data/log.h"

namespace sam::eval {

const std::vector<std::string>& coco_stat_names() {
  static const std::vector<std::string> names{"AP",  "AP50", "AP75",  "APs", "APm", "APl",
                                              "AR1", "AR10", "AR100", "ARs", "ARm", "ARl"};
  return names;
}

std::vector<Detection> read_detections(const std::string& path) {
  std::ifstream f(path);
  if (!f) throw std::runtime_error(path + ": cannot open the detections file");
  nlohmann::json j;
  try {
    f >> j;
  } catch (const std::exception& e) {
    throw std::runtime_error(path + ": not JSON (" + e.what() + ")");
  }
  if (!j.is_array()) throw std::runtime_error(path + ": expected a list of detections");
  std::vector<Detection> out;
  for (size_t i = 0; i < j.size(); ++i) {
    const auto& d = j[i];
    try {
      Detection det;
      det.image_id = d.at("image_id").get<int64_t>();
      det.category_id = d.at("category_id").get<int64_t>();
      const auto& b = d.at("bbox");
      if (!b.is_array() || b.size() != 4) throw std::runtime_error("bbox must be [x, y, w, h]");
      for (int k = 0; k < 4; ++k) det.bbox[k] = b[k].get<double>();
      det.score = d.at("score").get<double>();
      out.push_back(det);
    } catch (const std::exception& e) {
      throw std::runtime_error(path + ": detection " + std::to_string(i) + ": " + e.what());
    }
  }
  return out;
}

nlohmann::json InstancesResult::to_json() const {
  nlohmann::json stats;
  const auto s = coco.stats();
  for (size_t i = 0; i < s.size(); ++i) stats[coco_stat_names()[i]] = s[i];
  nlohmann::json per_cat = nlohmann::json::array();
  const auto ap = coco.per_category_ap();
  for (size_t k = 0; k < ap.size() && k < coco.cat_ids.size(); ++k) {
    std::string name;
    for (const auto& c : categories)
      if (c.id == coco.cat_ids[k]) name = c.name;
    per_cat.push_back({{"id", coco.cat_ids[k]}, {"name", name}, {"ap", ap[k]}});
  }
  nlohmann::json out = {
      {"images", images},
      {"prompts", prompts},
      {"stats", stats},
      {"per_category", per_cat},
      {"protocol",
       "box prompts -> masks; segm AP as pycocotools COCOeval (IoU .50:.05:.95, 101 recall "
       "points, areas all/small/medium/large, maxDets 1/10/100, crowd ignored)"}};
  if (box_coco) {
    nlohmann::json box;
    const auto bs = box_coco->stats();
    for (size_t i = 0; i < bs.size(); ++i) box[coco_stat_names()[i]] = bs[i];
    out["box_stats"] = box;
  }
  return out;
}

InstancesResult evaluate_instances(sam::Sam model, const sam::data::Dataset& ds,
                                   const InstancesOptions& o, const torch::Device& device,
                                   const ProgressFn& progress) {
  InstancesResult res;
  res.categories = ds.categories();
  if (res.categories.empty())
    throw std::invalid_argument(ds.describe() +
                                ": instance evaluation needs a COCO dataset (coco:INSTANCES.json)");
  if (o.batch < 1) throw std::invalid_argument("batch must be at least 1");
  const size_t n_img = o.max_samples > 0
                           ? std::min<size_t>(ds.size(), static_cast<size_t>(o.max_samples))
                           : ds.size();
  std::vector<data::Sample> samples;
  for (size_t i = 0; i < n_img; ++i) samples.push_back(ds.get(i));

  std::map<int64_t, std::vector<Detection>> dets_by_image;
  std::vector<CocoDt> box_dts;  // the detector's boxes, for their own box AP
  if (!o.detections.empty())
    for (const auto& d : read_detections(o.detections))
      if (d.score >= o.min_score) {
        dets_by_image[d.image_id].push_back(d);
        box_dts.push_back(coco_box_dt(d.image_id, d.category_id, d.bbox, d.score));
      }

  std::vector<int64_t> image_ids, cat_ids;
  for (const auto& c : res.categories) cat_ids.push_back(c.id);
  std::vector<CocoGt> gts, box_gts;
  for (const auto& s : samples) {
    image_ids.push_back(s.image_id);
    for (const auto& a : s.annotations) {
      box_gts.push_back({s.image_id, a.category_id, mask::Rle{}, a.area, a.iscrowd, a.bbox});
      try {
        gts.push_back({s.image_id, a.category_id, a.rle(), a.area, a.iscrowd});
      } catch (const std::exception& e) {
        log::warn(std::string("sam::eval instances: ground truth left out: ") + e.what());
      }
    }
  }

  const int workers = static_cast<int>(
      std::max<int64_t>(1, std::min<int64_t>(o.workers, static_cast<int64_t>(samples.size()))));
  std::vector<std::unique_ptr<sam::Predictor>> predictors;
  for (int w = 0; w < workers; ++w)
    predictors.push_back(std::make_unique<sam::Predictor>(model, device));
  std::vector<std::vector<CocoDt>> per_image(samples.size());
  run_workers(
      static_cast<int64_t>(samples.size()), workers,
      [&](int64_t i, int worker) {
        const auto& s = samples[i];
        struct Prompt {
          int64_t category_id;
          std::array<double, 4> xyxy;
          std::optional<double> score;
        };
        std::vector<Prompt> prompts;
        if (o.detections.empty()) {
          for (const auto& a : s.annotations)
            if (!a.iscrowd && a.bbox[2] > 0 && a.bbox[3] > 0)
              prompts.push_back(
                  {a.category_id,
                   {a.bbox[0], a.bbox[1], a.bbox[0] + a.bbox[2], a.bbox[1] + a.bbox[3]},
                   std::nullopt});
        } else if (auto it = dets_by_image.find(s.image_id); it != dets_by_image.end()) {
          for (const auto& d : it->second)
            prompts.push_back({d.category_id,
                               {d.bbox[0], d.bbox[1], d.bbox[0] + d.bbox[2], d.bbox[1] + d.bbox[3]},
                               d.score});
        }
        if (prompts.empty()) return;
        sam::Predictor& p = *predictors[worker];
        const cv::Mat rgb = s.load_image();
        p.set_image(image_tensor(rgb), data::resizer(o.resize));
        sam::PredictOptions po;
        po.multimask = o.multimask;
        po.logits = false;  // the masks are read, not the full-size logits
        for (size_t b0 = 0; b0 < prompts.size(); b0 += o.batch) {
          const size_t B = std::min(prompts.size() - b0, static_cast<size_t>(o.batch));
          auto boxes = torch::empty({static_cast<int64_t>(B), 4}, torch::kFloat);
          for (size_t b = 0; b < B; ++b)
            for (int k = 0; k < 4; ++k) boxes[b][k] = static_cast<float>(prompts[b0 + b].xyxy[k]);
          const auto pred =
              p.predict_batch(torch::Tensor(), torch::Tensor(), boxes, torch::Tensor(), po);
          const auto masks = pred.masks.to(torch::kCPU).to(torch::kUInt8).contiguous();
          const auto iou = pred.iou.to(torch::kCPU, torch::kDouble).contiguous();
          for (size_t b = 0; b < B; ++b) {
            int64_t c = 0;
            if (o.multimask) c = iou[b].argmax().item<int64_t>();
            const auto m = masks[b][c].contiguous();
            CocoDt d;
            d.image_id = s.image_id;
            d.category_id = prompts[b0 + b].category_id;
            d.rle = mask::rle_encode(m.data_ptr<uint8_t>(), m.size(0), m.size(1));
            d.score = prompts[b0 + b].score ? *prompts[b0 + b].score : iou[b][c].item<double>();
            per_image[i].push_back(std::move(d));
          }
        }
      },
      progress);

  std::vector<CocoDt> dts;
  res.results = nlohmann::json::array();
  for (auto& v : per_image)
    for (auto& d : v) {
      res.results.push_back({{"image_id", d.image_id},
                             {"category_id", d.category_id},
                             {"segmentation", mask::rle_to_json(d.rle, true)},
                             {"score", d.score}});
      dts.push_back(std::move(d));
    }
  res.images = static_cast<int64_t>(samples.size());
  res.prompts = static_cast<int64_t>(dts.size());
  res.coco = coco_evaluate(image_ids, cat_ids, gts, dts, CocoEvalParams());
  if (!o.detections.empty()) {
    CocoEvalParams bp;
    bp.iou_type = CocoIouType::bbox;
    res.box_coco = coco_evaluate(image_ids, cat_ids, box_gts, box_dts, bp);
  }
  return res;
}

}  // namespace sam::eval
