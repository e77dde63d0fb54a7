#pragma once
// The helper rules of the automatic mask generator (SA `utils/amg.py`, SAM_SPEC 4.2): point grids,
// crop boxes, stability score, mask boxes, crop-edge test, uncropping, torchvision-exact NMS and
// small-region removal. Coordinates are pixels, x then y; boxes are xyxy with the generator's
// inclusive maxima unless a comment says otherwise.
#include <array>
#include <cstdint>
#include <utility>
#include <vector>

#include <torch/torch.h>
#include <opencv2/core.hpp>

#include "data/mask/rle.h"

namespace sam::amg {

using Point = std::array<double, 2>;  ///< x, y
using BoxI = std::array<int64_t, 4>;  ///< x0, y0, x1, y1 (integer pixels)
using BoxF = std::array<float, 4>;    ///< x0, y0, x1, y1 as NMS sees them

/// build_point_grid: n x n points in [0,1]^2 at (i + 0.5) / n, row-major (x varies fastest),
/// computed like numpy.linspace(1/(2n), 1-1/(2n), n). Throws std::invalid_argument for n < 1.
std::vector<Point> build_point_grid(int n_per_side);

/// One grid per crop layer 0..n_layers; layer i has int(n_per_side / scale_per_layer^i) per side.
std::vector<std::vector<Point>> build_all_layer_point_grids(int n_per_side, int n_layers,
                                                            int scale_per_layer);

/// A crop of the image: xyxy with exclusive x1, y1 (image pixels) and its layer (0 = whole image).
struct CropBox {
  int64_t x0 = 0, y0 = 0, x1 = 0, y1 = 0;
  int layer = 0;
  int64_t width() const { return x1 - x0; }
  int64_t height() const { return y1 - y0; }
  bool operator==(const CropBox& o) const {
    return x0 == o.x0 && y0 == o.y0 && x1 == o.x1 && y1 == o.y1 && layer == o.layer;
  }
};

/// generate_crop_boxes for an h x w image: layer 0 is the image, layer i has 2^i x 2^i crops
/// overlapping by int(ratio * min(h, w) * 2 / 2^i) px, listed x-major (product(x0s, y0s)).
std::vector<CropBox> generate_crop_boxes(int64_t h, int64_t w, int n_layers, double overlap_ratio);

/// calculate_stability_score: logits [..., H, W] float -> [...] float,
/// count(logits > thr + off) / count(logits > thr - off) (0/0 gives NaN, as the reference).
torch::Tensor calculate_stability_score(const torch::Tensor& logits, double mask_threshold,
                                        double offset);

/// batched_mask_to_box: masks bool/uint8 [..., H, W] -> int64 [..., 4] xyxy with inclusive maxima;
/// an empty mask gives {0, 0, 0, 0}.
torch::Tensor batched_mask_to_box(const torch::Tensor& masks);

/// mask_to_box for one row-major h x w byte mask (nonzero = set): inclusive xyxy, zeros if empty.
BoxI mask_to_box(const uint8_t* mask, int64_t h, int64_t w);

/// is_box_near_crop_edge: `box` (inclusive xyxy, crop frame) is within atol of an edge of
/// `crop` that is not also within atol of the image box {0, 0, img_w, img_h}. Coordinates are
/// compared pairwise (x0 with x0, ..., y1 with y1), |a - b| <= atol, as torch.isclose(rtol=0).
bool is_box_near_crop_edge(const BoxI& box, const CropBox& crop, int64_t img_w, int64_t img_h,
                           double atol = 20.0);

/// uncrop_boxes_xyxy / uncrop_points: crop frame -> image frame (add x0, y0).
BoxI uncrop_box(const BoxI& box, const CropBox& crop);
Point uncrop_point(const Point& p, const CropBox& crop);

/// uncrop_masks then RLE: an RLE of the crop (crop.height() x crop.width()) -> the RLE of the
/// whole img_h x img_w image, zero outside the crop.
mask::Rle uncrop_rle(const mask::Rle& crop_rle, const CropBox& crop, int64_t img_h, int64_t img_w);

/// torchvision batched_nms with one category, exactly: boxes xyxy as float, area (x1-x0)*(y1-y0)
/// (no +1), suppress when inter/union > iou_threshold (float IoU compared in double), scores
/// ordered by torch's (unstable) descending sort; with more than 1000 boxes the survivors are
/// re-sorted by score as torchvision's CPU "vanilla" path does. Returns kept indices in that order.
std::vector<int64_t> batched_nms(const std::vector<BoxF>& boxes, const std::vector<float>& scores,
                                 double iou_threshold);

/// remove_small_regions on a row-major 0/1 uint8 mask (CV_8UC1): mode holes fills connected
/// components (8-connectivity, cv::connectedComponentsWithStats) of the complement with area <
/// area_thresh; mode islands removes such components of the mask, keeping the largest one when
/// all are small. Returns the new mask and whether any region was small (i.e. it changed).
enum class RegionMode { kHoles, kIslands };
std::pair<cv::Mat, bool> remove_small_regions(const cv::Mat& mask, double area_thresh,
                                              RegionMode mode);

/// Result of clean_small_regions on one mask.
struct CleanResult {
  bool changed = false;  ///< a hole or island was below the threshold (the reference's flag)
  mask::Rle rle;         ///< the cleaned mask (set only when changed)
  BoxI box{0, 0, 0, 0};  ///< its inclusive xyxy box (image frame; set only when changed)
};

/// remove_small_regions(holes) then (islands) on an img_h x img_w RLE, as postprocess_small_regions
/// does per mask. Works on the mask's bounding box plus a margin (falling back to the whole image
/// only when the outer background itself could be below the threshold), with identical results.
CleanResult clean_small_regions(const mask::Rle& rle, double min_area);

}  // namespace sam::amg
