#pragma once
// Label maps: images whose pixel values are ids, not colours (PASCAL VOC's SegmentationObject and
// SegmentationClass PNGs, SBD's PNG exports). VOC stores them as palette PNGs: a pixel holds an
// index (0 background, 1..n the instances or classes, 255 the void band along boundaries) and the
// palette only colours it for display. The image readers (data/image.h) expand palettes to RGB,
// which loses the index; this reader keeps it, as PIL's Image.open gives it in mode "P".
#include <opencv2/core.hpp>

#include <array>
#include <cstdint>
#include <string>
#include <vector>

namespace sam::data {

/// A label map as uint8 ids, HxW (CV_8UC1):
///   palette PNG (any bit depth): each pixel's palette index; the palette's colours are not used.
///   grey image (8-bit): the grey value.
///   colour image (RGB/RGBA): the index of the colour in the PASCAL VOC colour map (voc_colour),
///     for VOC masks saved as RGB; a colour that is not in it is an error.
/// Builds without libpng (data/codec.h: imgcodecs only) read a palette PNG through its colours,
/// which gives the same indices for VOC's own files (their palette is the VOC colour map).
/// Throws std::runtime_error("<path>: <problem>") for a missing or undecodable file, a 16-bit
/// image, or a colour outside the VOC map.
cv::Mat read_label_map(const std::string& path);
/// The same for a file's bytes; `what` names it in messages.
cv::Mat decode_label_map(const std::vector<uint8_t>& bytes, const std::string& what);

/// Entry i (0-255) of the PASCAL VOC colour map as {R, G, B} (the devkit's VOClabelcolormap: the
/// bits of i spread over the high bits of R, G, B): 0 black, 1 (128, 0, 0), ..., 255 (224, 224,
/// 192).
std::array<uint8_t, 3> voc_colour(int i);

/// Whether this build reads palette indices from the file itself (libpng present).
bool label_maps_read_palette_indices();

}  // namespace sam::data
