#pragma once
// The model's input image resized the fast way (OpenCV area/linear) for training and throughput
// work, and the choice between it and the reference's exact resize as options name it.
// sam::Predictor resizes exactly by itself (sam::resize_longest_side); this is what it takes
// otherwise (sam::ImageResizer).
#include <cstdint>
#include <functional>

#include <torch/types.h>

namespace sam::data {

/// How an image is resized to the encoder's input.
enum class ResizeMode {
  kPilExact,  ///< Pillow's antialiased bilinear, bit-exact with the reference (default)
  kFast,      ///< OpenCV area/linear (training and throughput work)
};

/// An HxWx3 uint8 RGB image resized by data::resize_fast so that its long side is `long_side`
/// (data::preprocess_shape), as a float [1, 3, h, w] tensor (0-255). A sam::ImageResizer: it
/// takes the image as Predictor::set_image checked it (uint8 [H, W, 3], contiguous, CPU).
torch::Tensor resize_longest_side_fast(const torch::Tensor& image_hwc, int64_t long_side);

/// What sam::Predictor::set_image takes for `mode`: empty for kPilExact (the predictor's own
/// exact resize), resize_longest_side_fast for kFast.
std::function<torch::Tensor(const torch::Tensor& image_hwc, int64_t long_side)> resizer(ResizeMode mode);

}  // namespace sam::data
