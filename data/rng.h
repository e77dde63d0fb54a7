#pragma once
// A small deterministic random number generator for data work (shuffles, jitter, synthetic
// scenes). The standard <random> distributions are implementation-defined (libstdc++ and libc++
// give different numbers for the same engine), so every draw here is spelled out: xoshiro256**
// seeded through splitmix64, Lemire's unbiased bounded integers, 53-bit doubles.
#include <cmath>
#include <cstdint>
#include <initializer_list>
#include <utility>
#include <vector>

namespace sam::data {

/// splitmix64 step: a well-mixed 64-bit value from `x` (also the seeding function of Rng).
inline uint64_t splitmix64(uint64_t x) {
  x += 0x9E3779B97F4A7C15ULL;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ULL;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBULL;
  return x ^ (x >> 31);
}

/// A seed derived from several integers (seed, epoch, index, ...): order-sensitive, well mixed.
inline uint64_t derive_seed(std::initializer_list<uint64_t> parts) {
  uint64_t h = 0x6A09E667F3BCC909ULL;
  for (uint64_t p : parts) h = splitmix64(h ^ splitmix64(p));
  return h;
}

/// xoshiro256** with helpers. Same seed -> same sequence on every platform.
class Rng {
 public:
  explicit Rng(uint64_t seed = 0) {
    uint64_t x = seed;
    for (auto& s : s_) {
      x += 0x9E3779B97F4A7C15ULL;
      s = splitmix64(x);
    }
  }
  /// 64 random bits.
  uint64_t next() {
    const uint64_t result = rotl(s_[1] * 5, 7) * 9;
    const uint64_t t = s_[1] << 17;
    s_[2] ^= s_[0];
    s_[3] ^= s_[1];
    s_[1] ^= s_[2];
    s_[0] ^= s_[3];
    s_[2] ^= t;
    s_[3] = rotl(s_[3], 45);
    return result;
  }
  /// Uniform integer in [0, n) (n > 0), unbiased (Lemire's multiply-and-reject).
  uint64_t below(uint64_t n) {
    __uint128_t m = static_cast<__uint128_t>(next()) * n;
    uint64_t lo = static_cast<uint64_t>(m);
    if (lo < n) {
      const uint64_t t = (0 - n) % n;
      while (lo < t) {
        m = static_cast<__uint128_t>(next()) * n;
        lo = static_cast<uint64_t>(m);
      }
    }
    return static_cast<uint64_t>(m >> 64);
  }
  /// Uniform integer in [lo, hi] (inclusive; lo <= hi).
  int64_t range(int64_t lo, int64_t hi) {
    return lo + static_cast<int64_t>(below(static_cast<uint64_t>(hi - lo) + 1));
  }
  /// Uniform double in [0, 1) with 53 random bits.
  double uniform() { return static_cast<double>(next() >> 11) * 0x1.0p-53; }
  /// Uniform double in [lo, hi).
  double uniform(double lo, double hi) { return lo + (hi - lo) * uniform(); }
  /// Log-uniform double in [lo, hi) (lo > 0): sizes from tiny to large equally often per octave.
  double log_uniform(double lo, double hi) { return lo * std::exp(uniform() * std::log(hi / lo)); }
  /// True with probability p.
  bool chance(double p) { return uniform() < p; }
  /// Standard normal (Box-Muller, one value per call).
  double normal() {
    const double u1 = 1.0 - uniform();  // (0, 1]
    const double u2 = uniform();
    return std::sqrt(-2.0 * std::log(u1)) * std::cos(6.283185307179586 * u2);
  }
  /// Fisher-Yates shuffle of v (the same permutation for the same state on every platform).
  template <class T>
  void shuffle(std::vector<T>& v) {
    for (size_t i = v.size(); i > 1; --i) std::swap(v[i - 1], v[below(i)]);
  }

 private:
  static uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }
  uint64_t s_[4];
};

}  // namespace sam::data
