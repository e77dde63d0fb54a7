#pragma once
// Branch-free float exp and log1p for the CPU kernels' inner loops (attention softmax, the fused
// mask losses). libm's expf/log1pf are calls that stop GCC from vectorising a loop; these are
// plain arithmetic and bit operations, so a loop over them compiles to AVX2 code. Accuracy:
// relative error below 3e-7 over the ranges stated (float rounding is 6e-8).
#include <cstdint>
#include <cstring>

//
// GCC only vectorises the loops that call these in translation units compiled with
// -fno-trapping-math (with the default it will not turn the clamp's comparisons into blends when
// floating-point operations follow): the CMake files give that flag to the files that use them.

/// Marks a kernel to be compiled for AVX-512, AVX2 and baseline x86-64, chosen at run time
/// (GCC's target_clones); elsewhere a plain function. SAM_MULTIVERSION_TRAIN: AVX2 and baseline
/// only, for the kernels that training runs (the attention's forward and backward): their AVX-512
/// clones made a resumed run's losses differ from the uninterrupted run's in the last bits
/// (tools/sam_train's kill-and-resume test), and training promises the same bits.
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define SAM_MULTIVERSION __attribute__((target_clones("avx512f", "avx2", "default")))
#define SAM_MULTIVERSION_TRAIN __attribute__((target_clones("avx2", "default")))
#else
#define SAM_MULTIVERSION
#define SAM_MULTIVERSION_TRAIN
#endif

namespace sam::fastmath {

/// exp(x), x clamped to [-87, 88] (exp(-87) = 1.6e-38, still a normal float). Cody-Waite
/// reduction x = n ln2 + r with |r| <= ln2 / 2, then a degree-6 polynomial for exp(r) (Cephes).
inline float exp(float x) {
  x = x < -87.f ? -87.f : (x > 88.f ? 88.f : x);
  constexpr float kRound = 12582912.f;  // 1.5 * 2^23: adding and subtracting rounds to an integer
  const float fn = (x * 1.44269504088896341f + kRound) - kRound;
  const float r = (x - fn * 0.693359375f) - fn * -2.12194440e-4f;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = p * r * r + r + 1.f;
  const int32_t bits = (static_cast<int32_t>(fn) + 127) << 23;
  float scale;
  std::memcpy(&scale, &bits, sizeof scale);
  return p * scale;
}

/// log(1 + e) for e in [0, 1]: 2 atanh(s) with s = e / (2 + e) <= 1/3, by its odd series to s^11
/// (the first omitted term is below 1.5e-7 of the sum). Exact near 0, where log(1 + e) ~ e.
inline float log1p_unit(float e) {
  const float s = e / (2.f + e);
  const float s2 = s * s;
  float p = 1.f / 11.f;
  p = p * s2 + 1.f / 9.f;
  p = p * s2 + 1.f / 7.f;
  p = p * s2 + 1.f / 5.f;
  p = p * s2 + 1.f / 3.f;
  p = p * s2 + 1.f;
  return 2.f * s * p;
}

/// erf(x), absolute error below 1.5e-7: Abramowitz and Stegun 7.1.26, 1 - t P(t) exp(-x^2) with
/// t = 1 / (1 + p |x|) and the sign restored (the formula libtorch's vectorised CPU erf uses).
inline float erf(float x) {
  const float a = x < 0.f ? -x : x;
  const float t = 1.f / (1.f + 0.3275911f * a);
  float p = 1.061405429f;
  p = p * t - 1.453152027f;
  p = p * t + 1.421413741f;
  p = p * t - 0.284496736f;
  p = p * t + 0.254829592f;
  const float r = 1.f - p * t * exp(-a * a);
  return x < 0.f ? -r : r;
}

/// sum of x[0..n) in 8 interleaved partial sums, then those added: GCC vectorises this (one
/// running float sum it does not: its order is fixed without -fassociative-math, and each add
/// waits on the previous one, four cycles an element). The order differs from a plain loop's.
inline float sum8(const float* x, int64_t n) {
  float lanes[8] = {};
  int64_t i = 0;
  for (; i + 8 <= n; i += 8)
    for (int l = 0; l < 8; ++l) lanes[l] += x[i + l];
  float s = 0.f;
  for (; i < n; ++i) s += x[i];
  for (int l = 0; l < 8; ++l) s += lanes[l];
  return s;
}

/// max of x[0..n), n >= 1, in 8 running maxima (GCC vectorises no float max reduction without
/// -ffinite-math-only; one running maximum waits on its compare at every element). The result
/// is the same in any order.
inline float max8(const float* x, int64_t n) {
  float lanes[8];
  for (int l = 0; l < 8; ++l) lanes[l] = x[0];
  int64_t i = 0;
  for (; i + 8 <= n; i += 8)
    for (int l = 0; l < 8; ++l) lanes[l] = x[i + l] > lanes[l] ? x[i + l] : lanes[l];
  float m = x[0];
  for (; i < n; ++i) m = x[i] > m ? x[i] : m;
  for (int l = 0; l < 8; ++l) m = lanes[l] > m ? lanes[l] : m;
  return m;
}

/// sum of (x[i] - mean)^2 over [0, n), in 8 partial sums as sum8.
inline float sum_sq_dev8(const float* x, int64_t n, float mean) {
  float lanes[8] = {};
  int64_t i = 0;
  for (; i + 8 <= n; i += 8)
    for (int l = 0; l < 8; ++l) {
      const float v = x[i + l] - mean;
      lanes[l] += v * v;
    }
  float s = 0.f;
  for (; i < n; ++i) s += (x[i] - mean) * (x[i] - mean);
  for (int l = 0; l < 8; ++l) s += lanes[l];
  return s;
}

/// GELU with the exact (erf) form, x Phi(x) = x (1 + erf(x / sqrt 2)) / 2, as torch's default.
inline float gelu(float x) {
  return 0.5f * x * (1.f + erf(x * 0.70710678118654752f));
}

}  // namespace sam::fastmath
