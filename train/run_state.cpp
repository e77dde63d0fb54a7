#include "train/run_state.h"

#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <sstream>
#include <string>

#include <torch/torch.h>

#include "data/atomic_file.h"
#include "sam/common.h"

namespace sam::train {
namespace {

torch::Tensor bytes_tensor(const std::string& s) {
  auto t = torch::empty({static_cast<int64_t>(s.size())}, torch::kUInt8);
  if (!s.empty()) std::memcpy(t.data_ptr<uint8_t>(), s.data(), s.size());
  return t;
}

}  // namespace

void kill_point(const char* point, int64_t step) {
  static const std::string want = [] {
    const char* v = std::getenv("SAM_TRAIN_KILL_AT");
    return std::string(v ? v : "");
  }();
  if (!want.empty() && want == std::string(point) + ":" + std::to_string(step)) ::kill(::getpid(), SIGKILL);
}

bool nonfinite_injected(int64_t step) {
  static const std::set<int64_t> steps = [] {
    std::set<int64_t> out;
    const char* v = std::getenv("SAM_TRAIN_NONFINITE_AT");
    std::stringstream in(v ? v : "");
    for (std::string item; std::getline(in, item, ',');)
      if (!item.empty()) out.insert(std::stoll(item));
    return out;
  }();
  return steps.count(step) > 0;
}

void save_run_checkpoint(const std::string& path, const RunCheckpoint& ck) {
  NamedTensors all;
  for (const auto& kv : ck.model) all.emplace_back("model." + kv.first, kv.second.detach());
  for (const auto& kv : ck.optim) all.emplace_back("optim." + kv.first, kv.second);
  for (const auto& kv : ck.rng) all.emplace_back("rng." + kv.first, kv.second);
  for (const auto& kv : ck.ema) all.emplace_back("ema." + kv.first, kv.second.detach());
  all.emplace_back("meta", bytes_tensor(ck.meta.dump()));
  const std::string tmp = path + ".tmp";
  pth_write(tmp, all);
  kill_point("checkpoint", ck.meta.value("step", int64_t{-1}));
  data::publish_file(tmp, path);
}

RunCheckpoint load_run_checkpoint(const std::string& path) {
  RunCheckpoint ck;
  bool has_meta = false;
  for (auto& kv : pth_read(path)) {
    const std::string& k = kv.first;
    if (k.rfind("model.", 0) == 0) ck.model.emplace_back(k.substr(6), kv.second);
    else if (k.rfind("optim.", 0) == 0) ck.optim.emplace_back(k.substr(6), kv.second);
    else if (k.rfind("rng.", 0) == 0) ck.rng.emplace_back(k.substr(4), kv.second);
    else if (k.rfind("ema.", 0) == 0) ck.ema.emplace_back(k.substr(4), kv.second);
    else if (k == "meta") {
      auto t = kv.second.contiguous();
      const std::string s(reinterpret_cast<const char*>(t.data_ptr<uint8_t>()), t.numel());
      try {
        ck.meta = nlohmann::json::parse(s);
      } catch (const nlohmann::json::exception& e) {
        throw std::runtime_error(path + ": corrupt run metadata: " + e.what());
      }
      has_meta = true;
    }
  }
  if (!has_meta || ck.model.empty())
    throw std::runtime_error(path + ": not a run checkpoint (no 'meta' or 'model.*' entries)");
  return ck;
}

NamedTensors capture_rng_states(const torch::Device& device) {
  NamedTensors out;
  out.emplace_back("torch_cpu", generator_state(torch::kCPU));
  if (device.is_cuda()) out.emplace_back("torch_cuda", generator_state(device));
  return out;
}

bool restore_rng_states(const NamedTensors& states, const torch::Device& device) {
  bool cuda_restored = false;
  for (const auto& kv : states) {
    if (kv.first == "torch_cpu") {
      set_generator_state(torch::kCPU, kv.second);
    } else if (kv.first == "torch_cuda" && device.is_cuda()) {
      set_generator_state(device, kv.second);
      cuda_restored = true;
    }
  }
  return !device.is_cuda() || cuda_restored;
}

}  // namespace sam::train
