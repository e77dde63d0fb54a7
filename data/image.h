#pragma once
// Image IO and the resizes of the SAM pipeline: PIL-exact bilinear (what the reference feeds the
// encoder) and a fast OpenCV resize for training.
#include <opencv2/core.hpp>

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "data/resample.h"

namespace sam::data {

/// Reads an image file as RGB uint8, HxWx3 (CV_8UC3, channel 0 = R), from anything OpenCV decodes
/// (JPEG, PNG, BMP, TIFF, WebP, ...; grayscale, gray+alpha, RGBA, palette, 16-bit).
/// Rules: grayscale is replicated to 3 channels; alpha is dropped (no compositing, like cv2.imread
/// and PIL's convert("RGB")); 16-bit samples map to 8 bits by round(v / 257); float samples are
/// taken as [0, 1] and mapped by round(255 v) with clipping. EXIF orientation is ignored: pixels
/// come in stored order, as PIL's Image.open and pycocotools-style annotations see them (the
/// reference's scripts/amg.py uses cv2.imread's default, which would rotate phone photos carrying
/// an EXIF orientation tag; such files are rare in SA-1B/COCO). Multi-page files give their first
/// page. A JPEG whose entropy-coded data ends without an EOI marker is rejected as truncated
/// (libjpeg would silently pad it with grey; PIL raises "image file is truncated"). Throws
/// std::runtime_error("<path>: <problem>") for a missing, empty, unreadable, truncated or non-image
/// file.
cv::Mat image_read_rgb(const std::string& path);

/// Reads an image file as 8-bit gray, as cv::imread(path, IMREAD_GRAYSCALE): colour converted with
/// OpenCV's weights, 16-bit samples shifted down by 8 bits. Throws std::runtime_error("<path>:
/// <problem>") as image_read_rgb.
cv::Mat image_read_gray(const std::string& path);

/// Decodes an in-memory encoded image with the rules of image_read_rgb; `what` names the source in
/// error messages ("<what>: <problem>").
cv::Mat image_decode_rgb(const std::vector<uint8_t>& bytes, const std::string& what);

/// Pillow's BILINEAR resize (data/resample.h) of a cv::Mat on OpenCV's threads. src: HxWxC uint8,
/// C in 1..4, any row stride (ROIs fine). Returns newh x neww x C, a fresh matrix. Throws
/// std::invalid_argument on an empty or non-uint8 input, C > 4, or a non-positive size.
cv::Mat resize_pil_bilinear(const cv::Mat& src, int newh, int neww);

/// The fast resize for training: OpenCV INTER_AREA when neither side grows, INTER_LINEAR
/// otherwise; a copy when the size is unchanged. Any type OpenCV resizes; returns newh x neww.
cv::Mat resize_fast(const cv::Mat& src, int newh, int neww);

}  // namespace sam::data
