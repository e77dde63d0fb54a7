#pragma once
// Dataset conversion and checking: COCO -> SA-1B folders, any dataset -> COCO instances JSON,
// the SA-1B validator behind `sam_data validate`, and mask helpers they share.
#include <opencv2/core.hpp>

#include <array>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "data/dataset.h"
#include "data/progress.h"

namespace sam::data {

/// A prompt point for a mask: the set pixel farthest from the mask's edge and the image border
/// (L2 distance transform; ties go to the first in row-major order). mask: uint8 H x W, nonzero
/// = set. Returns {x, y} pixel indices; {-1, -1} for an empty mask.
std::array<double, 2> interior_point(const cv::Mat& mask);

/// Reads a mask image at its native depth and channel count; a pixel is set when any channel is
/// nonzero (so 16-bit and palette masks work). Returns uint8 H x W, 0/1. Throws DataError naming
/// the file.
cv::Mat read_mask_nonzero(const std::string& path);

/// A picture of a sample for people: the image with each mask tinted in its own colour (half
/// transparent), its outline drawn, its point_coords marked, ignore regions hatched grey. rgb:
/// the sample's image (H x W x 3, RGB). Returns RGB uint8 H x W x 3. Throws the DataError of a
/// mask that cannot be decoded.
cv::Mat render_overlay(const Sample& sample, const cv::Mat& rgb);

/// The RLE in a JSON file: a bare {"size", "counts"} (string or list), an annotation with
/// "segmentation", or a file with "annotations" (the index-th one's). Throws
/// std::invalid_argument naming the file.
mask::Rle read_rle_json(const std::string& path, size_t index = 0);

/// What coco_to_sa1b did.
struct ConvertReport {
  int64_t images = 0, masks = 0;
  int64_t crowd_skipped = 0, empty_skipped = 0;
  std::vector<std::string> problems;  // "<file>: <problem>" for each image or annotation left out
};

/// Converts a COCO instances file to an SA-1B folder: per image <stem>.<ext> (the image bytes
/// copied unchanged) and <stem>.json, stem = sa_<image_id> (or the COCO file stem with
/// keep_names). Annotations: segmentation as compressed RLE (polygons rasterised as pycocotools
/// does), bbox in SA-1B's convention (x0, y0, x1-x0, y1-y0 of the inclusive pixel box), area =
/// pixels, predicted_iou = stability_score = 1 (human annotations), crop_box = the whole image,
/// point_coords = interior_point of the mask. Crowd regions and empty masks are left out
/// (counted). Images that are missing or have a bad annotation are reported and left out; the
/// rest is written.
ConvertReport coco_to_sa1b(const std::string& instances_json, const std::string& image_dir,
                           const std::string& out_dir, bool keep_names = false,
                           const ProgressFn& progress = {});

/// Writes a COCO instances JSON for every sample of `ds` (see coco_instances_json); file_name is
/// the image path relative to `image_root` when it lies under it, else the image's display name.
/// Samples whose annotations cannot be read are reported in the returned list and left out.
std::vector<std::string> export_coco(const Dataset& ds, const std::string& out_json,
                                     const std::string& image_root = "");

struct ValidateOptions {
  bool decode_images = true;  // false: only check that each image exists
  int jobs = 0;               // threads (0 = all cores)
  bool prefer_png = false;
};

struct ValidateReport {
  int64_t samples = 0, masks = 0, images_decoded = 0;
  std::vector<std::string> problems;  // "<file>: <what is wrong>", sorted by file
  std::vector<std::string> warnings;  // orphans, unusual but legal values
  bool ok() const { return problems.empty(); }
};

/// Checks every JSON, RLE and image of an SA-1B folder or shard: JSON structure and types; every
/// SA-1B key present (id, segmentation as compressed RLE, bbox, area, predicted_iou,
/// stability_score, crop_box, point_coords); RLE strings decodable with counts summing to
/// height*width of the image; area equal to the mask's pixel count; bbox equal to the mask's box
/// (SA-1B's or COCO's width convention); unique annotation ids; the image present, decodable
/// and of the declared size. Points or crop boxes outside the image are warnings (SA-1B's frame
/// for them is unconfirmed, SAM_SPEC section 8). `progress(done, total)` is called as samples
/// finish. Throws std::invalid_argument when `path` cannot be listed.
ValidateReport validate_sa1b(const std::string& path, const ValidateOptions& options = {},
                             const ProgressFn& progress = {});

}  // namespace sam::data
