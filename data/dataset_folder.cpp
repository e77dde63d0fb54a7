// Image + mask folders: the interactive benchmarks (GrabCut, Berkeley, DAVIS-style) and users'
// own folders. Each sample is one object: its mask (and ignore region) read from a mask image.
// Also plain folders of images (the images kind), one sample per image and no annotations.
#include <algorithm>
#include <filesystem>
#include <map>
#include <set>
#include <stdexcept>

#include "data/dataset.h"
#include "data/dataset_util.h"
#include "data/image.h"

namespace sam::data {
namespace fs = std::filesystem;
namespace {

uint32_t pack(const uint8_t* rgb) {
  return (uint32_t(rgb[0]) << 16) | (uint32_t(rgb[1]) << 8) | rgb[2];
}

cv::Mat read_mask_rgb(const std::string& path) {
  std::error_code ec;
  if (!fs::is_regular_file(path, ec))
    throw DataError(Problem::missing_file, path, "mask file not found");
  try {
    return image_read_rgb(path);
  } catch (const std::exception& e) {
    std::string msg = e.what();
    if (msg.rfind(path + ": ", 0) == 0) msg.erase(0, path.size() + 2);
    throw DataError(Problem::corrupt_image, path, msg);
  }
}

// Whether mask stem `m` belongs to image stem `s` (a proper prefix) under the suffix rule.
bool suffix_ok(const std::string& s, const std::string& m) {
  if (m.size() <= s.size() || m.compare(0, s.size(), s) != 0) return false;
  const char c = m[s.size()];
  if (c == '_' || c == '-' || c == '.' || c == '#') return true;
  const bool letter = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
  return letter && !s.empty() && s.back() >= '0' && s.back() <= '9';
}

class MaskFolderDataset : public Dataset {
 public:
  explicit MaskFolderDataset(const MaskFolderOptions& o) : o_(o) {
    std::error_code ec;
    for (const auto* d : {&o.images_dir, &o.masks_dir})
      if (!fs::is_directory(*d, ec))
        throw std::invalid_argument(o.kind + ": " + *d + ": folder not found");
    // Images by stem; when two files share a stem, the first extension in this order wins.
    static const std::vector<std::string> kOrder = {"jpg",  "jpeg", "png", "bmp", "tif",
                                                    "tiff", "webp", "ppm", "pgm", "pbm"};
    auto rank = [](const std::string& e) {
      return static_cast<int>(std::find(kOrder.begin(), kOrder.end(), e) - kOrder.begin());
    };
    std::map<std::string, std::pair<int, std::string>> images;
    for (const auto& e : fs::directory_iterator(o.images_dir, ec)) {
      if (!e.is_regular_file(ec)) continue;
      const std::string ext = lower_ext(e.path());
      if (!is_image_ext(ext)) continue;
      const std::string stem = e.path().stem().string();
      auto it = images.find(stem);
      if (it != images.end()) {
        warnings_.push_back(o.kind + ": two images share the stem '" + stem + "' (" +
                            it->second.second + ", " + e.path().string() + ")");
        if (rank(ext) >= it->second.first) continue;
      }
      images[stem] = {rank(ext), e.path().string()};
    }
    std::vector<fs::path> masks;
    for (const auto& e : fs::directory_iterator(o.masks_dir, ec))
      if (e.is_regular_file(ec) && is_image_ext(lower_ext(e.path()))) masks.push_back(e.path());
    std::sort(masks.begin(), masks.end(), [](const fs::path& a, const fs::path& b) {
      return natural_less(a.filename().string(), b.filename().string());
    });
    std::set<std::string> used_images;
    for (const auto& mp : masks) {
      const std::string m = mp.stem().string();
      std::string image;
      if (auto it = images.find(m); it != images.end()) {
        image = it->second.second;
      } else {
        // Longest image stem that is a proper prefix of the mask stem under the suffix rule.
        for (size_t len = m.size() - 1; len > 0 && image.empty(); --len) {
          auto it2 = images.find(m.substr(0, len));
          if (it2 != images.end() && suffix_ok(it2->first, m)) {
            if (!o.suffixed) {
              ++unused_suffixed_;
              image = "-";
            } else {
              image = it2->second.second;
            }
          }
        }
        if (image == "-") continue;
        if (image.empty()) {
          warnings_.push_back(o.kind + ": mask " + mp.string() + " has no image in " +
                              o.images_dir);
          continue;
        }
      }
      used_images.insert(fs::path(image).stem().string());
      MaskFile mf{mp.string(), image, {}};
      if (o.labels) {
        try {
          mf.colours = object_colours(read_mask_rgb(mf.mask));
        } catch (const DataError& e) {
          warnings_.push_back(std::string(e.what()) + " (skipped)");
          continue;
        }
        files_.push_back(std::move(mf));
        for (size_t k = 0; k < files_.back().colours.size(); ++k)
          entries_.push_back({files_.size() - 1, k});
      } else {
        files_.push_back(std::move(mf));
        entries_.push_back({files_.size() - 1, 0});
      }
    }
    size_t lonely = 0;
    for (const auto& kv : images) lonely += used_images.count(kv.first) ? 0 : 1;
    if (lonely)
      warnings_.push_back(o.kind + ": " + std::to_string(lonely) + " image(s) without a mask in " +
                          o.masks_dir);
  }

