#pragma once
// Optimisation as in the paper (appendix A): AdamW with per-parameter-group learning-rate scales
// (layer-wise decay over the encoder blocks) and weight decay (none on biases, norms and
// position tables), linear warmup then step decay.
#include <string>
#include <unordered_map>
#include <vector>

#include <torch/torch.h>

#include "sam/pth_io.h"

namespace sam::train {

class Communicator;  // train/distributed.h

struct OptimOptions {
  double lr = 8e-4;
  double beta1 = 0.9, beta2 = 0.999, eps = 1e-8;
  double weight_decay = 0.1;
  double layer_decay = 0.8;          ///< encoder block i gets ld^(depth + 1 - (i + 1))
  int64_t warmup_iters = 250;
  double warmup_start_factor = 0.0;  ///< the paper does not give it; linear from this * lr
  std::vector<int64_t> decay_steps{60000, 86666};
  double decay_factor = 0.1;
  std::string schedule = "step";     ///< step (decay_steps) or cosine (to min_lr_factor * lr at the last step)
  double min_lr_factor = 0.0;        ///< cosine: the lr's floor as a share of lr
  /// "auto": libtorch's fused AdamW kernel (at::_fused_adamw_) for parameters on a GPU where the
  /// libtorch has it, the per-tensor update otherwise; "on" also on the CPU; "off" never.
  std::string fused = "auto";
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
/// The learning rate at iteration `it` (0-based) of `total`: warmup, then with the step schedule a
/// division by 1/decay_factor at each decay step passed, with the cosine schedule (MAE's)
/// lr (m + (1 - m) (1 + cos(pi (it - warmup) / (total - warmup))) / 2), m = min_lr_factor.
double lr_at(const OptimOptions& o, int64_t it, int64_t total = 0);

/// Whether this libtorch has the fused AdamW kernel (at::_fused_adamw_: 2.x; its CPU kernel
/// from 2.4 on).
bool fused_adamw_available(const torch::Device& device);

/// AdamW with decoupled weight decay: the per-tensor path is bit-compatible with
/// torch.optim.AdamW (non-amsgrad, foreach=False); the fused path (OptimOptions::fused) runs
/// libtorch's fused kernel, torch.optim.AdamW(fused=True), one launch per group.
class AdamW {
 public:
  /// With `shard_over` (ZeRO stage 1, train.shard_optimizer; see shard() below) this rank
  /// allocates only its share of the moments. The communicator must outlive the optimiser.
  AdamW(std::vector<ParamGroup> groups, const OptimOptions& o, Communicator* shard_over = nullptr);
  /// One update with base learning rate `lr` (each group uses lr * lr_scale). Parameters without
  /// a gradient are skipped. `skip`, a 0-d float tensor on the parameters' device (1 = skip), lets
  /// the caller skip the update without reading the value on the host (the fused kernel checks it
  /// on the device, as torch.amp's found_inf); the per-tensor path reads it.
  void step(double lr, const torch::Tensor& skip = {});
  void zero_grad();
  /// The number of updates made (skipped ones not counted); reads the device on the fused path.
  int64_t steps() const;
  bool fused() const { return fused_; }
  const std::vector<ParamGroup>& groups() const { return groups_; }
  /// Moments per parameter name ("<name>.exp_avg", "<name>.exp_avg_sq") and "step". Sharded, a
  /// collective (every rank calls it): rank 0 gets every moment (the other ranks' copied to the
  /// CPU), the other ranks their own.
  NamedTensors state() const;
  /// Restores what state() returned (a sharded optimiser: its own parameters' moments); throws
  /// naming missing entries.
  void load_state(const NamedTensors& s);

  /// Sharding (ZeRO stage 1): each parameter tensor has one owner rank (whole tensors, largest
  /// first to the rank holding the fewest elements so far), which alone keeps its moments and
  /// updates it; after each step every rank broadcasts the parameters it owns (the all-gather of
  /// the updated weights). The gradients arrive reduced as without sharding, so each parameter's
  /// update is the unsharded one, bit for bit. load_state keeps this rank's share.
  bool sharded() const { return comm_ != nullptr; }
  /// The rank that owns parameter `p` (sharded), -1 when not sharded or `p` is not one of its
  /// parameters: what the gradient reduce-scatter sends where (train/grad_reducer.h).
  int owner(const torch::Tensor& p) const;
  /// Bytes of the moments this process holds.
  int64_t state_bytes() const;

 private:
  std::vector<ParamGroup> groups_;
  OptimOptions opt_;
  int64_t steps_ = 0;
  bool fused_ = false;
  torch::Tensor step_t_;  ///< fused path: the update count as a float on the device (the kernel reads it)
  /// Undefined for the parameters another rank owns (sharded).
  std::vector<std::vector<torch::Tensor>> exp_avg_, exp_avg_sq_;
  Communicator* comm_ = nullptr;
  void gather_params();
  void partition();
  std::vector<std::vector<int>> owner_;  ///< per group and parameter: its rank (sharded)
  std::unordered_map<const void*, int> owner_of_;  ///< by the parameter's TensorImpl (sharded)
  /// Every rank's parameters, by owner (sharded): what the all-gather after a step moves.
  std::vector<std::vector<torch::Tensor>> owned_by_;
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
  /// Folds the tracked tensors' current values in. With `skip` (a 0-d float tensor on the
  /// weights' device, 1 = the optimiser skipped this step) nothing changes when it is set, decided
  /// on the device: the update count lives there too.
  void update(const torch::Tensor& skip = {});
  /// The number of updates folded in (reads the device).
  int64_t updates() const;
  /// The averaged values, keyed as the tracked state dict.
  const NamedTensors& average() const { return avg_; }
  /// Restores an average and its update count (from a checkpoint); throws naming a missing key.
  void load(const NamedTensors& avg, int64_t updates);
  /// Swaps the averaged values into the tracked tensors and back (for validation).
  void swap_in();

 private:
  NamedTensors tracked_, avg_;
  double decay_;
  torch::Tensor updates_;  ///< float64, on the weights' device
};

}  // namespace sam::train
