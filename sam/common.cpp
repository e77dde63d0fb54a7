#include "sam/common.h"

#include "sam/decoder_kernels.h"

namespace sam {

LayerNorm2dImpl::LayerNorm2dImpl(int64_t channels, double eps_) : eps(eps_) {
  weight = register_parameter("weight", torch::ones({channels}));
  bias = register_parameter("bias", torch::zeros({channels}));
}

torch::Tensor LayerNorm2dImpl::forward(const torch::Tensor& x) {
  // Same arithmetic as the reference: mean, biased variance, then affine per channel.
  auto u = x.mean(1, /*keepdim=*/true);
  auto d = x - u;
  auto s = d.pow(2).mean(1, true);
  auto y = d / (s + eps).sqrt();
  return weight.view({-1, 1, 1}) * y + bias.view({-1, 1, 1});
}

torch::Tensor layer_norm(torch::nn::LayerNorm& norm, const torch::Tensor& x) {
  const auto t = norm->weight.scalar_type();
  return norm->forward(x.scalar_type() == t ? x : x.to(t));
}

MLPBlockImpl::MLPBlockImpl(int64_t dim, int64_t hidden, bool relu_, double dropout_)
    : relu(relu_), dropout(dropout_) {
  lin1 = register_module("lin1", torch::nn::Linear(dim, hidden));
  lin2 = register_module("lin2", torch::nn::Linear(hidden, dim));
}

torch::Tensor linear(torch::nn::LinearImpl& l, const torch::Tensor& x) {
  constexpr int64_t kFewRows = 32;
  if (x.dim() >= 1 && x.size(-1) > 0 && x.numel() / x.size(-1) <= kFewRows && decoder_kernels_apply(x) &&
      l.weight.scalar_type() == torch::kFloat)
    return few_rows_linear(x, l.weight, l.bias);
  return l.forward(x);
}

torch::Tensor MLPBlockImpl::forward(const torch::Tensor& x) {
  auto h = linear(*lin1, x);
  if (!relu && decoder_kernels_apply(h) && h.is_contiguous())
    gelu_inplace(h);  // in place: the hidden activations (48 MiB in a ViT-B block) written once
  else
    h = relu ? torch::relu(h) : torch::gelu(h);
  if (dropout > 0 && is_training()) h = torch::dropout(h, dropout, true);
  return linear(*lin2, h);
}

MLPImpl::MLPImpl(int64_t in, int64_t hidden, int64_t out, int64_t depth) {
  for (int64_t i = 0; i < depth; ++i) {
    const int64_t a = i == 0 ? in : hidden;
    const int64_t b = i == depth - 1 ? out : hidden;
    layers->push_back(torch::nn::Linear(a, b));
  }
  register_module("layers", layers);
}

torch::Tensor MLPImpl::forward(torch::Tensor x) {
  const size_t n = layers->size();
  for (size_t i = 0; i < n; ++i) {
    x = linear(*layers[i]->as<torch::nn::Linear>(), x);
    if (i + 1 < n) x = torch::relu(x);
  }
  return x;
}

torch::Tensor generator_state(const torch::Device& device) {
  auto gen = at::globalContext().defaultGenerator(device);
  std::lock_guard<std::mutex> lock(gen.mutex());
  return gen.get_state();
}

void set_generator_state(const torch::Device& device, const torch::Tensor& state) {
  auto gen = at::globalContext().defaultGenerator(device);
  std::lock_guard<std::mutex> lock(gen.mutex());
  gen.set_state(state);
}

torch::Tensor drop_path(const torch::Tensor& x, double p, bool training) {
  if (p <= 0.0 || !training) return x;
  std::vector<int64_t> shape(x.dim(), 1);
  shape[0] = x.size(0);
  auto keep = torch::empty(shape, x.options()).bernoulli_(1.0 - p);
  return x * keep.div_(1.0 - p);
}

}  // namespace sam
