#pragma once
// Point-prompt evaluation (paper 7.1 and appendix D.1; the protocol of RITM, Sofiiuk et al. 2022):
// single-point valid-mask mIoU (top-ranked and oracle of the three masks) and interactive
// curves (mIoU per click, NoC@85 / NoC@90) on GrabCut, Berkeley, DAVIS-style folders and COCO.
//
// Protocol, per object (all pixels are of the original image; a click at pixel (x, y) is given to
// the model as the point (x, y), the prompt encoder adding the half-pixel shift):
//  - Valid pixels are those not marked ignore (GrabCut's 128 band). IoU = |P & G & V| / |(P | G) &
//    V| (1 when the union is empty).
//  - Click placement (RITM's clicker): FN = G & !P & V and FP = !G & P & V, each padded by one
//    pixel of background and distance-transformed (cv::distanceTransform, DIST_L2,
//    DIST_MASK_PRECISE), pixels clicked before set to 0. If max(dt_FN) > max(dt_FP) the click is
//    positive at the FN maximum, else negative at the FP maximum (ties go negative, as RITM).
//    Among equal maxima the first pixel in row-major order (smallest y, then smallest x) wins, as
//    numpy's argwhere()[0] in RITM. The first click (P empty) is thus the "centre" of the object:
//    the maximum of the distance transform inside it.
//  - Random first click (option): a uniformly random valid object pixel, from a generator seeded
//    by (seed, object index), so results do not depend on threads.
//  - Click 1: three masks (multimask output). iou_1click is the IoU of the mask with the highest
//    predicted IoU (ties: the first), iou_1click_oracle the best IoU of the three. The following
//    rounds continue from the top-ranked mask.
//  - Clicks 2..N: all clicks so far plus the previous chosen mask's low-res logits as mask input,
//    single-mask output (PointsProtocol::multimask_all: three masks, the top-ranked kept; not
//    the paper's). Masks are logits > 0.
//  - When no error pixel is left the object is done: later clicks repeat the last IoU (RITM
//    would keep clicking on a perfect mask; an annotator stops).
//  - NoC@t: the first k with IoU_k >= t, or N when never reached (RITM's compute_noc_metric).
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include <torch/torch.h>
#include <nlohmann/json.hpp>
#include <opencv2/core.hpp>

#include "data/dataset.h"
#include "eval/common.h"
#include "data/image_input.h"
#include "sam/predictor.h"
#include "sam/sam_model.h"

namespace sam::eval {

struct PointsOptions {
  int clicks = 20;            ///< N, the clicks per object (>= 1)
  bool random_first = false;  ///< first click uniformly random in the object instead of its centre
  uint64_t seed = 0;          ///< seed of the random first click
  int64_t max_samples = 0;    ///< evaluate the first N objects in dataset order; 0 = all
  int workers = 1;            ///< images evaluated in parallel, each with its own Predictor
  data::ResizeMode resize = data::ResizeMode::kPilExact;
};

/// One object's results.
struct PointsSample {
  std::string id;  ///< the sample id, plus "#<annotation id>" for COCO or several objects
  double iou_1click = 0, iou_1click_oracle = 0;
  std::vector<double> iou_per_click;  ///< IoU after clicks 1..N
  int noc85 = 0, noc90 = 0;
};

struct PointsResult {
  int64_t n = 0;  ///< objects evaluated
  double miou_1click = 0, miou_1click_oracle = 0, noc85 = 0, noc90 = 0;
  std::vector<double> miou_at_k;  ///< mean IoU after k = 1..N clicks
  std::vector<PointsSample> samples;
  /// {"n", "clicks", "miou_1click", "miou_1click_oracle", "noc85", "noc90", "nof85", "nof90"
  /// (objects never reaching the IoU), "miou_at_k" [N], "samples": [{id, iou_1click, ...}]}.
  nlohmann::json to_json() const;
};

/// Evaluates `model` (in eval mode for the call; the caller restores train mode) on every object
/// of `ds` (crowd and empty annotations skipped). With workers > 1, libtorch's intra-op threads
/// per worker are set to max(1, cores / workers) for the call.
PointsResult evaluate_points(sam::Sam model, const sam::data::Dataset& ds, const PointsOptions& o,
                             const torch::Device& device = torch::kCPU);
/// A variation of the protocol, not the paper's: for models whose single-mask output token is
/// untrained (a model trained with multimask outputs only, as the golden tiny model), three masks
/// at every click and the top-ranked one chosen (and fed back).
struct PointsProtocol {
  bool multimask_all = false;
};

/// The same, calling `progress` after each image (for programs), with a protocol variation.
PointsResult evaluate_points(sam::Sam model, const sam::data::Dataset& ds, const PointsOptions& o,
                             const torch::Device& device, const ProgressFn& progress,
                             const PointsProtocol& protocol = {});

// ---- The protocol's parts, usable with any model (tests drive them with fakes) ----

/// A click at pixel (x, y) of the original image.
struct Click {
  int x = 0, y = 0;
  bool positive = true;
};

/// A model's answer to the clicks so far: C candidate masks (CV_8UC1 0/1, image size), their
/// predicted IoUs, and per mask an opaque state fed back at the next click (SAM: its low-res
/// logits [1, 4G, 4G]).
struct ClickAnswer {
  std::vector<cv::Mat> masks;
  std::vector<double> scores;
  std::vector<torch::Tensor> feedback;
};

/// clicks (all so far, in order), feedback of the previously chosen mask (undefined at the first
/// click), multimask -> answer (multimask: C = 3 for SAM, else C = 1).
using ClickModel = std::function<ClickAnswer(const std::vector<Click>& clicks,
                                             const torch::Tensor& feedback, bool multimask)>;

/// A ClickModel over a Predictor that already holds the image's embedding.
ClickModel predictor_click_model(const sam::Predictor& predictor);

/// IoU of pred and gt (CV_8UC1, nonzero = set) over pixels where ignore is 0 (ignore may be empty
/// = none). 1 when the union is empty.
double masked_iou(const cv::Mat& pred, const cv::Mat& gt, const cv::Mat& ignore);

/// The next click for prediction `pred` of object `gt` (see the protocol above); `ignore` and
/// `clicked` (pixels clicked before, nonzero) may be empty. nullopt when no valid error pixel is
/// left.
std::optional<Click> next_click(const cv::Mat& gt, const cv::Mat& pred, const cv::Mat& ignore,
                                const cv::Mat& clicked);

/// Where the maximum of the padded L2 distance transform of `region` (nonzero = in) lies, with
/// its value; ties: first in row-major order. {-1, -1, 0} for an empty region.
struct DtMax {
  int x = -1, y = -1;
  float dist = 0;
};
DtMax distance_max(const cv::Mat& region, const cv::Mat& exclude = cv::Mat());

/// Runs the protocol on one object: gt and ignore are CV_8UC1 (ignore may be empty); `index`
/// seeds the random first click. Throws std::invalid_argument when the object has no valid pixel.
PointsSample evaluate_object(const cv::Mat& gt, const cv::Mat& ignore, const ClickModel& model,
                             const PointsOptions& o, uint64_t index,
                             const PointsProtocol& protocol = {});

/// NoC@thr for IoUs after clicks 1..N: first k with iou >= thr, else N.
int number_of_clicks(const std::vector<double>& ious, double thr);

/// Mean of the per-object results (n, mIoUs, mean NoC, miou_at_k); samples are moved in.
PointsResult summarize_points(std::vector<PointsSample> samples, int clicks);

}  // namespace sam::eval
