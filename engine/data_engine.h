#pragma once
// The three-stage data engine (paper section 4, appendix B; SAM_SPEC 6) over a dataset of images,
// with ground truth where the dataset has it (the simulated annotator's target and the reports'
// matches):
//   manual  assisted-manual: objects in order of prominence, each annotated by clicks with the
//           model in the loop (SimulatedAnnotator); the model is retrained on the masks collected
//           so far `manual.retrain_rounds` times during the stage.
//   semi    semi-automatic: a box detector on the frozen embedding, trained on the manual stage's
//           masks, proposes boxes; SAM's confident masks for them pre-fill each image; the
//           annotator adds the objects still missing; retrained as above.
//   auto    fully automatic: the generator (engine/amg) with the paper's settings over every
//           image, sharded over the ranks of a torchrun job.
//   all     the three in order, each starting from the model the previous one produced.
// Outputs under <out_dir>/<stage>/:
//   data/<stem>.json + data/<stem>.<ext>   SA-1B folder: masks (COCO RLE) and the image
//   shards/sa_<n>.tar, shards.json          auto stage: the folder packed as SA-1B's tar shards
//                                           (auto.shard_images per shard; the folder is then
//                                           removed unless auto.keep_folder)
//   records/<stem>.json                     the image's record (stage_report.h); marks it done
//   retrain/round_<k>/                      the training run of round k (model.pth)
//   rounds.json                             the retraining rounds so far
//   model.pth                               the stage's final weights (input of the next stage)
//   manifest.json, report.json, report.html inputs, checkpoints, config and counts; figures
// A stage resumes by itself: images with a record are not redone, finished rounds are not rerun.
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>
#include <opencv2/core.hpp>

#include "data/annotation.h"
#include "engine/annotator_sim.h"
#include "engine/engine_config.h"
#include "engine/stage_report.h"
#include "train/distributed.h"

namespace sam::engine {

/// A mask placed on an image before the annotator starts (the semi stage's pre-fill).
struct PrefillMask {
  cv::Mat mask;  ///< CV_8UC1 0/1, image size
  double predicted_iou = 0;
};

/// What annotating one image produced.
struct ImageAnnotation {
  std::vector<data::Annotation> annotations;  ///< SA-1B records (RLE, bbox, area, ...)
  ImageRecord record;                         ///< counts and per-mask clicks / seconds
};

/// The per-image step of the manual and semi stages: the annotator works through the image's
/// objects (ground truth, most prominent first), skipping those a pre-filled mask already covers
/// at the target IoU. Drives an InteractiveSegmenter the way the browser tool does.
class AnnotationSession {
 public:
  AnnotationSession(InteractiveSegmenter& seg, const AnnotatorOptions& opts);
  /// The segmenter must hold the image (InteractiveSegmenter::set_image). gt: the objects
  /// (CV_8UC1 0/1, image size); `stream` seeds the clicks. Output masks: pre-fills first, then
  /// the annotated masks in annotation order.
  ImageAnnotation annotate_image(const std::vector<cv::Mat>& gt,
                                 const std::vector<PrefillMask>& prefill, uint64_t stream);

 private:
  InteractiveSegmenter& seg_;
  SimulatedAnnotator annotator_;
};

/// Produced masks against ground truth (RLEs of the same size): how many produced masks have IoU
/// >= thr with some GT mask, how many GT masks have a produced one at >= thr, and each produced
/// mask's best IoU.
struct GtMatch {
  int masks_matched = 0, gt_matched = 0;
  std::vector<double> best_iou;
};
GtMatch match_ground_truth(const std::vector<mask::Rle>& produced, const std::vector<mask::Rle>& gt,
                           double thr);

/// An SA-1B annotation for a binary mask (CV_8UC1, nonzero = set): RLE, area, bbox in the
/// generator's convention, predicted IoU, the first click as point_coords, whole-image crop box.
data::Annotation mask_annotation(const cv::Mat& mask, int64_t id, double predicted_iou,
                                 const std::vector<Click>& clicks);

/// Retraining points of a stage: retrain after the p-th image (1-based) for
/// p = ceil(k * n / rounds), k = 1..rounds (distinct, at most n of them).
std::vector<int> retrain_points(int n_images, int rounds);

class DataEngine {
 public:
  DataEngine(EngineConfig config, train::DistEnv env);
  ~DataEngine();
  /// Runs "manual", "semi", "auto" or "all". Returns the stage summaries keyed by stage.
  /// Throws std::invalid_argument for another stage name or a stage whose inputs are missing.
  nlohmann::json run(const std::string& stage);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace sam::engine
