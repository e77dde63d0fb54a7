// COCO -> SA-1B, dataset -> COCO, and the SA-1B validator.
#include "data/convert.h"

#include "data/codec.h"

#include <opencv2/imgproc.hpp>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <set>
#include <stdexcept>

#include "data/dataset_util.h"
#include "data/parallel.h"
#include "data/rng.h"

namespace sam::data {
namespace fs = std::filesystem;
namespace {

void write_file(const std::string& path, const void* data, size_t n) {
  std::ofstream f(path, std::ios::binary);
  f.write(static_cast<const char*>(data), static_cast<std::streamsize>(n));
  if (!f) throw std::runtime_error(path + ": cannot write");
}

// SA-1B's box: {x0, y0, x1 - x0, y1 - y0} of the inclusive pixel box (SAM's generator).
std::array<double, 4> sa1b_box(const mask::Rle& r) {
  const auto b = mask::rle_bbox_inclusive(r);
  return {double(b[0]), double(b[1]), double(b[2] - b[0]), double(b[3] - b[1])};
}

cv::Mat decode(const mask::Rle& r) {
  cv::Mat m(static_cast<int>(r.h), static_cast<int>(r.w), CV_8UC1);
  mask::rle_decode(r, m.data);
  return m;
}

bool close(const std::array<double, 4>& a, const std::array<double, 4>& b) {
  for (int i = 0; i < 4; ++i)
    if (std::fabs(a[size_t(i)] - b[size_t(i)]) > 1e-3) return false;
  return true;
}

std::string num_str(double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%g", v);
  return buf;
}

std::string box_str(const std::array<double, 4>& b) {
  char buf[128];
  std::snprintf(buf, sizeof buf, "[%g, %g, %g, %g]", b[0], b[1], b[2], b[3]);
  return buf;
}

}  // namespace

std::array<double, 2> interior_point(const cv::Mat& mask) {
  CV_Assert(mask.type() == CV_8UC1);
  int x0 = mask.cols, y0 = mask.rows, x1 = -1, y1 = -1;
  for (int y = 0; y < mask.rows; ++y) {
    const uint8_t* p = mask.ptr<uint8_t>(y);
    for (int x = 0; x < mask.cols; ++x)
      if (p[x])
        x0 = std::min(x0, x), x1 = std::max(x1, x), y0 = std::min(y0, y), y1 = std::max(y1, y);
  }
  if (x1 < 0) return {-1, -1};
  // One pixel of zeros around the box: the image border counts as an edge.
  cv::Mat crop(y1 - y0 + 3, x1 - x0 + 3, CV_8UC1, cv::Scalar(0));
  mask(cv::Rect(x0, y0, x1 - x0 + 1, y1 - y0 + 1))
      .copyTo(crop(cv::Rect(1, 1, x1 - x0 + 1, y1 - y0 + 1)));
  cv::Mat dt;
  cv::distanceTransform(crop, dt, cv::DIST_L2, cv::DIST_MASK_5);
  float best = -1;
  int bx = 0, by = 0;
  for (int y = 0; y < dt.rows; ++y) {
    const float* d = dt.ptr<float>(y);
    for (int x = 0; x < dt.cols; ++x)
      if (d[x] > best) best = d[x], bx = x, by = y;
  }
  return {double(bx - 1 + x0), double(by - 1 + y0)};
}

cv::Mat render_overlay(const Sample& sample, const cv::Mat& rgb) {
  CV_Assert(rgb.type() == CV_8UC3);
  cv::Mat out = rgb.clone();
  for (size_t i = 0; i < sample.annotations.size(); ++i) {
    const cv::Mat m = sample.mask(i);
    const uint64_t h = splitmix64(i * 7919 + 17);
    const cv::Vec3b colour(static_cast<uint8_t>(64 + (h & 0xBF)),
                           static_cast<uint8_t>(64 + ((h >> 8) & 0xBF)),
                           static_cast<uint8_t>(64 + ((h >> 16) & 0xBF)));
    for (int y = 0; y < out.rows; ++y) {
      const uint8_t* mp = m.ptr<uint8_t>(y);
      cv::Vec3b* op = out.ptr<cv::Vec3b>(y);
      for (int x = 0; x < out.cols; ++x)
        if (mp[x])
          for (int c = 0; c < 3; ++c) op[x][c] = static_cast<uint8_t>((op[x][c] + colour[c]) / 2);
    }
    std::vector<std::vector<cv::Point>> contours;
    cv::findContours(m, contours, cv::RETR_LIST, cv::CHAIN_APPROX_NONE);
    cv::drawContours(out, contours, -1, cv::Scalar(colour[0], colour[1], colour[2]), 1);
    if (sample.annotations[i].ignore) {
      const cv::Mat ig = sample.ignore_mask(i);
      for (int y = 0; y < out.rows; ++y)
        for (int x = 0; x < out.cols; ++x)
          if (ig.at<uint8_t>(y, x) && ((x + y) % 6 < 2))
            out.at<cv::Vec3b>(y, x) = cv::Vec3b(128, 128, 128);
    }
    for (const auto& p : sample.annotations[i].point_coords) {
      const cv::Point c(static_cast<int>(p[0]), static_cast<int>(p[1]));
      cv::circle(out, c, 3, cv::Scalar(255, 255, 255), cv::FILLED);
      cv::circle(out, c, 3, cv::Scalar(0, 0, 0), 1);
    }
  }
  return out;
}

mask::Rle read_rle_json(const std::string& path, size_t index) {
  const std::string text = read_text_file(path);
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(text);
  } catch (const nlohmann::json::exception& e) {
    throw std::invalid_argument(path + ": not valid JSON (" + e.what() + ")");
  }
  if (j.is_object() && j.contains("annotations")) {
    if (!j["annotations"].is_array() || index >= j["annotations"].size())
      throw std::invalid_argument(path + ": no annotations[" + std::to_string(index) + "]");
    j = j["annotations"][index];
  }
  if (j.is_object() && j.contains("segmentation")) j = j["segmentation"];
  try {
    return mask::rle_from_json(j);
  } catch (const std::invalid_argument& e) {
    throw std::invalid_argument(path + ": " + e.what());
  }
}

