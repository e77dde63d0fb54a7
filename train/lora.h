#pragma once
// LoRA adapters (Hu et al. 2021) on the model's Linear layers, for fine-tuning a released
// checkpoint (issue 21). An adapted layer's weight is W + s B A with W frozen, A [r, in], B [out,
// r] and s = alpha / r; B starts at zero, so training starts from the base model exactly.
//
// The adapters live in the module tree as the Linear's own entries, `<layer>.lora_A`,
// `<layer>.lora_B` (parameters) and `<layer>.lora_scale` (a buffer holding s), so the run's
// checkpoint, the broadcast of the starting weights, the optimiser's groups and an exact resume
// treat them like any other weight. The forward pass is the merged one: before a step the layer's
// `weight` member (what every kernel of the model reads; the registered W is untouched) becomes
// W_eff = W + s B A, a fresh leaf that collects dL/dW_eff = G over the step's backward passes (the
// prompt rounds, micro-steps, recomputed checkpointed blocks). pull_grads() then gives
// dA = s B^T G and dB = s G A^T. The step costs the model's usual weight gradients of the adapted
// layers plus two rank-r products each, works with every code path of the model unchanged, and
// needs no memory for optimiser moments of W.
//
// lora.dropout is DropConnect on A's input features: one Bernoulli mask m over the `in` features
// per layer and step, W_eff = W + s B (A diag(m)) / (1 - p). (Dropout of each token's input, as
// PEFT does, has no merged form.)
//
// On disk: a run's model.pth and `sam_train export` hold the merged weights (merge_lora), the
// official format; `sam_train export --adapters` holds the three adapter entries per layer alone
// (lora_only), which `init.adapters` adds onto a base (stack_adapters).
#include <memory>
#include <string>
#include <vector>

#include <torch/torch.h>

#include "sam/pth_io.h"
#include "train/train_config.h"

namespace sam::train {

class LoraAdapters {
 public:
  /// Registers adapters of rank `c.rank` on every Linear module of `model` whose name (as in the
  /// state dict, e.g. "image_encoder.blocks.0.attn.qkv") matches a pattern of `c.targets`. A is
  /// drawn like a Linear weight (uniform in +-1/sqrt(in)) from the default generator, B is zero.
  /// Throws std::invalid_argument naming lora.targets when a pattern matches no Linear, or a
  /// layer already has adapters. Sets each layer's weight to the merged one (materialize(false)).
  LoraAdapters(torch::nn::Module& model, const LoraConfig& c);
  ~LoraAdapters();

  size_t layers() const;
  /// "LoRA: rank 8, alpha 16 on 24 Linear layers (0.59M adapter parameters)"
  std::string summary() const;
  /// Names of the adapted layers, in module order.
  std::vector<std::string> names() const;

  /// Sets each adapted layer's `weight` to W + s B A computed from the current tensors: a leaf
  /// collecting gradients when the adapter trains (A or B requires grad), with a new dropout mask
  /// when `train` and lora.dropout > 0. Call before each step, and after anything that changes W,
  /// A or B in place (a load, the weight average's swap).
  void materialize(bool train);
  /// Turns the merged weights' gradients into A's and B's (accumulated into their .grad) and frees
  /// them. Call once after the step's last backward pass.
  void pull_grads();

 private:
  struct Layer;
  std::vector<std::unique_ptr<Layer>> layers_;
  LoraConfig cfg_;
};

/// Whether a state dict holds adapter entries.
bool has_lora(const NamedTensors& sd);
/// The state dict with every adapter folded into its layer's weight (W + s B A, computed in double
/// precision and stored in W's type) and the adapter entries dropped: the official format.
NamedTensors merge_lora(NamedTensors sd);
/// The adapter entries of a state dict alone (what `sam_train export --adapters` writes).
NamedTensors lora_only(const NamedTensors& sd);
/// Adds the adapters of the file `path` (lora_only's format) onto `model`'s weights: W += s B A per
/// layer. Throws naming the file and the entry when a layer is missing from the model, an entry is
/// incomplete or a shape does not fit. Returns the number of layers changed.
int stack_adapters(torch::nn::Module& model, const std::string& path);

}  // namespace sam::train
