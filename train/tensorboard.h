#pragma once
// TensorBoard event files: the training curves in the format TensorBoard (and SAM 2's trainer)
// reads. A file is a TFRecord stream of tensorflow.Event protos: the first record names the
// format ("brain.Event:2"), each further one holds scalar summaries (tag, value) at a step.
// Written by hand (the protos' wire format is small), so no protobuf or TensorFlow is needed;
// tests/train/test_tensorboard.cpp reads the files back with the tensorboard package's reader.
#include <cstddef>
#include <cstdint>
#include <fstream>
#include <nlohmann/json_fwd.hpp>
#include <string>
#include <utility>
#include <vector>

namespace sam::train {

/// `data` framed as one TFRecord: its length (uint64, little endian), the masked CRC-32C
/// (data/checksum.h) of the length, the bytes, the masked CRC-32C of the bytes.
std::string tfrecord(const std::string& data);

/// The serialised tensorflow.Event with `wall_time` (seconds since the epoch), `step` and a
/// Summary of one simple_value per (tag, value).
std::string scalar_event(double wall_time, int64_t step,
                         const std::vector<std::pair<std::string, double>>& scalars);

/// The scalars of one metrics.jsonl line (train/trainer.h) as TensorBoard tags
/// "<event>/<key>": every number, and every number of an array as "<event>/<key>_<k>" (k from 1),
/// "step" and nested objects left out. {"event": "train", "step": 5, "loss": 0.3, "iou_round":
/// [0.5, 0.6]} gives train/loss, train/iou_round_1, train/iou_round_2.
std::vector<std::pair<std::string, double>> tensorboard_scalars(const nlohmann::json& metrics_line);

/// Appends events to a new file <dir>/events.out.tfevents.<seconds>.<host>.<pid> (TensorBoard's
/// naming: a resumed run adds a file, and TensorBoard shows the run's files as one).
class EventWriter {
 public:
  /// Creates the file and writes its version record; throws std::runtime_error naming the file
  /// when it cannot be written.
  explicit EventWriter(const std::string& dir);
  /// One event at `step` holding the given scalars, stamped with the present time; flushed, so a
  /// running TensorBoard sees it at once.
  void scalars(int64_t step, const std::vector<std::pair<std::string, double>>& values);
  const std::string& path() const { return path_; }

 private:
  void write(const std::string& event);
  std::string path_;
  std::ofstream out_;
};

}  // namespace sam::train
