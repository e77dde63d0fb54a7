#include "engine/annotation_session.h"

#include <algorithm>

#include "data/mask/rle.h"

namespace sam::engine {

AnnotationSession::AnnotationSession(InteractiveSegmenter& seg, const AnnotatorOptions& opts)
    : seg_(seg), annotator_(opts) {}

data::Annotation mask_annotation(const cv::Mat& mask, int64_t id, double predicted_iou,
                                 const std::vector<Click>& clicks) {
  cv::Mat m = mask != 0;
  m /= 255;
  if (!m.isContinuous()) m = m.clone();
  data::Annotation a;
  a.id = id;
  a.segmentation.kind = data::Segmentation::Kind::rle;
  a.segmentation.h = m.rows;
  a.segmentation.w = m.cols;
  a.segmentation.rle = mask::rle_encode(m.data, m.rows, m.cols);
  const auto b = mask::rle_bbox_inclusive(a.segmentation.rle);
  a.bbox = {double(b[0]), double(b[1]), double(b[2] - b[0]), double(b[3] - b[1])};
  a.area = double(mask::rle_area(a.segmentation.rle));
  a.predicted_iou = predicted_iou;
  a.crop_box = std::array<double, 4>{0, 0, double(m.cols), double(m.rows)};
  if (!clicks.empty()) a.point_coords.push_back({clicks.front().x, clicks.front().y});
  return a;
}

ImageAnnotation AnnotationSession::annotate_image(const std::vector<cv::Mat>& gt,
                                                  const std::vector<PrefillMask>& prefill,
                                                  uint64_t stream) {
  ImageAnnotation out;
  auto& rec = out.record;
  rec.gt_objects = int(gt.size());
  for (const auto& p : prefill) {
    out.annotations.push_back(
        mask_annotation(p.mask, int64_t(out.annotations.size()), p.predicted_iou, {}));
    MaskRecord m;
    m.source = "prefill";
    m.predicted_iou = p.predicted_iou;
    rec.masks.push_back(m);
  }
  std::vector<int64_t> areas;
  for (const auto& g : gt) areas.push_back(cv::countNonZero(g));
  for (size_t k : prominence_order(areas, annotator_.options())) {
    // An object a pre-filled mask already covers well needs no work (the annotator sees it).
    bool covered = false;
    for (const auto& p : prefill)
      if (mask_iou(p.mask, gt[k]) >= annotator_.options().target_iou) covered = true;
    if (covered) {
      ++rec.gt_prefilled;
      continue;
    }
    ++rec.attempted;
    const ObjectResult r = annotator_.annotate(seg_, gt[k], stream * 1000003ull + k);
    if (!r.kept) {
      ++rec.given_up;
      continue;
    }
    out.annotations.push_back(
        mask_annotation(r.mask, int64_t(out.annotations.size()), r.predicted_iou, r.click_list));
    MaskRecord m;
    m.source = "manual";
    m.clicks = r.clicks;
    m.seconds = r.seconds;
    m.predicted_iou = r.predicted_iou;
    m.accepted = r.accepted;
    m.brushed = r.brushed;
    rec.masks.push_back(m);
  }
  return out;
}

GtMatch match_ground_truth(const std::vector<mask::Rle>& produced, const std::vector<mask::Rle>& gt,
                           double thr) {
  GtMatch m;
  std::vector<bool> gt_hit(gt.size(), false);
  for (const auto& p : produced) {
    double best = gt.empty() ? -1.0 : 0.0;
    for (size_t j = 0; j < gt.size(); ++j) {
      const double iou = mask::rle_iou(p, gt[j], false);
      best = std::max(best, iou);
      if (iou >= thr) gt_hit[j] = true;
    }
    m.best_iou.push_back(best);
    if (best >= thr) ++m.masks_matched;
  }
  for (bool h : gt_hit) m.gt_matched += h ? 1 : 0;
  return m;
}

std::vector<int> retrain_points(int n_images, int rounds) {
  std::vector<int> pts;
  if (n_images <= 0 || rounds <= 0) return pts;
  for (int k = 1; k <= rounds; ++k) {
    const int p = int((int64_t(k) * n_images + rounds - 1) / rounds);
    if (pts.empty() || pts.back() != p) pts.push_back(p);
  }
  return pts;
}

}  // namespace sam::engine
