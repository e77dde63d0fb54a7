#include "engine/annotate/export.h"

#include <algorithm>
#include <array>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <map>
#include <stdexcept>

namespace sam::annotate {

namespace {

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

uint32_t crc32(const std::string& data) {
  static const std::array<uint32_t, 256> table = [] {
    std::array<uint32_t, 256> t{};
    for (uint32_t i = 0; i < 256; ++i) {
      uint32_t c = i;
      for (int k = 0; k < 8; ++k) c = (c & 1) ? 0xEDB88320u ^ (c >> 1) : c >> 1;
      t[i] = c;
    }
    return t;
  }();
  uint32_t c = 0xFFFFFFFFu;
  for (unsigned char b : data) c = table[(c ^ b) & 0xFF] ^ (c >> 8);
  return c ^ 0xFFFFFFFFu;
}

void put16(std::string& s, uint32_t v) {
  s.push_back(static_cast<char>(v & 0xFF));
  s.push_back(static_cast<char>((v >> 8) & 0xFF));
}
void put32(std::string& s, uint32_t v) {
  put16(s, v & 0xFFFF);
  put16(s, v >> 16);
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
    const uint32_t crc = crc32(data), offset = static_cast<uint32_t>(out.size());
    const auto size = static_cast<uint32_t>(data.size());
    const auto nlen = static_cast<uint32_t>(name.size());
    put32(out, 0x04034b50);  // local file header
    put16(out, 20);          // version needed
    put16(out, 0x0800);      // UTF-8 names
    put16(out, 0);           // stored
    put16(out, dos_time);
    put16(out, dos_date);
    put32(out, crc);
    put32(out, size);
    put32(out, size);
    put16(out, nlen);
    put16(out, 0);
    out += name;
    out += data;
    put32(central, 0x02014b50);  // central directory header
    put16(central, 20);
    put16(central, 20);
    put16(central, 0x0800);
    put16(central, 0);
    put16(central, dos_time);
    put16(central, dos_date);
    put32(central, crc);
    put32(central, size);
    put32(central, size);
    put16(central, nlen);
    put16(central, 0);
    put16(central, 0);
    put16(central, 0);
    put16(central, 0);
    put32(central, 0);
    put32(central, offset);
    central += name;
  }
  const auto cd_offset = static_cast<uint32_t>(out.size());
  out += central;
  put32(out, 0x06054b50);  // end of central directory
  put16(out, 0);
  put16(out, 0);
  put16(out, static_cast<uint32_t>(files.size()));
  put16(out, static_cast<uint32_t>(files.size()));
  put32(out, static_cast<uint32_t>(central.size()));
  put32(out, cd_offset);
  put16(out, 0);
  return out;
}

}  // namespace sam::annotate
