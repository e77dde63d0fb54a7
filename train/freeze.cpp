#include "train/freeze.h"

#include <cstdio>
#include <stdexcept>

namespace sam::train {

bool name_matches(const std::string& pattern, const std::string& name) {
  // Iterative glob match with backtracking to the last '*'.
  size_t p = 0, n = 0, star = std::string::npos, mark = 0;
  while (n < name.size()) {
    if (p < pattern.size() && (pattern[p] == '?' || pattern[p] == name[n])) {
      ++p;
      ++n;
    } else if (p < pattern.size() && pattern[p] == '*') {
      star = p++;
      mark = n;
    } else if (star != std::string::npos) {
      p = star + 1;
      n = ++mark;
    } else {
      return false;
    }
  }
  while (p < pattern.size() && pattern[p] == '*') ++p;
  return p == pattern.size();
}

std::string millions(int64_t n) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.2fM", static_cast<double>(n) / 1e6);
  return buf;
}

namespace {

bool any_match(const std::vector<std::string>& patterns, const std::string& name) {
  for (const auto& p : patterns)
    if (name_matches(p, name)) return true;
  return false;
}

}  // namespace

std::string FreezeReport::summary() const {
  return "trainable: " + millions(trainable_params) + " of " + millions(params) + " parameters (" +
         std::to_string(frozen_tensors) + " of " + std::to_string(tensors) + " tensors frozen)";
}

FreezeReport apply_freeze(torch::nn::Module& model, const std::vector<std::string>& freeze,
                          const std::vector<std::string>& trainable) {
  const auto named = model.named_parameters(true);
  auto check_used = [&](const std::vector<std::string>& patterns, const char* key) {
    for (const auto& p : patterns) {
      bool used = false;
      for (const auto& kv : named) used = used || name_matches(p, kv.key());
      if (!used)
        throw std::invalid_argument(std::string(key) + ": pattern '" + p +
                                    "' matches no parameter (names as in the state dict, e.g. "
                                    "image_encoder.blocks.0.attn.qkv.weight)");
    }
  };
  check_used(freeze, "train.freeze");
  check_used(trainable, "train.trainable");
  FreezeReport r;
  for (const auto& kv : named) {
    const bool frozen =
        any_match(freeze, kv.key()) || (!trainable.empty() && !any_match(trainable, kv.key()));
    torch::Tensor p = kv.value();
    p.set_requires_grad(!frozen);
    ++r.tensors;
    r.params += p.numel();
    if (frozen)
      ++r.frozen_tensors;
    else
      r.trainable_params += p.numel();
  }
  if (r.tensors > 0 && r.frozen_tensors == r.tensors)
    throw std::invalid_argument(
        "train.freeze / train.trainable: every parameter is frozen, nothing would train");
  return r;
}

}  // namespace sam::train
