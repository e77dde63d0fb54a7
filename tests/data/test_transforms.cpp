// Transforms (data/transforms.h): the reference's resize shapes, mask sampling against a dense
// per-pixel reference, image/mask alignment under flip, jitter and crop, and box consistency.
#include <catch2/catch.hpp>

#include <opencv2/imgproc.hpp>

#include <cmath>

#include "data/rng.h"
#include "data/transforms.h"

using namespace sam::data;
using sam::mask::Rle;

namespace {

// A random mask of h x w: a few filled ellipses and rectangles, some touching the border.
cv::Mat random_mask(Rng& rng, int h, int w) {
  cv::Mat m(h, w, CV_8UC1, cv::Scalar(0));
  const int n = int(rng.range(1, 4));
  for (int k = 0; k < n; ++k) {
    const cv::Point c(int(rng.range(0, w - 1)), int(rng.range(0, h - 1)));
    if (rng.chance(0.5))
      cv::ellipse(
          m, c,
          cv::Size(int(rng.range(1, std::max(1, w / 3))), int(rng.range(1, std::max(1, h / 3)))),
          rng.uniform(0, 180), 0, 360, cv::Scalar(1), cv::FILLED);
    else
      cv::rectangle(m, cv::Rect(c.x, c.y, int(rng.range(1, w)), int(rng.range(1, h))),
                    cv::Scalar(1), cv::FILLED);
  }
  return m;
}

Rle encode(const cv::Mat& m) {
  return sam::mask::rle_encode(m.data, m.rows, m.cols);
}

// The definition, pixel by pixel in floating point: output (x, y) inside the window takes the
// source pixel containing the pre-image of its centre.
cv::Mat reference_sample(const cv::Mat& src, const Geometry& g) {
  cv::Mat out(g.canvas_h, g.canvas_w, CV_8UC1, cv::Scalar(0));
  for (int y = 0; y < g.out_h; ++y)
    for (int x = 0; x < g.out_w; ++x) {
      double xs = x + g.crop_x + 0.5;  // centre in scaled coordinates
      if (g.flip) xs = g.scaled_w - xs;
      const double ys = y + g.crop_y + 0.5;
      const int sx = std::min(g.src_w - 1, int(std::floor(xs * g.src_w / g.scaled_w)));
      const int sy = std::min(g.src_h - 1, int(std::floor(ys * g.src_h / g.scaled_h)));
      out.at<uint8_t>(y, x) = src.at<uint8_t>(sy, sx) ? 1 : 0;
    }
  return out;
}

Geometry random_geometry(Rng& rng, int h, int w, int S) {
  const bool flip = rng.chance(0.5);
  return rng.chance(0.3) ? plan_resize_longest(h, w, S, flip)
                         : plan_lsj(h, w, S, 0.1, 2.0, flip, rng);
}

}  // namespace

TEST_CASE("transforms: longest-side resize shapes are the reference's") {
  const Geometry a = plan_resize_longest(1500, 2250, 1024);
  CHECK(a.scaled_h == 683);
  CHECK(a.scaled_w == 1024);
  CHECK(a.canvas_h == 683);
  CHECK(a.crop_x == 0);
  const Geometry b = plan_resize_longest(480, 640, 1024);
  CHECK(b.scaled_h == 768);
  CHECK(b.out_w == 1024);
}

