// Label maps (data/label_map.h): palette PNGs as their indices, the other images as decoded, both
// through data/codec.h.
#include "data/label_map.h"

#include <filesystem>
#include <fstream>
#include <iterator>
#include <stdexcept>

#include "data/codec.h"

namespace sam::data {
namespace {

[[noreturn]] void fail(const std::string& what, const std::string& msg) {
  throw std::runtime_error(what + ": " + msg);
}

// The VOC colour map's inverse: the index whose colour is (r, g, b), or -1.
int voc_index(uint8_t r, uint8_t g, uint8_t b) {
  int i = 0;
  for (int j = 0; j < 3; ++j) {
    i |= ((r >> (7 - j)) & 1) << (3 * j);
    i |= ((g >> (7 - j)) & 1) << (3 * j + 1);
    i |= ((b >> (7 - j)) & 1) << (3 * j + 2);
  }
  if (i > 255) return -1;
  const auto c = voc_colour(i);
  return c[0] == r && c[1] == g && c[2] == b ? i : -1;
}

}  // namespace

std::array<uint8_t, 3> voc_colour(int i) {
  std::array<uint8_t, 3> c{0, 0, 0};
  int v = i;
  for (int j = 0; j < 8 && v; ++j, v >>= 3) {
    c[0] |= static_cast<uint8_t>(((v >> 0) & 1) << (7 - j));
    c[1] |= static_cast<uint8_t>(((v >> 1) & 1) << (7 - j));
    c[2] |= static_cast<uint8_t>(((v >> 2) & 1) << (7 - j));
  }
  return c;
}

bool label_maps_read_palette_indices() { return have_jpeg_png_codecs(); }

cv::Mat decode_label_map(const std::vector<uint8_t>& bytes, const std::string& what) {
  if (bytes.empty()) fail(what, "empty file");
  cv::Mat idx;
  try {
    idx = png_palette_indices(bytes);
  } catch (const std::exception& e) {
    fail(what, e.what());
  }
  if (!idx.empty()) return idx;
  cv::Mat m;
  try {
    m = image_decode(bytes);
  } catch (const std::exception& e) {
    fail(what, std::string("cannot decode image: ") + e.what());
  }
  if (m.empty()) fail(what, "not a decodable image (unknown format, corrupt or truncated)");
  if (m.depth() != CV_8U)
    fail(what, "a label map of " + std::string(m.depth() == CV_16U ? "16" : "non-8") +
                   "-bit samples; 8-bit ids expected");
  if (m.channels() == 1) return m.clone();
  if (m.channels() != 3 && m.channels() != 4)
    fail(what, "a label map with " + std::to_string(m.channels()) + " channels");
  // Colours (OpenCV's BGR order) back to VOC indices.
  cv::Mat out(m.rows, m.cols, CV_8UC1);
  const int cn = m.channels();
  for (int y = 0; y < m.rows; ++y) {
    const uint8_t* p = m.ptr<uint8_t>(y);
    uint8_t* o = out.ptr<uint8_t>(y);
    for (int x = 0; x < m.cols; ++x, p += cn) {
      const int i = voc_index(p[2], p[1], p[0]);
      if (i < 0)
        fail(what, "colour (" + std::to_string(p[2]) + ", " + std::to_string(p[1]) + ", " +
                       std::to_string(p[0]) + ") at (x " + std::to_string(x) + ", y " +
                       std::to_string(y) +
                       ") is not in the PASCAL VOC colour map (a colour label map is read "
                       "through it; palette and grey PNGs give their ids directly)");
      o[x] = static_cast<uint8_t>(i);
    }
  }
  return out;
}

cv::Mat read_label_map(const std::string& path) {
  std::error_code ec;
  if (!std::filesystem::is_regular_file(path, ec)) fail(path, "file not found");
  std::ifstream f(path, std::ios::binary);
  if (!f) fail(path, "cannot open file");
  std::vector<uint8_t> bytes((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  if (f.bad()) fail(path, "read error");
  return decode_label_map(bytes, path);
}

}  // namespace sam::data
