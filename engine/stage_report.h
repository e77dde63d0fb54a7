#pragma once
// What each data-engine stage records and reports: one record per image (written next to the
// image's masks; its presence marks the image done, so an interrupted stage resumes where it
// stopped), the retraining rounds, and the stage summary as JSON and as an HTML page with plots
// (eval/report/plot.h).
#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace sam::engine {

/// One produced mask.
struct MaskRecord {
  std::string source;        ///< "manual" (annotated), "prefill" (detector box + SAM), "auto"
  int clicks = 0;            ///< the annotator's clicks (0 for prefill / auto)
  double seconds = 0;        ///< modelled annotation seconds (0 for prefill / auto)
  double gt_iou = -1;        ///< best IoU with a ground-truth mask (-1: no ground truth)
  double predicted_iou = 0;  ///< the model's IoU prediction
  bool accepted = false;     ///< the annotator reached the target IoU
  bool brushed = false;      ///< finished with the brush (annotator.brush_seconds)
};

/// One image of a stage.
struct ImageRecord {
  std::string id;        ///< the dataset's sample id
  std::string stem;      ///< file stem of the outputs
  int64_t index = 0;     ///< dataset index
  bool skipped = false;  ///< unusable input (counted, no masks)
  std::string problem;   ///< why it was skipped
  int64_t width = 0, height = 0;
  int gt_objects = 0;     ///< ground-truth masks (0 when the dataset has none)
  int attempted = 0;      ///< objects the annotator worked on
  int given_up = 0;       ///< objects abandoned at the time budget
  int gt_prefilled = 0;   ///< objects already covered by a pre-filled mask
  int proposals = 0;      ///< detector boxes proposed (semi stage)
  int masks_matched = 0;  ///< produced masks with IoU >= match_iou with some ground truth
  int gt_matched = 0;     ///< ground-truth masks with a produced mask at IoU >= match_iou
  int model_round = 0;    ///< retraining rounds the model had when the image was processed
  double wall_s = 0;      ///< compute seconds spent on the image
  std::vector<MaskRecord> masks;
  nlohmann::json to_json() const;
  /// Throws std::invalid_argument naming `where` on a missing or mistyped key.
  static ImageRecord from_json(const nlohmann::json& j, const std::string& where);
};

/// One retraining round of a stage.
struct RetrainRound {
  int round = 0;         ///< 1-based
  int after_images = 0;  ///< images of the stage done when it ran
  int64_t masks = 0;     ///< masks in its training data
  int64_t iterations = 0;
  double seconds = 0;      ///< wall time of the training run
  std::string checkpoint;  ///< the weights it produced ("" when skipped)
  bool skipped = false;    ///< no masks to train on
  nlohmann::json to_json() const;
  static RetrainRound from_json(const nlohmann::json& j);
};

/// The stage's figures: images (done, skipped), masks (total, per image, by source), clicks and
/// modelled seconds per annotated mask (mean, median), acceptance, ground-truth matches at
/// match_iou, retraining rounds, wall time; per model round (per_model_round): images, masks per
/// image, annotated masks with their accepted share, clicks and seconds, the share of masks made by
/// the model (pre-filled or generated), and the share of ground-truth objects pre-filled;
/// `heldout` (EngineContext::evaluate_heldout's array: each model round's eval/points.h figures on
/// a fixed held-out set) is kept as "heldout".
nlohmann::json stage_summary(const std::string& stage, const std::vector<ImageRecord>& images,
                             const std::vector<RetrainRound>& rounds, double match_iou,
                             const nlohmann::json& heldout = nlohmann::json::array());

/// One line a person reads at a glance: images, masks per image, pre-filled masks, the annotated
/// masks' accepted share, clicks and seconds (with the first and last model round's when they
/// differ), the ground-truth figures, and the held-out mIoU of the first and last model round.
std::string stage_summary_line(const nlohmann::json& summary);

/// A self-contained HTML page: the summary table, plots (masks per image, clicks and modelled
/// seconds per annotated mask in annotation order, seconds per mask by model round, GT matches,
/// the held-out mIoU by model round), the retraining rounds and the per-image table.
std::string stage_report_html(const nlohmann::json& summary, const std::vector<ImageRecord>& images,
                              const std::vector<RetrainRound>& rounds);

}  // namespace sam::engine
