#include "data/image.h"

#include "data/codec.h"

#include <opencv2/core/utility.hpp>
#include <opencv2/imgproc.hpp>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <stdexcept>

namespace sam::data {
namespace {

[[noreturn]] void fail(const std::string& what, const std::string& problem) {
  throw std::runtime_error(what + ": " + problem);
}

// True when a JPEG's entropy-coded data is followed by an EOI marker. The marker segments before
// the first SOS are walked by their lengths, because APPn payloads (EXIF thumbnails) may hold
// FFD9 bytes of their own; after SOS, an FF byte in entropy-coded data is always followed by 00 or
// RSTn, so any FFD9 there is the real end of image.
bool jpeg_has_eoi(const std::vector<uint8_t>& b) {
  size_t pos = 2;
  const size_t n = b.size();
  while (true) {
    while (pos < n && b[pos] != 0xFF) ++pos;  // tolerate junk between segments, as libjpeg does
    while (pos < n && b[pos] == 0xFF) ++pos;  // fill bytes
    if (pos >= n) return false;
    const uint8_t marker = b[pos++];
    if (marker == 0xD9)
      return true;  // EOI before any scan: nothing truncated, let the decoder judge
    if (marker == 0x01 || (marker >= 0xD0 && marker <= 0xD7)) continue;  // no length field
    if (pos + 2 > n) return false;
    const size_t len = (size_t(b[pos]) << 8) | b[pos + 1];
    if (marker == 0xDA) {
      pos += len;
      break;
    }
    pos += len;
  }
  for (; pos + 1 < n; ++pos) {
    if (b[pos] == 0xFF && b[pos + 1] == 0xD9) return true;
  }
  return false;
}

// Any decoded depth -> 8 bits, keeping the channel count.
cv::Mat to_8u(const cv::Mat& m, const std::string& what) {
  switch (m.depth()) {
    case CV_8U:
      return m;
    case CV_16U: {
      // round(v / 257): 257 is odd, so v / 257 never lands on .5 and (v + 128) / 257 is exact.
      cv::Mat out(m.rows, m.cols, CV_MAKETYPE(CV_8U, m.channels()));
      const int n = m.cols * m.channels();
      for (int y = 0; y < m.rows; ++y) {
        const uint16_t* s = m.ptr<uint16_t>(y);
        uint8_t* d = out.ptr<uint8_t>(y);
        for (int i = 0; i < n; ++i) d[i] = static_cast<uint8_t>((unsigned(s[i]) + 128u) / 257u);
      }
      return out;
    }
    case CV_32F:
    case CV_64F: {
      cv::Mat out;
      m.convertTo(out, CV_MAKETYPE(CV_8U, m.channels()), 255.0);  // rounds and saturates
      return out;
    }
    default:
      fail(what, "unsupported sample type " + std::to_string(m.depth()) + " (OpenCV depth code)");
  }
}

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
void horizontal_pass(const cv::Mat& src, cv::Mat& dst, int row0, const FixedTaps& f) {
  const int out_w = dst.cols;
  const int taps = T > 0 ? T : f.taps;
  cv::parallel_for_(cv::Range(0, dst.rows), [&](const cv::Range& r) {
    for (int y = r.start; y < r.end; ++y) {
      const uint8_t* s = src.ptr<uint8_t>(row0 + y);
      uint8_t* d = dst.ptr<uint8_t>(y);
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
void horizontal_pass(const cv::Mat& src, cv::Mat& dst, int row0, const FixedTaps& f) {
  // Tap counts of the bilinear filter: 2 when enlarging, about 2 * factor + 1 when shrinking by
  // `factor` (at most 5 up to 2x, 7 up to 3x; 1500x2250 -> 683x1024 uses 5).
  switch (f.taps) {
    case 2:
      return horizontal_pass<C, 2>(src, dst, row0, f);
    case 3:
      return horizontal_pass<C, 3>(src, dst, row0, f);
    case 4:
      return horizontal_pass<C, 4>(src, dst, row0, f);
    case 5:
      return horizontal_pass<C, 5>(src, dst, row0, f);
    case 6:
      return horizontal_pass<C, 6>(src, dst, row0, f);
    case 7:
      return horizontal_pass<C, 7>(src, dst, row0, f);
    default:
      return horizontal_pass<C, 0>(src, dst, row0, f);
  }
}

// Vertical pass: output row y blends rows c.start[y] - row0 ... of src (all channels at once).
void vertical_pass(const cv::Mat& src, cv::Mat& dst, int row0, const PassCoeffs& c) {
  const int n_elems = dst.cols * dst.channels();
  cv::parallel_for_(cv::Range(0, dst.rows), [&](const cv::Range& r) {
    std::vector<int32_t> acc(n_elems);
    for (int y = r.start; y < r.end; ++y) {
      std::fill(acc.begin(), acc.end(), kHalf);
      const int32_t* k = &c.k[size_t(y) * c.stride];
      for (int t = 0; t < c.count[y]; ++t) {
        const uint8_t* s = src.ptr<uint8_t>(c.start[y] - row0 + t);
        const int32_t kt = k[t];
        int32_t* a = acc.data();
        for (int i = 0; i < n_elems; ++i) a[i] += int32_t(s[i]) * kt;
      }
      uint8_t* d = dst.ptr<uint8_t>(y);
      for (int i = 0; i < n_elems; ++i) d[i] = clip8(acc[i]);
    }
  });
}

// The image in a file's bytes as stored (as IMREAD_UNCHANGED: 16-bit depth and alpha kept, EXIF
// orientation ignored); throws "<what>: <problem>" for an empty, truncated or undecodable file.
cv::Mat decode_checked(const std::vector<uint8_t>& bytes, const std::string& what) {
  if (bytes.empty()) fail(what, "empty file");
  if (is_jpeg(bytes) && !jpeg_has_eoi(bytes)) fail(what, "truncated JPEG (no end-of-image marker)");
  cv::Mat decoded;
  try {
    decoded = image_decode(bytes);
  } catch (const std::exception& e) {
    fail(what, std::string("cannot decode image: ") + e.what());
  }
  if (decoded.empty()) fail(what, "not a decodable image (unknown format, corrupt or truncated)");
  return decoded;
}

}  // namespace

cv::Mat image_decode_rgb(const std::vector<uint8_t>& bytes, const std::string& what) {
  cv::Mat m = to_8u(decode_checked(bytes, what), what);
  cv::Mat rgb;
  switch (m.channels()) {
    case 1:
      cv::cvtColor(m, rgb, cv::COLOR_GRAY2RGB);
      break;
    case 2: {  // gray + alpha: keep the gray
      cv::Mat gray;
      cv::extractChannel(m, gray, 0);
      cv::cvtColor(gray, rgb, cv::COLOR_GRAY2RGB);
      break;
    }
    case 3:
      cv::cvtColor(m, rgb, cv::COLOR_BGR2RGB);
      break;
    case 4:
      cv::cvtColor(m, rgb, cv::COLOR_BGRA2RGB);
      break;
    default:
      fail(what, "unsupported channel count " + std::to_string(m.channels()));
  }
  return rgb;
}

namespace {
// A file's bytes; throws "<path>: <problem>" when it cannot be read.
std::vector<uint8_t> read_image_file(const std::string& path) {
  std::error_code ec;
  if (std::filesystem::is_directory(path, ec)) fail(path, "is a directory, not an image file");
  std::ifstream f(path, std::ios::binary);
  if (!f) fail(path, "cannot open file");
  std::vector<uint8_t> bytes;
  try {
    bytes.assign(std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>());
  } catch (const std::exception& e) {
    fail(path, std::string("read error: ") + e.what());
  }
  if (f.bad()) fail(path, "read error");
  return bytes;
}
}  // namespace

cv::Mat image_read_rgb(const std::string& path) { return image_decode_rgb(read_image_file(path), path); }

cv::Mat image_read_gray(const std::string& path) {
  cv::Mat m = decode_checked(read_image_file(path), path);
  // As IMREAD_GRAYSCALE: 16-bit samples shifted down by 8 bits, colour by OpenCV's weights.
  if (m.depth() == CV_16U) m.convertTo(m, CV_8U, 1.0 / 256.0);
  cv::Mat gray;
  if (m.channels() == 3) cv::cvtColor(m, gray, cv::COLOR_BGR2GRAY);
  else if (m.channels() == 4) cv::cvtColor(m, gray, cv::COLOR_BGRA2GRAY);
  else gray = m;
  return gray;
}

std::pair<int, int> preprocess_shape(int h, int w, int long_side) {
  if (h <= 0 || w <= 0 || long_side <= 0) {
    throw std::invalid_argument(
        "preprocess_shape: sizes must be positive, got h=" + std::to_string(h) +
        " w=" + std::to_string(w) + " long_side=" + std::to_string(long_side));
  }
  const double s = long_side * 1.0 / std::max(h, w);
  return {static_cast<int>(h * s + 0.5), static_cast<int>(w * s + 0.5)};
}

cv::Mat resize_pil_bilinear(const cv::Mat& src, int newh, int neww) {
  if (src.empty() || src.depth() != CV_8U || src.channels() > 4) {
    throw std::invalid_argument(
        "resize_pil_bilinear: needs a non-empty uint8 image with 1..4 channels, got " +
        (src.empty() ? std::string("an empty one") : cv::typeToString(src.type())));
  }
  if (newh <= 0 || neww <= 0) {
    throw std::invalid_argument("resize_pil_bilinear: target size must be positive, got " +
                                std::to_string(newh) + "x" + std::to_string(neww));
  }
  const int type = src.type();
  const bool need_h = neww != src.cols;
  const bool need_v = newh != src.rows;
  if (!need_h && !need_v) return src.clone();

  const PassCoeffs vert = pass_coeffs(src.rows, newh);
  // Source rows the vertical pass reads: only those go through the horizontal pass.
  const int row_first = vert.start.front();
  const int row_last = vert.start.back() + vert.count.back();

  cv::Mat tmp;
  int tmp_row0 = 0;
  if (need_h) {
    const FixedTaps horiz = fixed_taps(pass_coeffs(src.cols, neww), src.cols);
    tmp.create(row_last - row_first, neww, type);
    tmp_row0 = row_first;
    switch (src.channels()) {
      case 1:
        horizontal_pass<1>(src, tmp, row_first, horiz);
        break;
      case 2:
        horizontal_pass<2>(src, tmp, row_first, horiz);
        break;
      case 3:
        horizontal_pass<3>(src, tmp, row_first, horiz);
        break;
      default:
        horizontal_pass<4>(src, tmp, row_first, horiz);
        break;
    }
    if (!need_v) return tmp;  // no vertical pass: the rows read are all rows
  } else {
    tmp = src;
  }
  cv::Mat out(newh, tmp.cols, type);
  vertical_pass(tmp, out, tmp_row0, vert);
  return out;
}

cv::Mat resize_fast(const cv::Mat& src, int newh, int neww) {
  if (src.empty() || newh <= 0 || neww <= 0) {
    throw std::invalid_argument("resize_fast: needs a non-empty image and a positive size, got " +
                                std::to_string(newh) + "x" + std::to_string(neww));
  }
  if (newh == src.rows && neww == src.cols) return src.clone();
  const bool shrink = newh <= src.rows && neww <= src.cols;
  cv::Mat out;
  cv::resize(src, out, cv::Size(neww, newh), 0, 0, shrink ? cv::INTER_AREA : cv::INTER_LINEAR);
  return out;
}

}  // namespace sam::data