TEST_CASE("transforms: masks sampled from runs equal the dense per-pixel definition") {
  Rng rng(3);
  for (int t = 0; t < 300; ++t) {
    const int h = int(rng.range(1, 90)), w = int(rng.range(1, 90)), S = int(rng.range(16, 64));
    const cv::Mat m = random_mask(rng, h, w);
    const Geometry g = random_geometry(rng, h, w, S);
    cv::Mat out(g.canvas_h, g.canvas_w, CV_8UC1);
    const int64_t area = apply_rle(encode(m), g, out.data);
    const cv::Mat ref = reference_sample(m, g);
    INFO("t=" << t << " " << h << "x" << w << " -> scaled " << g.scaled_h << "x" << g.scaled_w
              << " crop " << g.crop_y << "," << g.crop_x << " flip " << g.flip);
    REQUIRE(cv::countNonZero(out != ref) == 0);
    CHECK(area == cv::countNonZero(ref));
    CHECK(cv::countNonZero(apply_mask(m * 255, g) != ref) == 0);
  }
  // Size mismatch is an error, not garbage.
  cv::Mat out(64, 64, CV_8UC1);
  CHECK_THROWS_WITH(apply_rle(encode(cv::Mat(10, 11, CV_8UC1, cv::Scalar(0))),
                              plan_resize_longest(10, 12, 64), out.data),
                    Catch::Contains("10x11"));
}

TEST_CASE("transforms: image and masks stay aligned through jitter, crop, padding and flip") {
  Rng rng(17);
  for (int t = 0; t < 60; ++t) {
    const int h = int(rng.range(60, 200)), w = int(rng.range(60, 200)), S = 128;
    // A large mask, also painted into an image: resampling the image must land where the mask
    // lands.
    cv::Mat m(h, w, CV_8UC1, cv::Scalar(0));
    cv::ellipse(m, cv::Point(int(w * rng.uniform(0.3, 0.7)), int(h * rng.uniform(0.3, 0.7))),
                cv::Size(int(w * 0.25), int(h * 0.2)), rng.uniform(0, 180), 0, 360, cv::Scalar(1),
                cv::FILLED);
    cv::rectangle(m, cv::Rect(0, 0, w / 5, h / 3), cv::Scalar(1),
                  cv::FILLED);  // asymmetric: catches a wrong flip
    cv::Mat img;
    cv::merge(std::vector<cv::Mat>{m * 255, m * 0, 255 - m * 255}, img);
    const Geometry g = random_geometry(rng, h, w, S);
    const cv::Mat ti = apply_image(img, g);
    REQUIRE(ti.size() == cv::Size(g.canvas_w, g.canvas_h));
    cv::Mat tm(g.canvas_h, g.canvas_w, CV_8UC1);
    const int64_t area = apply_rle(encode(m), g, tm.data);
    std::vector<cv::Mat> ch;
    cv::split(ti, ch);
    const cv::Mat from_image = ch[0] >= 128;
    const double inter = cv::countNonZero(from_image & (tm > 0)),
                 uni = cv::countNonZero(from_image | (tm > 0));
    INFO("t=" << t << " flip " << g.flip << " scaled " << g.scaled_h << "x" << g.scaled_w
              << " crop " << g.crop_y << "," << g.crop_x);
    if (area > 200) CHECK(inter / uni > 0.9);
    // Padding is zero: outside the content window, nothing in the image or the mask.
    if (g.out_w < g.canvas_w) {
      CHECK(cv::countNonZero(ch[2](cv::Rect(g.out_w, 0, g.canvas_w - g.out_w, g.canvas_h))) == 0);
      CHECK(cv::countNonZero(tm(cv::Rect(g.out_w, 0, g.canvas_w - g.out_w, g.canvas_h))) == 0);
    }
    if (g.out_h < g.canvas_h)
      CHECK(cv::countNonZero(ch[2](cv::Rect(0, g.out_h, g.canvas_w, g.canvas_h - g.out_h))) == 0);
  }
}

