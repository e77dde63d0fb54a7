#pragma once
// SAM's post-processing of the decoder's low-resolution logits (SamImpl::postprocess_masks:
// bilinear L x L -> S x S, crop to the resized image h' x w', bilinear -> H x W), computed as one
// composite linear map per axis instead of two resizes of whole images. Both resizes are separable
// and linear, so each output pixel depends on at most 4 x 4 low-resolution logits with weights
// that factor into a row part and a column part; the S x S intermediate (1M pixels for the ViT
// models) is never formed. The taps reproduce PyTorch's bilinear (align_corners=False) index and
// weight arithmetic; only the order of float additions differs, so a value differs from libtorch's
// by float rounding and a thresholded pixel can flip only where the logit is that close to 0.
// Used by the predictor (CPU inference), the annotation tool's clicks and the tests.
#include <cstdint>
#include <vector>

namespace sam {

/// One output index of a 1-D bilinear resize (align_corners=False): two source indices and their
/// weights, with PyTorch's arithmetic (upsample_bilinear2d on the CPU: scale = in / out in float,
/// source = scale * (d + 0.5) - 0.5 in double rounded to float, clamped at 0; i1 = i0 + 1 except
/// at the last source index; identity when in == out). The one rule behind every mask upscaling
/// here: the Upscaler below (the predictor, the annotation tool) and the generator's MaskEncoder.
struct BilinearTap {
  int32_t i0, i1;
  float w0, w1;
};
/// The taps of an in -> out resize. Throws std::invalid_argument on a non-positive size.
std::vector<BilinearTap> bilinear_taps(int64_t in, int64_t out);

/// The composite map of one geometry, built once and applied to any number of masks. Sizes:
/// L the low-res side, S the model's input side, crop_h x crop_w the resized image inside the
/// S x S frame, H x W the output. Throws std::invalid_argument on non-positive sizes, L < 4 or a
/// crop larger than S.
class Upscaler {
 public:
  Upscaler(int L, int S, int crop_h, int crop_w, int H, int W);

  int L() const { return L_; }
  int H() const { return H_; }
  int W() const { return W_; }
  /// Size of the scratch one mask needs (floats): the low-res rows resized along x, L x W.
  int64_t scratch_size() const { return static_cast<int64_t>(L_) * W_; }

  /// Step 1 for low-res rows [l0, l1) of one mask (low: L x L row-major): the rows some output
  /// row reads, resized along x into scratch (L x W; the other rows are left as they are).
  void columns(const float* low, float* scratch, int l0, int l1) const;
  /// Step 2 for output rows [y0, y1): logits (H x W row-major, may be null) and/or
  /// binary = logit > 0 (H x W, 0/1, may be null), from step 1's scratch.
  void rows(const float* scratch, int y0, int y1, float* logits, uint8_t* binary) const;

 private:
  struct Composite {
    int start = 0;
    float w[4] = {0, 0, 0, 0};
  };
  static std::vector<Composite> composite(int L, int S, int crop, int out);
  int L_, H_, W_;
  std::vector<Composite> cy_, cx_;
  std::vector<char> needed_;  // low-res rows that some output row reads
};

/// One mask, on the calling thread: binary (H x W) = upscaled logit > 0.
void upscale_threshold(const float* low, int L, int S, int crop_h, int crop_w, int H, int W,
                       uint8_t* out);

/// One mask, on the calling thread: the H x W upscaled logits.
std::vector<float> upscale_logits(const float* low, int L, int S, int crop_h, int crop_w, int H,
                                  int W);

}  // namespace sam
