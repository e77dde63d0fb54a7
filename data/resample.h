#pragma once
// Pillow's bilinear resize on plain pixel buffers, and the reference's longest-side shape: what
// the model's exact input needs, with neither OpenCV nor libtorch (samlib_base). data/image.h
// wraps it for cv::Mat, sam/predictor.h for tensors.
#include <cstddef>
#include <cstdint>
#include <functional>
#include <utility>

namespace sam::data {

/// The reference's ResizeLongestSide.get_preprocess_shape: s = long_side / max(h, w) (double),
/// newh = int(h * s + 0.5), neww = int(w * s + 0.5). Returns {newh, neww}. Throws
/// std::invalid_argument unless h, w, long_side are positive.
std::pair<int, int> preprocess_shape(int h, int w, int long_side);

/// rows x cols pixels of `channels` interleaved uint8 samples, `step` bytes from one row to the next.
struct PixelView {
  const uint8_t* data = nullptr;
  int rows = 0, cols = 0, channels = 0;
  size_t step = 0;
};
struct PixelSpan {
  uint8_t* data = nullptr;
  int rows = 0, cols = 0, channels = 0;
  size_t step = 0;
};

/// Runs body(begin, end) over ranges covering [0, n), on as many threads as the caller likes
/// (OpenCV's pool for cv::Mat callers, libtorch's for tensors). Empty: one call, this thread.
using RowLoop = std::function<void(int n, const std::function<void(int begin, int end)>& body)>;

/// Pillow's BILINEAR resize of `src` into `dst` (its size is the target), bit-exact with Pillow
/// 9.4 `Image.resize((neww, newh), BILINEAR)` on modes L / RGB / RGBX / CMYK
/// (src/libImaging/Resample.c: triangle filter whose support widens with the downscale factor,
/// 22-bit fixed-point coefficients, horizontal pass then vertical pass, rounding and clipping to
/// uint8 after each). Every channel is filtered independently (a 4th channel is NOT treated as
/// premultiplied alpha, unlike Pillow's RGBA mode). Throws std::invalid_argument on an empty input,
/// channels outside 1..4 or different between the two, or an empty target.
void resize_pil_bilinear(const PixelView& src, const PixelSpan& dst, const RowLoop& loop = {});

}  // namespace sam::data
