#pragma once
// The full-size mask of one click, fast: SAM's post-processing (bilinear L x L -> S x S, crop to
// the resized image h' x w', bilinear -> H x W; SamImpl::postprocess_masks) followed by "> 0",
// computed as one composite linear map per axis instead of two resizes of whole images. Both
// resizes are separable and linear, so each output pixel depends on at most 4 x 4 low-resolution
// logits with weights that factor into a row part and a column part; the S x S intermediate (4 M
// pixels for ViT models) is never formed. The taps reproduce PyTorch's bilinear
// (align_corners=False) index and weight arithmetic; only the order of float additions differs, so
// a pixel can flip only where the logit is within float rounding of 0.
#include <cstdint>
#include <vector>

namespace sam::annotate {

/// low: L x L row-major logits (the decoder's low-resolution output for one mask); S: the model's
/// input side; crop_h x crop_w: the resized image inside the S x S frame; out: H x W row-major, set
/// to 1 where the upscaled logit is > 0, else 0. Throws std::invalid_argument on non-positive
/// sizes or a crop larger than S.
void upscale_threshold(const float* low, int L, int S, int crop_h, int crop_w, int H, int W,
                       uint8_t* out);

/// The same map without thresholding (tests): H x W upscaled logits.
std::vector<float> upscale_logits(const float* low, int L, int S, int crop_h, int crop_w, int H,
                                  int W);

}  // namespace sam::annotate
