#include "sam/cpu_gemm.h"

#include <cstring>
#include <stdexcept>

#ifdef SAM_HAVE_SGEMM
extern "C" void sgemm_(const char* transa, const char* transb, const int* m, const int* n,
                       const int* k, const float* alpha, const float* a, const int* lda,
                       const float* b, const int* ldb, const float* beta, float* c, const int* ldc);
#endif

namespace sam {

#ifdef SAM_HAVE_SGEMM
bool cpu_sgemm_available() { return true; }

void gemm_rm(bool ta, bool tb, int64_t m, int64_t n, int64_t k, float alpha, const float* a,
             int64_t lda, const float* b, int64_t ldb, float beta, float* c, int64_t ldc) {
  // beta = 0: C zeroed here (glibc's vector memset) and accumulated onto, the same bits as BLAS's
  // own zeroing (0 + x is x), which OpenBLAS does in a separate scalar pass: 4 % of a ViT-B
  // prompt's time, its upscaling's products writing 6 M floats.
  if (beta == 0.f && m > 0 && n > 0) {
    if (ldc == n) {
      std::memset(c, 0, static_cast<size_t>(m * n) * sizeof(float));
    } else {
      for (int64_t i = 0; i < m; ++i) std::memset(c + i * ldc, 0, static_cast<size_t>(n) * sizeof(float));
    }
    beta = 1.f;
  }
  const char opa = ta ? 'T' : 'N', opb = tb ? 'T' : 'N';
  const int M = static_cast<int>(m), N = static_cast<int>(n), K = static_cast<int>(k);
  const int LDA = static_cast<int>(lda), LDB = static_cast<int>(ldb), LDC = static_cast<int>(ldc);
  sgemm_(&opb, &opa, &N, &M, &K, &alpha, b, &LDB, a, &LDA, &beta, c, &LDC);
}
#else
bool cpu_sgemm_available() { return false; }

void gemm_rm(bool, bool, int64_t, int64_t, int64_t, float, const float*, int64_t, const float*,
             int64_t, float, float*, int64_t) {
  throw std::logic_error("gemm_rm: built without BLAS (no sgemm_)");
}
#endif

}  // namespace sam
