#pragma once
// Inference-only CPU kernels of the mask decoder: each replaces a chain of tensor operations that
// would otherwise pass over a large tensor several times (the output upscaling's bias, layer norm
// and GELU after each transposed convolution; the softmax of the image-to-token attention, whose
// rows hold only as many scores as the prompt has tokens; the whole upscaling with the masks'
// products). No autograd: the callers use them only when gradients are off, and keep the tensor-op formulation for training and other devices.
#include <torch/torch.h>

#include <functional>

namespace sam {

/// True when the fused kernels apply: enabled, gradients off, float32 on the CPU, no autocast.
bool decoder_kernels_apply(const torch::Tensor& x);
/// Turns the fused kernels on (the default) or off process-wide (benchmarks and tests compare the
/// two; not for changing while the decoder runs on other threads).
void set_decoder_kernels_enabled(bool on);

/// softmax(scale * x) over the last dimension of a float32 CPU tensor (any shape; a contiguous
/// copy is made when needed). Equal to torch::softmax(x * scale, -1) up to float rounding.
torch::Tensor softmax_last_dim(const torch::Tensor& x, double scale);

/// GELU (the exact erf form) in place over a contiguous float32 CPU tensor; returns x. Equal to
/// torch::gelu up to float rounding; one pass, no new tensor (the encoder's MLP in inference).
torch::Tensor gelu_inplace(torch::Tensor x);

/// The epilogue of a ConvTranspose2d(kernel 2, stride 2) computed as one matrix product on
/// channels-last input: y [B*h*w, 4*O] holds, per input pixel (b, i, j), the O outputs of each
/// sub-pixel (di, dj) in (di, dj, o) order. Returns out [B, 2h, 2w, O] with
///   out[b, 2i+di, 2j+dj, :] = gelu(norm(y[(b, i, j), (di, dj), :] + bias))
/// where norm is LayerNorm2d over the O channels (ln_weight, ln_bias, eps) when ln_weight is
/// defined, else the identity. GELU is the exact (erf) form.
torch::Tensor convt2x2_epilogue(const torch::Tensor& y, int64_t B, int64_t h, int64_t w, int64_t O,
                                const torch::Tensor& bias, const torch::Tensor& ln_weight,
                                const torch::Tensor& ln_bias, double eps);

/// The decoder's whole output upscaling fused with the masks' products, for inference: per row of
/// the transformer's image tokens, ConvTranspose2d(D -> O1, 2, stride 2) + bias, LayerNorm2d and
/// GELU, ConvTranspose2d(O1 -> O2, 2, stride 2) + bias and GELU, then
///   masks[b, m, y, x] = sum_o hyper[b, m, o] up[b, y, x, o],
/// each row's intermediates in buffers that stay in cache (the upscaled image, 8 MB per ViT
/// prompt, is never written). keys [B, h*w, D]; w1 [D, 4*O1] and w2 [O1, 4*O2]: the transposed
/// convolutions' weights with their output columns in (di, dj, o) order; hyper [B, M, O2] ->
/// masks [B, M, 4h, 4w]. Needs BLAS (cpu_sgemm_available()).
torch::Tensor upscale_masks(const torch::Tensor& keys, int64_t h, int64_t w, const torch::Tensor& w1,
                            const torch::Tensor& b1, const torch::Tensor& ln_weight,
                            const torch::Tensor& ln_bias, double eps, const torch::Tensor& w2,
                            const torch::Tensor& b2, const torch::Tensor& hyper);

/// Runs f on the calling thread while libtorch's other threads wait, so that its many small tensor
/// operations (the decoder's tokens' side: a few rows each) run single-threaded, without waking the
/// other threads for microseconds of work each. The waiting threads serve few_rows_linear's parts
/// (the only work f hands them): the tokens' weights stream from memory, 15 MB a ViT prompt, and two
/// cores read them about twice as fast. Nested calls, calls inside a parallel region and a single
/// thread run f alone.
void run_with_helpers(const std::function<void()>& f);

/// x [..., K] weight^T + bias on the calling thread, for inputs of few rows (the decoder's tokens):
/// BLAS packs the whole weight for such products, which then cost several times their arithmetic.
/// weight [N, K] as a Linear's; bias [N] or undefined. Inside run_with_helpers a large weight's
/// outputs are split over the helpers.
torch::Tensor few_rows_linear(const torch::Tensor& x, const torch::Tensor& weight, const torch::Tensor& bias);

}  // namespace sam
