// Samples, the spec-string factory, and the SA-1B (folder / tar) and COCO datasets.
#include "data/dataset.h"

#include <algorithm>
#include <cctype>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <sstream>
#include <stdexcept>

#include "data/dataset_util.h"
#include "data/image.h"
#include "data/tar.h"

namespace sam::data {
namespace fs = std::filesystem;

// ---------------------------------------------------------------------------------------------
// Shared helpers (data/dataset_util.h)

std::string lower_ext(const fs::path& p) {
  std::string e = p.extension().string();
  if (!e.empty() && e[0] == '.') e.erase(0, 1);
  for (char& c : e) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return e;
}

bool is_image_ext(const std::string& e) {
  static const char* kExts[] = {"jpg",  "jpeg", "png", "bmp", "tif",
                                "tiff", "webp", "ppm", "pgm", "pbm"};
  for (const char* k : kExts)
    if (e == k) return true;
  return false;
}

Annotation mask_annotation(const cv::Mat& fg, const cv::Mat& ignore, int64_t id, const std::string& source) {
  const int h = fg.rows, w = fg.cols;
  Annotation ann;
  ann.id = id;
  ann.source = source;
  ann.segmentation.kind = Segmentation::Kind::rle;
  ann.segmentation.h = h;
  ann.segmentation.w = w;
  ann.segmentation.rle = mask::rle_encode(fg.data, h, w);
  ann.bbox = mask::rle_bbox_coco(ann.segmentation.rle);
  ann.area = static_cast<double>(mask::rle_area(ann.segmentation.rle));
  if (!ignore.empty() && cv::countNonZero(ignore) > 0) ann.ignore = mask::rle_encode(ignore.data, h, w);
  return ann;
}

std::string read_text_file(const std::string& path) {
  std::error_code ec;
  if (!fs::exists(path, ec)) throw DataError(Problem::missing_file, path, "file not found");
  std::ifstream f(path, std::ios::binary);
  if (!f) throw DataError(Problem::missing_file, path, "cannot open file");
  std::ostringstream ss;
  ss << f.rdbuf();
  if (f.bad()) throw DataError(Problem::missing_file, path, "read error");
  return ss.str();
}

bool natural_less(const std::string& a, const std::string& b) {
  size_t i = 0, j = 0;
  while (i < a.size() && j < b.size()) {
    const bool da = std::isdigit(static_cast<unsigned char>(a[i])) != 0;
    const bool db = std::isdigit(static_cast<unsigned char>(b[j])) != 0;
    if (da && db) {
      size_t ie = i, je = j;
      while (ie < a.size() && std::isdigit(static_cast<unsigned char>(a[ie]))) ++ie;
      while (je < b.size() && std::isdigit(static_cast<unsigned char>(b[je]))) ++je;
      // Compare numerically without overflow: strip leading zeros, then length, then digits.
      size_t is = i, js = j;
      while (is + 1 < ie && a[is] == '0') ++is;
      while (js + 1 < je && b[js] == '0') ++js;
      if (ie - is != je - js) return ie - is < je - js;
      const int c = a.compare(is, ie - is, b, js, je - js);
      if (c != 0) return c < 0;
      if (ie - i != je - j) return ie - i < je - j;  // "01" after "1"
      i = ie;
      j = je;
    } else {
      if (a[i] != b[j]) return a[i] < b[j];
      ++i;
      ++j;
    }
  }
  return a.size() - i < b.size() - j;
}

// ---------------------------------------------------------------------------------------------
// ImageRef and Sample

std::string ImageRef::display() const {
  return member.empty() ? path : path + ":" + member;
}

std::vector<uint8_t> ImageRef::read() const {
  if (!member.empty()) {
    try {
      return read_file_range(path, offset, size);
    } catch (const std::runtime_error& e) {
      throw DataError(Problem::missing_file, display(), e.what());
    }
  }
  std::error_code ec;
  if (path.empty() || !fs::is_regular_file(path, ec))
    throw DataError(Problem::missing_file, display(), "file not found");
  std::ifstream f(path, std::ios::binary);
  if (!f) throw DataError(Problem::missing_file, display(), "cannot open file");
  f.seekg(0, std::ios::end);
  const std::streamoff n = f.tellg();
  f.seekg(0);
  std::vector<uint8_t> bytes(n > 0 ? static_cast<size_t>(n) : 0);
  if (n > 0) f.read(reinterpret_cast<char*>(bytes.data()), n);
  if (!f) throw DataError(Problem::missing_file, display(), "read error");
  return bytes;
}

cv::Mat Sample::load_image() const {
  const std::vector<uint8_t> bytes = image.read();
  const std::string what = image.display();
  cv::Mat rgb;
  try {
    rgb = image_decode_rgb(bytes, what);
  } catch (const std::exception& e) {
    std::string msg = e.what();
    if (msg.rfind(what + ": ", 0) == 0) msg.erase(0, what.size() + 2);
    throw DataError(Problem::corrupt_image, what, msg);
  }
  if ((height > 0 && rgb.rows != height) || (width > 0 && rgb.cols != width))
    throw DataError(Problem::size_mismatch, what,
                    "image is " + std::to_string(rgb.rows) + "x" + std::to_string(rgb.cols) +
                        " (HxW) but its annotations (" + annotation_file + ") say " +
                        std::to_string(height) + "x" + std::to_string(width));
  return rgb;
}

cv::Mat Sample::mask(size_t i) const {
  const mask::Rle r = annotations.at(i).rle();
  if (r.h != height || r.w != width)
    throw DataError(Problem::bad_rle, annotation_file,
                    "mask " + std::to_string(i) + " is " + std::to_string(r.h) + "x" +
                        std::to_string(r.w) + ", the image " + std::to_string(height) + "x" +
                        std::to_string(width));
  cv::Mat m(static_cast<int>(r.h), static_cast<int>(r.w), CV_8UC1);
  mask::rle_decode(r, m.data);
  return m;
}

cv::Mat Sample::ignore_mask(size_t i) const {
  const Annotation& a = annotations.at(i);
  cv::Mat m(static_cast<int>(height), static_cast<int>(width), CV_8UC1, cv::Scalar(0));
  if (a.ignore) {
    if (a.ignore->h != height || a.ignore->w != width)
      throw DataError(Problem::bad_rle, annotation_file, "ignore mask has the wrong size");
    mask::rle_decode(*a.ignore, m.data);
  }
  return m;
}

namespace {

// ---------------------------------------------------------------------------------------------
// SA-1B: folder pairs and tar shards

// Preference order of image extensions for one SA-1B stem (-1: not an image we pair).
int sa1b_ext_rank(const std::string& ext, bool prefer_png) {
  if (ext == "jpg") return prefer_png ? 1 : 0;
  if (ext == "jpeg") return 2;
  if (ext == "png") return prefer_png ? 0 : 3;
  return -1;
}

using NaturalMap = bool (*)(const std::string&, const std::string&);

void list_folder(const std::string& dir, bool prefer_png, std::vector<Sa1bEntry>& out,
                 std::vector<std::string>& warnings) {
  std::map<std::string, fs::path, NaturalMap> jsons(natural_less);
  std::map<std::string, std::pair<int, fs::path>> images;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(dir, ec)) {
    if (!e.is_regular_file(ec)) continue;
    const std::string ext = lower_ext(e.path());
    const std::string stem = e.path().stem().string();
    if (ext == "json") {
      jsons.emplace(stem, e.path());
    } else if (const int r = sa1b_ext_rank(ext, prefer_png); r >= 0) {
      auto it = images.find(stem);
      if (it == images.end() || r < it->second.first) images[stem] = {r, e.path()};
    }
  }
  if (ec)
    throw std::invalid_argument("sa1b: " + dir + ": cannot list the folder (" + ec.message() + ")");
  size_t orphans = 0;
  std::string example;
  for (const auto& [stem, p] : images)
    if (!jsons.count(stem) && !orphans++) example = p.second.string();
  if (orphans)
    warnings.push_back(dir + ": " + std::to_string(orphans) + " image(s) without a JSON, e.g. " +
                       example);
  for (const auto& [stem, p] : jsons) {
    Sa1bEntry en;
    en.id = stem;
    en.json.path = p.string();
    if (auto it = images.find(stem); it != images.end()) en.image.path = it->second.second.string();
    out.push_back(std::move(en));
  }
}

void list_shard(const std::string& path, bool prefer_png, std::vector<Sa1bEntry>& out,
                std::vector<std::string>& warnings) {
  std::unique_ptr<TarArchive> tar;
  try {
    tar = std::make_unique<TarArchive>(path);
  } catch (const std::runtime_error& e) {
    throw std::invalid_argument(std::string("sa1b: ") + e.what());
  }
  for (const auto& p : tar->index().problems) warnings.push_back(path + ": " + p);
  std::map<std::string, const TarMember*, NaturalMap> jsons(natural_less);
  std::map<std::string, std::pair<int, const TarMember*>> images;
  for (const TarMember& m : tar->index().members) {
    const fs::path p(m.name);
    const std::string ext = lower_ext(p);
    const std::string key = m.name.substr(0, m.name.size() - p.extension().string().size());
    if (ext == "json") {
      jsons.emplace(key, &m);
    } else if (const int r = sa1b_ext_rank(ext, prefer_png); r >= 0) {
      auto it = images.find(key);
      if (it == images.end() || r < it->second.first) images[key] = {r, &m};
    }
  }
  size_t orphans = 0;
  for (const auto& kv : images) orphans += jsons.count(kv.first) ? 0 : 1;
  if (orphans)
    warnings.push_back(path + ": " + std::to_string(orphans) + " image member(s) without a JSON");
  auto ref = [&](const TarMember& m) {
    ImageRef r;
    r.path = path;
    r.member = m.name;
    r.offset = m.offset;
    r.size = m.size;
    return r;
  };
  for (const auto& [key, jm] : jsons) {
    Sa1bEntry en;
    en.id = fs::path(key).filename().string();
    en.json = ref(*jm);
    if (auto it = images.find(key); it != images.end()) en.image = ref(*it->second.second);
    out.push_back(std::move(en));
  }
}

class Sa1bDataset : public Dataset {
 public:
  Sa1bDataset(const std::string& path, std::vector<Sa1bEntry> entries,
              std::vector<std::string> warnings)
      : path_(path), entries_(std::move(entries)), warnings_(std::move(warnings)) {
    std::set<std::string> shards;
    for (const auto& e : entries_)
      if (!e.json.member.empty()) shards.insert(e.json.path);
    shards_ = shards.size();
  }

