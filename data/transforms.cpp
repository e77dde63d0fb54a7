// Longest-side resize, large-scale jitter and flip for images, RLE masks, boxes and points.
//
// Masks are sampled from their runs: for each output column, the runs of the source column its
// centre falls in are mapped to output row ranges through a precomputed table. Small masks are
// written span by span into the output; large ones as contiguous spans into a column-major buffer
// over their box, transposed into place.
#include "data/transforms.h"

#include <opencv2/core.hpp>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <stdexcept>

#include "data/image.h"

namespace sam::data {
namespace {

// Source index whose cell contains the centre of output cell i, for a dst-long axis resampled
// from a src-long one: floor((i + 0.5) * src / dst), exact in integers.
inline int64_t nearest_src(int64_t i, int64_t src, int64_t dst) {
  return std::min(src - 1, ((2 * i + 1) * src) / (2 * dst));
}

void check_geometry(const Geometry& g) {
  const bool ok = g.src_h > 0 && g.src_w > 0 && g.scaled_h > 0 && g.scaled_w > 0 && g.crop_y >= 0 &&
                  g.crop_x >= 0 && g.out_h >= 0 && g.out_w >= 0 &&
                  g.crop_y + g.out_h <= g.scaled_h && g.crop_x + g.out_w <= g.scaled_w &&
                  g.out_h <= g.canvas_h && g.out_w <= g.canvas_w;
  if (!ok) throw std::invalid_argument("transforms: inconsistent Geometry");
}

}  // namespace

Geometry plan_resize_longest(int h, int w, int long_side, bool flip) {
  const auto [nh, nw] = preprocess_shape(h, w, long_side);
  Geometry g;
  g.src_h = h, g.src_w = w;
  // The reference rounds a very thin image's short side to 0; keep one pixel.
  g.scaled_h = std::max(1, nh), g.scaled_w = std::max(1, nw);
  g.out_h = g.canvas_h = g.scaled_h;
  g.out_w = g.canvas_w = g.scaled_w;
  g.flip = flip;
  return g;
}

Geometry plan_lsj(int h, int w, int long_side, double min_scale, double max_scale, bool flip,
                  Rng& rng) {
  if (!(min_scale > 0 && max_scale >= min_scale))
    throw std::invalid_argument("plan_lsj: need 0 < min_scale <= max_scale, got " +
                                std::to_string(min_scale) + ", " + std::to_string(max_scale));
  const auto [bh, bw] = preprocess_shape(h, w, long_side);
  const double r = rng.uniform(min_scale, max_scale);
  Geometry g;
  g.src_h = h, g.src_w = w;
  g.scaled_h = std::max(1, static_cast<int>(std::lround(bh * r)));
  g.scaled_w = std::max(1, static_cast<int>(std::lround(bw * r)));
  g.out_h = std::min(g.scaled_h, long_side);
  g.out_w = std::min(g.scaled_w, long_side);
  g.crop_y = static_cast<int>(rng.range(0, g.scaled_h - g.out_h));
  g.crop_x = static_cast<int>(rng.range(0, g.scaled_w - g.out_w));
  g.canvas_h = g.canvas_w = long_side;
  g.flip = flip;
  return g;
}

Geometry plan_random_resized_crop(int h, int w, int side, double min_scale, bool flip, Rng& rng) {
  if (!(min_scale > 0 && min_scale <= 1))
    throw std::invalid_argument("plan_random_resized_crop: need 0 < min_scale <= 1, got " + std::to_string(min_scale));
  if (h <= 0 || w <= 0 || side <= 0) throw std::invalid_argument("plan_random_resized_crop: empty image or side");
  // torchvision's RandomResizedCrop.get_params: 10 draws of (area share, log aspect ratio), the
  // first window that fits; else the whole image cropped to the ratio range, centred.
  const double area = double(h) * w, lo = std::log(3.0 / 4.0), hi = std::log(4.0 / 3.0);
  int ch = 0, cw = 0, y = 0, x = 0;
  for (int attempt = 0; attempt < 10 && ch == 0; ++attempt) {
    const double target = area * rng.uniform(min_scale, 1.0);
    const double aspect = std::exp(rng.uniform(lo, hi));
    const int tw = static_cast<int>(std::lround(std::sqrt(target * aspect)));
    const int th = static_cast<int>(std::lround(std::sqrt(target / aspect)));
    if (tw > 0 && tw <= w && th > 0 && th <= h) {
      ch = th, cw = tw;
      y = static_cast<int>(rng.range(0, h - th));
      x = static_cast<int>(rng.range(0, w - tw));
    }
  }
  if (ch == 0) {
    const double ratio = double(w) / h;
    if (ratio < 3.0 / 4.0) cw = w, ch = std::max(1, static_cast<int>(std::lround(w / (3.0 / 4.0))));
    else if (ratio > 4.0 / 3.0) ch = h, cw = std::max(1, static_cast<int>(std::lround(h * (4.0 / 3.0))));
    else ch = h, cw = w;
    ch = std::min(ch, h), cw = std::min(cw, w);
    y = (h - ch) / 2, x = (w - cw) / 2;
  }
  // The window [y, y + ch) x [x, x + cw) onto side x side: the image scaled by side / cw across
  // and side / ch down, then the window's side x side pixels.
  Geometry g;
  g.src_h = h, g.src_w = w;
  g.scaled_h = std::max(side, static_cast<int>(std::lround(double(h) * side / ch)));
  g.scaled_w = std::max(side, static_cast<int>(std::lround(double(w) * side / cw)));
  g.crop_y = std::min(g.scaled_h - side, static_cast<int>(std::lround(double(y) * side / ch)));
  g.crop_x = std::min(g.scaled_w - side, static_cast<int>(std::lround(double(x) * side / cw)));
  g.out_h = g.out_w = g.canvas_h = g.canvas_w = side;
  g.flip = flip;
  return g;
}

cv::Mat apply_image(const cv::Mat& src, const Geometry& g) {
  check_geometry(g);
  if (src.rows != g.src_h || src.cols != g.src_w)
    throw std::invalid_argument("apply_image: image is " + std::to_string(src.rows) + "x" +
                                std::to_string(src.cols) + ", the plan expects " +
                                std::to_string(g.src_h) + "x" + std::to_string(g.src_w));
  if (g.out_h == 0 || g.out_w == 0)
    return cv::Mat(g.canvas_h, g.canvas_w, src.type(), cv::Scalar::all(0));
  const cv::Mat scaled = resize_fast(src, g.scaled_h, g.scaled_w);
  const bool whole = g.out_h == g.scaled_h && g.out_w == g.scaled_w && g.canvas_h == g.out_h &&
                     g.canvas_w == g.out_w;
  if (whole && !g.flip) return scaled;  // the plain longest-side resize: no copy
  cv::Mat canvas(g.canvas_h, g.canvas_w, src.type());
  // Zero only the padding (bottom and right of the content window).
  if (g.out_w < g.canvas_w)
    canvas(cv::Rect(g.out_w, 0, g.canvas_w - g.out_w, g.canvas_h)).setTo(cv::Scalar::all(0));
  if (g.out_h < g.canvas_h)
    canvas(cv::Rect(0, g.out_h, g.out_w, g.canvas_h - g.out_h)).setTo(cv::Scalar::all(0));
  // The window in unflipped scaled coordinates; mirrored afterwards when flipping.
  const int x = g.flip ? g.scaled_w - g.crop_x - g.out_w : g.crop_x;
  const cv::Mat window = scaled(cv::Rect(x, g.crop_y, g.out_w, g.out_h));
  cv::Mat dst = canvas(cv::Rect(0, 0, g.out_w, g.out_h));
  if (g.flip)
    cv::flip(window, dst, 1);
  else
    window.copyTo(dst);
  return canvas;
}

int64_t apply_rle(const mask::Rle& r, const Geometry& g, uint8_t* out) {
  check_geometry(g);
  if (r.h != g.src_h || r.w != g.src_w)
    throw std::invalid_argument("apply_rle: mask is " + std::to_string(r.h) + "x" +
                                std::to_string(r.w) + ", the plan expects " +
                                std::to_string(g.src_h) + "x" + std::to_string(g.src_w));
  const size_t canvas = size_t(g.canvas_h) * g.canvas_w;
  std::memset(out, 0, canvas);
  if (g.out_h == 0 || g.out_w == 0) return 0;
  const int64_t H = g.src_h, W = g.src_w;

  // first_row[t]: the first output row whose source row is >= t (t = 0..H), so source rows
  // [a, b) map to output rows [first_row[a], first_row[b]).
  thread_local std::vector<int32_t> first_row;
  first_row.assign(size_t(H) + 1, g.out_h);
  {
    int64_t t = 0;
    for (int y = 0; y < g.out_h; ++y) {
      const int64_t sr = nearest_src(y + g.crop_y, H, g.scaled_h);
      while (t <= sr) first_row[size_t(t++)] = y;
    }
  }
  // Output columns in increasing source-column order.
  thread_local std::vector<std::pair<int64_t, int32_t>> cols;
  cols.clear();
  for (int x = 0; x < g.out_w; ++x) {
    int64_t xs = x + g.crop_x;
    if (g.flip) xs = g.scaled_w - 1 - xs;
    cols.emplace_back(nearest_src(xs, W, g.scaled_w), x);
  }
  if (g.flip) std::reverse(cols.begin(), cols.end());

  // The set spans of every output column: (x, y0, y1).
  thread_local std::vector<std::array<int32_t, 3>> spans;
  spans.clear();
  int64_t area = 0;
  size_t k = 0;            // current run
  uint64_t run_start = 0;  // flat column-major index where run k starts
  const size_t n = r.counts.size();
  for (const auto& [c, x] : cols) {
    const uint64_t col0 = uint64_t(c) * H, col1 = col0 + H;
    // Skip runs that end at or before this column.
    while (k < n && run_start + r.counts[k] <= col0) run_start += r.counts[k++];
    size_t kk = k;
    uint64_t s = run_start;
    while (kk < n && s < col1) {
      const uint64_t e = s + r.counts[kk];
      if ((kk & 1) && e > s) {
        const int64_t a = int64_t(std::max(s, col0) - col0), b = int64_t(std::min(e, col1) - col0);
        const int32_t y0 = first_row[size_t(a)], y1 = first_row[size_t(b)];
        if (y1 > y0) {
          spans.push_back({x, y0, y1});
          area += y1 - y0;
        }
      }
      s = e;
      ++kk;
    }
  }
  if (spans.empty()) return 0;
  const size_t stride = size_t(g.canvas_w);
  if (area * 8 < int64_t(g.out_h) * g.out_w) {
    // Small masks: write the spans straight into the row-major output (one byte per set pixel;
    // neighbouring columns reuse the same cache lines).
    for (const auto& sp : spans) {
      uint8_t* p = out + size_t(sp[1]) * stride + size_t(sp[0]);
      for (int32_t y = sp[1]; y < sp[2]; ++y, p += stride) *p = 1;
    }
    return area;
  }
  // Large masks: contiguous spans into a column-major buffer over the mask's box, then one
  // transpose into place.
  int32_t xa = g.out_w, xb = -1, ya = g.out_h, yb = 0;
  for (const auto& sp : spans)
    xa = std::min(xa, sp[0]), xb = std::max(xb, sp[0]), ya = std::min(ya, sp[1]),
    yb = std::max(yb, sp[2]);
  const int bw = xb - xa + 1, bh = yb - ya;
  thread_local std::vector<uint8_t> t;
  t.assign(size_t(bw) * bh, 0);
  for (const auto& sp : spans)
    std::memset(t.data() + size_t(sp[0] - xa) * bh + (sp[1] - ya), 1, size_t(sp[2] - sp[1]));
  cv::Mat tm(bw, bh, CV_8UC1, t.data());
  cv::Mat om(g.canvas_h, g.canvas_w, CV_8UC1, out);
  cv::Mat dst = om(cv::Rect(xa, ya, bw, bh));
  cv::transpose(tm, dst);
  return area;
}

cv::Mat apply_mask(const cv::Mat& m, const Geometry& g) {
  if (m.type() != CV_8UC1 || m.rows != g.src_h || m.cols != g.src_w)
    throw std::invalid_argument(
        "apply_mask: needs a uint8 single-channel mask of the plan's source size");
  cv::Mat cont = m.isContinuous() ? m : m.clone();
  const mask::Rle r = mask::rle_encode(cont.data, m.rows, m.cols);
  cv::Mat out(g.canvas_h, g.canvas_w, CV_8UC1);
  apply_rle(r, g, out.data);
  return out;
}

std::array<double, 2> apply_point(double x, double y, const Geometry& g) {
  const double xf = g.flip ? g.src_w - x : x;
  return {xf * g.scaled_w / g.src_w - g.crop_x, y * g.scaled_h / g.src_h - g.crop_y};
}

std::array<double, 4> apply_box(const std::array<double, 4>& b, const Geometry& g) {
  auto p0 = apply_point(b[0], b[1], g), p1 = apply_point(b[2], b[3], g);
  double x0 = std::min(p0[0], p1[0]), x1 = std::max(p0[0], p1[0]);
  const double y0 = std::clamp(p0[1], 0.0, double(g.out_h)),
               y1 = std::clamp(p1[1], 0.0, double(g.out_h));
  x0 = std::clamp(x0, 0.0, double(g.out_w));
  x1 = std::clamp(x1, 0.0, double(g.out_w));
  return {x0, y0, x1, y1};
}

}  // namespace sam::data
