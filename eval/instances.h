#pragma once
// Zero-shot instance segmentation (paper 7.4): boxes as prompts -> one mask each -> COCO mask AP
// (eval/coco_eval.h, pycocotools-exact). The boxes are the ground truth's (non-crowd annotations)
// or a detector's results file. The paper prompts SAM with ViTDet's boxes and takes the mask of
// the single-output token (a box is an unambiguous prompt: multimask = false), as the reference's
// box examples do; multimask = true instead keeps the mask with the highest predicted IoU.
// Scores: a detection keeps its detector score; a ground-truth box gets SAM's predicted IoU (all
// boxes being certain, this only orders them).
#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <torch/torch.h>
#include <nlohmann/json.hpp>

#include "data/dataset.h"
#include "eval/coco_eval.h"
#include "eval/common.h"
#include "data/image_input.h"
#include "sam/predictor.h"
#include "sam/sam_model.h"

namespace sam::eval {

/// One detector output (COCO results format): bbox is XYWH in image pixels.
struct Detection {
  int64_t image_id = 0, category_id = 0;
  std::array<double, 4> bbox{0, 0, 0, 0};
  double score = 0;
};

/// Reads a COCO results JSON (a list of {image_id, category_id, bbox, score}; other keys are
/// ignored). Throws std::runtime_error naming the file and the entry at fault.
std::vector<Detection> read_detections(const std::string& path);

struct InstancesOptions {
  std::string detections;   ///< COCO results file; empty = ground-truth boxes
  double min_score = 0;     ///< detections scoring below are dropped
  bool multimask = false;   ///< false: the single-output mask (default, as the paper)
  int batch = 16;           ///< boxes per decoder call
  int64_t max_samples = 0;  ///< first N images of the dataset; 0 = all
  int workers = 1;          ///< images in parallel, each with its own Predictor
  data::ResizeMode resize = data::ResizeMode::kPilExact;
};

struct InstancesResult {
  CocoEvalResult coco;
  /// With a detections file: the detector's boxes themselves (those kept by min_score) scored as
  /// pycocotools' COCOeval iouType bbox on the same images, for comparison with the mask AP.
  std::optional<CocoEvalResult> box_coco;
  int64_t images = 0, prompts = 0;
  std::vector<data::Category> categories;
  nlohmann::json results;  ///< the masks as a COCO results list (compressed RLE), for pycocotools
  /// {"images", "prompts", "stats": {AP, AP50, ..., ARl}, "per_category": [...], "protocol"},
  /// plus "box_stats" (the same names) with a detections file.
  nlohmann::json to_json() const;
};

/// Evaluates on a COCO dataset (make_dataset("coco:...")); throws std::invalid_argument for other
/// kinds (no categories).
InstancesResult evaluate_instances(sam::Sam model, const sam::data::Dataset& ds,
                                   const InstancesOptions& o,
                                   const torch::Device& device = torch::kCPU,
                                   const ProgressFn& progress = nullptr);

/// The names of CocoEvalResult::stats(), in order ("AP", "AP50", ..., "ARl").
const std::vector<std::string>& coco_stat_names();

}  // namespace sam::eval
