#pragma once
// Zero-shot object proposals (paper 7.3): the automatic mask generator's masks, ranked by their
// predicted IoU (stable: ties keep the generator's order), are class-agnostic proposals; average
// recall over IoU 0.50:0.05:0.95 at 10, 100 and 1000 proposals per image, overall and by COCO
// area (small < 32^2 <= medium < 96^2 <= large), computed by COCOeval with useCats = 0 (as
// pycocotools scores proposals; crowd ground truth ignored, mask IoU).
#include <cstdint>
#include <vector>

#include <torch/torch.h>
#include <nlohmann/json.hpp>

#include "data/dataset.h"
#include "sam/amg/generator.h"
#include "eval/coco_eval.h"
#include "eval/common.h"
#include "sam/sam_model.h"

namespace sam::eval {

struct ProposalsOptions {
  amg::AmgOptions amg;                       ///< the generator's settings (its reference defaults)
  std::vector<int> max_dets{10, 100, 1000};  ///< proposal budgets
  int64_t max_samples = 0;                   ///< first N images; 0 = all
  int workers = 1;                           ///< images in parallel, each with its own generator
};

struct ProposalsResult {
  CocoEvalResult coco;
  int64_t images = 0;
  double mean_proposals = 0;  ///< masks per image from the generator (before the budget cut)
  /// AR at budget k (one of max_dets) for an area label ("all", "small", "medium", "large").
  double ar(int k, const std::string& area) const { return coco.summarize(false, -1, area, k); }
  /// {"images", "mean_proposals", "ar": {"10": {"all", "small", "medium", "large"}, ...}, ...}.
  nlohmann::json to_json() const;
};

/// Evaluates on a COCO dataset (any dataset with COCO-style annotations works; categories are
/// not used).
ProposalsResult evaluate_proposals(sam::Sam model, const sam::data::Dataset& ds,
                                   const ProposalsOptions& o,
                                   const torch::Device& device = torch::kCPU,
                                   const ProgressFn& progress = nullptr);

}  // namespace sam::eval