TEST_CASE("transforms: a mask's box still bounds the transformed mask (large-scale jitter, flip)") {
  Rng rng(23);
  int cropped = 0, padded = 0, loose = 0, cases = 0;
  for (int t = 0; t < 400; ++t) {
    const int h = int(rng.range(20, 160)), w = int(rng.range(20, 160)), S = 96;
    const cv::Mat m = random_mask(rng, h, w);
    const Rle r = encode(m);
    if (sam::mask::rle_area(r) == 0) continue;
    const auto b = sam::mask::rle_bbox_coco(r);  // pixel extent [x, x + w) x [y, y + h)
    const Geometry g = plan_lsj(h, w, S, 0.1, 2.0, rng.chance(0.5), rng);
    cropped += g.out_w < g.scaled_w || g.out_h < g.scaled_h;
    padded += g.out_w < S || g.out_h < S;
    const auto tb = apply_box({b[0], b[1], b[0] + b[2], b[1] + b[3]}, g);
    cv::Mat tm(g.canvas_h, g.canvas_w, CV_8UC1);
    apply_rle(r, g, tm.data);
    int outside = 0, x0 = S, y0 = S, x1 = -1, y1 = -1;
    for (int y = 0; y < g.canvas_h; ++y)
      for (int x = 0; x < g.canvas_w; ++x)
        if (tm.at<uint8_t>(y, x)) {
          outside +=
              !(x + 0.5 >= tb[0] && x + 0.5 <= tb[2] && y + 0.5 >= tb[1] && y + 0.5 <= tb[3]);
          x0 = std::min(x0, x), y0 = std::min(y0, y), x1 = std::max(x1, x), y1 = std::max(y1, y);
        }
    INFO("t=" << t << " box " << tb[0] << "," << tb[1] << "," << tb[2] << "," << tb[3]);
    CHECK(outside == 0);  // every transformed pixel centre lies in the transformed box
    if (x1 >= 0 && g.scaled_w >= w && g.scaled_h >= h && g.out_w == g.scaled_w &&
        g.out_h == g.scaled_h) {
      // ... and, when enlarging (every source pixel sampled) without a crop, the box is tight:
      // its sides are within one output pixel of the mask's extent. (Shrinking may skip a thin
      // tip; a crop may cut the rows that held the extreme columns.)
      ++cases;
      loose +=
          x0 - tb[0] > 1.0 || tb[2] - (x1 + 1) > 1.0 || y0 - tb[1] > 1.0 || tb[3] - (y1 + 1) > 1.0;
    }
  }
  CHECK(cropped > 50);
  CHECK(padded > 50);
  CHECK(cases > 10);
  CHECK(loose == 0);
}

TEST_CASE("transforms: large-scale jitter draws scales in range and is seeded") {
  Rng rng(5);
  double lo = 1e9, hi = 0;
  for (int t = 0; t < 2000; ++t) {
    const Geometry g = plan_lsj(1500, 2250, 1024, 0.1, 2.0, false, rng);
    const double s = double(g.scaled_w) / 1024;
    lo = std::min(lo, s), hi = std::max(hi, s);
    CHECK(g.canvas_h == 1024);
    CHECK(g.canvas_w == 1024);
    CHECK(g.out_w == std::min(g.scaled_w, 1024));
    CHECK(g.crop_x + g.out_w <= g.scaled_w);
    CHECK(std::abs(double(g.scaled_h) / g.scaled_w - 683.0 / 1024) < 0.02);
  }
  CHECK(lo >= 0.1 - 1e-3);
  CHECK(lo < 0.12);
  CHECK(hi <= 2.0 + 1e-3);
  CHECK(hi > 1.95);
  Rng a(9), b(9);
  for (int t = 0; t < 10; ++t) {
    const Geometry ga = plan_lsj(300, 200, 128, 0.1, 2.0, true, a),
                   gb = plan_lsj(300, 200, 128, 0.1, 2.0, true, b);
    CHECK(ga.scaled_h == gb.scaled_h);
    CHECK(ga.crop_x == gb.crop_x);
    CHECK(ga.crop_y == gb.crop_y);
  }
}

