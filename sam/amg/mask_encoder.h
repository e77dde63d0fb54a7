#pragma once
// From the decoder's low-res logits of one crop to what the generator keeps of a mask, without a
// dense full-size mask: the reference's postprocess_masks (bilinear to S x S, crop to the resized
// input, bilinear to the crop size; align_corners=False, torch's index and weight rules) fused
// with the stability counts, the binarisation, the box and the uncropped column-major RLE.
//
// Values agree with libtorch's interpolate to within one float rounding (the sums are taken in
// another order), so a pixel can only differ where a logit lies within ~1e-6 of a threshold.
#include <cstdint>
#include <vector>

#include "data/mask/rle.h"
#include "sam/amg/amg_utils.h"

namespace sam::amg {

/// sam::bilinear_taps (sam/upscale.h: torch's indices and weights, the one rule of every mask
/// upscaling) laid out as arrays for the encoder's column loops.
struct ResizeAxis {
  std::vector<int32_t> i0, i1;
  std::vector<float> w0, w1;
};
ResizeAxis make_resize_axis(int64_t in, int64_t out);

/// What the encoder returns for one mask.
struct EncodedMask {
  int64_t n_hi = 0;      ///< crop pixels with logit > threshold + offset
  int64_t n_lo = 0;      ///< crop pixels with logit > threshold - offset
  int64_t area = 0;      ///< crop pixels with logit > threshold
  BoxI box{0, 0, 0, 0};  ///< inclusive xyxy in the crop frame (zeros when empty)
  mask::Rle rle;         ///< img_h x img_w, zero outside the crop (only if want_rle)
};

/// Geometry of one crop, shared by all its masks.
class MaskEncoder {
 public:
  /// lr: low-res side (4 x the embedding grid); S: encoder input side; (in_h, in_w): the crop
  /// resized to the encoder's frame (long side S); crop inside an img_h x img_w image; thresholds
  /// are the model's mask threshold and the stability offset.
  MaskEncoder(int64_t lr, int64_t S, int64_t in_h, int64_t in_w, const CropBox& crop, int64_t img_h,
              int64_t img_w, double mask_threshold, double stability_offset);

  /// lowres: lr x lr row-major logits of one mask. Thread-safe (scratch is per call).
  /// Only pixels whose value could fall on either side of a threshold are interpolated: a
  /// bilinear sample is a convex combination of its neighbours, so where all low-res (and then
  /// intermediate) neighbours lie in the same gap between thresholds, with a margin far above
  /// float rounding, every pixel they feed is decided without computing it. The result is
  /// identical to encode_dense.
  EncodedMask encode(const float* lowres, bool want_rle) const;
  /// The same, computing every pixel (the reference for tests and benchmarks).
  EncodedMask encode_dense(const float* lowres, bool want_rle) const;

  /// The crop-size logits [crop_h, crop_w] row-major (for tests and debugging; slow path).
  std::vector<float> upscale(const float* lowres) const;

 private:
  struct Scratch;
  // Resized-input column c (in_h values), then resampled along y to the crop height.
  void column(const float* lowres, int64_t c, float* tmp_lr, float* tmp_in, float* out) const;
  // Value of the resized-input logit at column c, row r (same arithmetic as column()).
  float input_value(const float* lowres, int64_t c, int64_t r) const;
  // Class of a value: which gap between the sorted thresholds it lies in, or kUnsure.
  uint8_t classify(float v, const float* lo_edge, const float* hi_edge) const;
  void build_input_column(const float* lowres, int64_t c, Scratch& s, int slot) const;

  int64_t lr_, S_, in_h_, in_w_, crop_h_, crop_w_, img_h_, img_w_;
  CropBox crop_;
  float thr_, thr_hi_, thr_lo_;
  ResizeAxis ax_a_, ay_a_;  // low-res -> S (only the first in_w / in_h outputs are used)
  ResizeAxis ax_b_, ay_b_;  // in_w -> crop_w, in_h -> crop_h
  // Sorted thresholds and the decision margins around them at the low-res (a) and resized-input
  // (b) levels: class k means above sorted[k-1] + margin and below sorted[k] - margin.
  float sorted_[3];
  float below_a_[3], above_a_[3], below_b_[3], above_b_[3];
  uint8_t bit_[4][3];  // per class: (> threshold, > threshold + offset, > threshold - offset)
  // first_*[j]: first output index whose source index 0 (1) is >= j, for mapping runs.
  std::vector<int32_t> first_a0_, first_a1_, first_b0_, first_b1_;
};

}  // namespace sam::amg
