#pragma once
// The assisted-manual annotation step (paper section 4, appendix B) and the simulated annotator
// that drives it. InteractiveSegmenter is the model side of one annotation: clicks in, mask out
// (the browser tool or a person can drive it the same way). SimulatedAnnotator plays the person:
// first click at the object's centre, then at the largest error region, accept at a target IoU,
// give up when the modelled time runs out. Masks here are uint8 CV_8UC1 H x W, 0/1, in pixels of
// the original image (x right, y down; a click (x, y) is the pixel with column x and row y).
#include <cstdint>
#include <random>
#include <vector>

#include <torch/types.h>
#include <opencv2/core.hpp>

namespace sam {
class Predictor;
}

namespace sam::engine {

/// One click: pixel coordinates of the original image; positive = "this is the object".
struct Click {
  double x = 0, y = 0;
  bool positive = true;
};

/// How the simulated annotator behaves and how long its work is modelled to take.
struct AnnotatorOptions {
  double target_iou = 0.9;         ///< accept the mask at IoU >= this with the object
  int max_clicks = 20;             ///< never more clicks than this per object
  double seconds_first_click = 6;  ///< finding the object and placing the first click
  double seconds_per_click = 3;    ///< each correction click (looking, clicking, waiting)
  double seconds_budget = 30;      ///< give up on the object once this much time is spent
  double keep_iou = 0.75;          ///< on giving up, keep the best mask when its IoU >= this
  double click_jitter = 1.0;       ///< std of the annotator's click imprecision (pixels)
  /// > 0: a mask that clicks could not bring to target_iou (or keep_iou) within the budget is
  /// finished with the tool's brush and eraser (the result is the object itself) at this many
  /// extra seconds; 0: the object is given up.
  double brush_seconds = 0;
  int min_object_area = 100;      ///< smaller objects are not annotated (pixels)
  int max_objects_per_image = 0;  ///< 0 = every object
  uint64_t seed = 0;
  /// Throws std::invalid_argument naming the field that is out of range.
  void validate() const;
  /// Modelled seconds after `clicks` clicks on one object.
  double seconds_for(int clicks) const;
};

/// The pixel farthest from the region's boundary (the image border counts as boundary), by the
/// exact Euclidean distance transform; ties go to the first in row-major order. region: CV_8UC1,
/// nonzero = inside. Returns (x, y) = (column, row); (-1, -1) when the region is empty.
cv::Point interior_point(const cv::Mat& region);

/// Where an annotator clicks next to correct `pred` towards `gt` (both CV_8UC1 0/1, same size):
/// the largest 8-connected error region (false negatives gt & !pred, false positives pred & !gt;
/// a tie goes to the false negatives), at its interior point; positive for a false-negative
/// region, negative for a false-positive one. `region_area` is that region's pixel count; 0 (and
/// no click) when pred equals gt.
struct ErrorClick {
  Click click;
  int64_t region_area = 0;
};
ErrorClick next_click(const cv::Mat& gt, const cv::Mat& pred);

/// IoU of two CV_8UC1 masks (nonzero = set); 1 when both are empty.
double mask_iou(const cv::Mat& a, const cv::Mat& b);

/// The model side of annotating one object on one image: each click re-runs the decoder with all
/// clicks so far and the previous low-res logits as the mask prompt (SAM's interactive loop).
/// The first click asks for the multimask outputs and keeps one (the person picks the right one:
/// with a reference mask the best match, else the highest predicted IoU).
class InteractiveSegmenter {
 public:
  /// The predictor must outlive the segmenter; it is re-embedded by set_image. `mask_input`:
  /// feed the previous mask's low-res logits back as the mask prompt (SAM's interactive
  /// protocol; a model never trained with mask prompts does better without).
  explicit InteractiveSegmenter(Predictor& predictor, bool mask_input = true);
  /// rgb: CV_8UC3 H x W RGB. Runs the image encoder (fast resize unless `exact_resize`).
  void set_image(const cv::Mat& rgb, bool exact_resize = false);
  /// Forgets the clicks of the current object.
  void start_object();
  /// Adds a click and returns the new mask (CV_8UC1 0/1, H x W). `reference` (optional, H x W)
  /// is what the person is aiming at, used to choose among the first click's candidates.
  const cv::Mat& add_click(const Click& click, const cv::Mat* reference = nullptr);
  /// Removes the last click and restores the mask it replaced (no-op without clicks).
  void undo();
  const std::vector<Click>& clicks() const { return clicks_; }
  const cv::Mat& mask() const { return mask_; }
  double predicted_iou() const { return predicted_iou_; }
  int64_t height() const { return h_; }
  int64_t width() const { return w_; }
  Predictor& predictor() { return predictor_; }

 private:
  Predictor& predictor_;
  bool use_mask_input_;
  int64_t h_ = 0, w_ = 0;
  std::vector<Click> clicks_;
  cv::Mat mask_;
  double predicted_iou_ = 0;
  torch::Tensor low_res_;  // [1, 4G, 4G] logits of the current mask (undefined before a click)
  struct Saved {
    cv::Mat mask;
    double predicted_iou;
    torch::Tensor low_res;
  };
  std::vector<Saved> history_;
};

/// The outcome of one simulated annotation.
struct ObjectResult {
  cv::Mat mask;    ///< the mask handed in (the best one seen), CV_8UC1 0/1
  double iou = 0;  ///< its IoU with the object
  double predicted_iou = 0;
  int clicks = 0;
  double seconds = 0;     ///< modelled time spent on the object
  bool accepted = false;  ///< reached target_iou
  bool kept = false;      ///< the mask is kept (accepted, or good enough when time ran out)
  bool brushed = false;   ///< finished with the brush after the clicks
  std::vector<Click> click_list;
};

/// A seeded person who annotates objects through an InteractiveSegmenter.
class SimulatedAnnotator {
 public:
  explicit SimulatedAnnotator(AnnotatorOptions options);
  /// Annotates the object `gt` (CV_8UC1 0/1, the segmenter's image size). `stream` seeds this
  /// object's click noise (e.g. image index * 1000 + object index) so results do not depend on
  /// the order of processing.
  ObjectResult annotate(InteractiveSegmenter& seg, const cv::Mat& gt, uint64_t stream) const;
  const AnnotatorOptions& options() const { return opts_; }

 private:
  AnnotatorOptions opts_;
};

/// Indices of the objects to annotate, most prominent (largest area) first: objects with at least
/// min_object_area pixels, at most max_objects_per_image of them. areas: pixels per object.
std::vector<size_t> prominence_order(const std::vector<int64_t>& areas, const AnnotatorOptions& o);

}  // namespace sam::engine
