#include "eval/proposals.h"

#include <algorithm>
#include <iostream>
#include <memory>
#include <numeric>
#include <stdexcept>

#include "data/log.h"

namespace sam::eval {

nlohmann::json ProposalsResult::to_json() const {
  nlohmann::json ar_j;
  for (int k : coco.params.max_dets)
    for (const char* a : {"all", "small", "medium", "large"}) ar_j[std::to_string(k)][a] = ar(k, a);
  return {{"images", images},
          {"mean_proposals", mean_proposals},
          {"ar", ar_j},
          {"protocol",
           "generator masks ranked by predicted IoU; average recall over IoU .50:.05:.95 as "
           "pycocotools COCOeval with useCats=0 (mask IoU, crowd ignored, COCO area ranges)"}};
}

ProposalsResult evaluate_proposals(sam::Sam model, const sam::data::Dataset& ds,
                                   const ProposalsOptions& o, const torch::Device& device,
                                   const ProgressFn& progress) {
  o.amg.validate();
  if (o.max_dets.empty()) throw std::invalid_argument("proposals: max_dets is empty");
  const size_t n_img = o.max_samples > 0
                           ? std::min<size_t>(ds.size(), static_cast<size_t>(o.max_samples))
                           : ds.size();
  std::vector<data::Sample> samples;
  for (size_t i = 0; i < n_img; ++i) samples.push_back(ds.get(i));
  std::vector<int64_t> image_ids, cat_ids;
  for (const auto& c : ds.categories()) cat_ids.push_back(c.id);
  std::vector<CocoGt> gts;
  for (const auto& s : samples) {
    image_ids.push_back(s.image_id);
    for (const auto& a : s.annotations) {
      try {
        gts.push_back({s.image_id, a.category_id, a.rle(), a.area, a.iscrowd});
      } catch (const std::exception& e) {
        log::warn(std::string("sam::eval proposals: ground truth left out: ") + e.what());
      }
      if (ds.categories().empty() &&
          std::find(cat_ids.begin(), cat_ids.end(), a.category_id) == cat_ids.end())
        cat_ids.push_back(a.category_id);
    }
  }
  // Image ids must tell images apart (folder datasets have none): number them when they do not.
  std::vector<int64_t> sorted = image_ids;
  std::sort(sorted.begin(), sorted.end());
  if (std::adjacent_find(sorted.begin(), sorted.end()) != sorted.end()) {
    gts.clear();
    for (size_t i = 0; i < samples.size(); ++i) {
      image_ids[i] = static_cast<int64_t>(i) + 1;
      for (const auto& a : samples[i].annotations) {
        try {
          gts.push_back({image_ids[i], a.category_id, a.rle(), a.area, a.iscrowd});
        } catch (const std::exception&) {
        }
      }
    }
  }
  const int max_budget = *std::max_element(o.max_dets.begin(), o.max_dets.end());

  const int workers = static_cast<int>(
      std::max<int64_t>(1, std::min<int64_t>(o.workers, static_cast<int64_t>(samples.size()))));
  std::vector<std::unique_ptr<amg::MaskGenerator>> gens;
  for (int w = 0; w < workers; ++w)
    gens.push_back(std::make_unique<amg::MaskGenerator>(model, o.amg, device));
  std::vector<std::vector<CocoDt>> per_image(samples.size());
  std::vector<int64_t> counts(samples.size(), 0);
  run_workers(
      static_cast<int64_t>(samples.size()), workers,
      [&](int64_t i, int worker) {
        const cv::Mat rgb = samples[i].load_image();
        auto masks = gens[worker]->generate(image_tensor(rgb));
        counts[i] = static_cast<int64_t>(masks.size());
        std::vector<size_t> order(masks.size());
        std::iota(order.begin(), order.end(), 0);
        std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) {
          return masks[a].predicted_iou > masks[b].predicted_iou;
        });
        for (size_t q = 0; q < order.size() && static_cast<int>(q) < max_budget; ++q) {
          auto& m = masks[order[q]];
          per_image[i].push_back({image_ids[i], cat_ids.empty() ? 0 : cat_ids.front(),
                                  std::move(m.segmentation), m.predicted_iou});
        }
      },
      progress);

  std::vector<CocoDt> dts;
  for (auto& v : per_image)
    for (auto& d : v) dts.push_back(std::move(d));
  ProposalsResult res;
  CocoEvalParams p = CocoEvalParams::proposals();
  p.max_dets = o.max_dets;
  res.coco = coco_evaluate(image_ids, cat_ids, gts, dts, p);
  res.images = static_cast<int64_t>(samples.size());
  if (!samples.empty())
    res.mean_proposals = std::accumulate(counts.begin(), counts.end(), 0.0) / samples.size();
  return res;
}

}  // namespace sam::eval
