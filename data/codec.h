#pragma once
// Encoded images in and out. Two backends, one chosen when the project is configured:
//   OpenCV's imgcodecs (the default: JPEG, PNG, BMP, TIFF, WebP, ...), or
//   libjpeg-turbo and libpng directly (SAM_CODECS_JPEG_PNG): builds without imgcodecs, whose
//   Debian package pulls 141 shared libraries (GDAL, Qt, FFmpeg); the GPU check's bundle uses it.
// Both give what cv::imdecode(IMREAD_UNCHANGED) gives for JPEG and PNG: the stored pixels in
// OpenCV's channel order (gray, BGR, BGRA; gray+alpha PNGs as BGRA), 8 or 16 bits, palettes
// expanded, EXIF orientation ignored. The JPEG decoder runs libjpeg-turbo with the settings
// OpenCV gives it, so both backends decode the same bytes to the same pixels.
#include <opencv2/core.hpp>

#include <cstdint>
#include <string>
#include <vector>

namespace sam::data {

/// Whether the bytes start with a JPEG's start-of-image marker.
bool is_jpeg(const std::vector<uint8_t>& bytes);

/// Decodes an encoded image; an empty matrix when the bytes are not an image the backend reads.
/// Throws std::runtime_error with the library's message when decoding fails midway.
cv::Mat image_decode(const std::vector<uint8_t>& bytes);

/// Encodes `m` (gray, BGR or BGRA; 8 bits, or 16 for PNG) as "png" (param: zlib level 0-9,
/// default 3 as OpenCV's) or "jpg" (param: quality 0-100, default 95). Throws on other formats.
std::vector<uint8_t> image_encode(const cv::Mat& m, const std::string& format, int param = -1);

/// image_encode by the path's extension (.png, .jpg, .jpeg), written to `path`. Throws
/// std::runtime_error("<path>: <problem>").
void image_write(const std::string& path, const cv::Mat& m, int param = -1);

/// A palette PNG's palette indices (CV_8UC1, whatever its bit depth; the palette's colours are not
/// used), as PIL's Image.open gives them in mode "P"; an empty matrix for other files and in
/// builds without libpng (have_jpeg_png_codecs()). Throws std::runtime_error when decoding fails.
cv::Mat png_palette_indices(const std::vector<uint8_t>& bytes);

/// The libjpeg/libpng decoder and encoder themselves, in builds that have them (for the tests that
/// compare the two backends); throw std::logic_error otherwise.
bool have_jpeg_png_codecs();
cv::Mat image_decode_jpeg_png(const std::vector<uint8_t>& bytes);
std::vector<uint8_t> image_encode_jpeg_png(const cv::Mat& m, const std::string& format, int param = -1);

}  // namespace sam::data
