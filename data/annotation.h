#pragma once
// Annotations as the datasets hold them: a segmentation kept in its stored form (compressed RLE
// string, counts, COCO polygons or boxes) until a mask is asked for, the SA-1B and COCO fields
// around it, the errors bad data raises, and the SA-1B / COCO JSON readers and writers.
// Pure C++ (nlohmann-json and data/mask/rle only), so that the fuzz targets can build it alone.
//
// Coordinates: pixels of the image the annotation belongs to, x right, y down, pixel (x, y)
// covering [x, x+1) x [y, y+1). Boxes are XYWH; which width convention depends on the source
// (COCO: pixel extent, w = x1 - x0 + 1; SA-1B: the SAM generator's, w = x1 - x0 with inclusive
// x1; see mask::rle_bbox_coco and mask::rle_bbox_inclusive).
#include <array>
#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "data/mask/rle.h"

namespace sam::data {

/// Why a sample could not be used. The loader counts skipped samples by these, `validate`
/// reports them, and the names (problem_name) appear in logs and statistics.
enum class Problem {
  missing_file,           // image (or annotation file) not found
  corrupt_image,          // unreadable, truncated or not an image
  malformed_json,         // not JSON, or a key missing / of the wrong type
  bad_rle,                // counts that do not sum to h*w, bad characters, size != image size
  bad_polygon,            // odd number of coordinates, non-finite values, bad box
  size_mismatch,          // the image's size is not the one the annotations declare
  no_usable_masks,        // nothing left after the loader's filters (area 0, > 90%, crowd)
  empty_after_transform,  // every mask fell outside the jittered crop
  missing_embedding,      // an embedding store (data/embedding_store.h) has none of the image
  other,
};
constexpr int kProblemCount = static_cast<int>(Problem::other) + 1;

/// "missing_file", "corrupt_image", ... (stable names, used as JSON keys).
const char* problem_name(Problem p);

/// A data error that names the file at fault; what() is "<file>: <message>".
class DataError : public std::runtime_error {
 public:
  DataError(Problem problem, const std::string& file, const std::string& message)
      : std::runtime_error(file + ": " + message), problem_(problem), file_(file) {}
  Problem problem() const { return problem_; }
  const std::string& file() const { return file_; }

 private:
  Problem problem_;
  std::string file_;
};

/// A segmentation in its stored form; converted to an RLE only on request (Annotation::rle).
struct Segmentation {
  enum class Kind {
    none,        // no segmentation (an annotation with a box only)
    rle,         // decoded counts (uncompressed COCO RLE, or computed masks)
    rle_string,  // COCO compressed counts, kept as the string
    polygons,    // COCO polygons: each {x0, y0, x1, y1, ...}
    boxes,       // pycocotools' reading of polygons whose first has 4 numbers: each {x, y, w, h}
    invalid,     // the stored value could not be understood; `error` says why
  };
  Kind kind = Kind::none;
  int64_t h = 0, w = 0;                       // mask size (the image size for polygons and boxes)
  std::string counts;                         // rle_string
  mask::Rle rle;                              // rle
  std::vector<std::vector<double>> polygons;  // polygons / boxes
  std::string error;                          // invalid
  Problem error_kind = Problem::malformed_json;
};

/// One annotated mask with the SA-1B / COCO fields that come with it.
struct Annotation {
  int64_t id = -1;
  Segmentation segmentation;
  std::optional<mask::Rle> ignore;  // pixels to leave out of scoring (GrabCut's 128 band)
  std::array<double, 4> bbox{};     // XYWH as stored (computed when the source has none)
  double area = 0;                  // as stored (pixel count when computed)
  bool iscrowd = false;
  int64_t category_id = 0;  // 0 = none
  std::optional<double> predicted_iou, stability_score;
  std::optional<std::array<double, 4>> crop_box;    // XYWH
  std::vector<std::array<double, 2>> point_coords;  // [[x, y], ...]
  std::string source;                               // the file it came from, for messages

  /// The mask as an RLE of size segmentation.h x .w: decodes the string or rasterises polygons and
  /// boxes exactly as pycocotools' annToRLE (several polygons are merged). Throws DataError
  /// (bad_rle, bad_polygon or malformed_json) naming `source`.
  mask::Rle rle() const;
};

/// The "image" record of an SA-1B file (or a COCO "images" entry).
struct ImageInfo {
  int64_t id = 0;
  int64_t width = 0, height = 0;
  std::string file_name;
};

/// One SA-1B per-image file.
struct Sa1bRecord {
  ImageInfo image;
  std::vector<Annotation> annotations;
};

/// Parses one SA-1B JSON file (SAM_SPEC section 5). Strict on structure: throws DataError
/// (malformed_json) naming `source` when it is not JSON, "image" or "annotations" is missing, or
/// a field has the wrong type; an RLE whose size is not the image's is bad_rle. Segmentations are
/// kept compressed (not decoded).
Sa1bRecord parse_sa1b_json(std::string_view text, const std::string& source);

/// The SA-1B JSON for one image. Segmentations are written as compressed RLE (rle() of each;
/// throws its DataError), the other fields as stored; predicted_iou, stability_score, crop_box and
/// point_coords are written when present.
nlohmann::json sa1b_json(const ImageInfo& image, const std::vector<Annotation>& annotations);

/// A COCO category.
struct Category {
  int64_t id = 0;
  std::string name, supercategory;
};

/// A COCO instances file: images in file order, their annotations, categories.
struct CocoSet {
  std::vector<ImageInfo> images;
  std::vector<std::vector<Annotation>> annotations;  // per image, in file order
  std::vector<Category> categories;
  std::vector<std::string> warnings;  // annotations of unknown images, duplicate image ids
};

/// Parses a COCO instances JSON. Throws DataError(malformed_json) naming `source` when the file
/// is not JSON or "images" / "annotations" are missing or not arrays, or an image lacks id,
/// width, height or file_name. Problems inside one annotation's segmentation do not stop the
/// file: that segmentation becomes Kind::invalid and rle() throws for it (the sample is skipped).
/// Segmentation forms, as pycocotools' annToRLE: a list of polygons; a list whose first entry
/// has exactly 4 numbers is a list of boxes (frPyObjects' rule, kept so that the pixels match
/// COCO's own evaluation); {"counts": [...], "size": [h, w]} uncompressed; {"counts": "..."}
/// compressed. Extension: a flat list of numbers is one polygon. bbox and area are kept as
/// stored (computed from the mask when absent).
CocoSet parse_coco_instances(std::string_view text, const std::string& source);

/// A COCO instances JSON for any annotation set: images, annotations with the segmentation as
/// compressed RLE, area = pixel count, bbox in COCO's convention (rle_bbox_coco), iscrowd,
/// category_id; categories as given, or {1, "object"} when there are none (annotations with
/// category 0 get 1). Annotation ids are kept when all are positive and unique, else renumbered
/// from 1. Throws the DataError of a segmentation that cannot be decoded.
nlohmann::json coco_instances_json(const std::vector<ImageInfo>& images,
                                   const std::vector<std::vector<Annotation>>& annotations,
                                   const std::vector<Category>& categories);

/// Parses a segmentation value (any of the forms above) for an h x w image; never throws: a value
/// that is not understood gives Kind::invalid.
Segmentation parse_segmentation(const nlohmann::json& j, int64_t h, int64_t w);

}  // namespace sam::data