  size_t size() const override { return entries_.size(); }
  std::string sample_id(size_t i) const override { return entries_.at(i).id; }
  std::string describe() const override {
    return "sa1b " + path_ + " (" + std::to_string(entries_.size()) + " samples" +
           (shards_ ? ", " + std::to_string(shards_) + " tar shard(s)" : std::string()) + ")";
  }
  std::vector<std::string> warnings() const override { return warnings_; }

  Sample get(size_t i) const override {
    const Sa1bEntry& e = entries_.at(i);
    const std::vector<uint8_t> bytes = e.json.read();
    const std::string where = e.json.display();
    Sa1bRecord rec = parse_sa1b_json(
        std::string_view(reinterpret_cast<const char*>(bytes.data()), bytes.size()), where);
    Sample s;
    s.id = e.id;
    s.image = e.image;
    if (s.image.path.empty()) {
      if (!e.json.member.empty())
        throw DataError(Problem::missing_file, where,
                        "no image member " + e.id + ".jpg/.png in the archive");
      // No <stem>.jpg/.png: the JSON's file_name next to it, else the expected name (reported
      // missing when loaded).
      const fs::path dir = fs::path(e.json.path).parent_path();
      const fs::path byname = dir / rec.image.file_name;
      std::error_code ec;
      s.image.path = (!rec.image.file_name.empty() && fs::is_regular_file(byname, ec))
                         ? byname.string()
                         : (dir / (e.id + ".jpg")).string();
    }
    s.image_id = rec.image.id;
    s.height = rec.image.height;
    s.width = rec.image.width;
    s.annotation_file = where;
    s.annotations = std::move(rec.annotations);
    return s;
  }

