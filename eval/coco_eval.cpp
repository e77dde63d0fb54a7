#include "eval/coco_eval.h"

#include <algorithm>
#include <cmath>
#include <map>
#include <numeric>
#include <optional>
#include <stdexcept>

#include "data/annotation.h"

namespace sam::eval {
namespace {

constexpr double kSpacing1 = 2.220446049250313e-16;  // np.spacing(1)

// One evaluateImg() result.
struct EvalImg {
  size_t D = 0;
  std::vector<double> dt_scores;    // [D], sorted descending (stable)
  std::vector<uint8_t> dt_matched;  // [T * D]
  std::vector<uint8_t> dt_ignore;   // [T * D]
  std::vector<uint8_t> gt_ignore;   // [G]
};

// Indices 0..n-1 sorted by key ascending, stable (numpy argsort kind='mergesort').
template <class Key>
std::vector<size_t> stable_argsort(size_t n, Key key) {
  std::vector<size_t> idx(n);
  std::iota(idx.begin(), idx.end(), 0);
  std::stable_sort(idx.begin(), idx.end(), [&](size_t a, size_t b) { return key(a) < key(b); });
  return idx;
}

}  // namespace

std::vector<double> np_linspace(double start, double stop, int num) {
  std::vector<double> v;
  if (num <= 0) return v;
  if (num == 1) return {start};
  const double step = (stop - start) / (num - 1);
  for (int i = 0; i < num; ++i) v.push_back(i * step + start);
  v.back() = stop;
  return v;
}

double coco_box_iou(const CocoBox& D, const CocoBox& G, bool gt_is_crowd) {
  // maskApi.c bbIou, one (dt, gt) pair, operation for operation (no FMA contraction: the build
  // does not target FMA, as pycocotools' wheels do not).
  const double ga = G[2] * G[3], da = D[2] * D[3];
  const double w = std::fmin(D[2] + D[0], G[2] + G[0]) - std::fmax(D[0], G[0]);
  if (w <= 0) return 0.0;
  const double h = std::fmin(D[3] + D[1], G[3] + G[1]) - std::fmax(D[1], G[1]);
  if (h <= 0) return 0.0;
  const double i = w * h;
  const double u = gt_is_crowd ? da : da + ga - i;
  return i / u;
}

CocoDt coco_box_dt(int64_t image_id, int64_t category_id, const CocoBox& xywh, double score) {
  return CocoDt(image_id, category_id, mask::Rle{}, score, xywh, xywh[2] * xywh[3]);
}

std::vector<CocoDt> coco_load_results(const nlohmann::json& results,
                                      const std::map<int64_t, std::array<int64_t, 2>>& image_hw) {
  if (!results.is_array()) throw std::invalid_argument("COCO results: expected a list");
  std::vector<CocoDt> out;
  if (results.empty()) return out;
  auto box_of = [](const nlohmann::json& b) {
    if (!b.is_array() || b.size() != 4) throw std::invalid_argument("bbox must be [x, y, w, h]");
    CocoBox box;
    for (size_t k = 0; k < 4; ++k) box[k] = b[k].get<double>();
    return box;
  };
  // loadRes: 'bbox' in anns[0] and not anns[0]['bbox'] == [] -> every result read as a box.
  const auto& first = results[0];
  const bool boxes = first.is_object() && first.contains("bbox") &&
                     !(first["bbox"].is_array() && first["bbox"].empty());
  out.reserve(results.size());
  for (size_t i = 0; i < results.size(); ++i) {
    const auto& r = results[i];
    try {
      if (!r.is_object()) throw std::invalid_argument("not an object");
      CocoDt d;
      d.image_id = r.at("image_id").get<int64_t>();
      d.category_id = r.at("category_id").get<int64_t>();
      d.score = r.at("score").get<double>();
      const auto im = image_hw.find(d.image_id);
      if (im == image_hw.end())
        throw std::invalid_argument("image " + std::to_string(d.image_id) +
                                    " is not in the ground truth");
      const int64_t h = im->second[0], w = im->second[1];
      const auto seg = r.find("segmentation");
      auto mask_of = [&](const nlohmann::json& sj) {
        data::Annotation a;  // annToRLE
        a.id = static_cast<int64_t>(i);
        a.segmentation = data::parse_segmentation(sj, h, w);
        return a.rle();
      };
      if (boxes) {
        const CocoBox b = box_of(r.at("bbox"));
        d.bbox = b;
        d.area = b[2] * b[3];
        d.rle = seg != r.end() ? mask_of(*seg) : mask::rle_from_bbox(b[0], b[1], b[2], b[3], h, w);
      } else {
        if (seg == r.end()) throw std::invalid_argument("no \"segmentation\"");
        d.rle = mask_of(*seg);
        d.area = static_cast<double>(mask::rle_area(d.rle));
        d.bbox = r.contains("bbox") ? box_of(r["bbox"]) : mask::rle_bbox_coco(d.rle);
      }
      out.push_back(std::move(d));
    } catch (const std::exception& e) {
      throw std::invalid_argument("COCO results: result " + std::to_string(i) + ": " + e.what());
    }
  }
  return out;
}

CocoEvalParams::CocoEvalParams()
    : iou_thrs(np_linspace(0.5, 0.95, 10)), rec_thrs(np_linspace(0.0, 1.0, 101)) {}

CocoEvalParams CocoEvalParams::proposals() {
  CocoEvalParams p;
  p.use_cats = false;
  p.max_dets = {10, 100, 1000};
  return p;
}

CocoEvalResult coco_evaluate(const std::vector<int64_t>& image_ids,
                             const std::vector<int64_t>& cat_ids, const std::vector<CocoGt>& gts,
                             const std::vector<CocoDt>& dts, const CocoEvalParams& params) {
  CocoEvalParams p = params;
  if (p.area_rng.size() != p.area_lbl.size())
    throw std::invalid_argument("COCO eval: area ranges and area labels differ in number");
  if (p.max_dets.empty()) throw std::invalid_argument("COCO eval: max_dets is empty");
  std::sort(p.max_dets.begin(), p.max_dets.end());
  CocoEvalResult res;
  res.image_ids = image_ids;
  std::sort(res.image_ids.begin(), res.image_ids.end());
  res.image_ids.erase(std::unique(res.image_ids.begin(), res.image_ids.end()), res.image_ids.end());
  res.cat_ids = cat_ids;
  std::sort(res.cat_ids.begin(), res.cat_ids.end());
  res.cat_ids.erase(std::unique(res.cat_ids.begin(), res.cat_ids.end()), res.cat_ids.end());

  const size_t I = res.image_ids.size(), C = res.cat_ids.size();
  const size_t T = p.iou_thrs.size(), R = p.rec_thrs.size(), A = p.area_rng.size(),
               M = p.max_dets.size();
  const size_t K = p.use_cats ? C : 1;
  std::map<int64_t, size_t> img_index, cat_index;
  for (size_t i = 0; i < I; ++i) img_index[res.image_ids[i]] = i;
  for (size_t c = 0; c < C; ++c) cat_index[res.cat_ids[c]] = c;

  // _gts / _dts keyed by (image, category), in input order.
  std::vector<std::vector<std::vector<size_t>>> G(I, std::vector<std::vector<size_t>>(C)),
      Dl(I, std::vector<std::vector<size_t>>(C));
  for (size_t g = 0; g < gts.size(); ++g) {
    auto ii = img_index.find(gts[g].image_id);
    auto cc = cat_index.find(gts[g].category_id);
    if (ii != img_index.end() && cc != cat_index.end()) G[ii->second][cc->second].push_back(g);
  }
  // What loadRes left: a detection's area, and for iouType bbox both sides' boxes.
  const bool bbox = p.iou_type == CocoIouType::bbox;
  std::vector<double> dt_area(dts.size());
  std::vector<CocoBox> dt_box(bbox ? dts.size() : 0), gt_box(bbox ? gts.size() : 0);
  for (size_t g = 0; g < gt_box.size(); ++g)
    gt_box[g] = gts[g].bbox ? *gts[g].bbox : mask::rle_bbox_coco(gts[g].rle);
  for (size_t d = 0; d < dts.size(); ++d) {
    dt_area[d] = dts[d].area ? *dts[d].area : static_cast<double>(mask::rle_area(dts[d].rle));
    if (bbox) dt_box[d] = dts[d].bbox ? *dts[d].bbox : mask::rle_bbox_coco(dts[d].rle);
    auto ii = img_index.find(dts[d].image_id);
    auto cc = cat_index.find(dts[d].category_id);
    // Without categories COCOeval still gathers detections through the ground truth's category
    // list; a detection of an unknown category would be lost there. Proposals carry no category,
    // so here they all go to the first one.
    if (ii == img_index.end()) continue;
    if (cc != cat_index.end())
      Dl[ii->second][cc->second].push_back(d);
    else if (!p.use_cats && C > 0)
      Dl[ii->second][0].push_back(d);
  }

  const int max_det = p.max_dets.back();
  // evalImgs[k][a][i]
  std::vector<std::optional<EvalImg>> eval_imgs(K * A * I);
  for (size_t k = 0; k < K; ++k)
    for (size_t i = 0; i < I; ++i) {
      std::vector<size_t> gt, dt;
      if (p.use_cats) {
        gt = G[i][k];
        dt = Dl[i][k];
      } else {
        for (size_t c = 0; c < C; ++c) {
          gt.insert(gt.end(), G[i][c].begin(), G[i][c].end());
          dt.insert(dt.end(), Dl[i][c].begin(), Dl[i][c].end());
        }
      }
      if (gt.empty() && dt.empty()) continue;
      // computeIoU: detections by descending score (stable), at most max_det; the only step
      // where segm and bbox differ.
      const auto dord = stable_argsort(dt.size(), [&](size_t a) { return -dts[dt[a]].score; });
      std::vector<size_t> dsorted;
      for (size_t q = 0; q < dord.size() && static_cast<int>(q) < max_det; ++q)
        dsorted.push_back(dt[dord[q]]);
      const size_t D = dsorted.size(), Gn = gt.size();
      std::vector<double> ious(D * Gn, 0.0);
      for (size_t d = 0; d < D; ++d)
        for (size_t g = 0; g < Gn; ++g)
          ious[d * Gn + g] =
              bbox ? coco_box_iou(dt_box[dsorted[d]], gt_box[gt[g]], gts[gt[g]].iscrowd)
                   : mask::rle_iou(dts[dsorted[d]].rle, gts[gt[g]].rle, gts[gt[g]].iscrowd);

      for (size_t a = 0; a < A; ++a) {
        const auto& rng = p.area_rng[a];
        std::vector<uint8_t> ig(Gn);
        for (size_t g = 0; g < Gn; ++g) {
          const auto& o = gts[gt[g]];
          ig[g] = o.iscrowd || o.area < rng[0] || o.area > rng[1];
        }
        const auto gind = stable_argsort(Gn, [&](size_t g) { return ig[g]; });
        EvalImg e;
        e.D = D;
        e.gt_ignore.resize(Gn);
        std::vector<uint8_t> crowd(Gn);
        for (size_t g = 0; g < Gn; ++g) {
          e.gt_ignore[g] = ig[gind[g]];
          crowd[g] = gts[gt[gind[g]]].iscrowd;
        }
        for (size_t d = 0; d < D; ++d) e.dt_scores.push_back(dts[dsorted[d]].score);
        e.dt_matched.assign(T * D, 0);
        e.dt_ignore.assign(T * D, 0);
        if (D > 0 && Gn > 0) {
          std::vector<uint8_t> gtm(T * Gn, 0);
          for (size_t t = 0; t < T; ++t)
            for (size_t d = 0; d < D; ++d) {
              double iou = std::min(p.iou_thrs[t], 1 - 1e-10);
              long m = -1;
              for (size_t g = 0; g < Gn; ++g) {
                if (gtm[t * Gn + g] && !crowd[g]) continue;
                if (m > -1 && !e.gt_ignore[m] && e.gt_ignore[g]) break;
                const double v = ious[d * Gn + gind[g]];
                if (v < iou) continue;
                iou = v;
                m = static_cast<long>(g);
              }
              if (m == -1) continue;
              e.dt_ignore[t * D + d] = e.gt_ignore[m];
              e.dt_matched[t * D + d] = 1;
              gtm[t * Gn + m] = 1;
            }
        }
        for (size_t d = 0; d < D; ++d) {
          const double ar = dt_area[dsorted[d]];
          if (ar < rng[0] || ar > rng[1])
            for (size_t t = 0; t < T; ++t)
              if (!e.dt_matched[t * D + d]) e.dt_ignore[t * D + d] = 1;
        }
        eval_imgs[(k * A + a) * I + i] = std::move(e);
      }
    }

  // accumulate()
  res.params = p;
  res.T = T, res.R = R, res.K = K, res.A = A, res.M = M;
  res.precision.assign(T * R * K * A * M, -1.0);
  res.recall.assign(T * K * A * M, -1.0);
  for (size_t k = 0; k < K; ++k)
    for (size_t a = 0; a < A; ++a)
      for (size_t m = 0; m < M; ++m) {
        const size_t md = static_cast<size_t>(std::max(0, p.max_dets[m]));
        std::vector<double> scores;
        std::vector<std::pair<size_t, size_t>> src;  // (eval image, detection)
        size_t npig = 0;
        bool any = false;
        for (size_t i = 0; i < I; ++i) {
          const auto& e = eval_imgs[(k * A + a) * I + i];
          if (!e) continue;
          any = true;
          for (size_t d = 0; d < std::min(md, e->D); ++d) {
            scores.push_back(e->dt_scores[d]);
            src.push_back({i, d});
          }
          for (uint8_t g : e->gt_ignore) npig += g == 0;
        }
        if (!any || npig == 0) continue;
        const auto order = stable_argsort(scores.size(), [&](size_t q) { return -scores[q]; });
        const size_t nd = order.size();
        for (size_t t = 0; t < T; ++t) {
          std::vector<double> rc(nd), pr(nd);
          double tp = 0, fp = 0;
          for (size_t q = 0; q < nd; ++q) {
            const auto [i, d] = src[order[q]];
            const auto& e = *eval_imgs[(k * A + a) * I + i];
            const bool matched = e.dt_matched[t * e.D + d], ignored = e.dt_ignore[t * e.D + d];
            tp += matched && !ignored;
            fp += !matched && !ignored;
            rc[q] = tp / static_cast<double>(npig);
            pr[q] = tp / (fp + tp + kSpacing1);
          }
          res.recall[((t * K + k) * A + a) * M + m] = nd ? rc[nd - 1] : 0.0;
          for (size_t q = nd; q-- > 1;)
            if (pr[q] > pr[q - 1]) pr[q - 1] = pr[q];
          for (size_t r = 0; r < R; ++r) {
            // searchsorted(rc, recThr, side='left'): first q with rc[q] >= recThr.
            const size_t q = static_cast<size_t>(
                std::lower_bound(rc.begin(), rc.end(), p.rec_thrs[r]) - rc.begin());
            res.precision[(((t * R + r) * K + k) * A + a) * M + m] = q < nd ? pr[q] : 0.0;
          }
        }
      }
  return res;
}

double CocoEvalResult::summarize(bool ap, double iou, const std::string& area, int max_det) const {
  std::vector<size_t> ts, as, ms;
  for (size_t t = 0; t < T; ++t)
    if (iou < 0 || params.iou_thrs[t] == iou) ts.push_back(t);
  for (size_t a = 0; a < A; ++a)
    if (params.area_lbl[a] == area) as.push_back(a);
  for (size_t m = 0; m < M; ++m)
    if (params.max_dets[m] == max_det) ms.push_back(m);
  double sum = 0;
  size_t n = 0;
  for (size_t t : ts)
    for (size_t k = 0; k < K; ++k)
      for (size_t a : as)
        for (size_t m : ms) {
          if (ap) {
            for (size_t r = 0; r < R; ++r) {
              const double v = precision_at(t, r, k, a, m);
              if (v > -1) sum += v, ++n;
            }
          } else {
            const double v = recall_at(t, k, a, m);
            if (v > -1) sum += v, ++n;
          }
        }
  return n == 0 ? -1.0 : sum / static_cast<double>(n);
}

std::vector<double> CocoEvalResult::stats() const {
  const auto& md = params.max_dets;
  const int last = md.back();
  const int m0 = md[0], m1 = md.size() > 1 ? md[1] : md[0];
  return {summarize(true, -1, "all", last),     summarize(true, 0.5, "all", last),
          summarize(true, 0.75, "all", last),   summarize(true, -1, "small", last),
          summarize(true, -1, "medium", last),  summarize(true, -1, "large", last),
          summarize(false, -1, "all", m0),      summarize(false, -1, "all", m1),
          summarize(false, -1, "all", last),    summarize(false, -1, "small", last),
          summarize(false, -1, "medium", last), summarize(false, -1, "large", last)};
}

std::vector<double> CocoEvalResult::per_category_ap() const {
  std::vector<double> out;
  size_t a_all = 0;
  for (size_t a = 0; a < A; ++a)
    if (params.area_lbl[a] == "all") a_all = a;
  for (size_t k = 0; k < K; ++k) {
    double sum = 0;
    size_t n = 0;
    for (size_t t = 0; t < T; ++t)
      for (size_t r = 0; r < R; ++r) {
        const double v = precision_at(t, r, k, a_all, M - 1);
        if (v > -1) sum += v, ++n;
      }
    out.push_back(n ? sum / n : -1.0);
  }
  return out;
}

}  // namespace sam::eval
