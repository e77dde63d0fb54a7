#include "eval/edges.h"

#include <opencv2/imgproc.hpp>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <filesystem>
#include <map>
#include <memory>
#include <stdexcept>

#include "data/dataset.h"
#include "data/codec.h"
#include "data/image.h"

namespace fs = std::filesystem;

namespace sam::eval {

amg::AmgOptions EdgesOptions::amg_options() const {
  amg::AmgOptions a;
  a.points_per_side = points_per_side;
  a.points_per_batch = points_per_batch;
  a.pred_iou_thresh = 0.0;         // no filter (paper D.2)
  a.stability_score_thresh = 0.0;  // no filter
  a.box_nms_thresh = box_nms_thresh;
  a.crop_n_layers = 0;
  a.min_mask_region_area = 0;
  a.resize = resize;
  return a;
}

EdgeAccumulator::EdgeAccumulator(int height, int width, bool boundary_band)
    : band_(boundary_band),
      mag_(cv::Mat::zeros(height, width, CV_32FC1)),
      gx_(cv::Mat::zeros(height, width, CV_32FC1)),
      gy_(cv::Mat::zeros(height, width, CV_32FC1)) {}

void EdgeAccumulator::add(const cv::Mat& prob, const cv::Mat& mask) {
  if (prob.type() != CV_32FC1 || prob.size() != mag_.size())
    throw std::invalid_argument("EdgeAccumulator::add: expected a CV_32FC1 map of the image size");
  // With the band only pixels within one pixel of the mask can respond: work on the mask's box
  // plus 3 pixels (Sobel at the band's pixels then sees its true neighbours), which is exact.
  cv::Rect roi(0, 0, prob.cols, prob.rows);
  const bool band = band_ && !mask.empty();
  if (band) {
    const cv::Rect box = cv::boundingRect(mask);
    if (box.area() == 0) return;  // an empty mask has no boundary
    roi = cv::Rect(box.x - 3, box.y - 3, box.width + 6, box.height + 6) & roi;
  }
  const cv::Mat p = prob(roi);
  cv::Mat gx, gy, mag;
  cv::Sobel(p, gx, CV_32F, 1, 0, 3, 1, 0, cv::BORDER_REPLICATE);
  cv::Sobel(p, gy, CV_32F, 0, 1, 3, 1, 0, cv::BORDER_REPLICATE);
  cv::magnitude(gx, gy, mag);
  if (band) {
    const cv::Mat k = cv::getStructuringElement(cv::MORPH_RECT, {3, 3});
    cv::Mat bin = mask(roi) != 0, dil, ero;
    // Outside the image counts as background for the dilation and as mask for the erosion
    // (OpenCV's defaults), as on the whole image.
    cv::dilate(bin, dil, k);
    cv::erode(bin, ero, k);
    mag.setTo(0, ~(dil & ~ero));
  }
  for (int y = 0; y < mag.rows; ++y) {
    const float* m = mag.ptr<float>(y);
    const float* a = gx.ptr<float>(y);
    const float* b = gy.ptr<float>(y);
    float* M = mag_.ptr<float>(y + roi.y) + roi.x;
    float* A = gx_.ptr<float>(y + roi.y) + roi.x;
    float* B = gy_.ptr<float>(y + roi.y) + roi.x;
    for (int x = 0; x < mag.cols; ++x)
      if (m[x] > M[x]) M[x] = m[x], A[x] = a[x], B[x] = b[x];
  }
}

cv::Mat EdgeAccumulator::finish(bool nms) const {
  double mx = 0;
  cv::minMaxLoc(mag_, nullptr, &mx);
  cv::Mat e = mag_.clone();
  if (mx > 0) e /= mx;
  return nms ? edge_nms(e, gx_, gy_) : e;
}

namespace {

float bilinear(const cv::Mat& m, double x, double y) {
  x = std::clamp(x, 0.0, m.cols - 1.0);
  y = std::clamp(y, 0.0, m.rows - 1.0);
  const int x0 = static_cast<int>(x), y0 = static_cast<int>(y);
  const int x1 = std::min(x0 + 1, m.cols - 1), y1 = std::min(y0 + 1, m.rows - 1);
  const double fx = x - x0, fy = y - y0;
  const double top = m.at<float>(y0, x0) * (1 - fx) + m.at<float>(y0, x1) * fx;
  const double bot = m.at<float>(y1, x0) * (1 - fx) + m.at<float>(y1, x1) * fx;
  return static_cast<float>(top * (1 - fy) + bot * fy);
}

}  // namespace

cv::Mat edge_nms(const cv::Mat& mag, const cv::Mat& gx, const cv::Mat& gy) {
  if (mag.type() != CV_32FC1 || gx.size() != mag.size() || gy.size() != mag.size())
    throw std::invalid_argument("edge_nms: expected CV_32FC1 magnitude and gradients of one size");
  cv::Mat out = cv::Mat::zeros(mag.size(), CV_32FC1);
  for (int y = 0; y < mag.rows; ++y)
    for (int x = 0; x < mag.cols; ++x) {
      const float v = mag.at<float>(y, x);
      if (v <= 0) continue;
      const double a = gx.at<float>(y, x), b = gy.at<float>(y, x), n = std::hypot(a, b);
      if (n > 0) {
        const double dx = a / n, dy = b / n;
        // Strict on one side so that a two-pixel plateau (a sharp step) keeps one pixel.
        if (!(v > bilinear(mag, x + dx, y + dy)) || v < bilinear(mag, x - dx, y - dy)) continue;
      }
      out.at<float>(y, x) = v;
    }
  return out;
}

cv::Mat sam_edge_map(amg::MaskGenerator& generator, sam::Predictor& predictor, const cv::Mat& rgb,
                     const EdgesOptions& o, int64_t* n_masks, double* worst_match) {
  const auto image = image_tensor(rgb);
  const auto masks = generator.generate(image);
  if (n_masks) *n_masks = static_cast<int64_t>(masks.size());
  // The generator resets its predictor after each crop (as the reference): embed again.
  predictor.set_image(image, data::resizer(o.resize));
  torch::NoGradGuard no_grad;
  const auto upscale = [&](const torch::Tensor& low_res) {  // [1, 1, 4G, 4G] -> CPU [H, W]
    return predictor.model()
        ->postprocess_masks(low_res, predictor.input_size(), predictor.original_size())[0][0]
        .to(torch::kCPU)
        .contiguous();
  };
  const auto mask_iou = [](const torch::Tensor& logits, const torch::Tensor& kept) {
    const auto m = logits > 0;
    const double inter = (m & kept).sum().item<double>(), uni = (m | kept).sum().item<double>();
    return uni > 0 ? inter / uni : 1.0;
  };
  double worst = 1.0;
  EdgeAccumulator acc(rgb.rows, rgb.cols, o.boundary_band);
  const size_t chunk = static_cast<size_t>(std::max(1, o.points_per_batch));
  sam::PredictOptions po;
  po.multimask = true;
  po.upscale = false;  // only the kept output of each point is upscaled
  for (size_t b0 = 0; b0 < masks.size(); b0 += chunk) {
    const size_t B = std::min(chunk, masks.size() - b0);
    auto pts = torch::empty({static_cast<int64_t>(B), 1, 2}, torch::kFloat);
    for (size_t b = 0; b < B; ++b) {
      pts[b][0][0] = static_cast<float>(masks[b0 + b].point_coords[0]);
      pts[b][0][1] = static_cast<float>(masks[b0 + b].point_coords[1]);
    }
    auto labels = torch::ones({static_cast<int64_t>(B), 1}, torch::kLong);
    const auto pred = predictor.predict_batch(pts, labels, torch::Tensor(), torch::Tensor(), po);
    const auto iou = pred.iou.to(torch::kCPU, torch::kDouble).contiguous();
    for (size_t b = 0; b < B; ++b) {
      const auto& m = masks[b0 + b];
      cv::Mat kept(static_cast<int>(m.segmentation.h), static_cast<int>(m.segmentation.w), CV_8UC1);
      mask::rle_decode(m.segmentation, kept.data);
      const auto kt =
          torch::from_blob(kept.data, {kept.rows, kept.cols}, torch::kUInt8).to(torch::kBool);
      // Which of the three outputs was kept: the same decoder on the same point repeats its IoU
      // prediction; if none is within 1e-4 (batching noise), compare the masks themselves.
      int64_t best = 0;
      for (int64_t c = 1; c < iou.size(1); ++c)
        if (std::abs(iou[b][c].item<double>() - m.predicted_iou) <
            std::abs(iou[b][best].item<double>() - m.predicted_iou))
          best = c;
      torch::Tensor logits = upscale(pred.low_res.slice(0, b, b + 1).slice(1, best, best + 1));
      double match = mask_iou(logits, kt);
      if (std::abs(iou[b][best].item<double>() - m.predicted_iou) > 1e-4 || match < 0.99) {
        for (int64_t c = 0; c < iou.size(1); ++c) {
          auto l = upscale(pred.low_res.slice(0, b, b + 1).slice(1, c, c + 1));
          const double v = mask_iou(l, kt);
          if (v > match) match = v, logits = l;
        }
      }
      worst = std::min(worst, match);
      const auto prob = torch::sigmoid(logits).contiguous();
      cv::Mat pm(static_cast<int>(prob.size(0)), static_cast<int>(prob.size(1)), CV_32FC1,
                 prob.data_ptr<float>());
      acc.add(pm, kept);
    }
  }
  if (worst_match) *worst_match = worst;
  return acc.finish(o.edge_nms);
}

std::vector<BsdsImage> list_bsds(const std::string& root, const std::string& split) {
  const fs::path img_dir = fs::path(root) / "images" / split;
  const fs::path gt_dir = fs::path(root) / "png_gt" / "boundaries" / split;
  if (!fs::is_directory(img_dir))
    throw std::invalid_argument("BSDS500: no image folder " + img_dir.string());
  if (!fs::is_directory(gt_dir))
    throw std::invalid_argument("BSDS500: no boundary folder " + gt_dir.string());
  std::map<std::string, std::map<long, std::string>> gts;
  for (const auto& e : fs::directory_iterator(gt_dir)) {
    if (e.path().extension() != ".png") continue;
    const std::string stem = e.path().stem().string();
    const auto us = stem.rfind('_');
    if (us == std::string::npos) continue;
    try {
      gts[stem.substr(0, us)][std::stol(stem.substr(us + 1))] = e.path().string();
    } catch (const std::exception&) {
    }
  }
  std::vector<BsdsImage> out;
  for (const auto& e : fs::directory_iterator(img_dir)) {
    std::string ext = e.path().extension().string();
    std::transform(ext.begin(), ext.end(), ext.begin(), ::tolower);
    if (ext != ".jpg" && ext != ".jpeg" && ext != ".png") continue;
    BsdsImage im;
    im.id = e.path().stem().string();
    im.image = e.path().string();
    auto it = gts.find(im.id);
    if (it == gts.end())
      throw std::invalid_argument("BSDS500: " + im.image + " has no boundary maps " +
                                  (gt_dir / (im.id + "_<k>.png")).string());
    for (const auto& [k, path] : it->second) im.boundaries.push_back(path);
    out.push_back(std::move(im));
  }
  std::sort(out.begin(), out.end(),
            [](const BsdsImage& a, const BsdsImage& b) { return data::natural_less(a.id, b.id); });
  return out;
}

cv::Mat read_boundary_map(const std::string& path) {
  return data::image_read_gray(path);
}

const char* bsds_matching_description() {
  return "maximum-cardinality bipartite matching of thinned predicted and human boundary pixels "
         "within 0.0075 x image diagonal (greedy nearest-first start, Hopcroft-Karp augmentation); "
         "same match counts as the benchmark's CSA assignment, whose optimum is maximum-"
         "cardinality, without its tie-break by summed distance";
}

nlohmann::json EdgesResult::to_json() const {
  auto j = summary.to_json();
  j["images"] = images;
  j["mean_masks"] = mean_masks;
  j["worst_logit_match_iou"] = worst_match;
  j["ids"] = ids;
  j["matching"] = bsds_matching_description();
  j["pipeline"] =
      "16x16 point grid, generator without IoU/stability filters, box NMS 0.7; Sobel on "
      "sigmoid(logits) near each mask boundary; per-pixel max; normalised to [0,1]; edge NMS; "
      "99 thresholds, thinning, BSDS500 boundary benchmark";
  return j;
}

EdgesResult evaluate_edges(sam::Sam model, const std::string& bsds_root, const std::string& split,
                           const EdgesOptions& o, const torch::Device& device,
                           const ProgressFn& progress) {
  auto images = list_bsds(bsds_root, split);
  if (o.max_samples > 0 && static_cast<int64_t>(images.size()) > o.max_samples)
    images.resize(static_cast<size_t>(o.max_samples));
  if (!o.save_dir.empty()) fs::create_directories(o.save_dir);
  const auto amg_opts = o.amg_options();
  amg_opts.validate();
  const int workers = static_cast<int>(
      std::max<int64_t>(1, std::min<int64_t>(o.workers, static_cast<int64_t>(images.size()))));
  std::vector<std::unique_ptr<sam::Predictor>> predictors;
  std::vector<std::unique_ptr<amg::MaskGenerator>> gens;
  for (int w = 0; w < workers; ++w) {
    predictors.push_back(std::make_unique<sam::Predictor>(model, device));
    gens.push_back(std::make_unique<amg::MaskGenerator>(*predictors.back(), amg_opts));
  }
  std::vector<BoundaryCounts> counts(images.size());
  std::vector<int64_t> n_masks(images.size(), 0);
  std::vector<double> worst(images.size(), 1.0);
  run_workers(
      static_cast<int64_t>(images.size()), workers,
      [&](int64_t i, int w) {
        const cv::Mat rgb = data::image_read_rgb(images[i].image);
        const cv::Mat e = sam_edge_map(*gens[w], *predictors[w], rgb, o, &n_masks[i], &worst[i]);
        std::vector<cv::Mat> gts;
        for (const auto& b : images[i].boundaries) gts.push_back(read_boundary_map(b));
        counts[i] = evaluate_boundary_image(e, gts, o.bsds);
        if (!o.save_dir.empty()) {
          cv::Mat png;
          e.convertTo(png, CV_8UC1, 255.0);
          data::image_write((fs::path(o.save_dir) / (images[i].id + ".png")).string(), png);
        }
      },
      progress);
  EdgesResult r;
  r.summary = summarize_boundaries(bsds_thresholds(o.bsds.thresholds), counts);
  r.images = static_cast<int64_t>(images.size());
  for (size_t i = 0; i < images.size(); ++i) {
    r.ids.push_back(images[i].id);
    r.mean_masks += static_cast<double>(n_masks[i]);
    r.worst_match = std::min(r.worst_match, worst[i]);
  }
  if (r.images > 0) r.mean_masks /= static_cast<double>(r.images);
  return r;
}

}  // namespace sam::eval
