#pragma once
// The per-image step of the data engine's manual and semi stages (paper section 4): a simulated
// annotator works through one image's objects with the model in the loop, and what it produced
// is matched against the ground truth.
#include <cstdint>
#include <vector>

#include <opencv2/core.hpp>

#include "data/annotation.h"
#include "data/mask/rle.h"
#include "engine/annotator_sim.h"
#include "engine/stage_report.h"

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

}  // namespace sam::engine
