// PASCAL VOC and SBD instance benchmarks, read as RITM's evaluation datasets read them
// (isegm/data/datasets/pascalvoc.py PascalVocDataset(split='test'), sbd.py SBDEvaluationDataset):
// one sample per (image of the split list, instance id), the object being that id's pixels.
// VOC's void band (index 255) is ignored (left out of IoU and clicks); SBD has none.
#include <algorithm>
#include <filesystem>
#include <set>
#include <sstream>
#include <stdexcept>

#include "data/dataset.h"
#include "data/dataset_util.h"
#include "data/label_map.h"
#include "data/matfile.h"
#include "data/parallel.h"

namespace sam::data {
namespace fs = std::filesystem;
namespace {

// Where one benchmark keeps its files.
struct InstanceLayout {
  std::string kind;  // "pascalvoc" or "sbd"
  std::string root, split;
  std::string list_file;   // the split's list of image names, one a line
  std::string images_dir;  // <name>.jpg
  std::string labels_dir;  // <name>.png (VOC) or <name>.mat (SBD)
  std::string label_ext;
  bool voc = false;  // 255 is VOC's void band, not an instance
};

// One image's instance map: ids as int32 (0 background), and SBD's per-instance categories.
struct InstanceMap {
  cv::Mat ids;                      // CV_32SC1
  std::vector<int64_t> categories;  // SBD: GTinst.Categories (category of instance k at k-1)
};

constexpr int kVoid = 255;  // VOC: the void band along object boundaries

InstanceMap read_instances(const InstanceLayout& L, const std::string& path) {
  InstanceMap m;
  std::error_code ec;
  if (!fs::is_regular_file(path, ec))
    throw DataError(Problem::missing_file, path, "file not found");
  if (L.voc) {
    cv::Mat u8;
    try {
      u8 = read_label_map(path);
    } catch (const std::runtime_error& e) {
      std::string msg = e.what();
      if (msg.rfind(path + ": ", 0) == 0) msg.erase(0, path.size() + 2);
      throw DataError(Problem::corrupt_image, path, msg);
    }
    u8.convertTo(m.ids, CV_32S);
    return m;
  }
  // SBD: RITM reads loadmat(...)['GTinst'][0][0][0], the struct's first field, which is
  // Segmentation in SBD's files; it is asked for by name here.
  MatIntGrid g;
  try {
    const MatFile f = read_mat_file(path);
    g = mat_int_grid(f.get("GTinst.Segmentation"), path + ": GTinst.Segmentation");
    const MatArray& gt = f.get("GTinst");
    if (gt.has_field("Categories")) {
      const MatArray& c = gt.field("Categories");
      if (c.skipped.empty() && !c.complex && c.cls != MatClass::cell &&
          c.cls != MatClass::structure && c.cls != MatClass::character && c.cls != MatClass::sparse)
        for (double v : c.real) m.categories.push_back(static_cast<int64_t>(v));
    }
  } catch (const std::runtime_error& e) {
    std::string msg = e.what();
    if (msg.rfind(path + ": ", 0) == 0) msg.erase(0, path.size() + 2);
    throw DataError(Problem::other, path, msg);
  }
  if (g.rows > (1 << 30) / std::max<int64_t>(g.cols, 1) || g.rows == 0 || g.cols == 0)
    throw DataError(Problem::other, path,
                    "GTinst.Segmentation is " + std::to_string(g.rows) + "x" +
                        std::to_string(g.cols) + ", not an image-sized map");
  m.ids = cv::Mat(static_cast<int>(g.rows), static_cast<int>(g.cols), CV_32SC1);
  std::copy(g.values.begin(), g.values.end(), m.ids.ptr<int32_t>(0));
  return m;
}

// The instance ids of a map, ascending: every value but 0 (and VOC's void). RITM: VOC's test list
// holds (image, id) pairs; SBD's get_labels_with_sizes takes every nonzero value of bincount.
std::vector<int> instance_ids(const InstanceLayout& L, const cv::Mat& ids,
                              const std::string& path) {
  std::set<int> seen;
  for (int y = 0; y < ids.rows; ++y) {
    const int32_t* p = ids.ptr<int32_t>(y);
    for (int x = 0; x < ids.cols; ++x) {
      if (p[x] < 0)
        throw DataError(Problem::other, path,
                        "negative instance id " + std::to_string(p[x]) + " at (x " +
                            std::to_string(x) + ", y " + std::to_string(y) + ")");
      if (p[x] != 0 && !(L.voc && p[x] == kVoid)) seen.insert(p[x]);
    }
  }
  return {seen.begin(), seen.end()};
}

class InstanceDataset : public Dataset {
 public:
  explicit InstanceDataset(InstanceLayout L) : L_(std::move(L)) {
    std::string text;
    try {
      text = read_text_file(L_.list_file);
    } catch (const DataError& e) {
      throw std::invalid_argument(L_.kind + ": split '" + L_.split + "': " + e.what());
    }
    // RITM strips each line; blank lines (a trailing newline) name nothing.
    std::string line;
    std::istringstream ss(text);
    while (std::getline(ss, line)) {
      const size_t a = line.find_first_not_of(" \t\r\n");
      if (a == std::string::npos) continue;
      const size_t b = line.find_last_not_of(" \t\r\n");
      names_.push_back(line.substr(a, b - a + 1));
    }
    // Every listed image's map is read once to list its instances (RITM's VOC test list and SBD's
    // images_and_ids cache hold the same pairs); unreadable maps are reported and left out.
    std::vector<std::vector<int>> ids(names_.size());
    std::vector<std::string> problems(names_.size());
    parallel_for(static_cast<int64_t>(names_.size()), 0, [&](int64_t i) {
      const std::string path = label_path(size_t(i));
      try {
        ids[size_t(i)] = instance_ids(L_, read_instances(L_, path).ids, path);
      } catch (const DataError& e) {
        problems[size_t(i)] = std::string(e.what()) + " (skipped)";
      }
    });
    for (size_t i = 0; i < names_.size(); ++i) {
      if (!problems[i].empty()) {
        warnings_.push_back(L_.kind + ": " + problems[i]);
        continue;
      }
      if (ids[i].empty()) ++without_instances_;
      for (int id : ids[i]) entries_.push_back({i, id});
    }
    if (without_instances_)
      warnings_.push_back(L_.kind + ": " + std::to_string(without_instances_) +
                          " listed image(s) without an instance");
  }

