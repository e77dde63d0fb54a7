#pragma once
// AP / AR exactly as pycocotools' COCOeval (cocoapi PythonAPI/pycocotools/cocoeval.py, 2.0.11)
// computes them for iouType 'segm' and 'bbox', which differ only in the IoU (masks: maskApi
// rleIou; boxes [x, y, w, h]: maskApi bbIou; for a crowd ground truth both divide the
// intersection by the detection's area instead of the union). Per image and category,
// detections sorted by score (stable) and cut at the largest maxDet; ground truth with
// iscrowd = 1 is ignored; greedy matching per IoU threshold preferring non-ignored ground truth;
// ground truth ranged by its annotation's `area`, unmatched detections outside the area range
// ignored (a detection's area is COCO.loadRes's: the mask's pixel count for segmentation results,
// w * h for box results, whatever the iouType); accumulation over images in increasing id
// order with a stable score sort, precision made monotone (the envelope) and read at 101 recall
// thresholds by searchsorted(left); -1 for settings without ground truth, excluded from the means.
// With use_cats = false categories are ignored, as for proposals (ground truth still listed by
// category id, then file order, as COCOeval concatenates it).
//
// Ground-truth ids must be unique and non-zero within an image (COCOeval tests dtMatches as
// booleans); ids are replaced internally by positions, so any ids work here.
#include <array>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "data/mask/rle.h"

namespace sam::eval {

using CocoBox = std::array<double, 4>;  ///< [x, y, w, h], COCO's box

/// A ground-truth object. `area` is the annotation's stored area (COCOeval uses it, not the
/// mask's), for iouType segm and bbox alike.
struct CocoGt {
  int64_t image_id = 0, category_id = 0;
  mask::Rle rle;  ///< image size (iouType segm; may be left empty for bbox)
  double area = 0;
  bool iscrowd = false;
  /// The annotation's "bbox" (iouType bbox); unset: the mask's box (toBbox).
  std::optional<CocoBox> bbox;

  CocoGt() = default;
  CocoGt(int64_t image_id, int64_t category_id, mask::Rle rle, double area, bool iscrowd,
         std::optional<CocoBox> bbox = std::nullopt)
      : image_id(image_id),
        category_id(category_id),
        rle(std::move(rle)),
        area(area),
        iscrowd(iscrowd),
        bbox(bbox) {}
};

/// A detection, as COCO.loadRes leaves it.
struct CocoDt {
  int64_t image_id = 0, category_id = 0;
  mask::Rle rle;  ///< iouType segm (may be left empty for bbox)
  double score = 0;
  /// iouType bbox; unset: the mask's box (toBbox), as loadRes gives segmentation results.
  std::optional<CocoBox> bbox;
  /// For the area ranges; unset: the mask's pixel count, as loadRes gives segmentation results
  /// (loadRes gives box results w * h: coco_load_results, coco_box_dt).
  std::optional<double> area;

  CocoDt() = default;
  CocoDt(int64_t image_id, int64_t category_id, mask::Rle rle, double score,
         std::optional<CocoBox> bbox = std::nullopt, std::optional<double> area = std::nullopt)
      : image_id(image_id),
        category_id(category_id),
        rle(std::move(rle)),
        score(score),
        bbox(bbox),
        area(area) {}
};

/// A box detection as loadRes reads a result with a "bbox": area w * h; no mask (iouType bbox).
CocoDt coco_box_dt(int64_t image_id, int64_t category_id, const CocoBox& xywh, double score);

/// COCO.loadRes on a results list (JSON array of {image_id, category_id, score, bbox and / or
/// segmentation}); `image_hw` gives each image's {height, width}, and a result on an image not
/// in it throws (loadRes asserts). As loadRes, the first result decides how all are read: if it
/// has a non-empty "bbox", every result needs one, its area is w * h and its mask is its
/// "segmentation" or else the box as the polygon (x,y),(x,y+h),(x+w,y+h),(x+w,y); otherwise every
/// result needs a "segmentation" (annToRLE's forms), its area is the mask's pixel count and its
/// box its "bbox" or else toBbox of the mask. An empty list gives no detections (loadRes fails on
/// it). Throws std::invalid_argument naming the result at fault.
std::vector<CocoDt> coco_load_results(const nlohmann::json& results,
                                      const std::map<int64_t, std::array<int64_t, 2>>& image_hw);

/// maskApi bbIou for one pair: |d & g| / |d | g| with areas w * h, or |d & g| / (d's w * h) for a
/// crowd g; 0 when the boxes do not overlap (intersection width or height <= 0). Same operations
/// in the same order as the C, so the same doubles.
double coco_box_iou(const CocoBox& dt, const CocoBox& gt, bool gt_is_crowd);

/// COCOeval's params.iouType.
enum class CocoIouType { segm, bbox };

struct CocoEvalParams {
  std::vector<double> iou_thrs;  ///< default np.linspace(.5, .95, 10)
  std::vector<double> rec_thrs;  ///< default np.linspace(0, 1, 101)
  std::vector<int> max_dets{1, 10, 100};
  std::vector<std::array<double, 2>> area_rng{
      {0, 1e10}, {0, 32 * 32}, {32 * 32, 96 * 96}, {96 * 96, 1e10}};
  std::vector<std::string> area_lbl{"all", "small", "medium", "large"};
  bool use_cats = true;
  CocoIouType iou_type = CocoIouType::segm;
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
  /// The 12 numbers of COCOeval.summarize() for segm and bbox (AP, AP50, AP75, APs, APm, APl,
  /// AR1, AR10, AR100, ARs, ARm, ARl), with the max_dets in params (last = the "100").
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
