#include "train/grad_reducer.h"

#include <algorithm>
#include <mutex>
#include <stdexcept>

#include <torch/csrc/autograd/function.h>
#include <torch/csrc/autograd/utils/lambda_post_hook.h>
#include <torch/csrc/autograd/variable.h>

namespace sam::train {

struct GradientReducer::State {
  Communicator* comm = nullptr;
  std::vector<torch::Tensor> params;             // early ones first, then the hooked ones
  std::vector<int> bucket_of;                    // per parameter
  std::vector<std::vector<int>> members;         // per bucket, parameter indices (by owner)
  std::vector<int> owner;                        // per parameter: the rank that needs its sum, -1 all
  struct Segment {
    int owner;
    int64_t offset, size;
  };
  std::vector<std::vector<Segment>> segments;    // per bucket: its owners' consecutive parts
  std::vector<std::shared_ptr<torch::autograd::Node>> accumulators;  // kept alive: they hold the hooks
  std::vector<uintptr_t> hook_keys;
  int early_buckets = 0;

  std::mutex mu;
  bool armed = false;
  std::vector<int> missing;     // per bucket: gradients not yet final
  std::vector<char> produced;   // per parameter: a gradient arrived on this rank
  int next = 0;                 // the next bucket to start (in order)
  std::vector<torch::Tensor> flat;
  std::vector<std::vector<std::unique_ptr<Pending>>> pending;
  int started_early = 0;

  // Starts the buckets that are complete, in order (the caller holds mu).
  void start_ready(bool force) {
    while (next < static_cast<int>(members.size()) && (force || missing[next] == 0)) {
      torch::NoGradGuard ng;
      std::vector<torch::Tensor> parts;
      for (int i : members[next]) {
        const auto& g = params[i].grad();
        parts.push_back(g.defined() ? g.reshape(-1) : torch::zeros({params[i].numel()}, params[i].options()));
      }
      flat[next] = torch::cat(parts);
      for (const auto& seg : segments[next]) {
        auto part = flat[next].narrow(0, seg.offset, seg.size);
        pending[next].push_back(seg.owner < 0 ? comm->allreduce_sum_async(part) : comm->reduce_sum_async(part, seg.owner));
      }
      ++next;
    }
  }

