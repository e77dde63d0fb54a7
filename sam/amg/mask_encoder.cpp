#include "sam/amg/mask_encoder.h"

#include <algorithm>
#include <cstring>
#include <stdexcept>
#include <string>

#include "sam/amg/rle_builder.h"
#include "sam/upscale.h"

namespace sam::amg {

ResizeAxis make_resize_axis(int64_t in, int64_t out) {
  ResizeAxis a;
  for (const BilinearTap& t : bilinear_taps(in, out)) {
    a.i0.push_back(t.i0);
    a.i1.push_back(t.i1);
    a.w0.push_back(t.w0);
    a.w1.push_back(t.w1);
  }
  return a;
}

MaskEncoder::MaskEncoder(int64_t lr, int64_t S, int64_t in_h, int64_t in_w, const CropBox& crop,
                         int64_t img_h, int64_t img_w, double mask_threshold,
                         double stability_offset)
    : lr_(lr),
      S_(S),
      in_h_(in_h),
      in_w_(in_w),
      crop_h_(crop.height()),
      crop_w_(crop.width()),
      img_h_(img_h),
      img_w_(img_w),
      crop_(crop),
      thr_(static_cast<float>(mask_threshold)) {
  if (lr <= 0 || S <= 0 || in_h <= 0 || in_w <= 0 || in_h > S || in_w > S)
    throw std::invalid_argument("MaskEncoder: bad sizes lr=" + std::to_string(lr) +
                                " S=" + std::to_string(S) + " input " + std::to_string(in_h) + "x" +
                                std::to_string(in_w));
  if (crop.x0 < 0 || crop.y0 < 0 || crop.x1 > img_w || crop.y1 > img_h || crop_h_ <= 0 ||
      crop_w_ <= 0)
    throw std::invalid_argument("MaskEncoder: crop box outside the image");
  // The reference thresholds logits against Python floats, which torch compares in float32.
  thr_hi_ = static_cast<float>(mask_threshold + stability_offset);
  thr_lo_ = static_cast<float>(mask_threshold - stability_offset);
  ax_a_ = make_resize_axis(lr, S);
  ay_a_ = make_resize_axis(lr, S);
  ax_b_ = make_resize_axis(in_w, crop_w_);
  ay_b_ = make_resize_axis(in_h, crop_h_);

  // Decision margins: far above the rounding of a few float multiply-adds (relative 1e-6 of the
  // values, which within one gap all share a sign because 0 is one of the thresholds), and
  // larger at the low-res level so that its decisions hold for the resized-input values.
  const float t[3] = {thr_lo_, thr_, thr_hi_};
  std::copy(t, t + 3, sorted_);
  std::sort(sorted_, sorted_ + 3);
  for (int i = 0; i < 3; ++i) {
    const float ea = 4e-3f + 4e-5f * std::fabs(sorted_[i]);
    const float eb = 2e-3f + 2e-5f * std::fabs(sorted_[i]);
    below_a_[i] = sorted_[i] - ea;
    above_a_[i] = sorted_[i] + ea;
    below_b_[i] = sorted_[i] - eb;
    above_b_[i] = sorted_[i] + eb;
  }
  // A value of class k exceeds sorted_[i] exactly for i < k.
  const float named[3] = {thr_, thr_hi_, thr_lo_};
  for (int j = 0; j < 3; ++j) {
    const int idx = static_cast<int>(std::find(sorted_, sorted_ + 3, named[j]) - sorted_);
    for (int k = 0; k < 4; ++k) bit_[k][j] = idx < k ? 1 : 0;
  }
  // first_x[j]: the first output whose source index is >= j (n outputs if none), j = 0..in.
  auto firsts = [](const std::vector<int32_t>& idx, int64_t n, int64_t in) {
    std::vector<int32_t> f(static_cast<size_t>(in + 1), static_cast<int32_t>(n));
    int64_t o = 0;
    for (int64_t j = 0; j <= in; ++j) {
      while (o < n && idx[o] < j) ++o;
      f[j] = static_cast<int32_t>(o);
    }
    return f;
  };
  first_a0_ = firsts(ay_a_.i0, in_h_, lr_);
  first_a1_ = firsts(ay_a_.i1, in_h_, lr_);
  first_b0_ = firsts(ay_b_.i0, crop_h_, in_h_);
  first_b1_ = firsts(ay_b_.i1, crop_h_, in_h_);
}

void MaskEncoder::column(const float* L, int64_t c, float* tmp_lr, float* tmp_in,
                         float* out) const {
  const int64_t a0 = ax_a_.i0[c], a1 = ax_a_.i1[c];
  const float wa0 = ax_a_.w0[c], wa1 = ax_a_.w1[c];
  for (int64_t j = 0; j < lr_; ++j) tmp_lr[j] = L[j * lr_ + a0] * wa0 + L[j * lr_ + a1] * wa1;
  const int32_t* r0 = ay_a_.i0.data();
  const int32_t* r1 = ay_a_.i1.data();
  const float* v0 = ay_a_.w0.data();
  const float* v1 = ay_a_.w1.data();
  for (int64_t r = 0; r < in_h_; ++r) tmp_in[r] = tmp_lr[r0[r]] * v0[r] + tmp_lr[r1[r]] * v1[r];
  const int32_t* q0 = ay_b_.i0.data();
  const int32_t* q1 = ay_b_.i1.data();
  const float* u0 = ay_b_.w0.data();
  const float* u1 = ay_b_.w1.data();
  for (int64_t y = 0; y < crop_h_; ++y) out[y] = tmp_in[q0[y]] * u0[y] + tmp_in[q1[y]] * u1[y];
}

namespace {

// First index in [y, n) whose byte differs from v (0 or 1), or n.
inline int64_t next_change(const uint8_t* b, int64_t y, int64_t n, uint8_t v) {
  const uint64_t pattern = v ? 0x0101010101010101ULL : 0;
  while (y + 8 <= n) {
    uint64_t word;
    std::memcpy(&word, b + y, 8);
    const uint64_t diff = word ^ pattern;
    if (diff) return y + (__builtin_ctzll(diff) >> 3);
    y += 8;
  }
  while (y < n && b[y] == v) ++y;
  return y;
}

}  // namespace

namespace {

constexpr uint8_t kUnsure = 255;

struct Run {
  int32_t a, b;  // [a, b)
  uint8_t k;     // class, or kUnsure
};

// Appends [a, b) of class k, extending the last run when it has the same class.
inline void push_run(std::vector<Run>& v, int32_t a, int32_t b, uint8_t k) {
  if (a >= b) return;
  if (!v.empty() && v.back().k == k && v.back().b == a)
    v.back().b = b;
  else
    v.push_back({a, b, k});
}

// Two run lists covering the same range -> runs of their common class (kUnsure where they
// differ or either is unsure).
void merge_runs(const Run* p, size_t np, const Run* q, size_t nq, std::vector<Run>& out) {
  out.clear();
  size_t i = 0, j = 0;
  int32_t pos = 0;
  while (i < np && j < nq) {
    const int32_t end = std::min(p[i].b, q[j].b);
    push_run(out, pos, end, p[i].k == q[j].k ? p[i].k : kUnsure);
    pos = end;
    if (p[i].b == end) ++i;
    if (q[j].b == end) ++j;
  }
}

// Collects one crop column into the image-size RLE, the area and the box.
struct ColumnSink {
  RunBuilder* rb;  // null when no RLE is wanted
  int64_t y = 0, area = 0, y0 = 0, y1 = -1;
  void add(uint8_t bit, int64_t len) {
    if (len <= 0) return;
    if (bit) {
      area += len;
      if (y1 < 0) y0 = y;
      y1 = y + len - 1;
    }
    if (rb) rb->add(bit, static_cast<uint64_t>(len));
    y += len;
  }
};

}  // namespace

struct MaskEncoder::Scratch {
  struct Slot {
    int64_t c = -1;
    uint32_t stamp = 0;
    std::vector<float> val;  // resized-input values of column c, valid where have == stamp
    std::vector<uint32_t> have;
    std::vector<Run> runs;  // classes over rows 0..in_h
  };
  std::vector<uint8_t> cls;  // low-res classes, row-major
  std::vector<Run> runs0;    // low-res column runs, column i at [off[i], off[i+1])
  std::vector<size_t> off;
  Slot slot[2];
  std::vector<Run> merged;
  std::vector<uint8_t> bits;
  uint32_t stamp = 0;
};

uint8_t MaskEncoder::classify(float v, const float* below, const float* above) const {
  if (v < below[0]) return 0;
  if (v > above[2]) return 3;
  if (v > above[0] && v < below[1]) return 1;
  if (v > above[1] && v < below[2]) return 2;
  return kUnsure;  // near a threshold, or NaN
}

float MaskEncoder::input_value(const float* L, int64_t c, int64_t r) const {
  const int64_t a0 = ax_a_.i0[c], a1 = ax_a_.i1[c];
  const float wa0 = ax_a_.w0[c], wa1 = ax_a_.w1[c];
  const int64_t j0 = ay_a_.i0[r], j1 = ay_a_.i1[r];
  const float t0 = L[j0 * lr_ + a0] * wa0 + L[j0 * lr_ + a1] * wa1;
  const float t1 = L[j1 * lr_ + a0] * wa0 + L[j1 * lr_ + a1] * wa1;
  return t0 * ay_a_.w0[r] + t1 * ay_a_.w1[r];
}

void MaskEncoder::build_input_column(const float* L, int64_t c, Scratch& s, int which) const {
  auto& sl = s.slot[which];
  sl.c = c;
  if (++s.stamp == 0) {  // wrapped: forget every stamp
    for (auto& o : s.slot) std::fill(o.have.begin(), o.have.end(), 0);
    s.stamp = 1;
  }
  sl.stamp = s.stamp;
  sl.runs.clear();
  const size_t a0 = static_cast<size_t>(ax_a_.i0[c]), a1 = static_cast<size_t>(ax_a_.i1[c]);
  merge_runs(s.runs0.data() + s.off[a0], s.off[a0 + 1] - s.off[a0], s.runs0.data() + s.off[a1],
             s.off[a1 + 1] - s.off[a1], s.merged);
  auto compute = [&](int32_t from, int32_t to) {
    for (int32_t r = from; r < to; ++r) {
      const float v = input_value(L, c, r);
      sl.val[r] = v;
      sl.have[r] = sl.stamp;
      push_run(sl.runs, r, r + 1, classify(v, below_b_, above_b_));
    }
  };
  int32_t r = 0;
  for (const Run& run : s.merged) {
    if (run.k == kUnsure) continue;
    // Rows whose two low-res source rows both lie inside the run.
    const int32_t ra = std::max(first_a0_[run.a], r), rb = first_a1_[run.b];
    if (ra >= rb) continue;
    compute(r, ra);
    push_run(sl.runs, ra, rb, run.k);
    r = rb;
  }
  compute(r, static_cast<int32_t>(in_h_));
}

EncodedMask MaskEncoder::encode(const float* L, bool want_rle) const {
  // Reused across calls on the same thread: allocation per mask would cost as much as the work.
  thread_local Scratch s;
  s.runs0.clear();
  for (auto& sl : s.slot) sl.c = -1;
  // Low-res classes and their runs down each column.
  const int64_t n_lr = lr_ * lr_;
  s.cls.resize(static_cast<size_t>(n_lr));
  for (int64_t i = 0; i < n_lr; ++i) s.cls[i] = classify(L[i], below_a_, above_a_);
  s.off.resize(static_cast<size_t>(lr_ + 1));
  for (int64_t i = 0; i < lr_; ++i) {
    s.off[i] = s.runs0.size();
    int32_t start = 0;
    uint8_t k = s.cls[i];
    for (int64_t j = 1; j < lr_; ++j) {
      const uint8_t kj = s.cls[j * lr_ + i];
      if (kj != k) {
        s.runs0.push_back({start, static_cast<int32_t>(j), k});
        start = static_cast<int32_t>(j);
        k = kj;
      }
    }
    s.runs0.push_back({start, static_cast<int32_t>(lr_), k});
  }
  s.off[lr_] = s.runs0.size();
  s.bits.resize(static_cast<size_t>(crop_h_));
  for (auto& sl : s.slot) {
    if (sl.val.size() < static_cast<size_t>(in_h_)) {
      sl.val.resize(static_cast<size_t>(in_h_));
      sl.have.resize(static_cast<size_t>(in_h_), 0);
    }
  }
  auto slot_for = [&](int64_t c, int64_t keep) -> int {
    if (s.slot[0].c == c) return 0;
    if (s.slot[1].c == c) return 1;
    const int w = s.slot[0].c == keep ? 1 : 0;
    build_input_column(L, c, s, w);
    return w;
  };

  EncodedMask m;
  RunBuilder rb;
  const uint64_t H = static_cast<uint64_t>(img_h_);
  if (want_rle) rb.add(0, static_cast<uint64_t>(crop_.x0) * H);
  int64_t hi = 0, lo = 0, area = 0;
  int64_t bx0 = crop_w_, by0 = crop_h_, bx1 = -1, by1 = -1;
  std::vector<Run> col_runs;
  for (int64_t x = 0; x < crop_w_; ++x) {
    const int i0 = slot_for(ax_b_.i0[x], ax_b_.i1[x]);
    const int i1 = slot_for(ax_b_.i1[x], ax_b_.i0[x]);
    auto& s0 = s.slot[i0];
    auto& s1 = s.slot[i1];
    const float wx0 = ax_b_.w0[x], wx1 = ax_b_.w1[x];
    ColumnSink sink{want_rle ? &rb : nullptr};
    if (want_rle) rb.add(0, static_cast<uint64_t>(crop_.y0));
    auto compute = [&](int64_t from, int64_t to) {
      if (from >= to) return;
      const int64_t r_first = ay_b_.i0[from], r_last = ay_b_.i1[to - 1];
      for (auto* sl : {&s0, &s1})
        for (int64_t r = r_first; r <= r_last; ++r)
          if (sl->have[r] != sl->stamp) {
            sl->val[r] = input_value(L, sl->c, r);
            sl->have[r] = sl->stamp;
          }
      const float* v0 = s0.val.data();
      const float* v1 = s1.val.data();
      const int32_t* q0 = ay_b_.i0.data();
      const int32_t* q1 = ay_b_.i1.data();
      const float* u0 = ay_b_.w0.data();
      const float* u1 = ay_b_.w1.data();
      uint8_t* b = s.bits.data();
      // Locals: stores through uint8_t* would otherwise force reloads of the members.
      const float t_hi = thr_hi_, t_lo = thr_lo_, t0 = thr_;
      int64_t h = 0, l = 0;
      for (int64_t y = from; y < to; ++y) {
        const float g0 = v0[q0[y]] * u0[y] + v0[q1[y]] * u1[y];
        const float g1 = v1[q0[y]] * u0[y] + v1[q1[y]] * u1[y];
        const float v = g0 * wx0 + g1 * wx1;
        h += v > t_hi;
        l += v > t_lo;
        b[y - from] = v > t0;
      }
      hi += h;
      lo += l;
      const int64_t n = to - from;
      for (int64_t i = 0; i < n;) {
        const int64_t e = next_change(b, i, n, b[i]);
        sink.add(b[i], e - i);
        i = e;
      }
    };
    merge_runs(s0.runs.data(), s0.runs.size(), s1.runs.data(), s1.runs.size(), col_runs);
    int64_t y = 0;
    for (const Run& run : col_runs) {
      if (run.k == kUnsure) continue;
      const int64_t ya = std::max<int64_t>(first_b0_[run.a], y), yb = first_b1_[run.b];
      if (ya >= yb) continue;
      compute(y, ya);
      const int64_t len = yb - ya;
      hi += bit_[run.k][1] * len;
      lo += bit_[run.k][2] * len;
      sink.add(bit_[run.k][0], len);
      y = yb;
    }
    compute(y, crop_h_);
    if (want_rle) rb.add(0, H - static_cast<uint64_t>(crop_.y1));
    if (sink.area > 0) {
      area += sink.area;
      by0 = std::min(by0, sink.y0);
      by1 = std::max(by1, sink.y1);
      bx0 = std::min(bx0, x);
      bx1 = x;
    }
  }
  if (want_rle) {
    rb.add(0, static_cast<uint64_t>(img_w_ - crop_.x1) * H);
    m.rle = rb.finish(img_h_, img_w_);
  }
  m.n_hi = hi;
  m.n_lo = lo;
  m.area = area;
  if (bx1 >= 0) m.box = {bx0, by0, bx1, by1};
  return m;
}

EncodedMask MaskEncoder::encode_dense(const float* L, bool want_rle) const {
  const int64_t ch = crop_h_;
  std::vector<float> buf(static_cast<size_t>(lr_ + in_h_ + 2 * ch));
  float* tmp_lr = buf.data();
  float* tmp_in = tmp_lr + lr_;
  float* slot[2] = {tmp_in + in_h_, tmp_in + in_h_ + ch};
  std::vector<uint8_t> bits(static_cast<size_t>(ch));
  int64_t slot_c[2] = {-1, -1};
  // Columns of the crop-height resample, cached two at a time (x walks them in order).
  auto get = [&](int64_t c, int64_t keep) -> const float* {
    if (slot_c[0] == c) return slot[0];
    if (slot_c[1] == c) return slot[1];
    const int s = slot_c[0] == keep ? 1 : 0;
    column(L, c, tmp_lr, tmp_in, slot[s]);
    slot_c[s] = c;
    return slot[s];
  };

  EncodedMask m;
  RunBuilder rb;
  const uint64_t H = static_cast<uint64_t>(img_h_);
  if (want_rle) rb.add(0, static_cast<uint64_t>(crop_.x0) * H);
  int64_t hi = 0, lo = 0, area = 0;
  int64_t bx0 = crop_w_, by0 = ch, bx1 = -1, by1 = -1;
  const float thr = thr_, thr_hi = thr_hi_, thr_lo = thr_lo_;
  uint8_t* b = bits.data();
  for (int64_t x = 0; x < crop_w_; ++x) {
    const int64_t c0 = ax_b_.i0[x], c1 = ax_b_.i1[x];
    const float* g0 = get(c0, c1);
    const float* g1 = get(c1, c0);
    const float w0 = ax_b_.w0[x], w1 = ax_b_.w1[x];
    int32_t chi = 0, clo = 0;
    for (int64_t y = 0; y < ch; ++y) {
      const float v = g0[y] * w0 + g1[y] * w1;
      chi += v > thr_hi;
      clo += v > thr_lo;
      b[y] = v > thr;
    }
    hi += chi;
    lo += clo;
    if (want_rle) rb.add(0, static_cast<uint64_t>(crop_.y0));
    int64_t y = 0;
    while (y < ch) {
      const uint8_t v = b[y];
      const int64_t e = next_change(b, y, ch, v);
      if (v) {
        area += e - y;
        by0 = std::min(by0, y);
        by1 = std::max(by1, e - 1);
        bx0 = std::min(bx0, x);
        bx1 = x;
      }
      if (want_rle) rb.add(v, static_cast<uint64_t>(e - y));
      y = e;
    }
    if (want_rle) rb.add(0, H - static_cast<uint64_t>(crop_.y1));
  }
  if (want_rle) {
    rb.add(0, static_cast<uint64_t>(img_w_ - crop_.x1) * H);
    m.rle = rb.finish(img_h_, img_w_);
  }
  m.n_hi = hi;
  m.n_lo = lo;
  m.area = area;
  if (bx1 >= 0) m.box = {bx0, by0, bx1, by1};
  return m;
}

std::vector<float> MaskEncoder::upscale(const float* L) const {
  std::vector<float> out(static_cast<size_t>(crop_h_ * crop_w_));
  std::vector<float> tmp(static_cast<size_t>(lr_ + in_h_ + 2 * crop_h_));
  float* g0 = tmp.data() + lr_ + in_h_;
  float* g1 = g0 + crop_h_;
  for (int64_t x = 0; x < crop_w_; ++x) {
    column(L, ax_b_.i0[x], tmp.data(), tmp.data() + lr_, g0);
    column(L, ax_b_.i1[x], tmp.data(), tmp.data() + lr_, g1);
    for (int64_t y = 0; y < crop_h_; ++y)
      out[y * crop_w_ + x] = g0[y] * ax_b_.w0[x] + g1[y] * ax_b_.w1[x];
  }
  return out;
}

}  // namespace sam::amg
