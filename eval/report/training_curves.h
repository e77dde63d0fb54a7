#pragma once
// A training run's curves, drawn from its metrics.jsonl (train/trainer.h's run directory): the
// loss, and the IoU after the first and the last prompt round with the validation mIoU. The
// trainer only writes metrics; its programs (sam_train, the data engine's retraining) draw these
// when a run ends, so the trainer links no plotting.
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace sam::eval {

/// The events of `run_dir`/metrics.jsonl in order (lines cut short by a kill skipped). A missing
/// or unreadable file gives none, or with `required` throws naming the file.
std::vector<nlohmann::json> read_run_metrics(const std::string& run_dir, bool required = false);

/// Reads `run_dir`/metrics.jsonl ("train" events: step, loss, iou_round; "val" events: step,
/// miou_1click and, with a weight average, ema_miou_1click; lines cut short by a kill are
/// skipped) and writes `run_dir`/loss.svg and `run_dir`/iou.svg (not for an MAE run: no IoU) atomically. Throws naming the
/// file when metrics.jsonl cannot be read.
void write_training_curves(const std::string& run_dir);

}  // namespace sam::eval