  void on_gradient(int i) {
    std::lock_guard<std::mutex> lock(mu);
    if (!armed || produced[i]) return;
    produced[i] = 1;
    --missing[bucket_of[i]];
    start_ready(false);
  }
};

GradientReducer::GradientReducer(Communicator& comm, std::vector<torch::Tensor> early,
                                 std::vector<torch::Tensor> hooked, double bucket_mb, const OwnerOf& owner)
    : state_(std::make_shared<State>()) {
  auto& s = *state_;
  s.comm = &comm;
  const int64_t cap = std::max<int64_t>(1, static_cast<int64_t>(bucket_mb * 1024 * 1024 / 4));
  auto add_buckets = [&](const std::vector<torch::Tensor>& ps) {
    int64_t fill = cap;  // start a new bucket at the first parameter
    for (const auto& p : ps) {
      if (p.scalar_type() != torch::kFloat)
        throw std::invalid_argument("GradientReducer: parameters must be float32, got " +
                                    std::string(c10::toString(p.scalar_type())));
      if (fill + p.numel() > cap && fill > 0) {
        s.members.emplace_back();
        fill = 0;
      }
      s.members.back().push_back(static_cast<int>(s.params.size()));
      s.bucket_of.push_back(static_cast<int>(s.members.size()) - 1);
      s.params.push_back(p);
      fill += p.numel();
    }
  };
  add_buckets(early);
  s.early_buckets = static_cast<int>(s.members.size());
  const size_t first_hooked = s.params.size();
  add_buckets(hooked);
  // Each bucket's parameters grouped by owner (stably; every rank forms the same layout), one
  // collective per owner.
  for (const auto& p : s.params) {
    const int o = owner ? owner(p) : -1;
    if (o >= comm.world_size())
      throw std::invalid_argument("GradientReducer: owner rank " + std::to_string(o) + " outside a world of " +
                                  std::to_string(comm.world_size()));
    s.owner.push_back(o < 0 ? -1 : o);
  }
  s.segments.resize(s.members.size());
  for (size_t b = 0; b < s.members.size(); ++b) {
    auto& m = s.members[b];
    std::stable_sort(m.begin(), m.end(), [&](int x, int y) { return s.owner[x] < s.owner[y]; });
    int64_t off = 0;
    for (int i : m) {
      const int64_t n = s.params[i].numel();
      if (s.segments[b].empty() || s.segments[b].back().owner != s.owner[i]) s.segments[b].push_back({s.owner[i], off, 0});
      s.segments[b].back().size += n;
      off += n;
    }
  }
  s.flat.resize(s.members.size());
  s.pending.resize(s.members.size());
  std::weak_ptr<State> weak = state_;
  for (size_t i = first_hooked; i < s.params.size(); ++i) {
    auto acc = torch::autograd::impl::grad_accumulator(s.params[i]);
    if (!acc) throw std::invalid_argument("GradientReducer: a hooked parameter is not a leaf that requires grad");
    const int idx = static_cast<int>(i);
    s.hook_keys.push_back(acc->add_post_hook(std::make_unique<torch::autograd::utils::LambdaPostHook>(
        [weak, idx](const torch::autograd::variable_list& outputs, const torch::autograd::variable_list&) {
          if (auto st = weak.lock()) st->on_gradient(idx);
          return outputs;
        })));
    s.accumulators.push_back(std::move(acc));
  }
}

GradientReducer::~GradientReducer() {
  auto& s = *state_;
  for (size_t k = 0; k < s.accumulators.size(); ++k) s.accumulators[k]->del_post_hook(s.hook_keys[k]);
}

void GradientReducer::arm() {
  auto& s = *state_;
  std::lock_guard<std::mutex> lock(s.mu);
  s.armed = true;
  s.next = 0;
  s.started_early = 0;
  s.produced.assign(s.params.size(), 0);
  s.missing.assign(s.members.size(), 0);
  for (size_t b = 0; b < s.members.size(); ++b)
    s.missing[b] = static_cast<int>(s.members[b].size());
  // The early buckets wait for start_early(), not for hooks.
  for (int b = 0; b < s.early_buckets; ++b) s.missing[b] = 1;
}

void GradientReducer::start_early() {
  auto& s = *state_;
  std::lock_guard<std::mutex> lock(s.mu);
  if (!s.armed) return;
  for (int b = 0; b < s.early_buckets; ++b) {
    s.missing[b] = 0;
    for (int i : s.members[b]) s.produced[i] = s.params[i].grad().defined();
  }
  s.start_ready(false);
}

void GradientReducer::finish() {
  auto& s = *state_;
  std::vector<double> used(s.params.size(), 0.0);
  {
    std::lock_guard<std::mutex> lock(s.mu);
    if (!s.armed) throw std::logic_error("GradientReducer::finish without arm()");
    s.started_early = s.next;
    s.start_ready(true);
    s.armed = false;
    for (size_t i = 0; i < s.params.size(); ++i) used[i] = s.params[i].grad().defined() ? 1.0 : 0.0;
  }
  // Which parameters some rank produced a gradient for: a host collective, no GPU involved.
  used = s.comm->allreduce_sum(used);
  torch::NoGradGuard ng;
  const int me = s.comm->rank();
  for (size_t b = 0; b < s.members.size(); ++b) {
    for (auto& w : s.pending[b]) w->wait();
    int64_t off = 0;
    for (int i : s.members[b]) {
      auto& p = s.params[i];
      const int64_t n = p.numel();
      if (used[i] == 0.0 || (s.owner[i] >= 0 && s.owner[i] != me)) {
        p.mutable_grad() = torch::Tensor();
      } else if (p.grad().defined()) {
        p.mutable_grad().copy_(s.flat[b].narrow(0, off, n).view_as(p));
      } else {
        p.mutable_grad() = s.flat[b].narrow(0, off, n).view_as(p).clone();
      }
      off += n;
    }
    s.pending[b].clear();
    s.flat[b] = torch::Tensor();
  }
}

int GradientReducer::buckets() const { return static_cast<int>(state_->members.size()); }

int GradientReducer::collectives() const {
  size_t n = 0;
  for (const auto& seg : state_->segments) n += seg.size();
  return static_cast<int>(n);
}

int GradientReducer::started_before_finish() const { return state_->started_early; }

}  // namespace sam::train
