// SA-1B and COCO annotation JSON: strict readers that name what is wrong, lazy segmentations,
// and the writers.
#include "data/annotation.h"

#include <cmath>
#include <limits>
#include <unordered_map>
#include <unordered_set>

namespace sam::data {
namespace {

using json = nlohmann::json;

[[noreturn]] void malformed(const std::string& source, const std::string& msg) {
  throw DataError(Problem::malformed_json, source, msg);
}

Segmentation invalid(Problem kind, const std::string& msg) {
  Segmentation s;
  s.kind = Segmentation::Kind::invalid;
  s.error = msg;
  s.error_kind = kind;
  return s;
}

std::string hw_str(int64_t h, int64_t w) {
  return std::to_string(h) + "x" + std::to_string(w);
}

// An integral JSON number (integers, or floats with no fractional part such as 12.0).
bool as_int(const json& v, int64_t& out) {
  if (v.is_number_integer()) {
    if (v.is_number_unsigned() && v.get<uint64_t>() > uint64_t(std::numeric_limits<int64_t>::max()))
      return false;
    out = v.get<int64_t>();
    return true;
  }
  if (v.is_number_float()) {
    const double d = v.get<double>();
    if (!std::isfinite(d) || d != std::floor(d) || std::fabs(d) > 9.0e15) return false;
    out = static_cast<int64_t>(d);
    return true;
  }
  return false;
}

bool as_double(const json& v, double& out) {
  if (!v.is_number()) return false;
  out = v.get<double>();
  return std::isfinite(out);
}

// Reads obj[key] as an integer into out; absent -> false (or an error when required).
bool read_int(const json& obj, const char* key, int64_t& out, const std::string& where,
              bool required) {
  auto it = obj.find(key);
  if (it == obj.end() || it->is_null()) {
    if (required) throw std::invalid_argument(where + ": missing \"" + key + "\"");
    return false;
  }
  if (!as_int(*it, out))
    throw std::invalid_argument(where + ": \"" + key + "\" must be an integer, got " +
                                it->dump().substr(0, 80));
  return true;
}

bool read_double(const json& obj, const char* key, double& out, const std::string& where) {
  auto it = obj.find(key);
  if (it == obj.end() || it->is_null()) return false;
  if (!as_double(*it, out))
    throw std::invalid_argument(where + ": \"" + key + "\" must be a finite number, got " +
                                it->dump().substr(0, 80));
  return true;
}

bool read_box(const json& obj, const char* key, std::array<double, 4>& out,
              const std::string& where) {
  auto it = obj.find(key);
  if (it == obj.end() || it->is_null()) return false;
  bool ok = it->is_array() && it->size() == 4;
  for (size_t i = 0; ok && i < 4; ++i) ok = as_double((*it)[i], out[i]);
  if (!ok)
    throw std::invalid_argument(where + ": \"" + key + "\" must be [x, y, w, h] (4 numbers), got " +
                                it->dump().substr(0, 80));
  return true;
}

void read_points(const json& obj, const char* key, std::vector<std::array<double, 2>>& out,
                 const std::string& where) {
  auto it = obj.find(key);
  if (it == obj.end() || it->is_null()) return;
  auto bad = [&] {
    throw std::invalid_argument(where + ": \"" + key + "\" must be a list of [x, y] pairs, got " +
                                it->dump().substr(0, 80));
  };
  if (!it->is_array()) bad();
  for (const auto& p : *it) {
    std::array<double, 2> xy{};
    if (!p.is_array() || p.size() != 2 || !as_double(p[0], xy[0]) || !as_double(p[1], xy[1])) bad();
    out.push_back(xy);
  }
}

// The optional fields shared by SA-1B and COCO annotations.
void read_common(const json& a, Annotation& ann, const std::string& where) {
  read_int(a, "id", ann.id, where, false);
  read_box(a, "bbox", ann.bbox, where);
  read_double(a, "area", ann.area, where);
  double v;
  if (read_double(a, "predicted_iou", v, where)) ann.predicted_iou = v;
  if (read_double(a, "stability_score", v, where)) ann.stability_score = v;
  std::array<double, 4> box{};
  if (read_box(a, "crop_box", box, where)) ann.crop_box = box;
  read_points(a, "point_coords", ann.point_coords, where);
}

// Fills bbox (COCO convention) and area from the mask when the source did not store them.
void fill_missing_geometry(const json& a, Annotation& ann) {
  const bool has_bbox = a.contains("bbox") && !a["bbox"].is_null();
  const bool has_area = a.contains("area") && !a["area"].is_null();
  if (has_bbox && has_area) return;
  try {
    const mask::Rle r = ann.rle();
    if (!has_bbox) ann.bbox = mask::rle_bbox_coco(r);
    if (!has_area) ann.area = static_cast<double>(mask::rle_area(r));
  } catch (const DataError&) {
    // Left at zero: the bad segmentation is reported when the mask is asked for.
  }
}

json number_json(double v) {
  if (v == std::floor(v) && std::fabs(v) < 9.0e15) return json(static_cast<int64_t>(v));
  return json(v);
}

json box_json(const std::array<double, 4>& b) {
  return json::array({b[0], b[1], b[2], b[3]});
}

json parse_text(std::string_view text, const std::string& source) {
  try {
    return json::parse(text.begin(), text.end());
  } catch (const json::exception& e) {
    malformed(source, std::string("not valid JSON (") + e.what() + ")");
  }
}

}  // namespace

const char* problem_name(Problem p) {
  switch (p) {
    case Problem::missing_file:
      return "missing_file";
    case Problem::corrupt_image:
      return "corrupt_image";
    case Problem::malformed_json:
      return "malformed_json";
    case Problem::bad_rle:
      return "bad_rle";
    case Problem::bad_polygon:
      return "bad_polygon";
    case Problem::size_mismatch:
      return "size_mismatch";
    case Problem::no_usable_masks:
      return "no_usable_masks";
    case Problem::empty_after_transform:
      return "empty_after_transform";
    case Problem::missing_embedding:
      return "missing_embedding";
    case Problem::other:
      return "other";
  }
  return "other";
}

Segmentation parse_segmentation(const json& j, int64_t h, int64_t w) {
  using Kind = Segmentation::Kind;
  if (j.is_object()) {
    const auto size = j.find("size");
    const auto counts = j.find("counts");
    if (counts == j.end()) return invalid(Problem::malformed_json, "RLE without \"counts\"");
    if (size == j.end()) return invalid(Problem::malformed_json, "RLE without \"size\"");
    int64_t sh = 0, sw = 0;
    if (!size->is_array() || size->size() != 2 || !as_int((*size)[0], sh) ||
        !as_int((*size)[1], sw) || sh < 0 || sw < 0)
      return invalid(Problem::malformed_json,
                     "RLE \"size\" must be [h, w], got " + size->dump().substr(0, 80));
    if ((h > 0 || w > 0) && (sh != h || sw != w))
      return invalid(Problem::bad_rle,
                     "RLE size " + hw_str(sh, sw) + " does not match the image " + hw_str(h, w));
    Segmentation s;
    s.h = sh;
    s.w = sw;
    if (counts->is_string()) {
      s.kind = Kind::rle_string;
      s.counts = counts->get<std::string>();
      return s;
    }
    if (!counts->is_array())
      return invalid(Problem::malformed_json, std::string("RLE \"counts\" must be a string or a "
                                                          "list of integers, got ") +
                                                  counts->type_name());
    try {
      s.rle = mask::rle_from_json(j);
    } catch (const std::invalid_argument& e) {
      return invalid(Problem::bad_rle, e.what());
    }
    s.kind = Kind::rle;
    return s;
  }
  if (j.is_array()) {
    Segmentation s;
    s.kind = Kind::polygons;
    s.h = h;
    s.w = w;
    if (j.empty()) return s;  // no polygon: an empty mask
    auto read_poly = [&](const json& p, std::vector<double>& out) -> std::string {
      if (!p.is_array())
        return "a polygon must be a list of numbers, got " + p.dump().substr(0, 80);
      out.reserve(p.size());
      for (const auto& v : p) {
        double d;
        if (!as_double(v, d))
          return "polygon coordinate " + v.dump().substr(0, 40) + " is not a finite number";
        out.push_back(d);
      }
      return {};
    };
    if (j[0].is_number()) {  // extension: one flat polygon
      std::vector<double> poly;
      std::string err = read_poly(j, poly);
      if (!err.empty()) return invalid(Problem::bad_polygon, err);
      if (poly.size() % 2)
        return invalid(Problem::bad_polygon, "polygon with an odd number of coordinates (" +
                                                 std::to_string(poly.size()) + ")");
      s.polygons.push_back(std::move(poly));
      return s;
    }
    if (j[0].is_object())
      return invalid(Problem::malformed_json, "a list of RLE objects is not a segmentation");
    // pycocotools frPyObjects: a first entry of exactly 4 numbers makes every entry a box.
    const bool boxes = j[0].is_array() && j[0].size() == 4;
    if (boxes) s.kind = Kind::boxes;
    for (size_t i = 0; i < j.size(); ++i) {
      std::vector<double> poly;
      std::string err = read_poly(j[i], poly);
      if (!err.empty()) return invalid(Problem::bad_polygon, err);
      if (boxes && poly.size() != 4)
        return invalid(Problem::bad_polygon,
                       "segmentation read as boxes (first entry has 4 numbers, pycocotools' rule) "
                       "but entry " +
                           std::to_string(i) + " has " + std::to_string(poly.size()));
      if (poly.size() % 2)
        return invalid(Problem::bad_polygon, "polygon " + std::to_string(i) +
                                                 " has an odd number of coordinates (" +
                                                 std::to_string(poly.size()) + ")");
      s.polygons.push_back(std::move(poly));
    }
    return s;
  }
  if (j.is_null()) return Segmentation{};
  return invalid(
      Problem::malformed_json,
      std::string("a segmentation must be polygons or an RLE object, got ") + j.type_name());
}

mask::Rle Annotation::rle() const {
  using Kind = Segmentation::Kind;
  const Segmentation& s = segmentation;
  const std::string& where = source.empty() ? std::string("annotation") : source;
  const std::string which = " (annotation id " + std::to_string(id) + ")";
  try {
    switch (s.kind) {
      case Kind::none:
        throw DataError(Problem::malformed_json, where, "annotation has no segmentation" + which);
      case Kind::invalid:
        throw DataError(s.error_kind, where, s.error + which);
      case Kind::rle:
        mask::rle_validate(s.rle);
        return s.rle;
      case Kind::rle_string:
        return mask::rle_from_string(s.counts, s.h, s.w);
      case Kind::polygons:
      case Kind::boxes: {
        if (s.h <= 0 || s.w <= 0)
          throw DataError(Problem::bad_polygon, where,
                          "polygons need a positive image size, got " + hw_str(s.h, s.w) + which);
        std::vector<mask::Rle> parts;
        parts.reserve(s.polygons.size());
        for (const auto& p : s.polygons) {
          if (s.kind == Kind::boxes)
            parts.push_back(mask::rle_from_bbox(p[0], p[1], p[2], p[3], s.h, s.w));
          else
            parts.push_back(mask::rle_from_polygon(p, s.h, s.w));
        }
        if (parts.empty())
          return mask::rle_from_polygon({}, s.h, s.w);  // an empty mask (size checked)
        return parts.size() == 1 ? std::move(parts[0]) : mask::rle_merge(parts, false);
      }
    }
  } catch (const std::invalid_argument& e) {
    const bool poly = s.kind == Kind::polygons || s.kind == Kind::boxes;
    throw DataError(poly ? Problem::bad_polygon : Problem::bad_rle, where, e.what() + which);
  }
  throw DataError(Problem::other, where, "unknown segmentation kind" + which);
}

Sa1bRecord parse_sa1b_json(std::string_view text, const std::string& source) {
  json doc = parse_text(text, source);
  if (!doc.is_object())
    malformed(source, "top level must be an object with \"image\" and \"annotations\"");
  Sa1bRecord rec;
  try {
    const auto img = doc.find("image");
    if (img == doc.end() || !img->is_object())
      throw std::invalid_argument("missing \"image\" object");
    read_int(*img, "image_id", rec.image.id, "\"image\"", true);
    read_int(*img, "width", rec.image.width, "\"image\"", true);
    read_int(*img, "height", rec.image.height, "\"image\"", true);
    if (rec.image.width <= 0 || rec.image.height <= 0)
      throw std::invalid_argument("\"image\": width and height must be positive, got " +
                                  std::to_string(rec.image.width) + "x" +
                                  std::to_string(rec.image.height));
    if (auto fn = img->find("file_name"); fn != img->end()) {
      if (!fn->is_string())
        throw std::invalid_argument("\"image\": \"file_name\" must be a string");
      rec.image.file_name = fn->get<std::string>();
    }
    auto anns = doc.find("annotations");
    if (anns == doc.end() || !anns->is_array())
      throw std::invalid_argument("missing \"annotations\" list");
    rec.annotations.reserve(anns->size());
    for (size_t i = 0; i < anns->size(); ++i) {
      json& a = (*anns)[i];
      const std::string where = "annotations[" + std::to_string(i) + "]";
      if (!a.is_object()) throw std::invalid_argument(where + " is not an object");
      Annotation ann;
      ann.source = source;
      ann.id = static_cast<int64_t>(i);
      read_common(a, ann, where);
      auto seg = a.find("segmentation");
      if (seg == a.end()) throw std::invalid_argument(where + ": missing \"segmentation\"");
      // Move a compressed string out of the document instead of copying it.
      if (seg->is_object() && seg->contains("counts") && (*seg)["counts"].is_string()) {
        std::string counts = std::move((*seg)["counts"].get_ref<std::string&>());
        (*seg)["counts"] = "";
        ann.segmentation = parse_segmentation(*seg, rec.image.height, rec.image.width);
        if (ann.segmentation.kind == Segmentation::Kind::rle_string)
          ann.segmentation.counts = std::move(counts);
      } else {
        ann.segmentation = parse_segmentation(*seg, rec.image.height, rec.image.width);
      }
      fill_missing_geometry(a, ann);
      rec.annotations.push_back(std::move(ann));
    }
  } catch (const std::invalid_argument& e) {
    malformed(source, e.what());
  }
  return rec;
}

json sa1b_json(const ImageInfo& image, const std::vector<Annotation>& annotations) {
  json anns = json::array();
  for (const Annotation& a : annotations) {
    json j;
    j["id"] = a.id;
    j["segmentation"] = mask::rle_to_json(a.rle(), true);
    j["bbox"] = box_json(a.bbox);
    j["area"] = number_json(a.area);
    if (a.predicted_iou) j["predicted_iou"] = *a.predicted_iou;
    if (a.stability_score) j["stability_score"] = *a.stability_score;
    if (a.crop_box) j["crop_box"] = box_json(*a.crop_box);
    json pts = json::array();
    for (const auto& p : a.point_coords) pts.push_back(json::array({p[0], p[1]}));
    j["point_coords"] = std::move(pts);
    anns.push_back(std::move(j));
  }
  json out;
  out["image"] = {{"image_id", image.id},
                  {"width", image.width},
                  {"height", image.height},
                  {"file_name", image.file_name}};
  out["annotations"] = std::move(anns);
  return out;
}

CocoSet parse_coco_instances(std::string_view text, const std::string& source) {
  json doc = parse_text(text, source);
  if (!doc.is_object()) malformed(source, "top level must be an object");
  CocoSet set;
  std::unordered_map<int64_t, size_t> by_id;
  try {
    auto images = doc.find("images");
    if (images == doc.end() || !images->is_array())
      throw std::invalid_argument("missing \"images\" list");
    set.images.reserve(images->size());
    for (size_t i = 0; i < images->size(); ++i) {
      const json& im = (*images)[i];
      const std::string where = "images[" + std::to_string(i) + "]";
      if (!im.is_object()) throw std::invalid_argument(where + " is not an object");
      ImageInfo info;
      read_int(im, "id", info.id, where, true);
      read_int(im, "width", info.width, where, true);
      read_int(im, "height", info.height, where, true);
      if (info.width <= 0 || info.height <= 0)
        throw std::invalid_argument(where + ": width and height must be positive");
      auto fn = im.find("file_name");
      if (fn == im.end() || !fn->is_string())
        throw std::invalid_argument(where + ": missing \"file_name\" string");
      info.file_name = fn->get<std::string>();
      if (!by_id.emplace(info.id, set.images.size()).second) {
        set.warnings.push_back(where + ": duplicate image id " + std::to_string(info.id) +
                               " ignored");
        continue;
      }
      set.images.push_back(std::move(info));
    }
    set.annotations.resize(set.images.size());
    auto anns = doc.find("annotations");
    if (anns == doc.end() || !anns->is_array())
      throw std::invalid_argument("missing \"annotations\" list");
    for (size_t i = 0; i < anns->size(); ++i) {
      json& a = (*anns)[i];
      const std::string where = "annotations[" + std::to_string(i) + "]";
      if (!a.is_object()) throw std::invalid_argument(where + " is not an object");
      int64_t image_id = 0;
      read_int(a, "image_id", image_id, where, true);
      auto it = by_id.find(image_id);
      if (it == by_id.end()) {
        set.warnings.push_back(where + ": unknown image_id " + std::to_string(image_id) +
                               " ignored");
        continue;
      }
      const ImageInfo& im = set.images[it->second];
      Annotation ann;
      ann.source = source;
      ann.id = static_cast<int64_t>(i);
      try {
        read_common(a, ann, where);
        int64_t crowd = 0;
        if (auto c = a.find("iscrowd"); c != a.end() && c->is_boolean())
          crowd = c->get<bool>() ? 1 : 0;
        else
          read_int(a, "iscrowd", crowd, where, false);
        ann.iscrowd = crowd != 0;
        read_int(a, "category_id", ann.category_id, where, false);
        auto seg = a.find("segmentation");
        ann.segmentation =
            seg == a.end() ? Segmentation{} : parse_segmentation(*seg, im.height, im.width);
        if (ann.segmentation.kind == Segmentation::Kind::invalid)
          ann.segmentation.error = where + ": " + ann.segmentation.error;
        fill_missing_geometry(a, ann);
      } catch (const std::invalid_argument& e) {
        ann.segmentation = invalid(Problem::malformed_json, e.what());
      }
      set.annotations[it->second].push_back(std::move(ann));
    }
    if (auto cats = doc.find("categories"); cats != doc.end() && cats->is_array()) {
      for (size_t i = 0; i < cats->size(); ++i) {
        const json& c = (*cats)[i];
        const std::string where = "categories[" + std::to_string(i) + "]";
        if (!c.is_object()) throw std::invalid_argument(where + " is not an object");
        Category cat;
        read_int(c, "id", cat.id, where, true);
        if (auto n = c.find("name"); n != c.end() && n->is_string())
          cat.name = n->get<std::string>();
        if (auto n = c.find("supercategory"); n != c.end() && n->is_string())
          cat.supercategory = n->get<std::string>();
        set.categories.push_back(std::move(cat));
      }
    }
  } catch (const std::invalid_argument& e) {
    malformed(source, e.what());
  }
  return set;
}

json coco_instances_json(const std::vector<ImageInfo>& images,
                         const std::vector<std::vector<Annotation>>& annotations,
                         const std::vector<Category>& categories) {
  if (annotations.size() != images.size())
    throw std::invalid_argument("coco_instances_json: " + std::to_string(images.size()) +
                                " images but " + std::to_string(annotations.size()) +
                                " annotation lists");
  bool keep_ids = true;
  std::unordered_set<int64_t> seen;
  for (const auto& list : annotations)
    for (const auto& a : list)
      if (a.id <= 0 || !seen.insert(a.id).second) keep_ids = false;
  json jimages = json::array(), janns = json::array();
  int64_t next_id = 1;
  for (size_t i = 0; i < images.size(); ++i) {
    const ImageInfo& im = images[i];
    jimages.push_back(
        {{"id", im.id}, {"width", im.width}, {"height", im.height}, {"file_name", im.file_name}});
    for (const Annotation& a : annotations[i]) {
      const mask::Rle r = a.rle();
      json j;
      j["id"] = keep_ids ? a.id : next_id;
      ++next_id;
      j["image_id"] = im.id;
      j["category_id"] = a.category_id > 0 ? a.category_id : int64_t(1);
      j["segmentation"] = mask::rle_to_json(r, true);
      j["area"] = mask::rle_area(r);
      j["bbox"] = box_json(mask::rle_bbox_coco(r));
      j["iscrowd"] = a.iscrowd ? 1 : 0;
      janns.push_back(std::move(j));
    }
  }
  json jcats = json::array();
  if (categories.empty()) {
    jcats.push_back({{"id", 1}, {"name", "object"}, {"supercategory", "object"}});
  } else {
    for (const auto& c : categories)
      jcats.push_back({{"id", c.id}, {"name", c.name}, {"supercategory", c.supercategory}});
  }
  return {{"images", std::move(jimages)},
          {"annotations", std::move(janns)},
          {"categories", std::move(jcats)}};
}

}  // namespace sam::data
