// The two image codec backends (data/codec.h): libjpeg + libpng directly (the GPU check's build)
// against OpenCV's imgcodecs (the default), on JPEG and PNG files of every kind OpenCV writes and
// on the golden image: the same pixels, channel order and depth.
#include <catch2/catch.hpp>

#include <fstream>
#include <iterator>

#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

#include "data/codec.h"
#include "test_util.h"

namespace {

std::vector<uint8_t> encode_cv(const cv::Mat& m, const std::string& ext, std::vector<int> params = {}) {
  std::vector<uint8_t> out;
  REQUIRE(cv::imencode(ext, m, out, params));
  return out;
}

void check_same(const cv::Mat& a, const cv::Mat& b, const std::string& what) {
  INFO(what << ": " << a.rows << "x" << a.cols << "x" << a.channels() << " type " << a.type() << " vs " << b.rows
            << "x" << b.cols << "x" << b.channels() << " type " << b.type());
  REQUIRE(a.type() == b.type());
  REQUIRE(a.size() == b.size());
  CHECK(cv::norm(a, b, cv::NORM_INF) == 0);
}

cv::Mat pattern(int h, int w, int type) {
  cv::Mat m(h, w, type);
  cv::randu(m, 0, CV_MAT_DEPTH(type) == CV_16U ? 65535 : 255);
  cv::GaussianBlur(m, m, {5, 5}, 2);  // something JPEG-like, not only noise
  return m;
}

}  // namespace

TEST_CASE("libjpeg/libpng decode as OpenCV does", "[data][codec]") {
  if (!sam::data::have_jpeg_png_codecs()) {
    sam_test::skip("this build has no libjpeg/libpng codecs");
    return;
  }
  cv::setRNGSeed(5);
  using sam::data::image_decode_jpeg_png;
  // JPEG: colour (baseline and progressive) and gray, odd sizes.
  for (int q : {75, 95}) {
    const auto c = pattern(37, 53, CV_8UC3);
    for (int progressive : {0, 1}) {
      const auto bytes = encode_cv(c, ".jpg", {cv::IMWRITE_JPEG_QUALITY, q, cv::IMWRITE_JPEG_PROGRESSIVE, progressive});
      check_same(image_decode_jpeg_png(bytes), cv::imdecode(bytes, cv::IMREAD_UNCHANGED), "colour JPEG");
    }
    const auto g = encode_cv(pattern(41, 29, CV_8UC1), ".jpg", {cv::IMWRITE_JPEG_QUALITY, q});
    check_same(image_decode_jpeg_png(g), cv::imdecode(g, cv::IMREAD_UNCHANGED), "gray JPEG");
  }
  // PNG: 8 and 16 bits, gray, BGR, BGRA.
  for (int type : {CV_8UC1, CV_8UC3, CV_8UC4, CV_16UC1, CV_16UC3, CV_16UC4}) {
    const auto bytes = encode_cv(pattern(23, 31, type), ".png");
    check_same(image_decode_jpeg_png(bytes), cv::imdecode(bytes, cv::IMREAD_UNCHANGED), "PNG type " + std::to_string(type));
  }
  // The golden image, a real photograph.
  std::ifstream f(sam_test::golden_tiny() / "image.jpg", std::ios::binary);
  REQUIRE(f.good());
  const std::vector<uint8_t> photo((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  check_same(image_decode_jpeg_png(photo), cv::imdecode(photo, cv::IMREAD_UNCHANGED), "golden image.jpg");
  // Not an image: empty, not an exception.
  CHECK(image_decode_jpeg_png({'n', 'o', 't', ' ', 'a', 'n', ' ', 'i', 'm', 'a', 'g', 'e'}).empty());
  // A JPEG cut short is padded by libjpeg (each backend its own way: data/image.cpp rejects such
  // files by the missing end-of-image marker before decoding); a PNG cut short is an error.
  const std::vector<uint8_t> cut(photo.begin(), photo.begin() + 6000);
  CHECK(image_decode_jpeg_png(cut).size() == cv::imdecode(cut, cv::IMREAD_UNCHANGED).size());
  const auto png = encode_cv(pattern(30, 30, CV_8UC3), ".png");
  CHECK_THROWS_WITH(image_decode_jpeg_png(std::vector<uint8_t>(png.begin(), png.begin() + png.size() / 2)),
                    Catch::Contains("PNG"));
}

TEST_CASE("libjpeg/libpng encode what OpenCV reads back", "[data][codec]") {
  if (!sam::data::have_jpeg_png_codecs()) {
    sam_test::skip("this build has no libjpeg/libpng codecs");
    return;
  }
  cv::setRNGSeed(6);
  for (int type : {CV_8UC1, CV_8UC3, CV_8UC4, CV_16UC1, CV_16UC3}) {
    const auto m = pattern(21, 34, type);
    const auto png = sam::data::image_encode_jpeg_png(m, "png");
    check_same(cv::imdecode(png, cv::IMREAD_UNCHANGED), m, "PNG written, type " + std::to_string(type));
  }
  // JPEG is lossy: both decoders read our file the same, close to the original.
  const auto c = pattern(40, 48, CV_8UC3);
  const auto jpg = sam::data::image_encode_jpeg_png(c, "jpg", 95);
  const auto back = cv::imdecode(jpg, cv::IMREAD_UNCHANGED);
  check_same(sam::data::image_decode_jpeg_png(jpg), back, "JPEG written");
  CHECK(cv::norm(back, c, cv::NORM_L1) / c.total() / 3 < 6.0);  // mean error 3.8 levels at quality 95 on blurred noise
  CHECK_THROWS_WITH(sam::data::image_encode_jpeg_png(c, "bmp"), Catch::Contains("png and jpg only"));
}

TEST_CASE("image_write writes by extension and names the file on errors", "[data][codec]") {
  const auto dir = sam_test::temp_dir("codec_write");
  const auto m = pattern(10, 12, CV_8UC3);
  sam::data::image_write((dir / "a.png").string(), m);
  check_same(cv::imread((dir / "a.png").string(), cv::IMREAD_UNCHANGED), m, "image_write PNG");
  sam::data::image_write((dir / "b.JPEG").string(), m, 90);
  CHECK(cv::imread((dir / "b.JPEG").string(), cv::IMREAD_UNCHANGED).size() == m.size());
  CHECK_THROWS_WITH(sam::data::image_write((dir / "missing" / "c.png").string(), m),
                    Catch::Contains("missing/c.png: cannot open for writing"));
}
