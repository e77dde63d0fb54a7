#pragma once
// Small file helpers shared by the dataset readers (internal to data/).
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include <opencv2/core.hpp>

#include "data/dataset.h"

namespace sam::data {

/// Extension without the dot, lower case ("JPG" -> "jpg").
std::string lower_ext(const std::filesystem::path& p);
/// True for the image extensions the folder readers pick up (jpg, jpeg, png, bmp, tif, tiff,
/// webp, ppm, pgm, pbm).
bool is_image_ext(const std::string& lower_ext);
/// A whole file as bytes in a string. Throws DataError(missing_file) naming the path.
std::string read_text_file(const std::string& path);
/// One object of an interactive benchmark: fg and ignore (CV_8UC1, 0/1, HxW; ignore may be empty)
/// as the annotation's RLE mask, COCO box and area, with `id` and `source` (the mask's file). Only
/// an ignore mask with set pixels becomes the annotation's ignore region.
Annotation mask_annotation(const cv::Mat& fg, const cv::Mat& ignore, int64_t id, const std::string& source);
/// The SA-1B dataset over already listed entries (what open_sa1b builds on).
std::shared_ptr<Dataset> open_sa1b_entries(const std::string& path, std::vector<Sa1bEntry> entries,
                                           std::vector<std::string> warnings);

}  // namespace sam::data
