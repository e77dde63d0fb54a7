#pragma once
// Exports of the annotation database: COCO instances JSON (one document for the folder) and SA-1B
// JSON (one document per image, as the SA-1B release ships them), plus a minimal ZIP writer for
// the page's "all images" SA-1B download.
#include <cstdint>
#include <functional>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "engine/annotate/store.h"

namespace sam::annotate {

/// COCO instances: "images" = every image in `images` (file name with its size; ids from the
/// database, images it has never seen get ids after the largest known one), "annotations" = every
/// stored mask with segmentation as compressed RLE {"size":[h,w],"counts":"..."}, area, bbox
/// [x,y,w,h], iscrowd 0, category_id 1 ("object": SAM masks are class-agnostic), plus the tool's
/// own fields (predicted_iou, seconds, annotator, created_at, clicks). Images missing from the
/// database are sized by `size_of(file_name)` -> {height, width}; one it cannot size (it throws,
/// e.g. a corrupt file) is left out.
nlohmann::json export_coco(
    const AnnotationStore& store, const std::vector<std::string>& images,
    const std::function<std::pair<int64_t, int64_t>(const std::string&)>& size_of);

/// The SA-1B document of one image: {"image": {image_id, width, height, file_name},
/// "annotations": [{id, segmentation (compressed RLE), area, bbox [x,y,w,h], predicted_iou,
/// point_coords [[x,y],...] (the positive clicks), crop_box [0,0,w,h], seconds, annotator,
/// created_at}]}. stability_score is not written (the tool has no logits for edited masks).
/// Throws std::invalid_argument for an image the database does not know.
nlohmann::json export_sa1b_image(const AnnotationStore& store, const std::string& file_name);

/// The SA-1B file name for an image: its stem + ".json" ("sa_1.jpg" -> "sa_1.json").
std::string sa1b_json_name(const std::string& image_file_name);

/// Writes one SA-1B JSON per image that has annotations into folder `out` (created); returns the
/// number of files written.
int64_t export_sa1b_folder(const AnnotationStore& store, const std::string& out);

/// A ZIP archive (stored, not compressed; CRC-32 checked by unzip) of the given (name, bytes)
/// entries. Names must be relative and plain; throws std::invalid_argument otherwise.
std::string zip_store(const std::vector<std::pair<std::string, std::string>>& files);

}  // namespace sam::annotate
