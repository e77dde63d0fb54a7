#pragma once
// Inference-only CPU kernels of the mask decoder: each replaces a chain of tensor operations that
// would otherwise pass over a large tensor several times (the output upscaling's bias, layer norm
// and GELU after each transposed convolution; the softmax of the image-to-token attention, whose
// rows hold only as many scores as the prompt has tokens). No autograd: the callers use them only
// when gradients are off, and keep the tensor-op formulation for training and other devices.
#include <torch/torch.h>

namespace sam {

/// True when the fused kernels apply: enabled, gradients off, float32 on the CPU, no autocast.
bool decoder_kernels_apply(const torch::Tensor& x);
/// Turns the fused kernels on (the default) or off process-wide (benchmarks and tests compare the
/// two; not for changing while the decoder runs on other threads).
void set_decoder_kernels_enabled(bool on);

/// softmax(scale * x) over the last dimension of a float32 CPU tensor (any shape; a contiguous
/// copy is made when needed). Equal to torch::softmax(x * scale, -1) up to float rounding.
torch::Tensor softmax_last_dim(const torch::Tensor& x, double scale);

/// The epilogue of a ConvTranspose2d(kernel 2, stride 2) computed as one matrix product on
/// channels-last input: y [B*h*w, 4*O] holds, per input pixel (b, i, j), the O outputs of each
/// sub-pixel (di, dj) in (di, dj, o) order. Returns out [B, 2h, 2w, O] with
///   out[b, 2i+di, 2j+dj, :] = gelu(norm(y[(b, i, j), (di, dj), :] + bias))
/// where norm is LayerNorm2d over the O channels (ln_weight, ln_bias, eps) when ln_weight is
/// defined, else the identity. GELU is the exact (erf) form.
torch::Tensor convt2x2_epilogue(const torch::Tensor& y, int64_t B, int64_t h, int64_t w, int64_t O,
                                const torch::Tensor& bias, const torch::Tensor& ln_weight,
                                const torch::Tensor& ln_bias, double eps);

}  // namespace sam