TEST_CASE("transforms: points follow the pixels they mark") {
  // A single pixel (7, 3) of a 10 x 20 mask, scaled up 3x with a crop and a flip: its centre lands
  // inside the block of output pixels it became.
  cv::Mat m(10, 20, CV_8UC1, cv::Scalar(0));
  m.at<uint8_t>(3, 7) = 1;
  Geometry g;
  g.src_h = 10, g.src_w = 20, g.scaled_h = 30, g.scaled_w = 60, g.crop_y = 2, g.crop_x = 5;
  g.out_h = 25, g.out_w = 50, g.canvas_h = 32, g.canvas_w = 64, g.flip = true;
  const cv::Mat t = apply_mask(m, g);
  CHECK(cv::countNonZero(t) == 9);
  const auto p = apply_point(7.5, 3.5, g);
  CHECK(t.at<uint8_t>(int(p[1]), int(p[0])) == 1);
  CHECK(p[0] == Approx(60 - 22.5 - 5));  // mirrored: x = 20 - 7.5 = 12.5, times 3, minus the crop
  CHECK(p[1] == Approx(3.5 * 3 - 2));
}

TEST_CASE("transforms: random resized crops keep their area share and aspect ratio in range, seeded") {
  Rng rng(11);
  int fell_back = 0;
  for (int k = 0; k < 500; ++k) {
    const int h = int(rng.range(20, 300)), w = int(rng.range(20, 300)), S = 64;
    const bool flip = rng.chance(0.5);
    Rng draw(1000 + k);
    const Geometry g = plan_random_resized_crop(h, w, S, 0.2, flip, draw);
    INFO(h << "x" << w << " draw " << k);
    REQUIRE(g.out_h == S);
    REQUIRE(g.out_w == S);
    REQUIRE(g.canvas_h == S);
    REQUIRE(g.canvas_w == S);
    REQUIRE(g.flip == flip);
    REQUIRE(g.crop_y >= 0);
    REQUIRE(g.crop_x >= 0);
    REQUIRE(g.crop_y + S <= g.scaled_h);
    REQUIRE(g.crop_x + S <= g.scaled_w);
    // The window in source pixels: S / scale on each axis.
    const double ch = double(S) * h / g.scaled_h, cw = double(S) * w / g.scaled_w;
    const double share = ch * cw / (double(h) * w), ratio = cw / ch;
    // Rounding of the window to whole pixels moves both by up to a pixel per side.
    const double slack = 1.0 + 4.0 / std::min(ch, cw);
    CHECK(share <= 1.0 * slack);
    if (share < 0.2 / slack) {
      // No draw fitted (a long thin image): the whole image cut to the ratio range, centred.
      ++fell_back;
      CHECK((double(w) / h < 0.75 || double(w) / h > 4.0 / 3.0));
      // Centred to a source pixel (integer halving), that is S / window side output pixels.
      CHECK(std::abs(g.crop_x + S / 2.0 - g.scaled_w / 2.0) <= 1.0 + S / cw);
      CHECK(std::abs(g.crop_y + S / 2.0 - g.scaled_h / 2.0) <= 1.0 + S / ch);
    }
    CHECK(ratio >= 0.75 / slack);
    CHECK(ratio <= (4.0 / 3.0) * slack);
    // The same seed, the same window.
    Rng again(1000 + k);
    const Geometry g2 = plan_random_resized_crop(h, w, S, 0.2, flip, again);
    CHECK((g2.scaled_h == g.scaled_h && g2.scaled_w == g.scaled_w && g2.crop_y == g.crop_y && g2.crop_x == g.crop_x));
  }
  CHECK(fell_back < 50);  // rare: 10 draws usually find a window
  Rng r(0);
  CHECK_THROWS_WITH(plan_random_resized_crop(10, 10, 8, 0.0, false, r), Catch::Contains("min_scale"));
  // A whole-image draw (min_scale 1) of a square image is the plain resize.
  const Geometry whole = plan_random_resized_crop(100, 100, 50, 1.0, false, r);
  CHECK(whole.scaled_h == 50);
  CHECK(whole.scaled_w == 50);
  CHECK(whole.crop_x == 0);
  CHECK(whole.crop_y == 0);
}
