#pragma once
// Which parameters train (issue 21: fine-tuning a released checkpoint with parts frozen). Frozen
// parameters get requires_grad = false before the optimiser is built, so they have no gradient,
// no optimiser state and no all-reduce, and autograd keeps no activations for a frozen prefix
// (the image encoder, typically).
#include <cstdint>
#include <string>
#include <vector>

#include <torch/nn/module.h>

namespace sam::train {

/// Whether `name` matches the glob `pattern` ('*' any run of characters, dots included; '?' one
/// character; no other special characters), e.g. "image_encoder.*", "*.attn.qkv.*".
bool name_matches(const std::string& pattern, const std::string& name);

/// A parameter count as the training log writes it: 4061212 -> "4.06M".
std::string millions(int64_t n);

struct FreezeReport {
  int64_t tensors = 0, frozen_tensors = 0;
  int64_t params = 0, trainable_params = 0;  ///< elements
  /// "trainable: 4.06M of 4.06M parameters (0 of 96 tensors frozen)"
  std::string summary() const;
};

/// Freezes the parameters whose names (as in the state dict) match a pattern of `freeze`, and,
/// when `trainable` is not empty, every parameter that matches none of `trainable`; the others
/// train. Throws std::invalid_argument naming the key ("train.freeze" / "train.trainable") and
/// the pattern when a pattern matches no parameter (a typo would otherwise train everything), or
/// when nothing is left to train.
FreezeReport apply_freeze(torch::nn::Module& model, const std::vector<std::string>& freeze,
                          const std::vector<std::string>& trainable);

}  // namespace sam::train
