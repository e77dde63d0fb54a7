#pragma once
// Mask AP / AR exactly as pycocotools' COCOeval computes them for iouType 'segm' (cocoapi
// PythonAPI/pycocotools/cocoeval.py): per image and category, detections sorted by score (stable)
// and cut at the largest maxDet; ground truth with iscrowd = 1 is ignored and matched with the
// crowd IoU |d & g| / |d|; greedy matching per IoU threshold preferring non-ignored ground truth;
// unmatched detections outside the area range ignored; accumulation over images in increasing id
// order with a stable score sort, precision made monotone (the envelope) and read at 101 recall
// thresholds by searchsorted(left); -1 for settings without ground truth, excluded from the means.
// With use_cats = false categories are ignored, as for proposals (ground truth still listed by
// category id, then file order, as COCOeval concatenates it).
//
// Ground-truth ids must be unique and non-zero within an image (COCOeval tests dtMatches as
// booleans); ids are replaced internally by positions, so any ids work here.
#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "data/mask/rle.h"

namespace sam::eval {

/// A ground-truth object. `area` is the annotation's stored area (COCOeval uses it, not the
/// mask's).
struct CocoGt {
  int64_t image_id = 0, category_id = 0;
  mask::Rle rle;  ///< image size
  double area = 0;
  bool iscrowd = false;
};

/// A detection. Its area is the mask's pixel count (COCO.loadRes for segmentation results).
struct CocoDt {
  int64_t image_id = 0, category_id = 0;
  mask::Rle rle;
  double score = 0;
};

struct CocoEvalParams {
  std::vector<double> iou_thrs;  ///< default np.linspace(.5, .95, 10)
  std::vector<double> rec_thrs;  ///< default np.linspace(0, 1, 101)
  std::vector<int> max_dets{1, 10, 100};
  std::vector<std::array<double, 2>> area_rng{
      {0, 1e10}, {0, 32 * 32}, {32 * 32, 96 * 96}, {96 * 96, 1e10}};
  std::vector<std::string> area_lbl{"all", "small", "medium", "large"};
  bool use_cats = true;
  CocoEvalParams();
  /// Proposal evaluation: use_cats = false, max_dets {10, 100, 1000}.
  static CocoEvalParams proposals();
};

/// numpy.linspace(start, stop, num) exactly: start + i * ((stop - start) / (num - 1)), last = stop.
std::vector<double> np_linspace(double start, double stop, int num);

struct CocoEvalResult {
  CocoEvalParams params;
  std::vector<int64_t> image_ids, cat_ids;  ///< as evaluated (sorted)
  /// precision[t][r][k][a][m] and recall[t][k][a][m], flattened in that order; -1 = no data.
  std::vector<double> precision, recall;
  size_t T = 0, R = 0, K = 0, A = 0, M = 0;
  double precision_at(size_t t, size_t r, size_t k, size_t a, size_t m) const {
    return precision[(((t * R + r) * K + k) * A + a) * M + m];
  }
  double recall_at(size_t t, size_t k, size_t a, size_t m) const {
    return recall[((t * K + k) * A + a) * M + m];
  }
  /// COCOeval._summarize: mean over entries > -1 of precision (ap = true) or recall, at one IoU
  /// threshold (iou < 0: all), one area label and one maxDet; -1 when there is none.
  double summarize(bool ap, double iou, const std::string& area, int max_det) const;
  /// The 12 numbers of COCOeval.summarize() for segm (AP, AP50, AP75, APs, APm, APl, AR1, AR10,
  /// AR100, ARs, ARm, ARl), with the max_dets in params (last = the "100").
  std::vector<double> stats() const;
  /// Per-category AP (IoU 0.5:0.95, area all, largest maxDet); -1 for categories without data.
  std::vector<double> per_category_ap() const;
};

/// Evaluates detections against ground truth on `image_ids` (the images evaluated; ground truth
/// and detections on other images are left out) with categories `cat_ids` (detections of other
/// categories are left out when use_cats).
CocoEvalResult coco_evaluate(const std::vector<int64_t>& image_ids,
                             const std::vector<int64_t>& cat_ids, const std::vector<CocoGt>& gts,
                             const std::vector<CocoDt>& dts, const CocoEvalParams& p);

}  // namespace sam::eval
