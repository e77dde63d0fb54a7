#include "train/lora.h"

#include <cmath>
#include <map>
#include <sstream>
#include <stdexcept>

#include "train/freeze.h"

namespace sam::train {

namespace {

constexpr const char* kA = ".lora_A";
constexpr const char* kB = ".lora_B";
constexpr const char* kScale = ".lora_scale";

bool ends_with(const std::string& s, const std::string& tail) {
  return s.size() >= tail.size() && s.compare(s.size() - tail.size(), tail.size(), tail) == 0;
}

std::string strip(const std::string& s, const std::string& tail) {
  return s.substr(0, s.size() - tail.size());
}

// The adapters of a state dict by layer: {A, B, scale}, with the entries' positions.
struct Entry {
  torch::Tensor a, b, scale;
};

std::map<std::string, Entry> adapters_of(const NamedTensors& sd, const std::string& where) {
  std::map<std::string, Entry> out;
  for (const auto& [k, t] : sd) {
    if (ends_with(k, kA))
      out[strip(k, kA)].a = t;
    else if (ends_with(k, kB))
      out[strip(k, kB)].b = t;
    else if (ends_with(k, kScale))
      out[strip(k, kScale)].scale = t;
  }
  for (const auto& [layer, e] : out) {
    if (!e.a.defined() || !e.b.defined() || !e.scale.defined())
      throw std::runtime_error(where + ": adapter of " + layer + " is incomplete (needs " + layer +
                               kA + ", " + layer + kB + " and " + layer + kScale + ")");
    if (e.a.dim() != 2 || e.b.dim() != 2 || e.a.size(0) != e.b.size(1) || e.scale.numel() != 1)
      throw std::runtime_error(where + ": adapter of " + layer + " has shapes A " +
                               std::to_string(e.a.dim()) + "-d [" + std::to_string(e.a.size(0)) +
                               ", ...], B [..., " +
                               std::to_string(e.b.dim() == 2 ? e.b.size(1) : -1) +
                               "]: expected A [r, in], B [out, r] and a one-element scale");
  }
  return out;
}

// s B A in double precision, [out, in].
torch::Tensor delta(const Entry& e) {
  return e.b.to(torch::kDouble).mm(e.a.to(torch::kDouble)) * e.scale.to(torch::kDouble).reshape({});
}

}  // namespace

struct LoraAdapters::Layer {
  std::string name;
  torch::nn::LinearImpl* linear = nullptr;
  torch::Tensor base, a, b, scale;  // the registered W, lora_A, lora_B, lora_scale
  torch::Tensor merged;             // the weight member while adapted: W + s B A
  torch::Tensor mask;  // this step's dropout mask over the input features (scaled), or undefined
};

LoraAdapters::LoraAdapters(torch::nn::Module& model, const LoraConfig& c) : cfg_(c) {
  if (c.rank <= 0) throw std::invalid_argument("lora.rank must be positive to attach adapters");
  // Every pattern is checked before anything is registered: an error leaves the model as it was.
  std::vector<bool> used(c.targets.size(), false);
  std::vector<std::pair<std::string, torch::nn::LinearImpl*>> chosen;
  for (const auto& item : model.named_modules("", false)) {
    auto* lin = item.value()->as<torch::nn::LinearImpl>();
    if (!lin) continue;
    bool match = false;
    for (size_t i = 0; i < c.targets.size(); ++i)
      if (name_matches(c.targets[i], item.key())) match = used[i] = true;
    if (!match) continue;
    if (lin->named_parameters(false).contains("lora_A"))
      throw std::invalid_argument("lora.targets: " + item.key() + " already has adapters");
    chosen.emplace_back(item.key(), lin);
  }
  for (size_t i = 0; i < c.targets.size(); ++i)
    if (!used[i])
      throw std::invalid_argument(
          "lora.targets: pattern '" + c.targets[i] +
          "' matches no Linear layer (names as in the state dict without .weight, e.g. "
          "image_encoder.blocks.0.attn.qkv)");
  for (const auto& [name, lin] : chosen) {
    auto l = std::make_unique<Layer>();
    l->name = name;
    l->linear = lin;
    l->base = lin->named_parameters(false)["weight"];
    const int64_t out = l->base.size(0), in = l->base.size(1);
    const auto opt = l->base.options();
    torch::Tensor a, b;
    {
      torch::NoGradGuard ng;
      const double bound = 1.0 / std::sqrt(static_cast<double>(in));
      a = torch::empty({c.rank, in}, opt).uniform_(-bound, bound);
      b = torch::zeros({out, c.rank}, opt);
    }
    l->a = lin->register_parameter("lora_A", a);
    l->b = lin->register_parameter("lora_B", b);
    l->scale = lin->register_buffer("lora_scale",
                                    torch::full({}, c.alpha / static_cast<double>(c.rank), opt));
    layers_.push_back(std::move(l));
  }
  materialize(false);
}

LoraAdapters::~LoraAdapters() {
  // The layers get their registered weight back.
  for (auto& l : layers_) l->linear->weight = l->base;
}

size_t LoraAdapters::layers() const {
  return layers_.size();
}

std::vector<std::string> LoraAdapters::names() const {
  std::vector<std::string> out;
  for (const auto& l : layers_) out.push_back(l->name);
  return out;
}

std::string LoraAdapters::summary() const {
  int64_t n = 0;
  for (const auto& l : layers_) n += l->a.numel() + l->b.numel();
  std::ostringstream s;
  s << "LoRA: rank " << cfg_.rank << ", alpha " << cfg_.alpha;
  if (cfg_.dropout > 0) s << ", dropout " << cfg_.dropout;
  s << " on " << layers_.size() << " Linear layers (" << millions(n) << " adapter parameters)";
  return s.str();
}

void LoraAdapters::materialize(bool train) {
  torch::NoGradGuard ng;
  for (auto& l : layers_) {
    const bool trains = train && (l->a.requires_grad() || l->b.requires_grad());
    auto a = l->a;
    l->mask = torch::Tensor();
    if (train && cfg_.dropout > 0) {
      l->mask = torch::empty({1, a.size(1)}, a.options()).bernoulli_(1.0 - cfg_.dropout) /
                (1.0 - cfg_.dropout);
      a = a * l->mask;
    }
    auto w = torch::addmm(l->base, l->b * l->scale, a);  // the scale stays a tensor: no device sync
    if (trains) w.requires_grad_(true);
    l->merged = w;
    l->linear->weight = w;
  }
}

void LoraAdapters::pull_grads() {
  torch::NoGradGuard ng;
  for (auto& l : layers_) {
    if (!l->merged.defined() || !l->merged.grad().defined()) continue;
    const auto g = l->merged.grad();  // [out, in]
    const auto& s = l->scale;
    const auto a = l->mask.defined() ? l->a * l->mask : l->a;
    if (l->a.requires_grad()) {
      auto ga = l->b.t().mm(g) * s;  // [r, in]
      if (l->mask.defined()) ga.mul_(l->mask);
      if (l->a.grad().defined())
        l->a.mutable_grad().add_(ga);
      else
        l->a.mutable_grad() = ga;
    }
    if (l->b.requires_grad()) {
      auto gb = g.mm(a.t()) * s;  // [out, r]
      if (l->b.grad().defined())
        l->b.mutable_grad().add_(gb);
      else
        l->b.mutable_grad() = gb;
    }
    l->merged.mutable_grad().reset();
  }
}

bool has_lora(const NamedTensors& sd) {
  for (const auto& kv : sd)
    if (ends_with(kv.first, kA)) return true;
  return false;
}

NamedTensors merge_lora(NamedTensors sd) {
  const auto adapters = adapters_of(sd, "merge_lora");
  if (adapters.empty()) return sd;
  std::map<std::string, size_t> at;
  for (size_t i = 0; i < sd.size(); ++i) at[sd[i].first] = i;
  for (const auto& [layer, e] : adapters) {
    auto it = at.find(layer + ".weight");
    if (it == at.end())
      throw std::runtime_error("merge_lora: adapter of " + layer + " but no " + layer + ".weight");
    auto& w = sd[it->second].second;
    if (w.dim() != 2 || w.size(0) != e.b.size(0) || w.size(1) != e.a.size(1))
      throw std::runtime_error("merge_lora: adapter of " + layer + " does not fit its weight");
    w = (w.detach().to(torch::kDouble) + delta(e)).to(w.scalar_type());
  }
  NamedTensors out;
  for (auto& kv : sd)
    if (!ends_with(kv.first, kA) && !ends_with(kv.first, kB) && !ends_with(kv.first, kScale))
      out.push_back(std::move(kv));
  return out;
}

NamedTensors lora_only(const NamedTensors& sd) {
  NamedTensors out;
  for (const auto& kv : sd)
    if (ends_with(kv.first, kA) || ends_with(kv.first, kB) || ends_with(kv.first, kScale))
      out.emplace_back(kv.first, kv.second.detach());
  return out;
}

int stack_adapters(torch::nn::Module& model, const std::string& path) {
  const auto adapters = adapters_of(pth_read(path), path);
  if (adapters.empty())
    throw std::runtime_error(path + ": no LoRA adapters (entries <layer>.lora_A/B/scale)");
  auto params = model.named_parameters(true);
  torch::NoGradGuard ng;
  for (const auto& [layer, e] : adapters) {
    auto* w = params.find(layer + ".weight");
    if (!w)
      throw std::runtime_error(path + ": adapter of " + layer + ", which the model does not have");
    if (w->dim() != 2 || w->size(0) != e.b.size(0) || w->size(1) != e.a.size(1))
      throw std::runtime_error(path + ": adapter of " + layer + " is [" +
                               std::to_string(e.b.size(0)) + " x " + std::to_string(e.a.size(1)) +
                               "], the layer's weight is [" + std::to_string(w->size(0)) + " x " +
                               std::to_string(w->dim() == 2 ? w->size(1) : -1) + "]");
    w->copy_(w->to(torch::kDouble) + delta(e).to(w->device()));
  }
  return static_cast<int>(adapters.size());
}

}  // namespace sam::train
