#include "train/optim.h"

#include "train/distributed.h"

#include <algorithm>
#include <cmath>
#include <map>
#include <set>

#include <torch/version.h>

#include "sam/common.h"

#if TORCH_VERSION_MAJOR >= 2
#define SAM_HAVE_FUSED_ADAMW 1
#else
#define SAM_HAVE_FUSED_ADAMW 0
#endif

namespace sam::train {

int64_t layer_id(const std::string& name, int64_t depth) {
  const std::string enc = "image_encoder.";
  if (name.rfind(enc, 0) != 0) return depth + 1;
  const std::string rest = name.substr(enc.size());
  if (rest.rfind("pos_embed", 0) == 0 || rest.rfind("patch_embed", 0) == 0) return 0;
  if (rest.rfind("blocks.", 0) == 0) {
    const auto dot = rest.find('.', 7);
    return std::stoll(rest.substr(7, dot - 7)) + 1;
  }
  return depth + 1;
}

namespace {

// Names of parameters that get no weight decay: biases, every parameter of a norm layer, and the
// position tables (absolute and relative; a TinyViT's attention biases).
void collect_no_decay(const torch::nn::Module& m, const std::string& prefix, std::set<std::string>& out) {
  const bool is_norm = dynamic_cast<const torch::nn::LayerNormImpl*>(&m) != nullptr ||
                       dynamic_cast<const LayerNorm2dImpl*>(&m) != nullptr ||
                       dynamic_cast<const torch::nn::BatchNorm2dImpl*>(&m) != nullptr;
  for (const auto& p : m.named_parameters(false)) {
    const std::string& k = p.key();
    if (is_norm || k == "bias" || k == "pos_embed" || k == "rel_pos_h" || k == "rel_pos_w" || k == "attention_biases")
      out.insert(prefix + k);
  }
  for (const auto& c : m.named_children()) collect_no_decay(*c.value(), prefix + c.key() + ".", out);
}

}  // namespace

std::vector<ParamGroup> make_param_groups(torch::nn::Module& model, int64_t depth, const OptimOptions& o) {
  std::set<std::string> no_decay;
  collect_no_decay(model, "", no_decay);
  std::map<std::pair<int64_t, bool>, ParamGroup> by_key;
  for (const auto& p : model.named_parameters(true)) {
    if (!p.value().requires_grad()) continue;
    const int64_t id = layer_id(p.key(), depth);
    const bool decay = !no_decay.count(p.key());
    auto& g = by_key[{id, decay}];
    g.lr_scale = std::pow(o.layer_decay, static_cast<double>(depth + 1 - id));
    g.weight_decay = decay ? o.weight_decay : 0.0;
    g.names.push_back(p.key());
    g.params.push_back(p.value());
  }
  std::vector<ParamGroup> groups;
  for (auto& kv : by_key) groups.push_back(std::move(kv.second));
  return groups;
}

double lr_at(const OptimOptions& o, int64_t it, int64_t total) {
  double lr = o.lr;
  if (it < o.warmup_iters) {
    const double f = o.warmup_start_factor + (1.0 - o.warmup_start_factor) * (static_cast<double>(it) + 1) / o.warmup_iters;
    return lr * f;
  }
  if (o.schedule == "cosine") {
    if (total <= o.warmup_iters) return lr;
    const double t = std::min(1.0, static_cast<double>(it - o.warmup_iters) / static_cast<double>(total - o.warmup_iters));
    return lr * (o.min_lr_factor + (1.0 - o.min_lr_factor) * 0.5 * (1.0 + std::cos(M_PI * t)));
  }
  for (int64_t s : o.decay_steps)
    if (it >= s) lr *= o.decay_factor;
  return lr;
}

bool fused_adamw_available(const torch::Device& device) {
#if SAM_HAVE_FUSED_ADAMW
  if (device.is_cuda()) return true;
  return device.is_cpu() && (TORCH_VERSION_MAJOR > 2 || TORCH_VERSION_MINOR >= 4);
#else
  return false;
#endif
}

AdamW::AdamW(std::vector<ParamGroup> groups, const OptimOptions& o, Communicator* shard_over)
    : groups_(std::move(groups)), opt_(o), comm_(shard_over) {
  torch::Device device(torch::kCPU);
  for (const auto& g : groups_)
    if (!g.params.empty()) device = g.params.front().device();
  if (o.fused == "on" && !fused_adamw_available(device))
    throw std::invalid_argument("optim.fused=on: this libtorch (" + std::string(TORCH_VERSION) +
                                ") has no fused AdamW for " + device.str());
  fused_ = fused_adamw_available(device) && (o.fused == "on" || (o.fused == "auto" && device.is_cuda()));
  if (fused_) step_t_ = torch::zeros({}, torch::TensorOptions().device(device).dtype(torch::kFloat));
  if (comm_) partition();
  for (size_t gi = 0; gi < groups_.size(); ++gi) {
    std::vector<torch::Tensor> m, v;
    for (size_t i = 0; i < groups_[gi].params.size(); ++i) {
      const auto& p = groups_[gi].params[i];
      const bool mine = !comm_ || owner_[gi][i] == comm_->rank();
      m.push_back(mine ? torch::zeros_like(p, torch::MemoryFormat::Preserve) : torch::Tensor());
      v.push_back(mine ? torch::zeros_like(p, torch::MemoryFormat::Preserve) : torch::Tensor());
    }
    exp_avg_.push_back(std::move(m));
    exp_avg_sq_.push_back(std::move(v));
  }
}

void AdamW::zero_grad() {
  for (auto& g : groups_)
    for (auto& p : g.params)
      if (p.grad().defined()) p.mutable_grad() = torch::Tensor();
}

int64_t AdamW::steps() const { return fused_ ? static_cast<int64_t>(step_t_.item<float>()) : steps_; }

void AdamW::step(double lr, const torch::Tensor& skip) {
  torch::NoGradGuard ng;
  if (fused_) {
#if SAM_HAVE_FUSED_ADAMW
    // As torch.optim.AdamW(fused=True): the count goes up before the kernel and back down when it
    // skipped (found_inf), all on the device.
    step_t_.add_(1);
    for (size_t gi = 0; gi < groups_.size(); ++gi) {
      const auto& g = groups_[gi];
      std::vector<torch::Tensor> ps, gs, ms, vs, steps;
      for (size_t i = 0; i < g.params.size(); ++i) {
        if (!g.params[i].grad().defined() || !exp_avg_[gi][i].defined()) continue;
        ps.push_back(g.params[i]);
        gs.push_back(g.params[i].grad());
        ms.push_back(exp_avg_[gi][i]);
        vs.push_back(exp_avg_sq_[gi][i]);
        steps.push_back(step_t_);
      }
      if (ps.empty()) continue;
      at::_fused_adamw_(ps, gs, ms, vs, {}, steps, lr * g.lr_scale, opt_.beta1, opt_.beta2, g.weight_decay, opt_.eps,
                        /*amsgrad=*/false, /*maximize=*/false, /*grad_scale=*/std::nullopt,
                        skip.defined() ? std::optional<torch::Tensor>(skip) : std::nullopt);
    }
    if (skip.defined()) step_t_.sub_(skip);
#endif
    gather_params();
    return;
  }
  if (skip.defined() && skip.item<float>() != 0.0f) return;  // every rank skips alike
  ++steps_;
  const double bc1 = 1.0 - std::pow(opt_.beta1, static_cast<double>(steps_));
  const double bc2 = 1.0 - std::pow(opt_.beta2, static_cast<double>(steps_));
  const double bc2_sqrt = std::sqrt(bc2);
  for (size_t gi = 0; gi < groups_.size(); ++gi) {
    const auto& g = groups_[gi];
    const double glr = lr * g.lr_scale;
    const double step_size = glr / bc1;
    for (size_t i = 0; i < g.params.size(); ++i) {
      auto p = g.params[i];
      const auto& grad = p.grad();
      if (!grad.defined() || !exp_avg_[gi][i].defined()) continue;
      // The same sequence of operations as torch.optim.AdamW (single-tensor path).
      p.mul_(1.0 - glr * g.weight_decay);
      auto& m = exp_avg_[gi][i];
      auto& v = exp_avg_sq_[gi][i];
      m.lerp_(grad, 1.0 - opt_.beta1);
      v.mul_(opt_.beta2).addcmul_(grad, grad, 1.0 - opt_.beta2);
      auto denom = (v.sqrt() / bc2_sqrt).add_(opt_.eps);
      p.addcdiv_(m, denom, -step_size);
    }
  }
  gather_params();
}

void AdamW::gather_params() {
  if (!comm_) return;
  for (int r = 0; r < comm_->world_size(); ++r) comm_->broadcast(owned_by_[static_cast<size_t>(r)], r);
}

void AdamW::partition() {
  const int world = comm_->world_size();
  std::vector<std::pair<int64_t, std::pair<size_t, size_t>>> order;  // (elements, (group, index))
  owner_.assign(groups_.size(), {});
  for (size_t gi = 0; gi < groups_.size(); ++gi) {
    owner_[gi].assign(groups_[gi].params.size(), 0);
    for (size_t i = 0; i < groups_[gi].params.size(); ++i) order.push_back({groups_[gi].params[i].numel(), {gi, i}});
  }
  // Largest first, ties in optimiser order; each to the least loaded rank (the lowest of equals).
  std::stable_sort(order.begin(), order.end(), [](const auto& a, const auto& b) { return a.first > b.first; });
  std::vector<int64_t> load(static_cast<size_t>(world), 0);
  for (const auto& [n, at] : order) {
    const int r = static_cast<int>(std::min_element(load.begin(), load.end()) - load.begin());
    load[static_cast<size_t>(r)] += n;
    owner_[at.first][at.second] = r;
  }
  owned_by_.assign(static_cast<size_t>(world), {});
  for (size_t gi = 0; gi < groups_.size(); ++gi)
    for (size_t i = 0; i < groups_[gi].params.size(); ++i) {
      owned_by_[static_cast<size_t>(owner_[gi][i])].push_back(groups_[gi].params[i]);
      owner_of_[groups_[gi].params[i].unsafeGetTensorImpl()] = owner_[gi][i];
    }
}

int AdamW::owner(const torch::Tensor& p) const {
  const auto it = owner_of_.find(p.unsafeGetTensorImpl());
  return it == owner_of_.end() ? -1 : it->second;
}

int64_t AdamW::state_bytes() const {
  int64_t n = 0;
  for (size_t gi = 0; gi < groups_.size(); ++gi)
    for (size_t i = 0; i < exp_avg_[gi].size(); ++i)
      if (exp_avg_[gi][i].defined()) n += exp_avg_[gi][i].nbytes() + exp_avg_sq_[gi][i].nbytes();
  return n;
}

NamedTensors AdamW::state() const {
  NamedTensors out;
  out.emplace_back("step", torch::tensor(steps(), torch::kLong));
  if (!comm_) {
    for (size_t gi = 0; gi < groups_.size(); ++gi)
      for (size_t i = 0; i < groups_[gi].params.size(); ++i) {
        out.emplace_back(groups_[gi].names[i] + ".exp_avg", exp_avg_[gi][i]);
        out.emplace_back(groups_[gi].names[i] + ".exp_avg_sq", exp_avg_sq_[gi][i]);
      }
    return out;
  }
  // Sharded: each owner broadcasts its moments, about 25 MB at a time; rank 0 keeps them (on the
  // CPU), the others drop what they received, so no rank holds more than its share plus a chunk.
  const int me = comm_->rank();
  std::map<std::string, torch::Tensor> got;
  for (int r = 0; r < comm_->world_size(); ++r) {
    std::vector<std::pair<std::string, torch::Tensor>> chunk;
    int64_t bytes = 0;
    const auto send = [&] {
      if (chunk.empty()) return;
      std::vector<torch::Tensor> ts;
      for (auto& kv : chunk) ts.push_back(kv.second);
      comm_->broadcast(ts, r);
      if (me == 0 && r != 0)
        for (size_t k = 0; k < chunk.size(); ++k) got[chunk[k].first] = ts[k].to(torch::kCPU);
      chunk.clear();
      bytes = 0;
    };
    for (size_t gi = 0; gi < groups_.size(); ++gi)
      for (size_t i = 0; i < groups_[gi].params.size(); ++i) {
        if (owner_[gi][i] != r) continue;
        for (const bool sq : {false, true}) {
          const auto& mine = sq ? exp_avg_sq_[gi][i] : exp_avg_[gi][i];
          const auto t = r == me ? mine : torch::empty_like(groups_[gi].params[i], torch::MemoryFormat::Preserve);
          chunk.emplace_back(groups_[gi].names[i] + (sq ? ".exp_avg_sq" : ".exp_avg"), t);
          bytes += t.nbytes();
        }
        if (bytes >= (25 << 20)) send();
      }
    send();
  }
  for (size_t gi = 0; gi < groups_.size(); ++gi)
    for (size_t i = 0; i < groups_[gi].params.size(); ++i)
      for (const bool sq : {false, true}) {
        const std::string key = groups_[gi].names[i] + (sq ? ".exp_avg_sq" : ".exp_avg");
        const auto& mine = sq ? exp_avg_sq_[gi][i] : exp_avg_[gi][i];
        if (mine.defined()) out.emplace_back(key, mine);
        else if (me == 0) out.emplace_back(key, got.at(key));
      }
  return out;
}

void AdamW::load_state(const NamedTensors& s) {
  std::map<std::string, torch::Tensor> byname(s.begin(), s.end());
  auto get = [&](const std::string& k) -> torch::Tensor& {
    auto it = byname.find(k);
    if (it == byname.end()) throw std::runtime_error("optimizer state: missing '" + k + "'");
    return it->second;
  };
  steps_ = get("step").item<int64_t>();
  if (fused_) step_t_.fill_(static_cast<double>(steps_));
  torch::NoGradGuard ng;
  for (size_t gi = 0; gi < groups_.size(); ++gi)
    for (size_t i = 0; i < groups_[gi].params.size(); ++i) {
      const auto& m = get(groups_[gi].names[i] + ".exp_avg");
      const auto& v = get(groups_[gi].names[i] + ".exp_avg_sq");
      if (!exp_avg_[gi][i].defined()) continue;  // another rank's (sharded)
      exp_avg_[gi][i].copy_(m);
      exp_avg_sq_[gi][i].copy_(v);
    }
}

WeightAverage::WeightAverage(NamedTensors tracked, double decay) : tracked_(std::move(tracked)), decay_(decay) {
  torch::NoGradGuard ng;
  for (const auto& kv : tracked_) avg_.emplace_back(kv.first, kv.second.detach().clone());
  const auto device = tracked_.empty() ? torch::Device(torch::kCPU) : tracked_.front().second.device();
  updates_ = torch::zeros({}, torch::TensorOptions().device(device).dtype(torch::kDouble));
}

double WeightAverage::decay_at(int64_t n) const {
  return std::min(decay_, (1.0 + static_cast<double>(n)) / (10.0 + static_cast<double>(n)));
}

int64_t WeightAverage::updates() const { return static_cast<int64_t>(updates_.item<double>()); }

void WeightAverage::update(const torch::Tensor& skip) {
  torch::NoGradGuard ng;
  // decay_at(n) computed on the device from the count there; weight 0 when the step was skipped.
  auto keep = skip.defined() ? 1.0 - skip.to(torch::kDouble) : torch::ones_like(updates_);
  auto d = torch::clamp_max((1.0 + updates_) / (10.0 + updates_), decay_);
  auto w = ((1.0 - d) * keep).to(torch::kFloat);
  for (size_t i = 0; i < avg_.size(); ++i) {
    auto& a = avg_[i].second;
    const auto& t = tracked_[i].second;
    if (a.is_floating_point()) a.lerp_(t.detach(), w.to(a.scalar_type()));  // a + (1 - d) (w - a)
    else a.copy_(torch::where(keep.to(torch::kBool), t, a));
  }
  updates_.add_(keep);
}

void WeightAverage::load(const NamedTensors& avg, int64_t updates) {
  std::map<std::string, torch::Tensor> byname(avg.begin(), avg.end());
  torch::NoGradGuard ng;
  for (auto& kv : avg_) {
    auto it = byname.find(kv.first);
    if (it == byname.end()) throw std::runtime_error("weight average: missing '" + kv.first + "'");
    kv.second.copy_(it->second);
  }
  updates_.fill_(static_cast<double>(updates));
}

void WeightAverage::swap_in() {
  torch::NoGradGuard ng;
  for (size_t i = 0; i < avg_.size(); ++i) {
    auto w = tracked_[i].second.detach();
    auto tmp = w.clone();
    w.copy_(avg_[i].second);
    avg_[i].second.copy_(tmp);
  }
}

}  // namespace sam::train
