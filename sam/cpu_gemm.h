#pragma once
// BLAS's single-precision product called directly, for the CPU kernels that run one product per
// task inside at::parallel_for (the attention slices, the decoder's fused upscaling): no tensor
// objects, no per-call dispatch, and OpenBLAS runs it on the calling thread. PyTorch's libtorch
// exports MKL's sgemm_; with Debian's libtorch samlib_core links libblas.so.3 (sam/CMakeLists.txt).
#include <cstdint>

namespace sam {

/// Whether the build found an sgemm_ (SAM_HAVE_SGEMM); without one gemm_rm throws and the callers
/// keep their other formulations.
bool cpu_sgemm_available();

/// Row-major C [m, n] = alpha op(A) op(B) + beta C, computed as the column-major product
/// C^T = op(B)^T op(A)^T.
void gemm_rm(bool ta, bool tb, int64_t m, int64_t n, int64_t k, float alpha, const float* a,
             int64_t lda, const float* b, int64_t ldb, float beta, float* c, int64_t ldc);

}  // namespace sam