 private:
  std::string path_;
  std::vector<Sa1bEntry> entries_;
  std::vector<std::string> warnings_;
  size_t shards_ = 0;
};

// ---------------------------------------------------------------------------------------------
// COCO instances

class CocoDataset : public Dataset {
 public:
  CocoDataset(const std::string& json_path, const std::string& image_dir)
      : json_path_(json_path), image_dir_(image_dir) {
    std::error_code ec;
    if (!fs::is_regular_file(json_path, ec))
      throw std::invalid_argument("coco: " + json_path + ": no such file");
    if (!fs::is_directory(image_dir, ec))
      throw std::invalid_argument("coco: " + image_dir + ": image folder not found");
    set_ = parse_coco_instances(read_text_file(json_path), json_path);
  }

  size_t size() const override { return set_.images.size(); }
  std::string sample_id(size_t i) const override {
    return fs::path(set_.images.at(i).file_name).stem().string();
  }
  std::string describe() const override {
    size_t n = 0;
    for (const auto& a : set_.annotations) n += a.size();
    return "coco " + json_path_ + " with images in " + image_dir_ + " (" +
           std::to_string(set_.images.size()) + " images, " + std::to_string(n) + " annotations)";
  }
  std::vector<Category> categories() const override { return set_.categories; }
  std::vector<std::string> warnings() const override {
    std::vector<std::string> w;
    for (const auto& s : set_.warnings) w.push_back(json_path_ + ": " + s);
    return w;
  }

