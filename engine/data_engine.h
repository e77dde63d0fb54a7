#pragma once
// The three-stage data engine (paper section 4, appendix B; SAM_SPEC 6) over a dataset of images,
// with ground truth where the dataset has it (the simulated annotator's target and the reports'
// matches):
//   manual  assisted-manual: objects in order of prominence, each annotated by clicks with the
//           model in the loop (SimulatedAnnotator); the model is retrained on the masks collected
//           so far `manual.retrain_rounds` times during the stage.
//   semi    semi-automatic: a box detector on the frozen embedding, trained on the manual stage's
//           masks, proposes boxes; SAM's confident masks for them pre-fill each image; the
//           annotator adds the objects still missing; retrained as above.
//   auto    fully automatic: the generator (sam/amg) with the paper's settings over every
//           image, sharded over the ranks of a torchrun job.
//   all     the three in order, each starting from the model the previous one produced.
// Outputs under <out_dir>/<stage>/:
//   data/<stem>.json + data/<stem>.<ext>   SA-1B folder: masks (COCO RLE) and the image
//   shards/sa_<n>.tar, shards.json          auto stage: the folder packed as SA-1B's tar shards
//                                           (auto.shard_images per shard; the folder is then
//                                           removed unless auto.keep_folder)
//   records/<stem>.json                     the image's record (stage_report.h); marks it done
//   retrain/round_<k>/                      the training run of round k (model.pth)
//   rounds.json                             the retraining rounds so far
//   model.pth                               the stage's final weights (input of the next stage)
//   manifest.json, report.json, report.html inputs, checkpoints, config and counts; figures
// A stage resumes by itself: images with a record are not redone, finished rounds are not rerun.
// Where the pieces are: engine_context.h (the shared state, and which file holds each stage).
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "engine/engine_config.h"
#include "train/distributed.h"

namespace sam::engine {

struct EngineContext;

class DataEngine {
 public:
  DataEngine(EngineConfig config, train::DistEnv env);
  ~DataEngine();
  /// Runs "manual", "semi", "auto" or "all". Returns the stage summaries keyed by stage.
  /// Throws std::invalid_argument for another stage name or a stage whose inputs are missing.
  nlohmann::json run(const std::string& stage);

 private:
  std::unique_ptr<EngineContext> ctx_;
};

}  // namespace sam::engine
