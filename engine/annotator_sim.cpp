#include "engine/annotator_sim.h"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <stdexcept>
#include <string>

#include <torch/torch.h>
#include <opencv2/imgproc.hpp>

#include "data/image_input.h"
#include "sam/predictor.h"

namespace sam::engine {

void AnnotatorOptions::validate() const {
  auto bad = [](const std::string& k, const std::string& why) {
    throw std::invalid_argument("annotator." + k + " " + why);
  };
  if (!(target_iou > 0 && target_iou <= 1)) bad("target_iou", "must be in (0, 1]");
  if (max_clicks < 1) bad("max_clicks", "must be >= 1");
  if (seconds_first_click < 0 || seconds_per_click < 0) bad("seconds_per_click", "must be >= 0");
  if (seconds_budget <= 0) bad("seconds_budget", "must be > 0");
  if (keep_iou < 0 || keep_iou > 1) bad("keep_iou", "must be in [0, 1]");
  if (click_jitter < 0) bad("click_jitter", "must be >= 0");
  if (min_object_area < 1) bad("min_object_area", "must be >= 1");
  if (brush_seconds < 0) bad("brush_seconds", "must be >= 0");
  if (max_objects_per_image < 0) bad("max_objects_per_image", "must be >= 0");
}

double AnnotatorOptions::seconds_for(int clicks) const {
  if (clicks <= 0) return 0;
  return seconds_first_click + seconds_per_click * (clicks - 1);
}

cv::Point interior_point(const cv::Mat& region) {
  CV_Assert(region.type() == CV_8UC1);
  if (cv::countNonZero(region) == 0) return {-1, -1};
  // Zero padding makes the image border a boundary: a click near the frame edge is not "central".
  cv::Mat padded;
  cv::copyMakeBorder(region != 0, padded, 1, 1, 1, 1, cv::BORDER_CONSTANT, cv::Scalar(0));
  cv::Mat dist;
  cv::distanceTransform(padded, dist, cv::DIST_L2, cv::DIST_MASK_PRECISE);
  // First maximum in row-major order (minMaxLoc keeps the first one it meets).
  double best = -1;
  cv::Point at(-1, -1);
  for (int y = 1; y < dist.rows - 1; ++y) {
    const float* row = dist.ptr<float>(y);
    for (int x = 1; x < dist.cols - 1; ++x)
      if (row[x] > best) {
        best = row[x];
        at = {x - 1, y - 1};
      }
  }
  return at;
}

namespace {

// The largest 8-connected component of `m` as a mask, with its area (0 when empty).
std::pair<cv::Mat, int64_t> largest_component(const cv::Mat& m) {
  cv::Mat labels, stats, centroids;
  const int n = cv::connectedComponentsWithStats(m, labels, stats, centroids, 8, CV_32S);
  int best = -1;
  int64_t best_area = 0;
  for (int i = 1; i < n; ++i) {
    const int64_t a = stats.at<int>(i, cv::CC_STAT_AREA);
    if (a > best_area) {
      best_area = a;
      best = i;
    }
  }
  if (best < 0) return {cv::Mat(), 0};
  cv::Mat comp = labels == best;
  return {comp, best_area};
}

}  // namespace

ErrorClick next_click(const cv::Mat& gt, const cv::Mat& pred) {
  CV_Assert(gt.type() == CV_8UC1 && pred.type() == CV_8UC1 && gt.size() == pred.size());
  const cv::Mat g = gt != 0, p = pred != 0;
  const cv::Mat fn = g & ~p, fp = p & ~g;
  auto [fn_comp, fn_area] = largest_component(fn);
  auto [fp_comp, fp_area] = largest_component(fp);
  ErrorClick out;
  if (fn_area == 0 && fp_area == 0) return out;
  const bool positive = fn_area >= fp_area;
  const cv::Point pt = interior_point(positive ? fn_comp : fp_comp);
  out.click = {double(pt.x), double(pt.y), positive};
  out.region_area = positive ? fn_area : fp_area;
  return out;
}

double mask_iou(const cv::Mat& a, const cv::Mat& b) {
  CV_Assert(a.size() == b.size());
  const cv::Mat an = a != 0, bn = b != 0;
  const int inter = cv::countNonZero(an & bn), uni = cv::countNonZero(an | bn);
  return uni == 0 ? 1.0 : double(inter) / double(uni);
}

InteractiveSegmenter::InteractiveSegmenter(Predictor& predictor, bool mask_input)
    : predictor_(predictor), use_mask_input_(mask_input) {}

void InteractiveSegmenter::set_image(const cv::Mat& rgb, bool exact_resize) {
  CV_Assert(rgb.type() == CV_8UC3 && rgb.isContinuous());
  auto t = torch::from_blob(const_cast<uint8_t*>(rgb.data), {rgb.rows, rgb.cols, 3}, torch::kUInt8);
  predictor_.set_image(t, data::resizer(exact_resize ? data::ResizeMode::kPilExact : data::ResizeMode::kFast));
  h_ = rgb.rows;
  w_ = rgb.cols;
  start_object();
}

void InteractiveSegmenter::start_object() {
  clicks_.clear();
  history_.clear();
  mask_ = cv::Mat::zeros(int(h_), int(w_), CV_8UC1);
  predicted_iou_ = 0;
  low_res_ = torch::Tensor();
}

const cv::Mat& InteractiveSegmenter::add_click(const Click& click, const cv::Mat* reference) {
  if (h_ == 0) throw std::logic_error("InteractiveSegmenter::add_click before set_image");
  history_.push_back({mask_, predicted_iou_, low_res_});
  clicks_.push_back(click);
  const int64_t n = int64_t(clicks_.size());
  auto pts = torch::empty({n, 2}, torch::kFloat32);
  auto lab = torch::empty({n}, torch::kInt64);
  for (int64_t i = 0; i < n; ++i) {
    pts[i][0] = clicks_[size_t(i)].x;
    pts[i][1] = clicks_[size_t(i)].y;
    lab[i] = clicks_[size_t(i)].positive ? 1 : 0;
  }
  torch::NoGradGuard ng;
  PredictOptions po;
  po.multimask = n == 1;  // one click is ambiguous (SAM's whole / part / sub-part)
  po.logits = false;  // the masks are read, not the full-size logits
  const Prediction pr = predictor_.predict(pts, lab, torch::Tensor(),
                                           use_mask_input_ ? low_res_ : torch::Tensor(), po);
  const auto masks = pr.masks[0].to(torch::kUInt8).contiguous();  // [C, H, W]
  const auto ious = pr.iou[0].to(torch::kFloat64);
  const int64_t c = masks.size(0);
  int64_t pick = 0;
  double best = -1;
  std::vector<cv::Mat> cands;
  for (int64_t k = 0; k < c; ++k) {
    cands.emplace_back(int(h_), int(w_), CV_8UC1, masks[k].data_ptr<uint8_t>());
    const double score = reference ? mask_iou(cands.back(), *reference) : ious[k].item<double>();
    if (score > best) {
      best = score;
      pick = k;
    }
  }
  mask_ = cands[size_t(pick)].clone();
  predicted_iou_ = ious[pick].item<double>();
  low_res_ = pr.low_res[0].slice(0, pick, pick + 1).clone();  // [1, 4G, 4G]
  return mask_;
}

void InteractiveSegmenter::undo() {
  if (clicks_.empty()) return;
  clicks_.pop_back();
  mask_ = history_.back().mask;
  predicted_iou_ = history_.back().predicted_iou;
  low_res_ = history_.back().low_res;
  history_.pop_back();
}

SimulatedAnnotator::SimulatedAnnotator(AnnotatorOptions options) : opts_(std::move(options)) {
  opts_.validate();
}

ObjectResult SimulatedAnnotator::annotate(InteractiveSegmenter& seg, const cv::Mat& gt,
                                          uint64_t stream) const {
  std::mt19937_64 rng(opts_.seed * 0x9E3779B97F4A7C15ull + stream);
  std::normal_distribution<double> noise(0.0, 1.0);
  seg.start_object();
  const cv::Mat g = gt != 0;
  ObjectResult r;
  r.mask = cv::Mat::zeros(gt.size(), CV_8UC1);
  r.iou = -1;
  cv::Mat current = cv::Mat::zeros(gt.size(), CV_8UC1);
  while (true) {
    const ErrorClick ec = next_click(g, current);
    if (ec.region_area == 0) break;  // nothing left to fix
    Click c = ec.click;
    if (opts_.click_jitter > 0) {
      // People miss by a pixel or two; a slip that leaves the error region is not a slip they make.
      const int jx = int(std::lround(c.x + opts_.click_jitter * noise(rng)));
      const int jy = int(std::lround(c.y + opts_.click_jitter * noise(rng)));
      if (jx >= 0 && jy >= 0 && jx < gt.cols && jy < gt.rows &&
          (g.at<uint8_t>(jy, jx) != 0) == c.positive &&
          (current.at<uint8_t>(jy, jx) != 0) != c.positive) {
        c.x = jx;
        c.y = jy;
      }
    }
    current = seg.add_click(c, &gt) != 0;
    current /= 255;
    ++r.clicks;
    r.seconds = opts_.seconds_for(r.clicks);
    const double iou = mask_iou(current, g);
    if (iou > r.iou) {
      r.iou = iou;
      r.mask = current.clone();
      r.predicted_iou = seg.predicted_iou();
    }
    if (iou >= opts_.target_iou) {
      r.accepted = true;
      break;
    }
    // The next click would take the object past the time budget: move on (paper: after 30 s).
    if (r.clicks >= opts_.max_clicks || opts_.seconds_for(r.clicks + 1) > opts_.seconds_budget)
      break;
  }
  if (r.iou < 0) r.iou = mask_iou(r.mask, g);
  r.kept = r.accepted || (r.clicks > 0 && r.iou >= opts_.keep_iou);
  if (!r.kept && opts_.brush_seconds > 0) {
    // The tool's pixel-precise brush and eraser (paper section 4) finish what clicks could not.
    r.mask = g / 255;
    r.iou = 1.0;
    r.seconds += opts_.brush_seconds;
    r.brushed = r.kept = true;
  }
  r.click_list = seg.clicks();
  return r;
}

std::vector<size_t> prominence_order(const std::vector<int64_t>& areas, const AnnotatorOptions& o) {
  std::vector<size_t> idx;
  for (size_t i = 0; i < areas.size(); ++i)
    if (areas[i] >= o.min_object_area) idx.push_back(i);
  std::stable_sort(idx.begin(), idx.end(), [&](size_t a, size_t b) { return areas[a] > areas[b]; });
  if (o.max_objects_per_image > 0 && idx.size() > size_t(o.max_objects_per_image))
    idx.resize(size_t(o.max_objects_per_image));
  return idx;
}

}  // namespace sam::engine
