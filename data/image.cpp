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

cv::Mat resize_pil_bilinear(const cv::Mat& src, int newh, int neww) {
  // The pixel type is the one thing the plain-buffer resize cannot see; it checks the rest
  // (an empty source, channels, the target size).
  if (!src.empty() && src.depth() != CV_8U) {
    throw std::invalid_argument("resize_pil_bilinear: needs a non-empty uint8 image with 1..4 channels, got " +
                                cv::typeToString(src.type()));
  }
  cv::Mat out;
  if (newh > 0 && neww > 0) out.create(newh, neww, src.type());
  const RowLoop opencv_pool = [](int n, const std::function<void(int, int)>& body) {
    cv::parallel_for_(cv::Range(0, n), [&](const cv::Range& r) { body(r.start, r.end); });
  };
  resize_pil_bilinear(PixelView{src.data, src.rows, src.cols, src.channels(), src.step[0]},
                      PixelSpan{out.data, newh, neww, src.channels(), out.empty() ? 0 : out.step[0]}, opencv_pool);
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