  Sample get(size_t i) const override {
    const ImageInfo& im = set_.images.at(i);
    Sample s;
    s.id = sample_id(i);
    s.image.path = (fs::path(image_dir_) / im.file_name).string();
    s.image_id = im.id;
    s.height = im.height;
    s.width = im.width;
    s.annotation_file = json_path_;
    s.annotations = set_.annotations[i];
    return s;
  }

 private:
  std::string json_path_, image_dir_;
  CocoSet set_;
};

// ---------------------------------------------------------------------------------------------
// Spec strings

using Options = std::map<std::string, std::string>;

// Splits "PATH?k=v&k2=v2" when the part after the last '?' is a list of k=v pairs and PATH
// (without it) is the path meant: a literal '?' in an existing path is kept.
void split_options(const std::string& rest, std::string& path, Options& opts) {
  path = rest;
  const size_t q = rest.rfind('?');
  if (q == std::string::npos) return;
  std::error_code ec;
  if (fs::exists(rest, ec)) return;
  Options o;
  std::stringstream ss(rest.substr(q + 1));
  std::string item;
  while (std::getline(ss, item, '&')) {
    if (item.empty()) continue;
    const size_t eq = item.find('=');
    if (eq == std::string::npos || eq == 0) return;  // not an option list
    o[item.substr(0, eq)] = item.substr(eq + 1);
  }
  path = rest.substr(0, q);
  opts = std::move(o);
}

void check_options(const Options& opts, const std::vector<std::string>& valid,
                   const std::string& spec) {
  for (const auto& [k, v] : opts) {
    if (std::find(valid.begin(), valid.end(), k) != valid.end()) continue;
    std::string list;
    for (const auto& s : valid) list += (list.empty() ? "" : ", ") + s;
    throw std::invalid_argument("dataset spec '" + spec + "': unknown option '" + k +
                                "' (valid: " + (list.empty() ? std::string("none") : list) + ")");
  }
}

int int_option(const Options& opts, const std::string& key, int def, const std::string& spec) {
  auto it = opts.find(key);
  if (it == opts.end()) return def;
  try {
    size_t used = 0;
    const int v = std::stoi(it->second, &used);
    if (used == it->second.size()) return v;
  } catch (const std::exception&) {
  }
  throw std::invalid_argument("dataset spec '" + spec + "': option " + key + "=" + it->second +
                              " is not an integer");
}

bool bool_option(const Options& opts, const std::string& key, const std::string& spec) {
  auto it = opts.find(key);
  if (it == opts.end()) return false;
  if (it->second == "1" || it->second == "true" || it->second == "yes") return true;
  if (it->second == "0" || it->second == "false" || it->second == "no") return false;
  throw std::invalid_argument("dataset spec '" + spec + "': option " + key + "=" + it->second +
                              " must be 0/1");
}

void require_dir(const std::string& dir, const std::string& spec, const std::string& what) {
  std::error_code ec;
  if (!fs::is_directory(dir, ec))
    throw std::invalid_argument("dataset spec '" + spec + "': " + what + " folder " + dir +
                                " not found");
}

}  // namespace

