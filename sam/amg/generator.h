#pragma once
// The automatic mask generator (SA `automatic_mask_generator.py`; SAM_SPEC 4; paper section 4 and
// appendix B): single-point prompts on a regular grid over the image and over overlapping crops,
// filtered by predicted IoU and stability, deduplicated by box NMS within and across crops, with
// optional hole/island cleanup and the paper's filter of near-whole-image masks.
#include <array>
#include <memory>
#include <string>
#include <vector>

#include <torch/torch.h>

#include "data/image_input.h"
#include "data/mask/rle.h"
#include "sam/amg/amg_utils.h"
#include "sam/predictor.h"

namespace sam::amg {

/// Every parameter of SamAutomaticMaskGenerator with the reference's defaults (SAM_SPEC 4.1),
/// plus max_area_frac. The reference's output_mode is a choice of the JSON helpers below.
struct AmgOptions {
  int points_per_side = 32;                    ///< grid n x n per crop layer 0; 0 = use point_grids
  int points_per_batch = 64;                   ///< prompts per decoder call
  double pred_iou_thresh = 0.88;               ///< keep iou > thr (no filter when thr <= 0)
  double stability_score_thresh = 0.95;        ///< keep stability >= thr (no filter when thr <= 0)
  double stability_score_offset = 1.0;         ///< logit offset of the stability score
  double box_nms_thresh = 0.7;                 ///< NMS within a crop, by predicted IoU
  int crop_n_layers = 0;                       ///< crop layers beyond the whole image (SA-1B: 2)
  double crop_nms_thresh = 0.7;                ///< NMS across crops, preferring smaller crops
  double crop_overlap_ratio = 512.0 / 1500.0;  ///< overlap of layer-1 crops / short side
  int crop_n_points_downscale_factor = 1;      ///< layer i grid side = points_per_side / f^i
  std::vector<std::vector<Point>> point_grids;  ///< explicit [0,1] grids per layer
  int min_mask_region_area = 0;  ///< > 0: fill holes / drop islands smaller than this (px)
  double max_area_frac = 0.0;    ///< > 0: drop masks covering >= this fraction of the image
                                 ///< (paper appendix B uses 0.95; not in the reference code)
  data::ResizeMode resize = data::ResizeMode::kPilExact;  ///< encoder resize (exact = golden parity)

  /// Throws std::invalid_argument naming the offending field.
  void validate() const;
  /// The grids used per layer (built from points_per_side, or point_grids).
  std::vector<std::vector<Point>> layer_grids() const;
};

/// One generated mask, as the reference's record.
struct AmgMask {
  mask::Rle segmentation;                       ///< image-size RLE (column-major counts)
  int64_t area = 0;                             ///< set pixels
  std::array<double, 4> bbox{0, 0, 0, 0};       ///< XYWH from the inclusive xyxy box (w = x1 - x0)
  double predicted_iou = 0;                     ///< the decoder's IoU prediction (float32 value)
  std::array<double, 2> point_coords{0, 0};     ///< the prompt, image pixels (x, y)
  double stability_score = 0;                   ///< float32 value; NaN for an empty candidate
  std::array<int64_t, 4> crop_box{0, 0, 0, 0};  ///< XYWH of the crop it came from
};

/// Seconds spent in one generate() call, and how many masks survived each stage.
struct AmgTimings {
  double encoder_s = 0;  ///< set_image (resize, normalise, ViT) over all crops
  double decoder_s = 0;  ///< prompt encoder + mask decoder (low-res logits, IoU)
  double masks_s = 0;    ///< upscaling + stability + binarising + boxes + RLE (fused)
  double nms_s = 0;      ///< NMS within and across crops, uncropping
  double cleanup_s = 0;  ///< hole/island removal and its NMS
  double total_s = 0;    ///< the whole call
  double postprocess_s() const { return total_s - encoder_s - decoder_s; }
  /// Process CPU seconds (all threads) of the same parts: on a shared, loaded machine these
  /// show the work done, where wall-clock seconds also count waiting for a core.
  double encoder_cpu_s = 0, decoder_cpu_s = 0, total_cpu_s = 0;
  double postprocess_cpu_s() const { return total_cpu_s - encoder_cpu_s - decoder_cpu_s; }
  int64_t crops = 0, prompts = 0, candidates = 0;  ///< crops, point prompts, masks decoded
  /// Masks left after each stage: IoU filter, stability filter, crop-edge and area filters,
  /// NMS within crops, NMS across crops, cleanup (the output).
  int64_t kept_iou = 0, kept_stability = 0, kept_edge = 0, kept_box_nms = 0, kept_crop_nms = 0,
          kept_final = 0;
};

class MaskGenerator {
 public:
  /// Owns a predictor for `model` on `device`.
  MaskGenerator(Sam model, AmgOptions opts, torch::Device device = torch::kCPU);
  /// Uses (and re-embeds) an existing predictor; it must outlive the generator.
  MaskGenerator(Predictor& predictor, AmgOptions opts);

  /// image: uint8 [H, W, 3] RGB (CPU). Returns the reference's records in its order.
  std::vector<AmgMask> generate(const torch::Tensor& image_hwc);

  AmgTimings last_timings() const { return timings_; }
  const AmgOptions& options() const { return opts_; }

 private:
  struct Candidate;
  std::vector<Candidate> process_crop(const torch::Tensor& image, const CropBox& crop,
                                      int64_t img_h, int64_t img_w);

  std::unique_ptr<Predictor> owned_;
  Predictor* predictor_;
  AmgOptions opts_;
  std::vector<std::vector<Point>> grids_;
  AmgTimings timings_;
};

}  // namespace sam::amg
