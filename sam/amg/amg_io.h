#pragma once
// The generator's outputs as files: the reference's records (uncompressed or COCO RLE), SA-1B
// JSON files (SAM_SPEC 5), scripts/amg.py's PNG folder with metadata.csv, and the options and
// timings as JSON.
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "sam/amg/generator.h"

namespace sam::cfg {
template <class S>
class Section;
}

namespace sam::amg {

/// Every generator option, declared once (data/config_schema.h), named as the reference's
/// SamAutomaticMaskGenerator arguments.
const cfg::Section<AmgOptions>& amg_options_schema();

/// Options with the reference's key names (plus max_area_frac and, when explicit, point_grids).
nlohmann::json amg_options_to_json(const AmgOptions& o);
/// Strict: unknown keys are rejected with the list of valid ones (`where` names the source);
/// "output_mode" is accepted (one of the reference's three values) and ignored; missing keys keep
/// the defaults.
AmgOptions amg_options_from_json(const nlohmann::json& j, const std::string& where);

/// Seconds per stage and survivor counts (AmgTimings) as a flat JSON object.
nlohmann::json amg_timings_to_json(const AmgTimings& t);

/// The reference's record: segmentation {"size":[h,w],"counts":...} (COCO string when coco_rle,
/// else the uncompressed counts list), area, bbox XYWH, predicted_iou, point_coords [[x,y]],
/// stability_score, crop_box XYWH.
nlohmann::json amg_mask_to_json(const AmgMask& m, bool coco_rle = true);
/// Inverse of amg_mask_to_json (either RLE form); throws std::invalid_argument naming the key.
AmgMask amg_mask_from_json(const nlohmann::json& j);

/// An SA-1B file: {"image": {image_id, width, height, file_name}, "annotations": [...]} with COCO
/// compressed RLE; each annotation is a record plus "id" (0..n-1 in the generator's order).
nlohmann::json amg_to_sa1b(const std::vector<AmgMask>& masks, int64_t image_id, int64_t width,
                           int64_t height, const std::string& file_name);

/// SA-1B image id for a file stem: the number in "sa_<n>" or an all-digit stem, else `fallback`.
int64_t sa1b_image_id(const std::string& stem, int64_t fallback);

/// scripts/amg.py's metadata.csv text (header and one row per mask, no final newline).
std::string amg_metadata_csv(const std::vector<AmgMask>& masks);
/// scripts/amg.py's binary output: `dir`/<i>.png (0/255, image size) and `dir`/metadata.csv.
/// Creates `dir`; throws std::runtime_error naming the file that cannot be written.
void write_amg_png_folder(const std::string& dir, const std::vector<AmgMask>& masks);

}  // namespace sam::amg
