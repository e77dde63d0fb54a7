#pragma once
// The files of a data-engine stage (data_engine.h lists them) and small helpers every stage uses.
// A finished image's record is written last: it is the marker that the image is done.
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>
#include <opencv2/core.hpp>

#include "data/dataset.h"
#include "data/mask/rle.h"
#include "data/progress.h"
#include "engine/stage_report.h"

namespace sam::engine {

/// The current UTC time, "2026-12-06T07:01:02Z".
std::string now_iso();
/// Seconds since t0.
double seconds_since(std::chrono::steady_clock::time_point t0);
/// ", ETA 3m07s" once `done` images of this run are finished and `left` are to go (the images a
/// resumed run skips count in neither).
std::string eta_text(data::Progress& p, size_t done, size_t left);

/// A file stem safe on every file system, from a sample id ("sa_12", "000000397133", "img#2" ->
/// "img_2"; "" -> "image").
std::string safe_stem(const std::string& id);
/// The image's extension as written to the SA-1B folder: .jpg, .jpeg or .png from its file (or
/// archive member) name, lower case; .jpg for anything else.
std::string image_ext(const data::ImageRef& r);
/// Parses a JSON file; std::runtime_error naming the file when it cannot be read or parsed.
nlohmann::json read_json_file(const std::filesystem::path& p);
/// A decoded RLE as a CV_8UC1 0/1 image.
cv::Mat rle_to_mat(const mask::Rle& r);

/// Writes the image's SA-1B folder entry (data/<stem><ext>: the image bytes; data/<stem>.json:
/// `sa1b`) and then its record (records/<stem>.json), each atomically, in that order.
void write_image_outputs(const std::filesystem::path& dir, const data::Sample& s,
                         const std::string& stem, const nlohmann::json& sa1b,
                         const ImageRecord& rec);
/// records/<rec.stem>.json for an image that could not be read (marked skipped).
void write_skip_record(const std::filesystem::path& dir, ImageRecord rec);

/// rounds.json of a stage folder (empty when absent) and its atomic rewrite.
std::vector<RetrainRound> load_rounds(const std::filesystem::path& dir);
void save_rounds(const std::filesystem::path& dir, const std::vector<RetrainRound>& rounds);
/// The masks a stage folder's records list (0 without records/).
int64_t count_masks(const std::filesystem::path& stage_dir);

}  // namespace sam::engine