cv::Mat read_mask_nonzero(const std::string& path) {
  ImageRef ref;
  ref.path = path;
  const std::vector<uint8_t> bytes = ref.read();
  cv::Mat m;
  try {
    m = image_decode(bytes);
  } catch (const std::exception& e) {
    throw DataError(Problem::corrupt_image, path, std::string("cannot decode: ") + e.what());
  }
  if (m.empty()) throw DataError(Problem::corrupt_image, path, "not a decodable image");
  // Colour channels only: alpha (the 4th, or the 2nd of gray+alpha) is not part of the mask.
  const int colour = m.channels() == 4 ? 3 : (m.channels() == 2 ? 1 : m.channels());
  std::vector<cv::Mat> ch;
  cv::split(m, ch);
  cv::Mat out(m.rows, m.cols, CV_8UC1, cv::Scalar(0));
  for (int c = 0; c < colour; ++c) {
    cv::Mat nz;
    cv::compare(ch[size_t(c)], 0, nz, cv::CMP_NE);
    out |= nz;
  }
  return out / 255;
}

ConvertReport coco_to_sa1b(const std::string& instances_json, const std::string& image_dir,
                           const std::string& out_dir, bool keep_names, const ProgressFn& progress) {
  auto ds = open_coco(instances_json, image_dir);
  std::error_code ec;
  fs::create_directories(out_dir, ec);
  if (!fs::is_directory(out_dir, ec))
    throw std::runtime_error(out_dir + ": cannot create the output folder");
  ConvertReport rep;
  std::mutex mu;
  std::vector<std::vector<std::string>> problems(ds->size());
  parallel_for_workers(static_cast<int64_t>(ds->size()), 0, [&](int64_t i, int) {
    const Sample s = ds->get(size_t(i));
    std::vector<Annotation> out;
    int64_t crowd = 0, empty = 0;
    bool written = true;
    try {
      for (const Annotation& a : s.annotations) {
        if (a.iscrowd) {
          ++crowd;
          continue;
        }
        mask::Rle r = a.rle();
        const uint64_t area = mask::rle_area(r);
        if (area == 0) {
          ++empty;
          continue;
        }
        Annotation b;
        b.id = a.id;
        b.bbox = sa1b_box(r);
        b.area = double(area);
        b.predicted_iou = 1.0;
        b.stability_score = 1.0;
        b.crop_box = std::array<double, 4>{0, 0, double(s.width), double(s.height)};
        b.point_coords.push_back(interior_point(decode(r)));
        b.segmentation.kind = Segmentation::Kind::rle;
        b.segmentation.h = r.h;
        b.segmentation.w = r.w;
        b.segmentation.rle = std::move(r);
        out.push_back(std::move(b));
      }
      const std::vector<uint8_t> bytes = s.image.read();
      const std::string stem = keep_names ? s.id : "sa_" + std::to_string(s.image_id);
      std::string ext = lower_ext(s.image.path);
      if (ext == "jpeg") ext = "jpg";
      ImageInfo info;
      info.id = s.image_id;
      info.width = s.width;
      info.height = s.height;
      info.file_name = stem + "." + ext;
      const fs::path base = fs::path(out_dir) / stem;
      write_file(base.string() + "." + ext, bytes.data(), bytes.size());
      const std::string text = sa1b_json(info, out).dump();
      write_file(base.string() + ".json", text.data(), text.size());
    } catch (const DataError& e) {
      problems[size_t(i)].push_back(std::string(e.what()) + " (image " + s.id + " left out)");
      written = false;  // left out: not counted
    }
    std::lock_guard<std::mutex> lock(mu);
    if (written) {
      ++rep.images;
      rep.masks += static_cast<int64_t>(out.size());
      rep.crowd_skipped += crowd;
      rep.empty_skipped += empty;
    }
  }, {}, progress);
  for (auto& p : problems)
    for (auto& m : p) rep.problems.push_back(std::move(m));
  return rep;
}