  size_t size() const override { return entries_.size(); }
  std::string sample_id(size_t i) const override {
    const Entry& e = entries_.at(i);
    return names_[e.image] + "#" + std::to_string(e.id);
  }
  std::string describe() const override {
    std::set<size_t> images;
    for (const auto& e : entries_) images.insert(e.image);
    return L_.kind + " " + L_.root + " split " + L_.split + " (" + std::to_string(entries_.size()) +
           " samples: the instances of " + std::to_string(images.size()) + " of " +
           std::to_string(names_.size()) + " listed images)";
  }
  std::vector<std::string> warnings() const override { return warnings_; }

  Sample get(size_t i) const override {
    const Entry& e = entries_.at(i);
    const std::string path = label_path(e.image);
    const InstanceMap m = read_instances(L_, path);
    const int h = m.ids.rows, w = m.ids.cols;
    cv::Mat fg = m.ids == e.id;  // 255 where set
    fg &= 1;
    cv::Mat ign;
    if (L_.voc) {
      ign = m.ids == kVoid;
      ign &= 1;
    }
    if (cv::countNonZero(fg) == 0)
      throw DataError(Problem::other, path,
                      "instance " + std::to_string(e.id) + " is no longer in the map");
    Sample s;
    s.id = sample_id(i);
    s.image.path = (fs::path(L_.images_dir) / (names_[e.image] + ".jpg")).string();
    s.height = h;
    s.width = w;
    s.annotation_file = path;
    // As the other readers: only maps that hold void pixels carry an ignore region.
    Annotation ann = mask_annotation(fg, ign, e.id, path);
    if (e.id >= 1 && static_cast<size_t>(e.id) <= m.categories.size())
      ann.category_id = m.categories[size_t(e.id) - 1];
    s.annotations.push_back(std::move(ann));
    return s;
  }

 private:
  struct Entry {
    size_t image;
    int id;
  };

  std::string label_path(size_t image) const {
    return (fs::path(L_.labels_dir) / (names_[image] + L_.label_ext)).string();
  }

  InstanceLayout L_;
  std::vector<std::string> names_;
  std::vector<Entry> entries_;
  std::vector<std::string> warnings_;
  size_t without_instances_ = 0;
};

void require_folder(const std::string& kind, const std::string& dir) {
  std::error_code ec;
  if (!fs::is_directory(dir, ec))
    throw std::invalid_argument(kind + ": " + dir + ": folder not found");
}

}  // namespace

std::shared_ptr<Dataset> open_pascal_voc(const std::string& root, const std::string& split) {
  InstanceLayout L;
  L.kind = "pascalvoc";
  L.root = root;
  L.split = split;
  L.list_file = (fs::path(root) / "ImageSets" / "Segmentation" / (split + ".txt")).string();
  L.images_dir = (fs::path(root) / "JPEGImages").string();
  L.labels_dir = (fs::path(root) / "SegmentationObject").string();
  L.label_ext = ".png";
  L.voc = true;
  require_folder(L.kind, root);
  require_folder(L.kind, L.images_dir);
  require_folder(L.kind, L.labels_dir);
  return std::make_shared<InstanceDataset>(std::move(L));
}

std::shared_ptr<Dataset> open_sbd(const std::string& root, const std::string& split) {
  InstanceLayout L;
  L.kind = "sbd";
  L.root = root;
  L.split = split;
  L.list_file = (fs::path(root) / (split + ".txt")).string();
  L.images_dir = (fs::path(root) / "img").string();
  L.labels_dir = (fs::path(root) / "inst").string();
  L.label_ext = ".mat";
  require_folder(L.kind, root);
  require_folder(L.kind, L.images_dir);
  require_folder(L.kind, L.labels_dir);
  return std::make_shared<InstanceDataset>(std::move(L));
}

}  // namespace sam::data
