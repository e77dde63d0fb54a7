#include "eval/bsds.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <limits>
#include <stdexcept>
#include <string>

namespace sam::eval {
namespace {

// Neighbour bits of the thinning LUTs: bit i is neighbour x_{i+1} of Lam, Lee & Suen, counted
// counter-clockwise from the east: E, NE, N, NW, W, SW, S, SE.
constexpr int kDx[8] = {1, 1, 0, -1, -1, -1, 0, 1};
constexpr int kDy[8] = {0, -1, -1, -1, 0, 1, 1, 1};

struct ThinLuts {
  std::array<bool, 256> first{}, second{};
  ThinLuts() {
    for (int n = 0; n < 256; ++n) {
      auto b = [n](int i) { return ((n >> (i % 8)) & 1) != 0; };
      // G1: exactly one "0 then 1" transition among the 4 odd-neighbour groups (X_H(p) = 1).
      int xh = 0;
      for (int i : {0, 2, 4, 6}) xh += !b(i) && (b(i + 1) || b(i + 2));
      // G2: 2 <= min(n1, n2) <= 3.
      int n1 = 0, n2 = 0;
      for (int k : {1, 3, 5, 7}) {
        n1 += b(k - 1) || b(k);
        n2 += b(k) || b(k + 1);
      }
      const int mn = std::min(n1, n2);
      const bool g12 = xh == 1 && mn >= 2 && mn <= 3;
      // G3 / G3': (x2 | x3 | !x8) & x1 == 0, and its 180-degree rotation.
      const bool g3 = !((b(1) || b(2) || !b(7)) && b(0));
      const bool g3p = !((b(5) || b(6) || !b(3)) && b(4));
      first[n] = g12 && g3;
      second[n] = g12 && g3p;
    }
  }
};

// Pair offsets within the tolerance, nearest first (ties in (dy, dx) order).
std::vector<std::array<int, 2>> match_offsets(double max_dist) {
  const int r = static_cast<int>(std::ceil(max_dist));
  std::vector<std::array<int, 3>> o;
  for (int v = -r; v <= r; ++v)
    for (int u = -r; u <= r; ++u)
      if (u * u + v * v <= max_dist * max_dist) o.push_back({u * u + v * v, v, u});
  std::sort(o.begin(), o.end());
  std::vector<std::array<int, 2>> out;
  for (const auto& e : o) out.push_back({e[2], e[1]});  // dx, dy
  return out;
}

}  // namespace

cv::Mat thin_binary(const cv::Mat& bw) {
  if (bw.type() != CV_8UC1) throw std::invalid_argument("thin_binary: expected a CV_8UC1 image");
  static const ThinLuts luts;
  const int H = bw.rows, W = bw.cols;
  cv::Mat img(H + 2, W + 2, CV_8UC1, cv::Scalar(0));
  std::vector<int> on;  // padded linear indices of set pixels
  for (int y = 0; y < H; ++y) {
    const uint8_t* r = bw.ptr<uint8_t>(y);
    for (int x = 0; x < W; ++x)
      if (r[x]) {
        img.at<uint8_t>(y + 1, x + 1) = 1;
        on.push_back((y + 1) * (W + 2) + x + 1);
      }
  }
  uint8_t* d = img.data;
  const int stride = W + 2;
  int offs[8];
  for (int i = 0; i < 8; ++i) offs[i] = kDy[i] * stride + kDx[i];
  std::vector<int> del;
  bool changed = true;
  while (changed) {
    changed = false;
    for (int pass = 0; pass < 2; ++pass) {
      const auto& lut = pass == 0 ? luts.first : luts.second;
      del.clear();
      for (int p : on) {
        if (!d[p]) continue;
        int code = 0;
        for (int i = 0; i < 8; ++i) code |= d[p + offs[i]] << i;
        if (lut[code]) del.push_back(p);
      }
      // The sub-iteration decides on the image as it was before it (parallel deletion).
      for (int p : del) d[p] = 0;
      if (!del.empty()) {
        changed = true;
        on.erase(std::remove_if(on.begin(), on.end(), [d](int p) { return !d[p]; }), on.end());
      }
    }
  }
  return img(cv::Rect(1, 1, W, H)).clone();
}

BoundaryMatch match_boundaries(const cv::Mat& pred, const cv::Mat& gt, double max_dist_px) {
  if (pred.type() != CV_8UC1 || gt.type() != CV_8UC1 || pred.size() != gt.size())
    throw std::invalid_argument("match_boundaries: expected two CV_8UC1 maps of the same size");
  const int H = pred.rows, W = pred.cols;
  BoundaryMatch out;
  out.pred_matched = cv::Mat::zeros(H, W, CV_8UC1);
  out.gt_matched = cv::Mat::zeros(H, W, CV_8UC1);
  // Node ids.
  std::vector<int> gt_id(static_cast<size_t>(H) * W, -1);
  std::vector<int> pred_pix, gt_pix;
  for (int y = 0; y < H; ++y) {
    const uint8_t* g = gt.ptr<uint8_t>(y);
    for (int x = 0; x < W; ++x)
      if (g[x]) {
        gt_id[static_cast<size_t>(y) * W + x] = static_cast<int>(gt_pix.size());
        gt_pix.push_back(y * W + x);
      }
  }
  for (int y = 0; y < H; ++y) {
    const uint8_t* p = pred.ptr<uint8_t>(y);
    for (int x = 0; x < W; ++x)
      if (p[x]) pred_pix.push_back(y * W + x);
  }
  if (pred_pix.empty() || gt_pix.empty()) return out;

  // Adjacency (CSR), neighbours nearest first.
  const auto offsets = match_offsets(max_dist_px);
  const int n1 = static_cast<int>(pred_pix.size()), n2 = static_cast<int>(gt_pix.size());
  std::vector<int> start(n1 + 1, 0), adj;
  for (int i = 0; i < n1; ++i) {
    const int x = pred_pix[i] % W, y = pred_pix[i] / W;
    for (const auto& o : offsets) {
      const int x2 = x + o[0], y2 = y + o[1];
      if (x2 < 0 || x2 >= W || y2 < 0 || y2 >= H) continue;
      const int j = gt_id[static_cast<size_t>(y2) * W + x2];
      if (j >= 0) adj.push_back(j);
    }
    start[i + 1] = static_cast<int>(adj.size());
  }

  std::vector<int> match_l(n1, -1), match_r(n2, -1);
  // Greedy nearest-first start: all pairs at the smallest distance first.
  for (size_t k = 0; k < offsets.size(); ++k)
    for (int i = 0; i < n1; ++i) {
      if (match_l[i] >= 0) continue;
      const int x2 = pred_pix[i] % W + offsets[k][0], y2 = pred_pix[i] / W + offsets[k][1];
      if (x2 < 0 || x2 >= W || y2 < 0 || y2 >= H) continue;
      const int j = gt_id[static_cast<size_t>(y2) * W + x2];
      if (j >= 0 && match_r[j] < 0) {
        match_l[i] = j;
        match_r[j] = i;
      }
    }

  // Hopcroft-Karp phases (iterative DFS: augmenting paths can be thousands of pixels long).
  const int kInf = std::numeric_limits<int>::max();
  std::vector<int> dist(n1), it(n1), queue, stack;
  queue.reserve(n1);
  while (true) {
    queue.clear();
    for (int i = 0; i < n1; ++i) {
      dist[i] = match_l[i] < 0 && start[i + 1] > start[i] ? 0 : kInf;
      if (dist[i] == 0) queue.push_back(i);
    }
    bool found = false;
    for (size_t q = 0; q < queue.size(); ++q) {
      const int u = queue[q];
      for (int e = start[u]; e < start[u + 1]; ++e) {
        const int w = match_r[adj[e]];
        if (w < 0) {
          found = true;
        } else if (dist[w] == kInf) {
          dist[w] = dist[u] + 1;
          queue.push_back(w);
        }
      }
    }
    if (!found) break;
    for (int i = 0; i < n1; ++i) it[i] = start[i];
    for (int root = 0; root < n1; ++root) {
      if (match_l[root] >= 0 || dist[root] != 0) continue;
      stack.assign(1, root);
      while (!stack.empty()) {
        const int u = stack.back();
        if (it[u] == start[u + 1]) {
          dist[u] = kInf;
          stack.pop_back();
          continue;
        }
        const int v = adj[it[u]];
        const int w = match_r[v];
        if (w < 0) {
          for (int s : stack) {  // flip the path: each node takes the edge it is on
            const int vv = adj[it[s]];
            match_l[s] = vv;
            match_r[vv] = s;
          }
          stack.clear();
          break;
        }
        if (dist[w] != kInf && dist[w] == dist[u] + 1) {
          stack.push_back(w);
        } else {
          ++it[u];
        }
      }
    }
  }
  for (int i = 0; i < n1; ++i)
    if (match_l[i] >= 0) {
      ++out.matches;
      out.pred_matched.data[pred_pix[i]] = 1;
      out.gt_matched.data[gt_pix[match_l[i]]] = 1;
    }
  return out;
}

std::vector<double> bsds_thresholds(int n) {
  if (n < 1) throw std::invalid_argument("thresholds = " + std::to_string(n) + ": must be >= 1");
  const double lo = 1.0 / (n + 1), hi = 1.0 - 1.0 / (n + 1);
  std::vector<double> t(n);
  for (int i = 0; i < n; ++i) t[i] = n == 1 ? lo : lo + (hi - lo) * i / (n - 1);
  if (n > 1) t[n - 1] = hi;
  return t;
}

BoundaryCounts evaluate_boundary_image(const cv::Mat& edges, const std::vector<cv::Mat>& gts,
                                       const BsdsOptions& o) {
  if (edges.type() != CV_32FC1) throw std::invalid_argument("edge map must be CV_32FC1");
  for (const auto& g : gts)
    if (g.size() != edges.size() || g.type() != CV_8UC1)
      throw std::invalid_argument("human boundary map " + std::to_string(g.cols) + "x" +
                                  std::to_string(g.rows) + " does not match the edge map " +
                                  std::to_string(edges.cols) + "x" + std::to_string(edges.rows));
  const auto thr = bsds_thresholds(o.thresholds);
  const double diag = std::sqrt(static_cast<double>(edges.rows) * edges.rows +
                                static_cast<double>(edges.cols) * edges.cols);
  const double max_px = o.max_dist * diag;
  std::vector<cv::Mat> gt_bin;
  int64_t gt_total = 0;
  for (const auto& g : gts) {
    gt_bin.push_back(g != 0);
    gt_bin.back() /= 255;
    gt_total += cv::countNonZero(gt_bin.back());
  }
  BoundaryCounts c;
  for (double t : thr) {
    cv::Mat bmap = edges >= t;
    if (o.thin)
      bmap = thin_binary(bmap);
    else
      bmap /= 255;
    const int64_t n_pred = cv::countNonZero(bmap);
    cv::Mat acc = cv::Mat::zeros(edges.size(), CV_8UC1);
    int64_t cnt_r = 0;
    if (n_pred > 0)
      for (const auto& g : gt_bin) {
        const auto m = match_boundaries(bmap, g, max_px);
        acc |= m.pred_matched;
        cnt_r += m.matches;
      }
    c.cnt_r.push_back(cnt_r);
    c.sum_r.push_back(gt_total);
    c.cnt_p.push_back(cv::countNonZero(acc));
    c.sum_p.push_back(n_pred);
  }
  return c;
}

double f_measure(double p, double r) {
  return p + r == 0 ? 0.0 : 2 * p * r / (p + r);
}

namespace {

double ratio(double a, double b) {
  return a / (b + (b == 0));
}

// The benchmark's maxF: best F along straight segments between consecutive thresholds, sampled at
// MATLAB's linspace(0, 1) (100 points).
void interpolated_best(const std::vector<double>& t, const std::vector<double>& r,
                       const std::vector<double>& p, double& bt, double& br, double& bp,
                       double& bf) {
  bt = t[0];
  br = r[0];
  bp = p[0];
  bf = f_measure(p[0], r[0]);
  for (size_t i = 1; i < t.size(); ++i)
    for (int k = 0; k < 100; ++k) {
      const double d = k / 99.0;
      const double tt = t[i] * d + t[i - 1] * (1 - d);
      const double rr = r[i] * d + r[i - 1] * (1 - d);
      const double pp = p[i] * d + p[i - 1] * (1 - d);
      const double ff = f_measure(pp, rr);
      if (ff > bf) bt = tt, br = rr, bp = pp, bf = ff;
    }
}

}  // namespace

BsdsSummary summarize_boundaries(const std::vector<double>& thresholds,
                                 const std::vector<BoundaryCounts>& images) {
  const size_t T = thresholds.size();
  BsdsSummary s;
  s.thresholds = thresholds;
  std::vector<double> cr(T, 0), sr(T, 0), cp(T, 0), sp(T, 0);
  double cr_best = 0, sr_best = 0, cp_best = 0, sp_best = 0;
  for (const auto& im : images) {
    if (im.cnt_r.size() != T)
      throw std::invalid_argument("image counts have another threshold count");
    size_t best = 0;
    double best_f = -1;
    for (size_t i = 0; i < T; ++i) {
      cr[i] += im.cnt_r[i];
      sr[i] += im.sum_r[i];
      cp[i] += im.cnt_p[i];
      sp[i] += im.sum_p[i];
      const double f = f_measure(ratio(im.cnt_p[i], im.sum_p[i]), ratio(im.cnt_r[i], im.sum_r[i]));
      if (f >= best_f) best_f = f, best = i;  // the last of equal maxima, as ff(end)
    }
    s.image_best_f.push_back(best_f);
    cr_best += im.cnt_r[best];
    sr_best += im.sum_r[best];
    cp_best += im.cnt_p[best];
    sp_best += im.sum_p[best];
  }
  for (size_t i = 0; i < T; ++i) {
    s.recall.push_back(ratio(cr[i], sr[i]));
    s.precision.push_back(ratio(cp[i], sp[i]));
    s.f.push_back(f_measure(s.precision[i], s.recall[i]));
  }
  if (T > 0)
    interpolated_best(thresholds, s.recall, s.precision, s.ods_t, s.ods_r, s.ods_p, s.ods_f);
  s.ois_r = ratio(cr_best, sr_best);
  s.ois_p = ratio(cp_best, sp_best);
  s.ois_f = f_measure(s.ois_p, s.ois_r);

  // AP: unique recalls (ascending; the precision of the first threshold giving each), linear
  // interpolation at 0:0.01:1, 0 outside the recall range.
  std::vector<std::pair<double, double>> rp;
  for (size_t i = 0; i < T; ++i) rp.push_back({s.recall[i], s.precision[i]});
  std::stable_sort(rp.begin(), rp.end(),
                   [](const auto& a, const auto& b) { return a.first < b.first; });
  std::vector<std::pair<double, double>> uniq;
  for (size_t i = 0; i < rp.size(); ++i) {
    if (!uniq.empty() && uniq.back().first == rp[i].first) continue;
    // The first occurrence in threshold order among equal recalls.
    size_t first = T;
    for (size_t k = 0; k < T; ++k)
      if (s.recall[k] == rp[i].first) {
        first = k;
        break;
      }
    uniq.push_back({rp[i].first, s.precision[first]});
  }
  if (uniq.size() > 1) {
    double area = 0;
    for (int k = 0; k <= 100; ++k) {
      const double r = k * 0.01;
      if (r < uniq.front().first || r > uniq.back().first) continue;
      auto hi = std::lower_bound(uniq.begin(), uniq.end(), r,
                                 [](const auto& e, double v) { return e.first < v; });
      if (hi->first == r) {
        area += hi->second;
        continue;
      }
      const auto lo = hi - 1;
      area += lo->second + (hi->second - lo->second) * (r - lo->first) / (hi->first - lo->first);
    }
    s.ap = area * 0.01;
  }

  // R50: along the curve (thresholds in order), the largest recall where precision >= 0.5.
  for (size_t i = 0; i < T; ++i) {
    if (s.precision[i] >= 0.5) s.r50 = std::max(s.r50, s.recall[i]);
    if (i == 0) continue;
    const double p0 = s.precision[i - 1], p1 = s.precision[i];
    if ((p0 - 0.5) * (p1 - 0.5) < 0) {
      const double a = (0.5 - p0) / (p1 - p0);
      s.r50 = std::max(s.r50, s.recall[i - 1] + a * (s.recall[i] - s.recall[i - 1]));
    }
  }
  return s;
}

nlohmann::json BsdsSummary::to_json() const {
  return {{"ods", {{"f", ods_f}, {"recall", ods_r}, {"precision", ods_p}, {"threshold", ods_t}}},
          {"ois", {{"f", ois_f}, {"recall", ois_r}, {"precision", ois_p}}},
          {"ap", ap},
          {"r50", r50},
          {"curve",
           {{"threshold", thresholds}, {"recall", recall}, {"precision", precision}, {"f", f}}},
          {"image_best_f", image_best_f}};
}

}  // namespace sam::eval
