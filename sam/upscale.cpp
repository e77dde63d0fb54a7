#include "sam/upscale.h"

#include "sam/fast_math.h"

#include <algorithm>
#include <stdexcept>
#include <string>

namespace sam {

namespace {

// Output rows: four weighted low-res rows (already resized along x), written as logits and/or
// thresholded. Loops over contiguous x, vectorised.
SAM_MULTIVERSION
void blend_row(const float* r0, const float* r1, const float* r2, const float* r3, const float* w,
               int W, float* logits, uint8_t* binary) {
  const float w0 = w[0], w1 = w[1], w2 = w[2], w3 = w[3];
  if (logits) {
    for (int x = 0; x < W; ++x) logits[x] = w0 * r0[x] + w1 * r1[x] + w2 * r2[x] + w3 * r3[x];
    if (binary)
      for (int x = 0; x < W; ++x) binary[x] = logits[x] > 0.0f ? 1 : 0;
    return;
  }
  for (int x = 0; x < W; ++x)
    binary[x] = (w0 * r0[x] + w1 * r1[x] + w2 * r2[x] + w3 * r3[x]) > 0.0f ? 1 : 0;
}

}  // namespace

std::vector<BilinearTap> bilinear_taps(int64_t in, int64_t out) {
  if (in <= 0 || out <= 0)
    throw std::invalid_argument("bilinear_taps: sizes must be positive, got " +
                                std::to_string(in) + " -> " + std::to_string(out));
  std::vector<BilinearTap> taps(static_cast<size_t>(out));
  const float scale = static_cast<float>(in) / static_cast<float>(out);
  for (int64_t d = 0; d < out; ++d) {
    if (in == out) {
      taps[d] = {static_cast<int32_t>(d), static_cast<int32_t>(d), 1.0f, 0.0f};
      continue;
    }
    float real = static_cast<float>(scale * (static_cast<double>(d) + 0.5) - 0.5);
    if (real < 0) real = 0;
    const auto i0 = static_cast<int32_t>(real);
    const int32_t i1 = i0 + (i0 < in - 1 ? 1 : 0);
    const float w1 = std::min(std::max(real - static_cast<float>(i0), 0.0f), 1.0f);
    taps[d] = {i0, i1, 1.0f - w1, w1};
  }
  return taps;
}

// The two resizes of one axis composed: output index -> up to 4 consecutive low-res indices.
std::vector<Upscaler::Composite> Upscaler::composite(int L, int S, int crop, int out) {
  const auto first = bilinear_taps(L, S);        // L -> S (only 0..crop-1 are used)
  const auto second = bilinear_taps(crop, out);  // crop -> out
  std::vector<Composite> c(static_cast<size_t>(out));
  for (int d = 0; d < out; ++d) {
    const BilinearTap& t = second[d];
    const BilinearTap& a = first[t.i0];
    const BilinearTap& b = first[t.i1];
    const int start = std::min(a.i0, b.i0);
    Composite& k = c[d];
    k.start = start;
    // a.i0 <= a.i1 <= a.i0 + 1 and b.i0 <= a.i0 + 2, so every index lands in start..start+3.
    k.w[a.i0 - start] += t.w0 * a.w0;
    k.w[a.i1 - start] += t.w0 * a.w1;
    k.w[b.i0 - start] += t.w1 * b.w0;
    k.w[b.i1 - start] += t.w1 * b.w1;
    if (k.start + 3 >= L) {  // keep reads inside 0..L-1 (the extra weights are 0 there)
      const int shift = k.start + 3 - (L - 1);
      for (int s = 0; s < shift; ++s) {
        for (int j = 3; j > 0; --j) k.w[j] = k.w[j - 1];
        k.w[0] = 0;
        --k.start;
      }
    }
  }
  return c;
}

Upscaler::Upscaler(int L, int S, int crop_h, int crop_w, int H, int W) : L_(L), H_(H), W_(W) {
  if (L <= 0 || S <= 0 || crop_h <= 0 || crop_w <= 0 || H <= 0 || W <= 0 || crop_h > S ||
      crop_w > S || L < 4)
    throw std::invalid_argument("upscale: bad sizes L=" + std::to_string(L) + " S=" + std::to_string(S) +
                                " crop=" + std::to_string(crop_h) + "x" + std::to_string(crop_w) +
                                " out=" + std::to_string(H) + "x" + std::to_string(W));
  cy_ = composite(L, S, crop_h, H);
  cx_ = composite(L, S, crop_w, W);
  needed_.assign(static_cast<size_t>(L), 0);
  for (const auto& k : cy_)
    for (int j = 0; j < 4; ++j)
      if (k.w[j] != 0) needed_[k.start + j] = 1;
}

void Upscaler::columns(const float* low, float* scratch, int l0, int l1) const {
  for (int l = l0; l < l1; ++l) {
    float* row = scratch + static_cast<size_t>(l) * W_;
    if (!needed_[l]) {
      // Read with weight 0 by a neighbouring output row: any finite value will do.
      std::fill(row, row + W_, 0.0f);
      continue;
    }
    const float* m = low + static_cast<size_t>(l) * L_;
    for (int x = 0; x < W_; ++x) {
      const Composite& k = cx_[x];
      const float* p = m + k.start;
      row[x] = k.w[0] * p[0] + k.w[1] * p[1] + k.w[2] * p[2] + k.w[3] * p[3];
    }
  }
}

void Upscaler::rows(const float* scratch, int y0, int y1, float* logits, uint8_t* binary) const {
  for (int y = y0; y < y1; ++y) {
    const Composite& k = cy_[y];
    const float* r0 = scratch + static_cast<size_t>(k.start) * W_;
    const size_t o = static_cast<size_t>(y) * W_;
    blend_row(r0, r0 + W_, r0 + 2 * W_, r0 + 3 * W_, k.w, W_, logits ? logits + o : nullptr,
              binary ? binary + o : nullptr);
  }
}

void upscale_threshold(const float* low, int L, int S, int crop_h, int crop_w, int H, int W,
                       uint8_t* out) {
  const Upscaler u(L, S, crop_h, crop_w, H, W);
  std::vector<float> scratch(static_cast<size_t>(u.scratch_size()));
  u.columns(low, scratch.data(), 0, L);
  u.rows(scratch.data(), 0, H, nullptr, out);
}

std::vector<float> upscale_logits(const float* low, int L, int S, int crop_h, int crop_w, int H,
                                  int W) {
  const Upscaler u(L, S, crop_h, crop_w, H, W);
  std::vector<float> scratch(static_cast<size_t>(u.scratch_size())), out(static_cast<size_t>(H) * W);
  u.columns(low, scratch.data(), 0, L);
  u.rows(scratch.data(), 0, H, out.data(), nullptr);
  return out;
}

}  // namespace sam
