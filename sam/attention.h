#pragma once
// Attention cores used by the model's blocks, with CPU fast paths.
//
// libtorch's CPU bmm without MKL multiplies a batch matrix by matrix in a serial loop, each
// product free to use every BLAS thread; for the decoder's many small per-head products (64
// prompts x 8 heads of 7 x 16 x 4096) that loop dominates the decoder's time. The kernels here
// give each thread whole (batch, head) slices instead, with the softmax computed while a slice's
// scores are in cache, and their own backward pass for training.
#include <torch/torch.h>

namespace sam {

/// Which CPU kernel the sliced attention uses: kAuto picks per shape (loops for few query rows or
/// channels, BLAS products otherwise, when the build found a BLAS); the others force one (tests,
/// benchmarks). Process-wide; not for changing while attention runs on other threads.
enum class AttentionKernel { kAuto, kLoop, kGemm };
void set_attention_kernel(AttentionKernel kernel);

/// softmax(q k^T * scale) v with optional dropout on the probabilities (training only).
/// q: [BH, Nq, c], k: [BH, Nk, c], v: [BH, Nk, cv] -> [BH, Nq, cv]. Differentiable. On CPU
/// float32 it runs the sliced kernel; on GPUs at::scaled_dot_product_attention where the libtorch
/// has it; otherwise plain tensor ops.
torch::Tensor attention_core(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                             double scale, double dropout = 0.0, bool training = false);

/// The same computed with plain tensor ops (the reference formulation; used on GPU and in tests).
torch::Tensor attention_core_reference(const torch::Tensor& q, const torch::Tensor& k,
                                       const torch::Tensor& v, double scale, double dropout = 0.0,
                                       bool training = false);

/// a [B, n, k] @ b [B, k, m] -> [B, n, m], differentiable, with the batch split over threads and
/// each product single-threaded (libtorch's CPU bmm multiplies the batch serially, every product
/// asking all BLAS threads to meet, which is slow for small products and worse under load).
/// Other devices and dtypes use torch::bmm.
torch::Tensor batched_matmul(const torch::Tensor& a, const torch::Tensor& b);

/// Whether this libtorch has at::scaled_dot_product_attention with a scale argument (2.1 and
/// later): attention on GPUs goes through it (fused flash / memory-efficient kernels), the CPU
/// keeps the kernels of this file.
bool sdpa_available();

/// attention_core through at::scaled_dot_product_attention (any device; throws without it).
torch::Tensor attention_core_sdpa(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                                  double scale, double dropout = 0.0, bool training = false);

/// Attention over an H x W token grid with decomposed relative-position terms (SAM's encoder):
///   softmax(scale * q k^T + rel_h[..., ky] + rel_w[..., kx]) v
/// q, k, v: [BH, H*W, c]; rel_h: [BH, H, W, H] and rel_w: [BH, H, W, W] (the terms of
/// get_rel_pos applied to the unscaled q). Differentiable in all five inputs. The scores are built
/// per (slice, block of query rows) while they are in cache; the 4096 x 4096 map of a global
/// block never exists whole in inference. On GPUs: rel_pos_attention_sdpa where available.
torch::Tensor rel_pos_attention(const torch::Tensor& q, const torch::Tensor& k,
                                const torch::Tensor& v, const torch::Tensor& rel_h,
                                const torch::Tensor& rel_w, double scale, int64_t H, int64_t W);
/// The same through at::scaled_dot_product_attention, the relative-position terms given as an
/// additive bias [BH, L, L] (as segment-anything-fast does): on CUDA the memory-efficient kernel,
/// which never writes the probabilities. Any device; throws without sdpa_available().
torch::Tensor rel_pos_attention_sdpa(const torch::Tensor& q, const torch::Tensor& k,
                                     const torch::Tensor& v, const torch::Tensor& rel_h,
                                     const torch::Tensor& rel_w, double scale, int64_t H, int64_t W);
/// The same with plain tensor ops on the full score maps (the reference formulation).
torch::Tensor rel_pos_attention_reference(const torch::Tensor& q, const torch::Tensor& k,
                                          const torch::Tensor& v, const torch::Tensor& rel_h,
                                          const torch::Tensor& rel_w, double scale, int64_t H,
                                          int64_t W);

}  // namespace sam
