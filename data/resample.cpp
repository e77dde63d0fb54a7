#include "data/resample.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <stdexcept>
#include <string>
#include <vector>

namespace sam::data {
namespace {

// Coefficients of one 1-D pass of Pillow's resampler: output i reads `count[i]` inputs starting at
// `start[i]`, weighted by k[i * stride + t] (22-bit fixed point).
struct PassCoeffs {
  std::vector<int> start, count;
  std::vector<int32_t> k;
  int stride = 0;
};

// The same weights as a fixed number of taps per output (zero weights padded in, windows shifted
// left at the right edge so that they stay inside the row): exact in integer arithmetic, and lets
// the horizontal loop run a compile-time tap count.
struct FixedTaps {
  std::vector<int> start;
  std::vector<int32_t> k;
  int taps = 0;
};

FixedTaps fixed_taps(const PassCoeffs& c, int in_size) {
  FixedTaps f;
  f.taps = *std::max_element(c.count.begin(), c.count.end());
  const size_t n = c.start.size();
  f.start.resize(n);
  f.k.assign(n * f.taps, 0);
  for (size_t i = 0; i < n; ++i) {
    const int s = std::min(c.start[i], in_size - f.taps);
    const int shift = c.start[i] - s;
    for (int t = 0; t < c.count[i]; ++t) f.k[i * f.taps + shift + t] = c.k[i * c.stride + t];
    f.start[i] = s;
  }
  return f;
}

constexpr int kPrecisionBits = 32 - 8 - 2;  // Pillow's PRECISION_BITS

double triangle(double x) {
  if (x < 0.0) x = -x;
  return x < 1.0 ? 1.0 - x : 0.0;
}

// Pillow's precompute_coeffs + normalize_coeffs_8bpc for the bilinear filter (support 1) and the
// whole-image box [0, in_size]. Every double operation is done in Pillow's order, so that the
// rounded fixed-point weights are the same bit for bit.
PassCoeffs pass_coeffs(int in_size, int out_size) {
  const double scale = static_cast<double>(static_cast<float>(in_size) - 0.0f) / out_size;
  const double filterscale = std::max(scale, 1.0);
  const double support = 1.0 * filterscale;
  const double ss = 1.0 / filterscale;
  PassCoeffs c;
  c.stride = static_cast<int>(std::ceil(support)) * 2 + 1;
  c.start.resize(out_size);
  c.count.resize(out_size);
  c.k.assign(size_t(out_size) * c.stride, 0);
  std::vector<double> w(c.stride);
  for (int i = 0; i < out_size; ++i) {
    const double center = 0.0 + (i + 0.5) * scale;
    int lo = static_cast<int>(center - support + 0.5);
    if (lo < 0) lo = 0;
    int hi = static_cast<int>(center + support + 0.5);
    if (hi > in_size) hi = in_size;
    const int n = hi - lo;
    double sum = 0.0;
    for (int t = 0; t < n; ++t) {
      w[t] = triangle((t + lo - center + 0.5) * ss);
      sum += w[t];
    }
    int32_t* k = &c.k[size_t(i) * c.stride];
    for (int t = 0; t < n; ++t) {
      const double v = sum != 0.0 ? w[t] / sum : w[t];
      k[t] = v < 0 ? static_cast<int32_t>(-0.5 + v * (1 << kPrecisionBits))
                   : static_cast<int32_t>(0.5 + v * (1 << kPrecisionBits));
    }
    c.start[i] = lo;
    c.count[i] = n;
  }
  return c;
}

inline uint8_t clip8(int32_t acc) {
  const int32_t v = acc >> kPrecisionBits;  // arithmetic shift, as Pillow's table lookup
  return static_cast<uint8_t>(v < 0 ? 0 : (v > 255 ? 255 : v));
}

constexpr int32_t kHalf = 1 << (kPrecisionBits - 1);

// Horizontal pass over source rows [row0, row0 + dst.rows), T taps known at compile time
// (T = 0: run-time count).
template <int C, int T>
void horizontal_pass(const PixelView& src, const PixelSpan& dst, int row0, const FixedTaps& f,
                     const RowLoop& loop) {
  const int out_w = dst.cols;
  const int taps = T > 0 ? T : f.taps;
  loop(dst.rows, [&](int begin, int end) {
    for (int y = begin; y < end; ++y) {
      const uint8_t* s = src.data + size_t(row0 + y) * src.step;
      uint8_t* d = dst.data + size_t(y) * dst.step;
      for (int x = 0; x < out_w; ++x) {
        const int32_t* k = &f.k[size_t(x) * taps];
        const uint8_t* p = s + f.start[x] * C;
        int32_t acc[C];
        for (int ch = 0; ch < C; ++ch) acc[ch] = kHalf;
        for (int t = 0; t < taps; ++t) {
          for (int ch = 0; ch < C; ++ch) acc[ch] += int32_t(p[t * C + ch]) * k[t];
        }
        for (int ch = 0; ch < C; ++ch) d[x * C + ch] = clip8(acc[ch]);
      }
    }
  });
}

template <int C>
void horizontal_pass(const PixelView& src, const PixelSpan& dst, int row0, const FixedTaps& f,
                     const RowLoop& loop) {
  // Tap counts of the bilinear filter: 2 when enlarging, about 2 * factor + 1 when shrinking by
  // `factor` (at most 5 up to 2x, 7 up to 3x; 1500x2250 -> 683x1024 uses 5).
  switch (f.taps) {
    case 2:
      return horizontal_pass<C, 2>(src, dst, row0, f, loop);
    case 3:
      return horizontal_pass<C, 3>(src, dst, row0, f, loop);
    case 4:
      return horizontal_pass<C, 4>(src, dst, row0, f, loop);
    case 5:
      return horizontal_pass<C, 5>(src, dst, row0, f, loop);
    case 6:
      return horizontal_pass<C, 6>(src, dst, row0, f, loop);
    case 7:
      return horizontal_pass<C, 7>(src, dst, row0, f, loop);
    default:
      return horizontal_pass<C, 0>(src, dst, row0, f, loop);
  }
}

// Vertical pass: output row y blends rows c.start[y] - row0 ... of src (all channels at once).
void vertical_pass(const PixelView& src, const PixelSpan& dst, int row0, const PassCoeffs& c,
                   const RowLoop& loop) {
  const int n_elems = dst.cols * dst.channels;
  loop(dst.rows, [&](int begin, int end) {
    std::vector<int32_t> acc(n_elems);
    for (int y = begin; y < end; ++y) {
      std::fill(acc.begin(), acc.end(), kHalf);
      const int32_t* k = &c.k[size_t(y) * c.stride];
      for (int t = 0; t < c.count[y]; ++t) {
        const uint8_t* s = src.data + size_t(c.start[y] - row0 + t) * src.step;
        const int32_t kt = k[t];
        int32_t* a = acc.data();
        for (int i = 0; i < n_elems; ++i) a[i] += int32_t(s[i]) * kt;
      }
      uint8_t* d = dst.data + size_t(y) * dst.step;
      for (int i = 0; i < n_elems; ++i) d[i] = clip8(acc[i]);
    }
  });
}

}  // namespace

std::pair<int, int> preprocess_shape(int h, int w, int long_side) {
  if (h <= 0 || w <= 0 || long_side <= 0) {
    throw std::invalid_argument(
        "preprocess_shape: sizes must be positive, got h=" + std::to_string(h) +
        " w=" + std::to_string(w) + " long_side=" + std::to_string(long_side));
  }
  const double s = long_side * 1.0 / std::max(h, w);
  return {static_cast<int>(h * s + 0.5), static_cast<int>(w * s + 0.5)};
}

void resize_pil_bilinear(const PixelView& src, const PixelSpan& dst, const RowLoop& loop_or_empty) {
  if (!src.data || src.rows <= 0 || src.cols <= 0 || src.channels < 1 || src.channels > 4) {
    throw std::invalid_argument("resize_pil_bilinear: needs a non-empty uint8 image with 1..4 channels, got " +
                                std::to_string(src.rows) + "x" + std::to_string(src.cols) + "x" +
                                std::to_string(src.channels));
  }
  if (!dst.data || dst.rows <= 0 || dst.cols <= 0) {
    throw std::invalid_argument("resize_pil_bilinear: target size must be positive, got " +
                                std::to_string(dst.rows) + "x" + std::to_string(dst.cols));
  }
  if (dst.channels != src.channels) {
    throw std::invalid_argument("resize_pil_bilinear: target has " + std::to_string(dst.channels) +
                                " channels, the source " + std::to_string(src.channels));
  }
  const RowLoop loop = loop_or_empty ? loop_or_empty : RowLoop([](int n, const std::function<void(int, int)>& body) {
    body(0, n);
  });
  const size_t row_bytes = size_t(src.cols) * src.channels;
  const bool need_h = dst.cols != src.cols;
  const bool need_v = dst.rows != src.rows;
  if (!need_h && !need_v) {
    for (int y = 0; y < src.rows; ++y) std::memcpy(dst.data + y * dst.step, src.data + y * src.step, row_bytes);
    return;
  }
  const PassCoeffs vert = pass_coeffs(src.rows, dst.rows);
  // Source rows the vertical pass reads: only those go through the horizontal pass.
  const int row_first = vert.start.front();
  const int row_last = vert.start.back() + vert.count.back();
  if (!need_h) {
    vertical_pass(src, dst, 0, vert, loop);
    return;
  }
  const FixedTaps horiz = fixed_taps(pass_coeffs(src.cols, dst.cols), src.cols);
  std::vector<uint8_t> tmp_bytes;
  PixelSpan tmp = dst;  // no vertical pass: the horizontal one writes the result
  if (need_v) {
    tmp.rows = row_last - row_first;
    tmp.step = size_t(dst.cols) * dst.channels;
    tmp_bytes.resize(tmp.step * tmp.rows);
    tmp.data = tmp_bytes.data();
  }
  switch (src.channels) {
    case 1:
      horizontal_pass<1>(src, tmp, need_v ? row_first : 0, horiz, loop);
      break;
    case 2:
      horizontal_pass<2>(src, tmp, need_v ? row_first : 0, horiz, loop);
      break;
    case 3:
      horizontal_pass<3>(src, tmp, need_v ? row_first : 0, horiz, loop);
      break;
    default:
      horizontal_pass<4>(src, tmp, need_v ? row_first : 0, horiz, loop);
      break;
  }
  if (need_v) vertical_pass(PixelView{tmp.data, tmp.rows, tmp.cols, tmp.channels, tmp.step}, dst, row_first, vert, loop);
}

}  // namespace sam::data