  size_t size() const override { return entries_.size(); }
  std::string sample_id(size_t i) const override {
    const Entry& e = entries_.at(i);
    const std::string stem = fs::path(files_[e.file].mask).stem().string();
    return o_.labels ? stem + "#" + std::to_string(e.object + 1) : stem;
  }
  std::string describe() const override {
    std::string d = o_.kind + " " + o_.images_dir + " + " + o_.masks_dir + " (" +
                    std::to_string(entries_.size()) + " samples from " +
                    std::to_string(files_.size()) + " mask files";
    if (unused_suffixed_)
      d += "; " + std::to_string(unused_suffixed_) + " suffixed masks not used (all=1 adds them)";
    return d + ")";
  }
  std::vector<std::string> warnings() const override { return warnings_; }

  Sample get(size_t i) const override {
    const Entry& e = entries_.at(i);
    const MaskFile& f = files_[e.file];
    const cv::Mat rgb = read_mask_rgb(f.mask);
    const int h = rgb.rows, w = rgb.cols;
    cv::Mat fg(h, w, CV_8UC1), ign(h, w, CV_8UC1);
    const bool use_ignore = o_.ignore_value >= 0;
    const uint32_t ignore_rgb = use_ignore ? uint32_t(o_.ignore_value) * 0x010101u : 0xFFFFFFFFu;
    const uint32_t want = o_.labels ? f.colours.at(e.object) : 0;
    for (int y = 0; y < h; ++y) {
      const uint8_t* p = rgb.ptr<uint8_t>(y);
      uint8_t* a = fg.ptr<uint8_t>(y);
      uint8_t* b = ign.ptr<uint8_t>(y);
      for (int x = 0; x < w; ++x, p += 3) {
        const uint32_t c = pack(p);
        const bool is_ignore =
            use_ignore && (o_.labels || o_.any_channel ? c == ignore_rgb : p[0] == o_.ignore_value);
        b[x] = is_ignore;
        const int v = o_.any_channel ? std::max({p[0], p[1], p[2]}) : p[0];
        a[x] = !is_ignore && (o_.labels ? c == want : v > o_.threshold);
      }
    }
    Sample s;
    s.id = sample_id(i);
    s.image.path = f.image;
    s.height = h;
    s.width = w;
    s.annotation_file = f.mask;
    // Only masks that hold ignored pixels carry an ignore region (Berkeley's rule has one, its
    // masks hold none).
    s.annotations.push_back(mask_annotation(fg, use_ignore ? ign : cv::Mat(), static_cast<int64_t>(e.object) + 1, f.mask));
    return s;
  }

 private:
  struct MaskFile {
    std::string mask, image;
    std::vector<uint32_t> colours;  // labels mode: the object colours, ascending
  };
  struct Entry {
    size_t file, object;
  };

  // Distinct non-black colours of an id map, without the ignore grey.
  std::vector<uint32_t> object_colours(const cv::Mat& rgb) const {
    std::set<uint32_t> seen;
    const uint32_t ignore_rgb =
        o_.ignore_value >= 0 ? uint32_t(o_.ignore_value) * 0x010101u : 0xFFFFFFFFu;
    for (int y = 0; y < rgb.rows; ++y) {
      const uint8_t* p = rgb.ptr<uint8_t>(y);
      for (int x = 0; x < rgb.cols; ++x, p += 3) {
        const uint32_t c = pack(p);
        if (c != 0 && c != ignore_rgb) seen.insert(c);
      }
    }
    return {seen.begin(), seen.end()};
  }

  MaskFolderOptions o_;
  std::vector<MaskFile> files_;
  std::vector<Entry> entries_;
  std::vector<std::string> warnings_;
  size_t unused_suffixed_ = 0;
};

// A folder of images without annotations (pre-training on pixels alone, e.g. MAE): one sample
// per image file, natural name order; with `recursive`, subfolders too (paths relative to the
// folder, compared in natural order).
class ImageFolderDataset : public Dataset {
 public:
  ImageFolderDataset(const std::string& dir, bool recursive) : dir_(dir) {
    std::error_code ec;
    auto take = [&](const fs::path& p) {
      if (is_image_ext(lower_ext(p))) files_.push_back(fs::relative(p, dir, ec).generic_string());
    };
    if (recursive) {
      for (const auto& e : fs::recursive_directory_iterator(dir, ec))
        if (e.is_regular_file(ec)) take(e.path());
    } else {
      for (const auto& e : fs::directory_iterator(dir, ec))
        if (e.is_regular_file(ec)) take(e.path());
    }
    if (ec) throw std::invalid_argument("images: " + dir + ": " + ec.message());
    std::sort(files_.begin(), files_.end(), natural_less);
  }
  size_t size() const override { return files_.size(); }
  std::string sample_id(size_t i) const override {
    const std::string& f = files_.at(i);
    return f.substr(0, f.size() - fs::path(f).extension().string().size());
  }
  Sample get(size_t i) const override {
    Sample s;
    s.id = sample_id(i);
    s.image.path = (fs::path(dir_) / files_.at(i)).string();
    return s;
  }
  std::string describe() const override {
    return "images:" + dir_ + " (" + std::to_string(files_.size()) + " images, no annotations)";
  }

 private:
  std::string dir_;
  std::vector<std::string> files_;  // relative to dir_
};

}  // namespace

std::shared_ptr<Dataset> open_mask_folder(const MaskFolderOptions& options) {
  return std::make_shared<MaskFolderDataset>(options);
}

std::shared_ptr<Dataset> open_image_folder(const std::string& dir, bool recursive) {
  return std::make_shared<ImageFolderDataset>(dir, recursive);
}

}  // namespace sam::data
