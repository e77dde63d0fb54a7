#pragma once
// The BSDS500 boundary benchmark (Arbelaez et al., TPAMI 2011; the `bench/` code of BSR), in C++:
// per threshold, the soft edge map is binarised (>= t), thinned (MATLAB bwmorph 'thin', Inf),
// and matched to each human boundary map within a tolerance of max_dist x image diagonal;
// recall counts matched human pixels over all human maps, precision counts predicted pixels that
// match in at least one human map. ODS, OIS, AP and R50 then summarise the counts.
//
// Matching. The benchmark's correspondPixels solves a min-cost assignment (CSA) between the two
// pixel sets, with real edges for pairs within the tolerance (cost = distance) and outlier edges
// of cost 100 x tolerance; since every extra match saves far more than it costs, its optimum is a
// maximum-cardinality matching of the pairs within the tolerance. Here: the same graph (pairs with
// dx^2 + dy^2 <= (max_dist x diagonal)^2), a greedy nearest-first matching, completed to maximum
// cardinality by Hopcroft-Karp augmenting paths. Match counts (hence recall) equal the
// benchmark's (up to its rare use of high-cost overlay edges); among matchings of equal size we do
// not minimise the summed distance as CSA does, which can change which predicted pixels are
// marked matched and so, through the union over human maps, precision slightly.
#include <cstdint>
#include <vector>

#include <nlohmann/json.hpp>
#include <opencv2/core.hpp>

namespace sam::eval {

/// MATLAB bwmorph(bw, 'thin', Inf) (Lam, Lee & Suen 1992 two-subiteration thinning, as its LUTs):
/// bw CV_8UC1 nonzero = set -> CV_8UC1 0/1. Pixels outside the image are background.
cv::Mat thin_binary(const cv::Mat& bw);

/// The result of matching a predicted boundary map to one human map.
struct BoundaryMatch {
  int64_t matches = 0;   ///< matched pairs (= matched human pixels = matched predicted pixels)
  cv::Mat pred_matched;  ///< CV_8UC1 0/1: predicted pixels that have a match
  cv::Mat gt_matched;    ///< CV_8UC1 0/1: human pixels that have a match
};

/// Maximum-cardinality matching of the set pixels of pred and gt (CV_8UC1, same size) where a
/// pair may match when dx^2 + dy^2 <= max_dist_px^2 (see the header comment).
BoundaryMatch match_boundaries(const cv::Mat& pred, const cv::Mat& gt, double max_dist_px);

struct BsdsOptions {
  int thresholds = 99;       ///< linspace(1/(n+1), 1 - 1/(n+1), n), as the benchmark's nthresh
  double max_dist = 0.0075;  ///< tolerance, a fraction of the image diagonal
  bool thin = true;          ///< thin the binarised prediction (the benchmark's thinpb)
};

/// The benchmark's thresholds for n.
std::vector<double> bsds_thresholds(int n);

/// Counts of one image per threshold (the benchmark's <id>_ev1.txt).
struct BoundaryCounts {
  std::vector<int64_t> cnt_r, sum_r, cnt_p, sum_p;
};

/// Evaluates one soft edge map (CV_32FC1 in [0, 1]) against its human maps (CV_8UC1, nonzero =
/// boundary, each the edge map's size). Throws std::invalid_argument on a size mismatch.
BoundaryCounts evaluate_boundary_image(const cv::Mat& edges, const std::vector<cv::Mat>& gts,
                                       const BsdsOptions& o);

/// Dataset-level measures (the benchmark's collect_eval_bdry, plus R50).
struct BsdsSummary {
  std::vector<double> thresholds, recall, precision, f;  ///< dataset PR curve per threshold
  double ods_t = 0, ods_r = 0, ods_p = 0, ods_f = 0;     ///< best F on the curve, interpolated
  double ois_r = 0, ois_p = 0, ois_f = 0;                ///< per-image best threshold, pooled
  double ap = 0;   ///< area under the PR curve (interp1 at recall 0:0.01:1, 0 outside)
  double r50 = 0;  ///< largest recall on the (piecewise linear) curve with precision >= 0.5
  std::vector<double> image_best_f;  ///< per image: F at its own best threshold
  nlohmann::json to_json() const;
};

/// Pools per-image counts (all with the same thresholds).
BsdsSummary summarize_boundaries(const std::vector<double>& thresholds,
                                 const std::vector<BoundaryCounts>& images);

/// F-measure as the benchmark: 2PR / (P + R), 0 when P + R = 0.
double f_measure(double p, double r);

}  // namespace sam::eval
