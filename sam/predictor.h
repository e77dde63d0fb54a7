#pragma once
// The predictor API (SA `predictor.py`; SAM_SPEC 3): embed an image once, then answer many
// prompts, singly or batched. Coordinates given to it are pixels of the original image.
#include <functional>
#include <optional>
#include <utility>

#include <torch/torch.h>

#include "sam/sam_model.h"

namespace sam {

/// Resizes an HxWx3 uint8 RGB image so that its long side is `long_side` and returns it as a
/// float [1, 3, h, w] tensor (0-255), h and w from data::preprocess_shape. It receives the image as
/// Predictor::set_image checked it: uint8 [H, W, 3], contiguous, on the CPU.
using ImageResizer = std::function<torch::Tensor(const torch::Tensor& image_hwc, int64_t long_side)>;

/// Results for B prompts with C masks each.
struct Prediction {
  torch::Tensor masks;    ///< bool [B, C, H, W] (logits > 0)
  torch::Tensor logits;   ///< float [B, C, H, W], original image size, before thresholding
  torch::Tensor iou;      ///< float [B, C]
  torch::Tensor low_res;  ///< float [B, C, 4G, 4G] decoder logits (feed back as mask input)
};

/// Options of one prediction call.
struct PredictOptions {
  bool multimask = true;      ///< C = num_multimask_outputs, else C = 1
  bool upscale = true;        ///< compute logits/masks at the original size
  /// With upscale: also return the float logits at the original size (Prediction::logits); false
  /// returns the thresholded masks only, as the reference's predict() does by default, without
  /// writing the B x C x H x W floats (on the CPU the threshold comes from the same pass).
  bool logits = true;
};

class Predictor {
 public:
  explicit Predictor(Sam model, torch::Device device = torch::kCPU);

  /// image: uint8 [H, W, 3] RGB (CPU). Resizes the long side to img_size (by `resize`; empty:
  /// resize_longest_side, the reference's exact resize), normalises, pads and computes the
  /// embedding [1, D, G, G].
  void set_image(const torch::Tensor& image_hwc, const ImageResizer& resize = {});
  /// Uses a precomputed embedding [1, D, G, G] for an image of the given original size.
  void set_embedding(const torch::Tensor& embedding, int64_t orig_h, int64_t orig_w);
  void reset();
  bool has_image() const { return embedding_.defined(); }
  const torch::Tensor& embedding() const { return embedding_; }
  /// The mask decoder's image-only work for this embedding (MaskDecoderImpl::prepare_image), for
  /// callers that run the decoder themselves on prompts without a mask input.
  const DecoderImageCache& decoder_cache() const { return decoder_cache_; }
  std::pair<int64_t, int64_t> original_size() const { return original_; }
  std::pair<int64_t, int64_t> input_size() const { return input_; }

  /// One prompt: points [N, 2] (x, y px of the original image) with labels [N] (1 positive,
  /// 0 negative), box [4] x0,y0,x1,y1 px, mask_input [1, 4G, 4G] low-res logits. Any may be
  /// undefined. Returns B = 1.
  Prediction predict(const torch::Tensor& points, const torch::Tensor& labels,
                     const torch::Tensor& box, const torch::Tensor& mask_input,
                     const PredictOptions& opts = {}) const;
  /// B prompts at once: points [B, N, 2], labels [B, N], boxes [B, 4], mask_input [B, 1, 4G, 4G],
  /// all in original-image pixels (masks: low-res logits).
  Prediction predict_batch(const torch::Tensor& points, const torch::Tensor& labels,
                           const torch::Tensor& boxes, const torch::Tensor& mask_input,
                           const PredictOptions& opts = {}) const;

  /// Maps [..., 2] original-image (x, y) pixels into the resized frame (x * w'/w, y * h'/h).
  torch::Tensor transform_coords(const torch::Tensor& coords) const;

  Sam& model() { return model_; }
  const ModelConfig& config() const { return model_->config; }
  torch::Device device() const { return device_; }

 private:
  Sam model_;
  torch::Device device_;
  torch::Tensor embedding_, dense_pe_;
  DecoderImageCache decoder_cache_;  // the decoder's image-only work, made with the embedding
  void prepare_decoder();
  std::pair<int64_t, int64_t> original_{0, 0}, input_{0, 0};
};

/// The reference's resize (an ImageResizer): Pillow's antialiased bilinear, bit-exact
/// (data/resample.h), on libtorch's threads. The fast alternative for training and throughput
/// work is data::resize_longest_side_fast (data/image_input.h).
torch::Tensor resize_longest_side(const torch::Tensor& image_hwc, int64_t long_side);

}  // namespace sam