std::vector<Sa1bEntry> list_sa1b(const std::string& path, bool prefer_png,
                                 std::vector<std::string>& warnings) {
  std::vector<Sa1bEntry> out;
  std::error_code ec;
  if (!fs::exists(path, ec))
    throw std::invalid_argument("sa1b: " + path + ": no such file or folder");
  if (fs::is_directory(path, ec)) {
    std::vector<std::string> shards;
    for (const auto& e : fs::directory_iterator(path, ec))
      if (e.is_regular_file(ec) && lower_ext(e.path()) == "tar")
        shards.push_back(e.path().string());
    if (ec)
      throw std::invalid_argument("sa1b: " + path + ": cannot list the folder (" + ec.message() +
                                  ")");
    std::sort(shards.begin(), shards.end(), natural_less);
    for (const auto& s : shards) list_shard(s, prefer_png, out, warnings);
    list_folder(path, prefer_png, out, warnings);
  } else {
    list_shard(path, prefer_png, out, warnings);
  }
  return out;
}

std::shared_ptr<Dataset> open_sa1b_entries(const std::string& path, std::vector<Sa1bEntry> entries,
                                           std::vector<std::string> warnings) {
  return std::make_shared<Sa1bDataset>(path, std::move(entries), std::move(warnings));
}

std::shared_ptr<Dataset> open_sa1b(const std::string& path, bool prefer_png) {
  std::vector<std::string> warnings;
  auto entries = list_sa1b(path, prefer_png, warnings);
  return open_sa1b_entries(path, std::move(entries), std::move(warnings));
}

std::shared_ptr<Dataset> open_coco(const std::string& instances_json,
                                   const std::string& image_dir) {
  return std::make_shared<CocoDataset>(instances_json, image_dir);
}

ConcatDataset::ConcatDataset(std::vector<std::shared_ptr<Dataset>> parts) : parts_(std::move(parts)) {
  size_t total = 0;
  for (const auto& p : parts_) {
    if (!p) throw std::invalid_argument("ConcatDataset: a part is null");
    ends_.push_back(total += p->size());
  }
}

std::pair<size_t, size_t> ConcatDataset::locate(size_t i) const {
  if (i >= size())
    throw std::out_of_range("sample index " + std::to_string(i) + " >= " + std::to_string(size()));
  // The first part whose end lies past i (empty parts have end == their start and are skipped).
  const size_t p = static_cast<size_t>(std::upper_bound(ends_.begin(), ends_.end(), i) - ends_.begin());
  return {p, i - (p == 0 ? 0 : ends_[p - 1])};
}

std::string ConcatDataset::sample_id(size_t i) const {
  const auto [p, j] = locate(i);
  return parts_[p]->sample_id(j);
}

Sample ConcatDataset::get(size_t i) const {
  const auto [p, j] = locate(i);
  return parts_[p]->get(j);
}

std::string ConcatDataset::describe() const {
  std::string s;
  for (const auto& p : parts_) s += (s.empty() ? "" : " + ") + p->describe();
  return s;
}

std::vector<std::string> ConcatDataset::warnings() const {
  std::vector<std::string> w;
  for (const auto& p : parts_)
    for (auto& x : p->warnings()) w.push_back(x);
  return w;
}

std::vector<std::shared_ptr<Dataset>> make_dataset_parts(const std::vector<std::string>& specs) {
  if (specs.empty()) throw std::invalid_argument("no dataset given: at least one dataset spec");
  std::vector<std::shared_ptr<Dataset>> parts;
  for (const auto& s : specs) parts.push_back(make_dataset(s));
  return parts;
}

std::shared_ptr<Dataset> join_datasets(std::vector<std::shared_ptr<Dataset>> parts) {
  return parts.size() == 1 ? parts[0] : std::make_shared<ConcatDataset>(std::move(parts));
}

std::shared_ptr<Dataset> make_datasets(const std::vector<std::string>& specs) {
  return join_datasets(make_dataset_parts(specs));
}

