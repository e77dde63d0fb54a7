#pragma once
// The training run (paper appendix A): data-parallel over c10d, resumable, with logs, metrics,
// periodic validation and atomic checkpoints in a run directory:
//   <run_dir>/config.json      the resolved configuration
//   <run_dir>/metrics.jsonl    one JSON line per logged step / validation
//   <run_dir>/train.log        the readable log lines
//   <run_dir>/checkpoint.pth   the latest run checkpoint (see train/run_state.h)
//   <run_dir>/model.pth        the final weights in the official state-dict format
//   <run_dir>/loss.svg, iou.svg  loss and IoU / validation curves, drawn from metrics.jsonl when
//                              the run ends by its programs (eval/report/training_curves.h)
// A run resumes by itself when its directory holds checkpoint.pth.
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "data/loader.h"
#include "sam/sam_model.h"
#include "train/distributed.h"
#include "train/train_config.h"

namespace sam::train {

/// The training datasets: those of `specs` (data::make_dataset spec strings) concatenated, and
/// with `weights` (one per spec, or empty) the loader's weighted parts over them.
struct TrainDatasets {
  std::shared_ptr<data::Dataset> dataset;
  std::vector<data::MixPart> mix;  ///< empty without weights
  /// "coco:X: 120 samples x 2 = 240 per epoch; sa1b:Y: 50 samples x 0.5 = 25 per epoch"
  std::string describe_mix() const;
  std::vector<std::string> specs;
};
TrainDatasets open_train_datasets(const std::vector<std::string>& specs, const std::vector<double>& weights = {});

class Trainer {
 public:
  Trainer(TrainConfig config, DistEnv env);
  ~Trainer();
  /// Trains until `train.iterations` (or the time limit). Returns 0 on success, 2 when stopped for
  /// repeated non-finite losses. Throws on setup errors (bad data spec, checkpoint mismatch).
  int run();
  /// The last step reached: `train.iterations` after a full run, fewer when the time limit (or a
  /// stop) came first; the resumed step before run().
  int64_t step() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

/// Writes the model weights of a run's checkpoint (or final model.pth) as an official-format
/// state dict to `out` (Python's torch.load returns an OrderedDict with the official key names).
/// A run with a weight average (train.ema_decay) exports the average, as its model.pth holds,
/// unless `raw` asks for the optimiser's own weights. A run with LoRA adapters exports them folded
/// into their layers' weights (train/lora.h), or, with `adapters`, the adapter entries alone (the
/// file `init.adapters` reads).
void export_run(const std::string& run_dir, const std::string& out, bool raw = false, bool adapters = false);

/// Loads the starting weights `init` names into `model` (init.kind sam, run or mae; random leaves
/// the seeded construction), then adds init.adapters; `log` gets one line per step. Returns the MAE
/// report (init_from_mae) for init.kind mae, else null.
nlohmann::json load_initial_weights(Sam& model, const InitConfig& init,
                                    const std::function<void(const std::string&)>& log);

/// Whether the forward passes run under bf16 autocast: train.amp bf16, or auto on a GPU.
bool uses_autocast(const RunConfig& run, const torch::Device& device);

/// Initialises model weights from an MAE-pretrained ViT checkpoint: patch_embed.proj.*, blocks.N.*
/// (timm's mlp.fc1/fc2 mapped to lin1/lin2), pos_embed with its class token dropped and bicubically
/// interpolated to the model's grid; a patch-embedding kernel of another size is resized.
/// Returns a report of the keys used, missing (model keys left at their initialisation) and
/// unexpected (checkpoint keys ignored).
nlohmann::json init_from_mae(torch::nn::Module& model, const std::string& path);

}  // namespace sam::train
