#include "data/image_input.h"

#include <opencv2/core.hpp>

#include <stdexcept>

#include "data/image.h"

namespace sam::data {

torch::Tensor resize_longest_side_fast(const torch::Tensor& image_hwc, int64_t long_side) {
  // An ImageResizer: Predictor::set_image checked the image (type, shape, CPU, contiguous).
  TORCH_INTERNAL_ASSERT_DEBUG_ONLY(image_hwc.is_contiguous() && image_hwc.dim() == 3);
  const auto& img = image_hwc;
  const int h = static_cast<int>(img.size(0)), w = static_cast<int>(img.size(1));
  auto [nh, nw] = preprocess_shape(h, w, static_cast<int>(long_side));
  cv::Mat src(h, w, CV_8UC3, img.data_ptr<uint8_t>());
  cv::Mat dst = resize_fast(src, nh, nw);
  if (!dst.isContinuous()) dst = dst.clone();
  auto t = torch::from_blob(dst.data, {nh, nw, 3}, torch::kUInt8);
  return t.permute({2, 0, 1}).unsqueeze(0).to(torch::kFloat).contiguous();
}

std::function<torch::Tensor(const torch::Tensor&, int64_t)> resizer(ResizeMode mode) {
  if (mode == ResizeMode::kFast) return resize_longest_side_fast;
  return {};
}

}  // namespace sam::data