std::shared_ptr<Dataset> make_dataset(const std::string& spec) {
  const size_t colon = spec.find(':');
  const std::string kinds =
      "sa1b, coco, grabcut, berkeley, davis, coco-mval, pascalvoc, sbd, folder, images";
  if (colon == std::string::npos || colon == 0)
    throw std::invalid_argument("dataset spec '" + spec +
                                "': expected KIND:PATH with KIND one of " + kinds);
  const std::string kind = spec.substr(0, colon);
  std::string path;
  Options opts;
  split_options(spec.substr(colon + 1), path, opts);
  if (path.empty()) throw std::invalid_argument("dataset spec '" + spec + "': empty path");

  if (kind == "sa1b") {
    check_options(opts, {"ext"}, spec);
    const auto ext = opts.count("ext") ? opts.at("ext") : std::string("jpg");
    if (ext != "jpg" && ext != "png")
      throw std::invalid_argument("dataset spec '" + spec + "': ext must be jpg or png");
    return open_sa1b(path, ext == "png");
  }
  if (kind == "coco") {
    check_options(opts, {}, spec);
    std::string json = path, images;
    const size_t j = path.find(".json:");
    if (j != std::string::npos) {
      json = path.substr(0, j + 5);
      images = path.substr(j + 6);
    } else {
      // annotations/instances_val2017.json -> ../val2017, else the json's folder.
      const fs::path jp(path);
      std::string stem = jp.stem().string();
      if (stem.rfind("instances_", 0) == 0) stem.erase(0, 10);
      const fs::path guess = jp.parent_path().parent_path() / stem;
      std::error_code ec;
      images = fs::is_directory(guess, ec) ? guess.string() : jp.parent_path().string();
    }
    try {
      return open_coco(json, images);
    } catch (const DataError& e) {
      throw std::invalid_argument("dataset spec '" + spec + "': " + e.what());
    }
  }
  if (kind == "pascalvoc" || kind == "sbd") {
    check_options(opts, {"split"}, spec);
    const std::string split = opts.count("split") ? opts.at("split") : std::string("val");
    if (split.empty() || split.find('/') != std::string::npos)
      throw std::invalid_argument("dataset spec '" + spec + "': split must be a list's name (val, "
                                  "train, ...), not '" + split + "'");
    require_dir(path, spec, kind);
    try {
      return kind == "sbd" ? open_sbd(path, split) : open_pascal_voc(path, split);
    } catch (const std::invalid_argument& e) {
      throw std::invalid_argument("dataset spec '" + spec + "': " + e.what());
    }
  }
  if (kind == "images") {
    check_options(opts, {"recursive"}, spec);
    require_dir(path, spec, kind);
    return open_image_folder(path, bool_option(opts, "recursive", spec));
  }
  MaskFolderOptions mo;
  mo.kind = kind;
  const fs::path dir(path);
  if (kind == "grabcut") {
    check_options(opts, {}, spec);
    mo.images_dir = (dir / "data_GT").string();
    mo.masks_dir = (dir / "boundary_GT").string();
    mo.ignore_value = 128;
    mo.threshold = 128;
    mo.suffixed = false;
  } else if (kind == "berkeley") {
    check_options(opts, {"all"}, spec);
    mo.images_dir = (dir / "images").string();
    mo.masks_dir = (dir / "masks").string();
    mo.ignore_value = 128;
    mo.threshold = 128;
    mo.suffixed = bool_option(opts, "all", spec);
  } else if (kind == "davis" || kind == "coco-mval") {
    check_options(opts, {"ignore", "objects"}, spec);
    mo.images_dir = (dir / "img").string();
    mo.masks_dir = (dir / "gt").string();
    mo.labels = bool_option(opts, "objects", spec);
    mo.any_channel = true;
    mo.threshold = 0;
    mo.suffixed = false;
    mo.ignore_value = int_option(opts, "ignore", -1, spec);
  } else if (kind == "folder") {
    check_options(opts, {"threshold", "ignore", "labels"}, spec);
    mo.images_dir = (dir / "images").string();
    mo.masks_dir = (dir / "masks").string();
    mo.threshold = int_option(opts, "threshold", 127, spec);
    mo.ignore_value = int_option(opts, "ignore", -1, spec);
    mo.labels = bool_option(opts, "labels", spec);
  } else {
    throw std::invalid_argument("dataset spec '" + spec + "': unknown kind '" + kind +
                                "' (kinds: " + kinds + ")");
  }
  require_dir(path, spec, kind);
  require_dir(mo.images_dir, spec, "image");
  require_dir(mo.masks_dir, spec, "mask");
  return open_mask_folder(mo);
}

}  // namespace sam::data
