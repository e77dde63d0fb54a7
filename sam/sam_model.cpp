#include "sam/sam_model.h"

#include <map>
#include <sstream>

#include "sam/pth_io.h"
#include "sam/tiny_vit.h"
#include "sam/upscale.h"

#include <ATen/Parallel.h>

namespace sam {

namespace F = torch::nn::functional;

SamImpl::SamImpl(const ModelConfig& c) : config(c) {
  c.validate();
  image_encoder = register_module("image_encoder", make_image_encoder(c));
  prompt_encoder = register_module("prompt_encoder", PromptEncoder(c));
  mask_decoder = register_module("mask_decoder", MaskDecoder(c));
  pixel_mean = torch::tensor(std::vector<float>(c.pixel_mean.begin(), c.pixel_mean.end()))
                   .view({3, 1, 1});
  pixel_std = torch::tensor(std::vector<float>(c.pixel_std.begin(), c.pixel_std.end()))
                  .view({3, 1, 1});
}

torch::Tensor normalize_and_pad(const torch::Tensor& image, const torch::Tensor& mean, const torch::Tensor& std,
                                int64_t S) {
  TORCH_CHECK(image.dim() == 4 && image.size(1) == 3 && image.size(2) <= S && image.size(3) <= S,
              "preprocess expects [B, 3, h, w] with h, w <= ", S, "; got ", image.sizes());
  auto x = (image.to(torch::kFloat) - mean.to(image.device())) / std.to(image.device());
  return torch::constant_pad_nd(x, {0, S - x.size(3), 0, S - x.size(2)});
}

torch::Tensor SamImpl::preprocess(const torch::Tensor& image) const {
  return normalize_and_pad(image, pixel_mean, pixel_std, config.img_size);
}

torch::Tensor SamImpl::postprocess_masks(const torch::Tensor& masks,
                                         std::pair<int64_t, int64_t> input_hw,
                                         std::pair<int64_t, int64_t> original_hw,
                                         torch::Tensor* binary, bool keep_logits) const {
  TORCH_CHECK(keep_logits || binary, "postprocess_masks: without the logits, the binary masks must be asked for");
  const int64_t S = config.img_size;
  const auto [H, W] = original_hw;
  if (masks.is_cpu() && masks.scalar_type() == torch::kFloat && masks.dim() == 4 &&
      masks.size(2) == masks.size(3) && masks.size(2) >= 4 &&
      !(torch::GradMode::is_enabled() && masks.requires_grad())) {
    // The composite map: the S x S intermediate never exists, and only the low-res rows the crop
    // reads are resized. Tasks are rows, so that one mask's work spreads over the threads too.
    const auto low = masks.contiguous();
    const int64_t B = low.size(0), C = low.size(1), N = B * C, L = low.size(2);
    const Upscaler u(static_cast<int>(L), static_cast<int>(S), static_cast<int>(input_hw.first),
                     static_cast<int>(input_hw.second), static_cast<int>(H), static_cast<int>(W));
    auto logits = keep_logits ? torch::empty({B, C, H, W}, low.options()) : torch::Tensor();
    if (binary) *binary = torch::empty({B, C, H, W}, low.options().dtype(torch::kBool));
    auto scratch = torch::empty({N, u.scratch_size()}, low.options());
    const float* lp = low.data_ptr<float>();
    float* sp = scratch.data_ptr<float>();
    float* op = keep_logits ? logits.data_ptr<float>() : nullptr;
    auto* bp = binary ? reinterpret_cast<uint8_t*>(binary->data_ptr<bool>()) : nullptr;
    at::parallel_for(0, N * L, 16, [&](int64_t r0, int64_t r1) {
      for (int64_t r = r0; r < r1; ++r)
        u.columns(lp + (r / L) * L * L, sp + (r / L) * u.scratch_size(), static_cast<int>(r % L),
                  static_cast<int>(r % L) + 1);
    });
    at::parallel_for(0, N * H, 8, [&](int64_t r0, int64_t r1) {
      for (int64_t r = r0; r < r1; ++r) {
        const int64_t n = r / H;
        u.rows(sp + n * u.scratch_size(), static_cast<int>(r % H), static_cast<int>(r % H) + 1,
               op ? op + n * H * W : nullptr, bp ? bp + n * H * W : nullptr);
      }
    });
    return logits;
  }
  auto opts = F::InterpolateFuncOptions().mode(torch::kBilinear).align_corners(false);
  auto m = F::interpolate(masks, opts.size(std::vector<int64_t>{S, S}));
  using torch::indexing::Slice;
  m = m.index({Slice(), Slice(), Slice(0, input_hw.first), Slice(0, input_hw.second)});
  // A resize to the same size is the identity (bilinear, align_corners false: every source
  // coordinate is an integer): originals whose longest side is the encoder's size skip it.
  m = original_hw == input_hw ? m.contiguous() : F::interpolate(m, opts.size(std::vector<int64_t>{H, W}));
  if (binary) *binary = m > 0.0;
  return keep_logits ? m : torch::Tensor();
}

namespace {

void collect_state(const torch::nn::Module& m, const std::string& prefix, NamedTensors& out) {
  for (const auto& p : m.named_parameters(/*recurse=*/false)) out.emplace_back(prefix + p.key(), p.value());
  for (const auto& b : m.named_buffers(/*recurse=*/false)) out.emplace_back(prefix + b.key(), b.value());
  for (const auto& child : m.named_children())
    collect_state(*child.value(), prefix + child.key() + ".", out);
}

std::string shape_str(torch::IntArrayRef s) {
  std::ostringstream o;
  o << "(";
  for (size_t i = 0; i < s.size(); ++i) o << (i ? ", " : "") << s[i];
  if (s.size() == 1) o << ",";
  o << ")";
  return o.str();
}

}  // namespace

NamedTensors state_dict(const torch::nn::Module& m) {
  NamedTensors out;
  collect_state(m, "", out);
  return out;
}

void load_state_dict(torch::nn::Module& m, const NamedTensors& tensors, const std::string& what) {
  auto own = state_dict(m);
  std::map<std::string, torch::Tensor> given;
  for (const auto& kv : tensors) given[kv.first] = kv.second;
  std::vector<std::string> missing, unexpected, mismatched;
  for (const auto& kv : own) {
    auto it = given.find(kv.first);
    if (it == given.end()) {
      missing.push_back(kv.first);
    } else if (it->second.sizes() != kv.second.sizes()) {
      mismatched.push_back(kv.first + " (checkpoint " + shape_str(it->second.sizes()) + ", model " +
                           shape_str(kv.second.sizes()) + ")");
    }
  }
  std::map<std::string, bool> own_names;
  for (const auto& kv : own) own_names[kv.first] = true;
  for (const auto& kv : tensors)
    if (!own_names.count(kv.first)) unexpected.push_back(kv.first);
  if (!missing.empty() || !unexpected.empty() || !mismatched.empty()) {
    std::ostringstream msg;
    msg << what << ": checkpoint does not match the model";
    auto list = [&](const char* title, const std::vector<std::string>& v) {
      if (v.empty()) return;
      msg << "\n  " << title << " (" << v.size() << "):";
      const size_t shown = std::min<size_t>(v.size(), 20);
      for (size_t i = 0; i < shown; ++i) msg << "\n    " << v[i];
      if (v.size() > shown) msg << "\n    ... and " << (v.size() - shown) << " more";
    };
    list("missing keys", missing);
    list("unexpected keys", unexpected);
    list("mis-shaped keys", mismatched);
    throw std::runtime_error(msg.str());
  }
  torch::NoGradGuard no_grad;
  for (auto& kv : own) kv.second.copy_(given[kv.first]);
}

void load_checkpoint(Sam& model, const std::string& path) {
  // A TinyViT checkpoint (MobileSAM's) may carry the classifier head SAM does not use.
  const bool tiny_vit = model->config.encoder == "tiny_vit";
  load_state_dict(*model, tiny_vit ? drop_tiny_vit_head(pth_read(path)) : pth_read(path), path);
}

void save_checkpoint(const Sam& model, const std::string& path) {
  NamedTensors sd = state_dict(*model);
  for (auto& kv : sd) kv.second = kv.second.detach();
  pth_write(path, sd);
}

}  // namespace sam