std::vector<std::string> export_coco(const Dataset& ds, const std::string& out_json,
                                     const std::string& image_root) {
  std::vector<ImageInfo> images;
  std::vector<std::vector<Annotation>> anns;
  std::vector<std::string> problems;
  std::set<int64_t> ids;
  bool ids_ok = true;
  std::vector<Sample> samples(ds.size());
  std::vector<std::string> errs(ds.size());
  parallel_for(static_cast<int64_t>(ds.size()), 0, [&](int64_t i) {
    try {
      Sample s = ds.get(size_t(i));
      for (Annotation& a : s.annotations) {
        mask::Rle r = a.rle();
        a.segmentation = Segmentation{};
        a.segmentation.kind = Segmentation::Kind::rle;
        a.segmentation.h = r.h;
        a.segmentation.w = r.w;
        a.segmentation.rle = std::move(r);
      }
      samples[size_t(i)] = std::move(s);
    } catch (const DataError& e) {
      errs[size_t(i)] = e.what();
    }
  });
  for (size_t i = 0; i < samples.size(); ++i)
    if (errs[i].empty() && (samples[i].image_id <= 0 || !ids.insert(samples[i].image_id).second))
      ids_ok = false;
  for (size_t i = 0; i < samples.size(); ++i) {
    if (!errs[i].empty()) {
      problems.push_back(errs[i] + " (sample left out)");
      continue;
    }
    Sample& s = samples[i];
    ImageInfo info;
    info.id = ids_ok ? s.image_id : static_cast<int64_t>(i) + 1;
    info.width = s.width;
    info.height = s.height;
    std::string name = s.image.display();
    if (!image_root.empty() && s.image.member.empty()) {
      std::error_code ec;
      const fs::path rel = fs::relative(s.image.path, image_root, ec);
      if (!ec && !rel.empty() && rel.native().rfind("..", 0) != 0) name = rel.string();
    }
    info.file_name = name;
    images.push_back(std::move(info));
    anns.push_back(std::move(s.annotations));
  }
  const std::string text = coco_instances_json(images, anns, ds.categories()).dump();
  write_file(out_json, text.data(), text.size());
  return problems;
}

