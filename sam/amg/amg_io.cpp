#include "sam/amg/amg_io.h"

#include <filesystem>
#include <fstream>
#include <stdexcept>

#include "data/config_file.h"
#include "data/config_schema.h"
#include "data/codec.h"

namespace sam::amg {
namespace {

// Python's str() of a float is its shortest round-trip form, as nlohmann's dump writes it.
std::string num(double v) {
  return nlohmann::json(v).dump();
}

const nlohmann::json& need(const nlohmann::json& j, const char* key) {
  auto it = j.find(key);
  if (it == j.end())
    throw std::invalid_argument(std::string("mask record: missing key '") + key + "'");
  return *it;
}

template <typename T, size_t N>
std::array<T, N> get_array(const nlohmann::json& j, const char* key) {
  const auto& v = need(j, key);
  if (!v.is_array() || v.size() != N)
    throw std::invalid_argument(std::string("mask record: '") + key + "' must be an array of " +
                                std::to_string(N) + " numbers, got " + v.dump());
  std::array<T, N> out{};
  for (size_t i = 0; i < N; ++i) out[i] = v[i].get<T>();
  return out;
}

}  // namespace

const cfg::Section<AmgOptions>& amg_options_schema() {
  // The ranges that need more than one key are AmgOptions::validate's; the docs say them.
  static const cfg::Section<AmgOptions> schema =
      cfg::Section<AmgOptions>("generator")
          .key_as(
              "points_per_side", [](const AmgOptions& o) { return nlohmann::json(o.points_per_side); },
              [](const nlohmann::json& v, AmgOptions& o) {
                // The reference passes points_per_side=None together with explicit grids.
                if (v.is_null()) {
                  o.points_per_side = 0;
                  return;
                }
                if (!v.is_number_integer())
                  throw std::invalid_argument("must be an integer or null, got " + v.dump());
                o.points_per_side = v.get<int>();
              },
              "grid side n (n x n points) of crop layer 0; 0 or null: `point_grids` instead", cfg::at_least(0))
          .key("points_per_batch", &AmgOptions::points_per_batch, "point prompts per decoder call", cfg::at_least(1))
          .key("pred_iou_thresh", &AmgOptions::pred_iou_thresh,
               "keep masks whose predicted IoU is above this (no filter at <= 0)")
          .key("stability_score_thresh", &AmgOptions::stability_score_thresh,
               "keep masks whose stability score is at least this (no filter at <= 0)")
          .key("stability_score_offset", &AmgOptions::stability_score_offset,
               "logit offset of the stability score (IoU of the masks at +offset and -offset)")
          .key("box_nms_thresh", &AmgOptions::box_nms_thresh,
               "box IoU of the NMS within a crop (by predicted IoU)")
          .key("crop_n_layers", &AmgOptions::crop_n_layers,
               "crop layers beyond the whole image (layer i: 2^i x 2^i overlapping crops)", cfg::at_least(0))
          .key("crop_nms_thresh", &AmgOptions::crop_nms_thresh,
               "box IoU of the NMS across crops (smaller crops preferred)")
          .key("crop_overlap_ratio", &AmgOptions::crop_overlap_ratio,
               "overlap of layer-1 crops as a fraction of the image's short side", cfg::in_range_open_hi(0, 1))
          .key("crop_n_points_downscale_factor", &AmgOptions::crop_n_points_downscale_factor,
               "grid side of layer i = points_per_side / factor^i", cfg::at_least(1))
          .key_as(
              "point_grids",
              [](const AmgOptions& o) {
                nlohmann::json grids = nlohmann::json::array();
                for (const auto& g : o.point_grids) {
                  nlohmann::json layer = nlohmann::json::array();
                  for (const auto& p : g) layer.push_back({p[0], p[1]});
                  grids.push_back(layer);
                }
                return grids;
              },
              [](const nlohmann::json& v, AmgOptions& o) {
                o.point_grids.clear();
                if (v.is_null()) return;
                try {
                  for (const auto& layer : v) {
                    std::vector<Point> g;
                    for (const auto& p : layer) g.push_back({p.at(0).get<double>(), p.at(1).get<double>()});
                    o.point_grids.push_back(std::move(g));
                  }
                } catch (const nlohmann::json::exception&) {
                  throw std::invalid_argument("must be a list of [[x, y], ...] grids, one per crop layer");
                }
              },
              "explicit point grids, one per crop layer, coordinates in [0, 1] of the crop ([[x, y], ...]); used "
              "when points_per_side is 0")
          .key("min_mask_region_area", &AmgOptions::min_mask_region_area,
               "> 0: fill holes and remove islands smaller than this many pixels, then rescore", cfg::at_least(0))
          .key("max_area_frac", &AmgOptions::max_area_frac,
               "> 0: drop masks covering at least this fraction of the image (the paper's 0.95; not in the "
               "reference code)",
               cfg::in_range(0, 1));
  return schema;
}

nlohmann::json amg_options_to_json(const AmgOptions& o) {
  nlohmann::json j = amg_options_schema().to_json(o);
  if (o.point_grids.empty()) j.erase("point_grids");
  return j;
}

AmgOptions amg_options_from_json(const nlohmann::json& j, const std::string& where) {
  if (!j.is_object()) throw std::invalid_argument(where + ": generator options must be an object");
  nlohmann::json rest = j;
  // The reference's output format, accepted and ignored (the callers choose their own outputs).
  if (rest.contains("output_mode")) {
    const auto& m = rest["output_mode"];
    if (!m.is_string() || (m != "binary_mask" && m != "uncompressed_rle" && m != "coco_rle"))
      throw std::invalid_argument(where + ": key 'output_mode' must be binary_mask, uncompressed_rle or coco_rle, got " +
                                  m.dump());
    rest.erase("output_mode");
  }
  AmgOptions o;
  amg_options_schema().read(rest, o, where);
  try {
    o.validate();
  } catch (const std::invalid_argument& e) {
    throw std::invalid_argument(where + ": " + e.what());
  }
  return o;
}

nlohmann::json amg_timings_to_json(const AmgTimings& t) {
  return {{"encoder_s", t.encoder_s},
          {"decoder_s", t.decoder_s},
          {"masks_s", t.masks_s},
          {"nms_s", t.nms_s},
          {"cleanup_s", t.cleanup_s},
          {"postprocess_s", t.postprocess_s()},
          {"total_s", t.total_s},
          {"encoder_cpu_s", t.encoder_cpu_s},
          {"decoder_cpu_s", t.decoder_cpu_s},
          {"postprocess_cpu_s", t.postprocess_cpu_s()},
          {"total_cpu_s", t.total_cpu_s},
          {"crops", t.crops},
          {"prompts", t.prompts},
          {"candidates", t.candidates},
          {"kept_iou", t.kept_iou},
          {"kept_stability", t.kept_stability},
          {"kept_edge", t.kept_edge},
          {"kept_box_nms", t.kept_box_nms},
          {"kept_crop_nms", t.kept_crop_nms},
          {"kept_final", t.kept_final}};
}

nlohmann::json amg_mask_to_json(const AmgMask& m, bool coco_rle) {
  return {{"segmentation", mask::rle_to_json(m.segmentation, coco_rle)},
          {"area", m.area},
          {"bbox", m.bbox},
          {"predicted_iou", m.predicted_iou},
          {"point_coords", nlohmann::json::array({m.point_coords})},
          {"stability_score", m.stability_score},
          {"crop_box", m.crop_box}};
}

AmgMask amg_mask_from_json(const nlohmann::json& j) {
  if (!j.is_object()) throw std::invalid_argument("mask record: expected an object");
  AmgMask m;
  try {
    m.segmentation = mask::rle_from_json(need(j, "segmentation"));
    m.area = need(j, "area").get<int64_t>();
    m.bbox = get_array<double, 4>(j, "bbox");
    m.predicted_iou = need(j, "predicted_iou").get<double>();
    const auto& pc = need(j, "point_coords");
    if (!pc.is_array() || pc.size() != 1 || !pc[0].is_array() || pc[0].size() != 2)
      throw std::invalid_argument("mask record: 'point_coords' must be [[x, y]], got " + pc.dump());
    m.point_coords = {pc[0][0].get<double>(), pc[0][1].get<double>()};
    m.stability_score = need(j, "stability_score").get<double>();
    m.crop_box = get_array<int64_t, 4>(j, "crop_box");
  } catch (const nlohmann::json::exception& e) {
    throw std::invalid_argument(std::string("mask record: a value has the wrong type: ") +
                                e.what());
  }
  return m;
}

nlohmann::json amg_to_sa1b(const std::vector<AmgMask>& masks, int64_t image_id, int64_t width,
                           int64_t height, const std::string& file_name) {
  nlohmann::json anns = nlohmann::json::array();
  for (size_t i = 0; i < masks.size(); ++i) {
    auto a = amg_mask_to_json(masks[i], true);
    a["id"] = static_cast<int64_t>(i);
    anns.push_back(std::move(a));
  }
  return {
      {"image",
       {{"image_id", image_id}, {"width", width}, {"height", height}, {"file_name", file_name}}},
      {"annotations", std::move(anns)}};
}

int64_t sa1b_image_id(const std::string& stem, int64_t fallback) {
  std::string digits = stem.rfind("sa_", 0) == 0 ? stem.substr(3) : stem;
  if (digits.empty() || digits.size() > 18) return fallback;
  for (char c : digits)
    if (c < '0' || c > '9') return fallback;
  return std::stoll(digits);
}

std::string amg_metadata_csv(const std::vector<AmgMask>& masks) {
  std::string out =
      "id,area,bbox_x0,bbox_y0,bbox_w,bbox_h,point_input_x,point_input_y,predicted_iou,"
      "stability_score,crop_box_x0,crop_box_y0,crop_box_w,crop_box_h";
  for (size_t i = 0; i < masks.size(); ++i) {
    const auto& m = masks[i];
    out += "\n" + std::to_string(i) + "," + std::to_string(m.area);
    for (double v : m.bbox) out += "," + num(v);
    out += "," + num(m.point_coords[0]) + "," + num(m.point_coords[1]);
    out += "," + num(m.predicted_iou) + "," + num(m.stability_score);
    for (int64_t v : m.crop_box) out += "," + std::to_string(v);
  }
  return out;
}

void write_amg_png_folder(const std::string& dir, const std::vector<AmgMask>& masks) {
  std::filesystem::create_directories(dir);
  for (size_t i = 0; i < masks.size(); ++i) {
    const auto& r = masks[i].segmentation;
    cv::Mat m(static_cast<int>(r.h), static_cast<int>(r.w), CV_8UC1);
    mask::rle_decode(r, m.data);
    m *= 255;
    const std::string path = (std::filesystem::path(dir) / (std::to_string(i) + ".png")).string();
    data::image_write(path, m);
  }
  const std::string csv = (std::filesystem::path(dir) / "metadata.csv").string();
  std::ofstream f(csv, std::ios::binary);
  f << amg_metadata_csv(masks);
  if (!f) throw std::runtime_error(csv + ": cannot write");
}

}  // namespace sam::amg
