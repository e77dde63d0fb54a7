#include "engine/annotate/export.h"

#include <algorithm>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <map>
#include <stdexcept>

#include "data/checksum.h"

namespace sam::annotate {

namespace {

using data::put_le;

nlohmann::json coco_segmentation(const mask::Rle& r) {
  return mask::rle_to_json(r, true);
}

// The positive clicks of a stored "clicks" document ({"points": [[x, y, label], ...]}).
nlohmann::json positive_points(const nlohmann::json& clicks) {
  nlohmann::json pts = nlohmann::json::array();
  if (!clicks.is_object() || !clicks.contains("points") || !clicks["points"].is_array()) return pts;
  for (const auto& p : clicks["points"])
    if (p.is_array() && p.size() == 3 && p[2].is_number() && p[2].get<double>() == 1 &&
        p[0].is_number() && p[1].is_number())
      pts.push_back({p[0], p[1]});
  return pts;
}

nlohmann::json iou_or_null(double iou) {
  return iou < 0 ? nlohmann::json() : nlohmann::json(iou);
}

}  // namespace

nlohmann::json export_coco(
    const AnnotationStore& store, const std::vector<std::string>& images,
    const std::function<std::pair<int64_t, int64_t>(const std::string&)>& size_of) {
  std::map<std::string, ImageRecord> known;
  int64_t next_id = 1;
  for (auto& r : store.list_images()) {
    next_id = std::max(next_id, r.id + 1);
    known[r.file_name] = r;
  }
  nlohmann::json j;
  j["info"] = {{"description", "SAM assisted-manual annotations (sam_annotate)"},
               {"date_created", utc_now_iso8601()}};
  j["licenses"] = nlohmann::json::array();
  j["categories"] = {{{"id", 1}, {"name", "object"}, {"supercategory", "object"}}};
  auto& jimages = j["images"] = nlohmann::json::array();
  std::vector<std::string> names = images;
  for (const auto& [name, rec] : known)
    if (std::find(names.begin(), names.end(), name) == names.end()) names.push_back(name);
  std::sort(names.begin(), names.end());
  for (const auto& name : names) {
    int64_t id, h, w;
    if (auto it = known.find(name); it != known.end()) {
      id = it->second.id;
      h = it->second.height;
      w = it->second.width;
    } else {
      try {
        std::tie(h, w) = size_of(name);
      } catch (const std::exception&) {
        continue;  // not decodable: it cannot have masks either
      }
      if (h <= 0 || w <= 0) continue;
      id = next_id++;
    }
    jimages.push_back({{"id", id}, {"file_name", name}, {"width", w}, {"height", h}});
  }
  auto& janns = j["annotations"] = nlohmann::json::array();
  for (const auto& a : store.all_annotations()) {
    janns.push_back({{"id", a.id},
                     {"image_id", known.at(a.image).id},
                     {"category_id", 1},
                     {"segmentation", coco_segmentation(a.rle)},
                     {"area", a.area},
                     {"bbox", {a.bbox[0], a.bbox[1], a.bbox[2], a.bbox[3]}},
                     {"iscrowd", 0},
                     {"predicted_iou", iou_or_null(a.predicted_iou)},
                     {"seconds", a.seconds},
                     {"annotator", a.user},
                     {"created_at", a.created_at},
                     {"clicks", a.clicks}});
  }
  return j;
}

nlohmann::json export_sa1b_image(const AnnotationStore& store, const std::string& file_name) {
  auto rec = store.image(file_name);
  if (!rec) throw std::invalid_argument(store.path() + ": unknown image " + file_name);
  nlohmann::json j;
  j["image"] = {{"image_id", rec->id},
                {"width", rec->width},
                {"height", rec->height},
                {"file_name", rec->file_name}};
  auto& anns = j["annotations"] = nlohmann::json::array();
  for (const auto& a : store.annotations_for(file_name)) {
    anns.push_back({{"id", a.id},
                    {"segmentation", coco_segmentation(a.rle)},
                    {"area", a.area},
                    {"bbox", {a.bbox[0], a.bbox[1], a.bbox[2], a.bbox[3]}},
                    {"predicted_iou", iou_or_null(a.predicted_iou)},
                    {"point_coords", positive_points(a.clicks)},
                    {"crop_box", {0, 0, rec->width, rec->height}},
                    {"seconds", a.seconds},
                    {"annotator", a.user},
                    {"created_at", a.created_at}});
  }
  return j;
}

std::string sa1b_json_name(const std::string& image_file_name) {
  return std::filesystem::path(image_file_name).stem().string() + ".json";
}

int64_t export_sa1b_folder(const AnnotationStore& store, const std::string& out) {
  std::filesystem::create_directories(out);
  int64_t n = 0;
  for (const auto& rec : store.list_images()) {
    if (rec.num_annotations == 0) continue;
    const auto path = std::filesystem::path(out) / sa1b_json_name(rec.file_name);
    std::ofstream f(path);
    f << export_sa1b_image(store, rec.file_name).dump() << "\n";
    if (!f) throw std::runtime_error(path.string() + ": cannot write");
    ++n;
  }
  return n;
}

std::string zip_store(const std::vector<std::pair<std::string, std::string>>& files) {
  std::time_t now = std::time(nullptr);
  std::tm tm{};
  localtime_r(&now, &tm);
  const uint32_t dos_time = (tm.tm_hour << 11) | (tm.tm_min << 5) | (tm.tm_sec / 2);
  const uint32_t dos_date =
      ((std::max(tm.tm_year, 80) - 80) << 9) | ((tm.tm_mon + 1) << 5) | tm.tm_mday;
  if (files.size() > 0xFFFF) throw std::invalid_argument("zip archive of more than 65535 files");
  std::string out, central;
  for (const auto& [name, data] : files) {
    if (name.empty() || name[0] == '/' || name.find("..") != std::string::npos ||
        name.size() > 0xFFFF)
      throw std::invalid_argument("zip entry name '" + name + "' is not a plain relative name");
    if (data.size() >= 0xFFFFFFFFull || out.size() + data.size() >= 0xFFFFFFFFull)
      throw std::invalid_argument("zip archive over 4 GiB (no ZIP64 support)");
    const uint32_t crc = sam::data::crc32(data.data(), data.size()), offset = static_cast<uint32_t>(out.size());
    const auto size = static_cast<uint32_t>(data.size());
    const auto nlen = static_cast<uint32_t>(name.size());
    // The fields the local header and the central directory's header share, from "version
    // needed" to the extra field's length.
    auto shared_fields = [&](std::string& s) {
      put_le(s, 20, 2);      // version needed
      put_le(s, 0x0800, 2);  // UTF-8 names
      put_le(s, 0, 2);       // stored
      put_le(s, dos_time, 2);
      put_le(s, dos_date, 2);
      put_le(s, crc, 4);
      put_le(s, size, 4);
      put_le(s, size, 4);
      put_le(s, nlen, 2);
      put_le(s, 0, 2);
    };
    put_le(out, 0x04034b50, 4);  // local file header
    shared_fields(out);
    out += name;
    out += data;
    put_le(central, 0x02014b50, 4);  // central directory header
    put_le(central, 20, 2);          // version made by
    shared_fields(central);
    put_le(central, 0, 2);  // comment length
    put_le(central, 0, 2);  // disk number
    put_le(central, 0, 2);  // internal attributes
    put_le(central, 0, 4);  // external attributes
    put_le(central, offset, 4);
    central += name;
  }
  const auto cd_offset = static_cast<uint32_t>(out.size());
  out += central;
  put_le(out, 0x06054b50, 4);  // end of central directory
  put_le(out, 0, 2);
  put_le(out, 0, 2);
  put_le(out, static_cast<uint32_t>(files.size()), 2);
  put_le(out, static_cast<uint32_t>(files.size()), 2);
  put_le(out, static_cast<uint32_t>(central.size()), 4);
  put_le(out, cd_offset, 4);
  put_le(out, 0, 2);
  return out;
}

}  // namespace sam::annotate
