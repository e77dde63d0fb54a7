// Pillow's bilinear resize on plain buffers (data/resample.h), the model's exact input resize:
// hand-computed values, row steps (a view into a wider image), the same bytes whatever way the
// rows are split between threads, and the errors. Agreement with Pillow itself on real images:
// tests/data/test_image.cpp (through the cv::Mat form) and tests/sam/test_peer_reference.cpp.
#include <catch2/catch.hpp>

#include <algorithm>
#include <functional>
#include <random>
#include <thread>
#include <vector>

#include "data/resample.h"

using sam::data::PixelSpan;
using sam::data::PixelView;
using sam::data::resize_pil_bilinear;
using sam::data::RowLoop;

namespace {
std::vector<uint8_t> resize(const std::vector<uint8_t>& src, int h, int w, int c, int nh, int nw,
                            const RowLoop& loop = {}) {
  std::vector<uint8_t> out(size_t(nh) * nw * c);
  resize_pil_bilinear(PixelView{src.data(), h, w, c, size_t(w) * c}, PixelSpan{out.data(), nh, nw, c, size_t(nw) * c},
                      loop);
  return out;
}
}  // namespace

TEST_CASE("resample: hand-computed Pillow bilinear values") {
  // 2 -> 4 pixels: centres at 0.25, 0.75, 1.25, 1.75 of the source; the triangle filter's weights
  // (1), (0.75, 0.25), (0.25, 0.75), (1) give 0, 63.75, 191.25, 255, rounded half up.
  CHECK(resize({0, 255}, 1, 2, 1, 1, 4) == std::vector<uint8_t>{0, 64, 191, 255});
  // The same along columns.
  CHECK(resize({0, 255}, 2, 1, 1, 4, 1) == std::vector<uint8_t>{0, 64, 191, 255});
  // 4 -> 2: support 2, centres at 1 and 3; weights (0.75, 0.75, 0.25) / 1.75 over inputs 0-2 and
  // (0.25, 0.75, 0.75) / 1.75 over inputs 1-3: 500 / 7 = 71.4 and 1465 / 7 = 209.3.
  CHECK(resize({0, 100, 200, 255}, 1, 4, 1, 1, 2) == std::vector<uint8_t>{71, 209});
  // Same size: a copy.
  CHECK(resize({1, 2, 3, 4, 5, 6}, 1, 2, 3, 1, 2) == std::vector<uint8_t>{1, 2, 3, 4, 5, 6});
}

TEST_CASE("resample: a view with a row step, and any split of the rows between threads, give the same bytes") {
  std::mt19937 rng(7);
  const int h = 37, w = 53, c = 3, pad = 5;
  std::vector<uint8_t> wide(size_t(h) * (w + pad) * c);
  for (auto& v : wide) v = static_cast<uint8_t>(rng() & 255);
  std::vector<uint8_t> packed(size_t(h) * w * c);
  for (int y = 0; y < h; ++y)
    std::copy_n(&wide[size_t(y) * (w + pad) * c], size_t(w) * c, &packed[size_t(y) * w * c]);
  const RowLoop threads = [](int n, const std::function<void(int, int)>& body) {
    // Uneven chunks on separate threads.
    std::vector<std::thread> ts;
    for (int b = 0, k = 1; b < n; b += k, ++k) ts.emplace_back(body, b, std::min(n, b + k));
    for (auto& t : ts) t.join();
  };
  for (auto [nh, nw] : {std::pair{20, 30}, std::pair{80, 101}, std::pair{37, 90}, std::pair{11, 53}}) {
    const auto serial = resize(packed, h, w, c, nh, nw);
    const auto split = resize(packed, h, w, c, nh, nw, threads);
    std::vector<uint8_t> from_view(size_t(nh) * nw * c);
    resize_pil_bilinear(PixelView{wide.data(), h, w, c, size_t(w + pad) * c},
                        PixelSpan{from_view.data(), nh, nw, c, size_t(nw) * c});
    CHECK(split == serial);
    CHECK(from_view == serial);
  }
}

TEST_CASE("resample: errors name the problem") {
  std::vector<uint8_t> px(12), out(12);
  using Catch::Matchers::Contains;
  CHECK_THROWS_WITH(resize_pil_bilinear(PixelView{px.data(), 2, 2, 5, 10}, PixelSpan{out.data(), 1, 1, 5, 5}),
                    Contains("1..4 channels"));
  CHECK_THROWS_WITH(resize_pil_bilinear(PixelView{px.data(), 2, 2, 3, 6}, PixelSpan{out.data(), 0, 2, 3, 6}),
                    Contains("target size"));
  CHECK_THROWS_WITH(resize_pil_bilinear(PixelView{px.data(), 2, 2, 3, 6}, PixelSpan{out.data(), 2, 2, 1, 2}),
                    Contains("channels"));
  CHECK_THROWS_WITH(sam::data::preprocess_shape(0, 5, 1024), Contains("positive"));
}
