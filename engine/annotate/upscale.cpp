#include "engine/annotate/upscale.h"

#include <algorithm>
#include <stdexcept>
#include <string>

namespace sam::annotate {

namespace {

// One output index of a bilinear resize: two source indices and their weights, with PyTorch's
// arithmetic (upsample_bilinear2d, align_corners=False: scale = in / out in float, source =
// scale * (d + 0.5) - 0.5 in double rounded to float, clamped at 0; identity when in == out).
struct Tap {
  int i0, i1;
  float l0, l1;
};

std::vector<Tap> bilinear_taps(int in, int out) {
  std::vector<Tap> taps(static_cast<size_t>(out));
  const float scale = static_cast<float>(in) / static_cast<float>(out);
  for (int d = 0; d < out; ++d) {
    if (in == out) {
      taps[d] = {d, d, 1.0f, 0.0f};
      continue;
    }
    float real = static_cast<float>(scale * (d + 0.5) - 0.5);
    if (real < 0) real = 0;
    const int i0 = static_cast<int>(real);
    const int i1 = i0 + (i0 < in - 1 ? 1 : 0);
    const float l1 = std::min(std::max(real - static_cast<float>(i0), 0.0f), 1.0f);
    taps[d] = {i0, i1, 1.0f - l1, l1};
  }
  return taps;
}

// The two resizes of one axis composed: output index -> up to 4 consecutive low-res indices.
struct Composite {
  int start = 0;
  float w[4] = {0, 0, 0, 0};
};

std::vector<Composite> composite_taps(int L, int S, int crop, int out) {
  const auto first = bilinear_taps(L, S);        // L -> S (only 0..crop-1 are used)
  const auto second = bilinear_taps(crop, out);  // crop -> out
  std::vector<Composite> c(static_cast<size_t>(out));
  for (int d = 0; d < out; ++d) {
    const Tap& t = second[d];
    const Tap& a = first[t.i0];
    const Tap& b = first[t.i1];
    const int start = std::min(a.i0, b.i0);
    Composite& k = c[d];
    k.start = start;
    // a.i0 <= a.i1 <= a.i0 + 1 and b.i0 <= a.i0 + 2, so every index lands in start..start+3.
    k.w[a.i0 - start] += t.l0 * a.l0;
    k.w[a.i1 - start] += t.l0 * a.l1;
    k.w[b.i0 - start] += t.l1 * b.l0;
    k.w[b.i1 - start] += t.l1 * b.l1;
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

void check_sizes(int L, int S, int crop_h, int crop_w, int H, int W) {
  if (L <= 0 || S <= 0 || crop_h <= 0 || crop_w <= 0 || H <= 0 || W <= 0 || crop_h > S ||
      crop_w > S || L < 4)
    throw std::invalid_argument("upscale: bad sizes L=" + std::to_string(L) +
                                " S=" + std::to_string(S) + " crop=" + std::to_string(crop_h) +
                                "x" + std::to_string(crop_w) + " out=" + std::to_string(H) + "x" +
                                std::to_string(W));
}

// rows_out(y) = sum_k Cy[y].w[k] * (M * Cx^T)[Cy[y].start + k]; f(y, row) consumes each row.
template <typename F>
void run(const float* low, int L, int S, int crop_h, int crop_w, int H, int W, F&& f) {
  check_sizes(L, S, crop_h, crop_w, H, W);
  const auto cy = composite_taps(L, S, crop_h, H);
  const auto cx = composite_taps(L, S, crop_w, W);
  // Only the low-res rows that some output row reads.
  std::vector<char> needed(static_cast<size_t>(L), 0);
  for (const auto& k : cy)
    for (int j = 0; j < 4; ++j)
      if (k.w[j] != 0) needed[k.start + j] = 1;
  std::vector<float> t(static_cast<size_t>(L) * W, 0.0f);  // M * Cx^T, L x W
  for (int l = 0; l < L; ++l) {
    if (!needed[l]) continue;
    const float* m = low + static_cast<size_t>(l) * L;
    float* row = t.data() + static_cast<size_t>(l) * W;
    for (int x = 0; x < W; ++x) {
      const Composite& k = cx[x];
      const float* p = m + k.start;
      row[x] = k.w[0] * p[0] + k.w[1] * p[1] + k.w[2] * p[2] + k.w[3] * p[3];
    }
  }
  std::vector<float> acc(static_cast<size_t>(W));
  for (int y = 0; y < H; ++y) {
    const Composite& k = cy[y];
    const float* r0 = t.data() + static_cast<size_t>(k.start) * W;
    const float* r1 = r0 + W;
    const float* r2 = r1 + W;
    const float* r3 = r2 + W;
    const float w0 = k.w[0], w1 = k.w[1], w2 = k.w[2], w3 = k.w[3];
    for (int x = 0; x < W; ++x) acc[x] = w0 * r0[x] + w1 * r1[x] + w2 * r2[x] + w3 * r3[x];
    f(y, acc.data());
  }
}

}  // namespace

void upscale_threshold(const float* low, int L, int S, int crop_h, int crop_w, int H, int W,
                       uint8_t* out) {
  run(low, L, S, crop_h, crop_w, H, W, [&](int y, const float* row) {
    uint8_t* o = out + static_cast<size_t>(y) * W;
    for (int x = 0; x < W; ++x) o[x] = row[x] > 0.0f ? 1 : 0;
  });
}

std::vector<float> upscale_logits(const float* low, int L, int S, int crop_h, int crop_w, int H,
                                  int W) {
  std::vector<float> out(static_cast<size_t>(H) * W);
  run(low, L, S, crop_h, crop_w, H, W, [&](int y, const float* row) {
    std::copy(row, row + W, out.begin() + static_cast<ptrdiff_t>(y) * W);
  });
  return out;
}

}  // namespace sam::annotate
