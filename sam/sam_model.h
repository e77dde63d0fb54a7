#pragma once
// The SAM composite (SA `modeling/sam.py`; SAM_SPEC 2.4): encoder, prompt encoder and decoder,
// with the reference's pre- and post-processing, and state-dict IO by official key names.
#include <string>
#include <utility>
#include <vector>

#include <torch/torch.h>

#include "sam/config.h"
#include "sam/image_encoder.h"
#include "sam/mask_decoder.h"
#include "sam/prompt_encoder.h"
#include "sam/pth_io.h"

namespace sam {

/// image: [B, 3, h, w] float RGB 0-255, h, w <= S -> (image - mean) / std ([3, 1, 1] each),
/// zero-padded at the bottom/right to [B, 3, S, S] (SAM's preprocess; MAE's input).
torch::Tensor normalize_and_pad(const torch::Tensor& image, const torch::Tensor& mean, const torch::Tensor& std,
                                int64_t S);

struct SamImpl : torch::nn::Module {
  explicit SamImpl(const ModelConfig& c);

  /// image: [B, 3, h, w] float RGB 0-255 with max(h, w) == img_size -> normalised and zero-padded
  /// at the bottom/right to [B, 3, S, S].
  torch::Tensor preprocess(const torch::Tensor& image) const;
  /// masks: [B, C, 4G, 4G] low-res logits -> [B, C, H, W]: bilinear to S x S, crop to the
  /// resized input (h, w), bilinear to the original (H, W). On the CPU without gradients (float32)
  /// the two resizes run composed (sam/upscale.h), and `binary`, when given, receives the logits
  /// > 0 (kBool) from the same pass; elsewhere libtorch's interpolate, and binary = logits > 0.
  /// With keep_logits false (binary given) only the thresholded masks are made: the CPU path
  /// writes no logits and an undefined tensor is returned.
  torch::Tensor postprocess_masks(const torch::Tensor& masks, std::pair<int64_t, int64_t> input_hw,
                                  std::pair<int64_t, int64_t> original_hw,
                                  torch::Tensor* binary = nullptr, bool keep_logits = true) const;

  ModelConfig config;
  std::shared_ptr<ImageEncoderBase> image_encoder;  ///< SAM's ViT or a TinyViT student (config.encoder)
  PromptEncoder prompt_encoder{nullptr};
  MaskDecoder mask_decoder{nullptr};
  torch::Tensor pixel_mean, pixel_std;  ///< [3, 1, 1]; not part of the state dict
};
TORCH_MODULE(Sam);

/// Parameters and buffers in the order PyTorch's state_dict() lists them (a module's own
/// parameters, then its buffers, then its children in registration order).
NamedTensors state_dict(const torch::nn::Module& m);
/// Copies `tensors` into the module by exact names. Strict: throws std::runtime_error naming
/// `what` and listing every missing, unexpected and mis-shaped key.
void load_state_dict(torch::nn::Module& m, const NamedTensors& tensors, const std::string& what);
/// Reads an official (or our own) .pth checkpoint into the model, strictly.
void load_checkpoint(Sam& model, const std::string& path);
/// Writes the model's state dict as a torch.save file that Python's torch.load reads.
void save_checkpoint(const Sam& model, const std::string& path);

}  // namespace sam
