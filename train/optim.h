#pragma once
// Optimisation as in the paper (appendix A): AdamW with per-parameter-group learning-rate scales
// (layer-wise decay over the encoder blocks) and weight decay (none on biases, norms and
// position tables), linear warmup then step decay.
#include <string>
#include <vector>

#include <torch/torch.h>

#include "sam/pth_io.h"

namespace sam::train {

struct OptimOptions {
  double lr = 8e-4;
  double beta1 = 0.9, beta2 = 0.999, eps = 1e-8;
  double weight_decay = 0.1;
  double layer_decay = 0.8;          ///< encoder block i gets ld^(depth + 1 - (i + 1))
  int64_t warmup_iters = 250;
  double warmup_start_factor = 0.0;  ///< the paper does not give it; linear from this * lr
  std::vector<int64_t> decay_steps{60000, 86666};
  double decay_factor = 0.1;
};

/// Parameters sharing one lr scale and weight decay.
struct ParamGroup {
  double lr_scale = 1.0;
  double weight_decay = 0.0;
  std::vector<std::string> names;
  std::vector<torch::Tensor> params;
};

/// Groups the trainable parameters of a SAM model (names as in its state dict) by layer-wise lr
/// scale and weight decay. `encoder_depth` is the number of ViT blocks.
std::vector<ParamGroup> make_param_groups(torch::nn::Module& model, int64_t encoder_depth,
                                          const OptimOptions& o);
/// The layer id of a parameter for layer-wise decay (0 = patch/pos embedding, i + 1 = block i,
/// depth + 1 = everything else); ViTDet's rule.
int64_t layer_id(const std::string& name, int64_t depth);
/// The learning rate at iteration `it` (0-based): warmup, then division by 1/decay_factor at each
/// decay step passed.
double lr_at(const OptimOptions& o, int64_t it);

/// AdamW with decoupled weight decay, bit-compatible with torch.optim.AdamW (non-amsgrad).
class AdamW {
 public:
  AdamW(std::vector<ParamGroup> groups, const OptimOptions& o);
  /// One update with base learning rate `lr` (each group uses lr * lr_scale). Parameters without
  /// a gradient are skipped.
  void step(double lr);
  void zero_grad();
  int64_t steps() const { return steps_; }
  const std::vector<ParamGroup>& groups() const { return groups_; }
  /// Moments per parameter name ("<name>.exp_avg", "<name>.exp_avg_sq") and "step".
  NamedTensors state() const;
  /// Restores what state() returned; throws naming missing entries.
  void load_state(const NamedTensors& s);

 private:
  std::vector<ParamGroup> groups_;
  OptimOptions opt_;
  int64_t steps_ = 0;
  std::vector<std::vector<torch::Tensor>> exp_avg_, exp_avg_sq_;
};

/// An exponential moving average of the weights (Polyak averaging; not in the paper, off in the
/// ViT recipes): after each optimiser step, avg = d * avg + (1 - d) * w with
/// d = min(decay, (1 + n) / (10 + n)) at the n-th update (n = 0, 1, ...), so that early averages
/// are not dominated by the initial weights. Floating-point entries are averaged, others copied.
class WeightAverage {
 public:
  /// Starts the average at the current values of `tracked` (a model's state dict, whose tensors
  /// alias the model's parameters and buffers).
  WeightAverage(NamedTensors tracked, double decay);
  double decay_at(int64_t n) const;
  /// Folds the tracked tensors' current values in.
  void update();
  int64_t updates() const { return updates_; }
  /// The averaged values, keyed as the tracked state dict.
  const NamedTensors& average() const { return avg_; }
  /// Restores an average and its update count (from a checkpoint); throws naming a missing key.
  void load(const NamedTensors& avg, int64_t updates);
  /// Swaps the averaged values into the tracked tensors and back (for validation).
  void swap_in();

 private:
  NamedTensors tracked_, avg_;
  double decay_;
  int64_t updates_ = 0;
};

}  // namespace sam::train
