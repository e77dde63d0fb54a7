#include "eval/points.h"

#include <opencv2/imgproc.hpp>

#include <algorithm>
#include <iostream>
#include <memory>
#include <mutex>
#include <stdexcept>

#include "data/log.h"
#include "data/rng.h"
#include "eval/common.h"

namespace sam::eval {
namespace {

cv::Mat binary(const cv::Mat& m) {
  cv::Mat b;
  cv::compare(m, 0, b, cv::CMP_NE);  // 0 / 255
  return b;
}

void check_same_size(const cv::Mat& a, const cv::Mat& b, const char* what) {
  if (!b.empty() && (a.rows != b.rows || a.cols != b.cols || b.type() != CV_8UC1))
    throw std::invalid_argument(std::string(what) + ": expected a " + std::to_string(a.cols) + "x" +
                                std::to_string(a.rows) + " CV_8UC1 mask, got " +
                                std::to_string(b.cols) + "x" + std::to_string(b.rows));
}

}  // namespace

double masked_iou(const cv::Mat& pred, const cv::Mat& gt, const cv::Mat& ignore) {
  check_same_size(gt, pred, "masked_iou pred");
  check_same_size(gt, ignore, "masked_iou ignore");
  int64_t inter = 0, uni = 0;
  for (int y = 0; y < gt.rows; ++y) {
    const uint8_t* p = pred.ptr<uint8_t>(y);
    const uint8_t* g = gt.ptr<uint8_t>(y);
    const uint8_t* ig = ignore.empty() ? nullptr : ignore.ptr<uint8_t>(y);
    for (int x = 0; x < gt.cols; ++x) {
      if (ig && ig[x]) continue;
      const bool a = p[x] != 0, b = g[x] != 0;
      inter += a && b;
      uni += a || b;
    }
  }
  return uni == 0 ? 1.0 : static_cast<double>(inter) / static_cast<double>(uni);
}

DtMax distance_max(const cv::Mat& region, const cv::Mat& exclude) {
  check_same_size(region, exclude, "distance_max exclude");
  // RITM pads with one pixel of background so that the image border counts as outside.
  cv::Mat padded, dt;
  cv::copyMakeBorder(binary(region), padded, 1, 1, 1, 1, cv::BORDER_CONSTANT, cv::Scalar(0));
  cv::distanceTransform(padded, dt, cv::DIST_L2, cv::DIST_MASK_PRECISE, CV_32F);
  DtMax best;
  for (int y = 0; y < region.rows; ++y) {
    const float* d = dt.ptr<float>(y + 1) + 1;
    const uint8_t* ex = exclude.empty() ? nullptr : exclude.ptr<uint8_t>(y);
    for (int x = 0; x < region.cols; ++x) {
      if (ex && ex[x]) continue;
      if (d[x] > best.dist) best = {x, y, d[x]};  // strict: the first maximum in row-major order
    }
  }
  return best;
}

std::optional<Click> next_click(const cv::Mat& gt, const cv::Mat& pred, const cv::Mat& ignore,
                                const cv::Mat& clicked) {
  check_same_size(gt, pred, "next_click pred");
  check_same_size(gt, ignore, "next_click ignore");
  check_same_size(gt, clicked, "next_click clicked");
  const cv::Mat g = binary(gt), p = binary(pred);
  cv::Mat valid(gt.size(), CV_8UC1, cv::Scalar(255));
  if (!ignore.empty()) valid = ignore == 0;
  cv::Mat fn = g & ~p & valid, fp = ~g & p & valid;
  const DtMax a = distance_max(fn, clicked), b = distance_max(fp, clicked);
  if (a.dist <= 0 && b.dist <= 0) return std::nullopt;
  if (a.dist > b.dist) return Click{a.x, a.y, true};
  return Click{b.x, b.y, false};
}

int number_of_clicks(const std::vector<double>& ious, double thr) {
  for (size_t k = 0; k < ious.size(); ++k)
    if (ious[k] >= thr) return static_cast<int>(k) + 1;
  return static_cast<int>(ious.size());
}

PointsSample evaluate_object(const cv::Mat& gt, const cv::Mat& ignore, const ClickModel& model,
                             const PointsOptions& o, uint64_t index,
                             const PointsProtocol& protocol) {
  if (gt.empty() || gt.type() != CV_8UC1)
    throw std::invalid_argument("evaluate_object: the object mask must be a CV_8UC1 image");
  check_same_size(gt, ignore, "evaluate_object ignore");
  if (o.clicks < 1)
    throw std::invalid_argument("clicks = " + std::to_string(o.clicks) + ": must be at least 1");
  cv::Mat object = binary(gt);
  if (!ignore.empty()) object &= (ignore == 0);
  const int64_t n_valid = cv::countNonZero(object);
  if (n_valid == 0) throw std::invalid_argument("the object has no (non-ignored) pixel");

  cv::Mat clicked = cv::Mat::zeros(gt.size(), CV_8UC1);
  Click first;
  if (o.random_first) {
    data::Rng rng(data::derive_seed({o.seed, index}));
    int64_t k = static_cast<int64_t>(rng.below(static_cast<uint64_t>(n_valid)));
    for (int y = 0; y < object.rows && k >= 0; ++y) {
      const uint8_t* r = object.ptr<uint8_t>(y);
      for (int x = 0; x < object.cols; ++x)
        if (r[x] && k-- == 0) {
          first = {x, y, true};
          break;
        }
    }
  } else {
    first = *next_click(gt, cv::Mat::zeros(gt.size(), CV_8UC1), ignore, clicked);
  }
  std::vector<Click> clicks{first};
  clicked.at<uint8_t>(first.y, first.x) = 1;

  PointsSample s;
  ClickAnswer ans = model(clicks, torch::Tensor(), true);
  if (ans.masks.empty() || ans.masks.size() != ans.scores.size())
    throw std::runtime_error("the model returned no masks (or masks without scores)");
  size_t top = 0;
  for (size_t c = 0; c < ans.masks.size(); ++c) {
    const double iou = masked_iou(ans.masks[c], gt, ignore);
    s.iou_1click_oracle = std::max(s.iou_1click_oracle, iou);
    if (ans.scores[c] > ans.scores[top]) top = c;
  }
  s.iou_1click = masked_iou(ans.masks[top], gt, ignore);
  s.iou_per_click.push_back(s.iou_1click);
  cv::Mat pred = ans.masks[top];
  torch::Tensor feedback = top < ans.feedback.size() ? ans.feedback[top] : torch::Tensor();

  for (int k = 2; k <= o.clicks; ++k) {
    const auto c = next_click(gt, pred, ignore, clicked);
    if (!c) {  // nothing left to correct: the IoU stays
      s.iou_per_click.resize(o.clicks, s.iou_per_click.back());
      break;
    }
    clicks.push_back(*c);
    clicked.at<uint8_t>(c->y, c->x) = 1;
    ans = model(clicks, feedback, protocol.multimask_all);
    if (ans.masks.empty() || ans.masks.size() != ans.scores.size())
      throw std::runtime_error("the model returned no mask (or masks without scores)");
    size_t best = 0;  // single-mask output: the only mask
    if (protocol.multimask_all)
      for (size_t m = 1; m < ans.masks.size(); ++m)
        if (ans.scores[m] > ans.scores[best]) best = m;
    pred = ans.masks[best];
    feedback = best < ans.feedback.size() ? ans.feedback[best] : torch::Tensor();
    s.iou_per_click.push_back(masked_iou(pred, gt, ignore));
  }
  s.noc85 = number_of_clicks(s.iou_per_click, 0.85);
  s.noc90 = number_of_clicks(s.iou_per_click, 0.90);
  return s;
}

ClickModel predictor_click_model(const sam::Predictor& predictor) {
  return [&predictor](const std::vector<Click>& clicks, const torch::Tensor& feedback,
                      bool multimask) {
    const int64_t n = static_cast<int64_t>(clicks.size());
    auto pts = torch::empty({n, 2}, torch::kFloat);
    auto labels = torch::empty({n}, torch::kLong);
    for (int64_t i = 0; i < n; ++i) {
      pts[i][0] = static_cast<float>(clicks[i].x);
      pts[i][1] = static_cast<float>(clicks[i].y);
      labels[i] = clicks[i].positive ? 1 : 0;
    }
    sam::PredictOptions po;
    po.multimask = multimask;
    po.logits = false;  // the masks are read, not the full-size logits
    const auto pred = predictor.predict(pts, labels, torch::Tensor(), feedback, po);
    const auto masks = pred.masks[0].to(torch::kCPU).to(torch::kUInt8).contiguous();
    const auto iou = pred.iou[0].to(torch::kCPU, torch::kDouble).contiguous();
    ClickAnswer a;
    const int64_t C = masks.size(0), H = masks.size(1), W = masks.size(2);
    for (int64_t c = 0; c < C; ++c) {
      cv::Mat m(static_cast<int>(H), static_cast<int>(W), CV_8UC1, masks[c].data_ptr<uint8_t>());
      a.masks.push_back(m.clone());
      a.scores.push_back(iou[c].item<double>());
      a.feedback.push_back(pred.low_res[0].narrow(0, c, 1));
    }
    return a;
  };
}

PointsResult summarize_points(std::vector<PointsSample> samples, int clicks) {
  PointsResult r;
  r.n = static_cast<int64_t>(samples.size());
  r.miou_at_k.assign(std::max(clicks, 0), 0.0);
  for (const auto& s : samples) {
    r.miou_1click += s.iou_1click;
    r.miou_1click_oracle += s.iou_1click_oracle;
    r.noc85 += s.noc85;
    r.noc90 += s.noc90;
    for (size_t k = 0; k < r.miou_at_k.size() && k < s.iou_per_click.size(); ++k)
      r.miou_at_k[k] += s.iou_per_click[k];
  }
  if (r.n > 0) {
    const double n = static_cast<double>(r.n);
    r.miou_1click /= n;
    r.miou_1click_oracle /= n;
    r.noc85 /= n;
    r.noc90 /= n;
    for (auto& v : r.miou_at_k) v /= n;
  }
  r.samples = std::move(samples);
  return r;
}

nlohmann::json PointsResult::to_json() const {
  int64_t nof85 = 0, nof90 = 0;
  nlohmann::json js = nlohmann::json::array();
  for (const auto& s : samples) {
    const auto reached = [&](double t) {
      return std::any_of(s.iou_per_click.begin(), s.iou_per_click.end(),
                         [t](double v) { return v >= t; });
    };
    nof85 += !reached(0.85);
    nof90 += !reached(0.90);
    js.push_back({{"id", s.id},
                  {"iou_1click", s.iou_1click},
                  {"iou_1click_oracle", s.iou_1click_oracle},
                  {"iou_per_click", s.iou_per_click},
                  {"noc85", s.noc85},
                  {"noc90", s.noc90}});
  }
  return {{"n", n},
          {"clicks", miou_at_k.size()},
          {"miou_1click", miou_1click},
          {"miou_1click_oracle", miou_1click_oracle},
          {"noc85", noc85},
          {"noc90", noc90},
          {"nof85", nof85},
          {"nof90", nof90},
          {"miou_at_k", miou_at_k},
          {"samples", js}};
}

PointsResult evaluate_points(sam::Sam model, const sam::data::Dataset& ds, const PointsOptions& o,
                             const torch::Device& device) {
  return evaluate_points(model, ds, o, device, nullptr);
}

PointsResult evaluate_points(sam::Sam model, const sam::data::Dataset& ds, const PointsOptions& o,
                             const torch::Device& device, const ProgressFn& progress,
                             const PointsProtocol& protocol) {
  if (o.clicks < 1)
    throw std::invalid_argument("clicks = " + std::to_string(o.clicks) + ": must be at least 1");
  // The objects, in dataset order: (sample, annotation). Crowd regions are not objects.
  struct Item {
    data::Sample sample;
    std::vector<size_t> annotations;
    size_t first_object = 0;
  };
  std::vector<Item> items;
  size_t n_objects = 0;
  for (size_t i = 0; i < ds.size(); ++i) {
    if (o.max_samples > 0 && static_cast<int64_t>(n_objects) >= o.max_samples) break;
    Item it{ds.get(i), {}, n_objects};
    for (size_t a = 0; a < it.sample.annotations.size(); ++a) {
      if (it.sample.annotations[a].iscrowd) continue;
      if (o.max_samples > 0 && static_cast<int64_t>(n_objects) >= o.max_samples) break;
      it.annotations.push_back(a);
      ++n_objects;
    }
    if (!it.annotations.empty()) items.push_back(std::move(it));
  }

  const int workers = static_cast<int>(
      std::max<int64_t>(1, std::min<int64_t>(o.workers, static_cast<int64_t>(items.size()))));
  std::vector<std::unique_ptr<sam::Predictor>> predictors;
  for (int w = 0; w < workers; ++w)
    predictors.push_back(std::make_unique<sam::Predictor>(model, device));

  const bool coco = !ds.categories().empty();  // objects named <image>#<annotation id>
  std::vector<std::optional<PointsSample>> slots(n_objects);
  run_workers(
      static_cast<int64_t>(items.size()), workers,
      [&](int64_t item, int worker) {
        const Item& it = items[item];
        sam::Predictor& p = *predictors[worker];
        const cv::Mat rgb = it.sample.load_image();
        p.set_image(image_tensor(rgb), data::resizer(o.resize));
        const ClickModel cm = predictor_click_model(p);
        for (size_t k = 0; k < it.annotations.size(); ++k) {
          const size_t a = it.annotations[k];
          const auto& ann = it.sample.annotations[a];
          std::string id = it.sample.id;
          if (it.sample.annotations.size() > 1 || coco)
            id += "#" + std::to_string(ann.id >= 0 ? ann.id : static_cast<int64_t>(a));
          try {
            const cv::Mat gt = it.sample.mask(a), ignore = it.sample.ignore_mask(a);
            PointsSample s = evaluate_object(gt, ignore, cm, o, it.first_object + k, protocol);
            s.id = id;
            slots[it.first_object + k] = std::move(s);
          } catch (const std::invalid_argument& e) {
            log::warn("sam::eval points: skipping " + id + ": " + e.what());
          } catch (const data::DataError& e) {
            log::warn("sam::eval points: skipping " + id + ": " + e.what());
          }
        }
      },
      progress);

  std::vector<PointsSample> samples;
  for (auto& s : slots)
    if (s) samples.push_back(std::move(*s));
  return summarize_points(std::move(samples), o.clicks);
}

}  // namespace sam::eval