ValidateReport validate_sa1b(const std::string& path, const ValidateOptions& o,
                             const ProgressFn& progress) {
  ValidateReport rep;
  std::vector<std::string> warnings;
  std::vector<Sa1bEntry> entries = list_sa1b(path, o.prefer_png, warnings);
  const auto ds = open_sa1b_entries(path, entries, {});
  const size_t n = entries.size();
  std::vector<std::vector<std::string>> problems(n), warns(n);
  std::vector<int64_t> masks(n, 0), decoded(n, 0);
  parallel_for_workers(static_cast<int64_t>(n), o.jobs, [&](int64_t ii, int) {
    const size_t i = size_t(ii);
    auto& P = problems[i];
    auto& Wn = warns[i];
    const std::string jname = entries[i].json.display();
    try {
      // Raw structure: the keys SA-1B always has.
      const std::vector<uint8_t> bytes = entries[i].json.read();
      nlohmann::json doc;
      try {
        doc = nlohmann::json::parse(bytes.begin(), bytes.end());
      } catch (const nlohmann::json::exception& e) {
        throw DataError(Problem::malformed_json, jname,
                        std::string("not valid JSON (") + e.what() + ")");
      }
      const Sample s = ds->get(i);  // typed parse (throws DataError)
      const auto& raw = doc["annotations"];
      static const char* kKeys[] = {"id",       "segmentation",  "bbox",
                                    "area",     "predicted_iou", "stability_score",
                                    "crop_box", "point_coords"};
      std::set<int64_t> ids;
      for (size_t k = 0; k < s.annotations.size(); ++k) {
        const Annotation& a = s.annotations[k];
        const std::string where = jname + ": annotations[" + std::to_string(k) + "]";
        for (const char* key : kKeys)
          if (!raw[k].contains(key)) P.push_back(where + ": missing \"" + key + "\"");
        if (raw[k].contains("segmentation") && raw[k]["segmentation"].is_object() &&
            raw[k]["segmentation"].contains("counts") &&
            !raw[k]["segmentation"]["counts"].is_string())
          P.push_back(where +
                      ": segmentation is not a compressed RLE (SA-1B stores counts as a string)");
        if (raw[k].contains("id") && !ids.insert(a.id).second)
          P.push_back(where + ": duplicate annotation id " + std::to_string(a.id));
        mask::Rle r;
        try {
          r = a.rle();
        } catch (const DataError& e) {
          P.push_back(where + ": " + e.what());
          continue;
        }
        ++masks[i];
        const uint64_t area = mask::rle_area(r);
        if (area == 0) Wn.push_back(where + ": empty mask");
        if (raw[k].contains("area") && a.area != double(area))
          P.push_back(where + ": area " + num_str(a.area) + " but the mask has " +
                      std::to_string(area) + " pixels");
        if (raw[k].contains("bbox") && area > 0 && !close(a.bbox, sa1b_box(r)) &&
            !close(a.bbox, mask::rle_bbox_coco(r)))
          P.push_back(where + ": bbox " + box_str(a.bbox) + " does not match the mask's " +
                      box_str(sa1b_box(r)));
        if (a.stability_score && (*a.stability_score < 0 || *a.stability_score > 1))
          Wn.push_back(where + ": stability_score " + num_str(*a.stability_score) +
                       " outside [0, 1]");
        for (const auto& p : a.point_coords)
          if (p[0] < 0 || p[1] < 0 || p[0] > double(s.width) || p[1] > double(s.height))
            Wn.push_back(where + ": point_coords outside the image");
        if (a.crop_box) {
          const auto& c = *a.crop_box;
          if (c[0] < 0 || c[1] < 0 || c[2] <= 0 || c[3] <= 0 ||
              c[0] + c[2] > double(s.width) + 1e-6 || c[1] + c[3] > double(s.height) + 1e-6)
            Wn.push_back(where + ": crop_box " + box_str(c) + " outside the image");
        }
      }
      // The image.
      if (o.decode_images) {
        s.load_image();
        ++decoded[i];
      } else {
        std::error_code ec;
        if (s.image.member.empty() && !fs::is_regular_file(s.image.path, ec))
          P.push_back(s.image.display() + ": file not found");
      }
      const std::string actual = s.image.member.empty()
                                     ? fs::path(s.image.path).filename().string()
                                     : fs::path(s.image.member).filename().string();
      const std::string declared = doc["image"].value("file_name", std::string());
      if (!declared.empty() && declared != actual)
        Wn.push_back(jname + ": image.file_name is " + declared + " but the image is " + actual);
    } catch (const DataError& e) {
      P.push_back(e.what());
    }
  }, {}, progress);
  rep.samples = static_cast<int64_t>(n);
  rep.warnings = std::move(warnings);
  for (size_t i = 0; i < n; ++i) {
    rep.masks += masks[i];
    rep.images_decoded += decoded[i];
    for (auto& p : problems[i]) rep.problems.push_back(std::move(p));
    for (auto& w : warns[i]) rep.warnings.push_back(std::move(w));
  }
  return rep;
}

}  // namespace sam::data
