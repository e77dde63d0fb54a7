// COCO RLE (cocoapi maskApi.c semantics), polygon/box rasterisation and JSON helpers.
//
// Encode/decode speed: the mask is row-major but runs are column-major. Instead of a strided
// walk, rows are read sequentially in blocks of 64 and packed (SWAR byte tricks, 8 pixels per
// uint64 op, auto-vectorised) into per-8-column accumulators; an 8x8 byte transpose per group
// then yields one uint64 bitmap word per column per 64 rows, and runs are found with
// count-trailing-zeros on those words. Decode is the reverse: runs are painted into the column
// bitmaps, which are transposed back and expanded to row-major 0/1 bytes.
#include "data/mask/rle.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <stdexcept>

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "rle.cpp assumes a little-endian target (8-byte loads map byte i to bits 8i..8i+7)"
#endif

namespace sam::mask {
namespace {

constexpr uint64_t kMaxPixels = std::numeric_limits<uint32_t>::max();
constexpr uint64_t kLow7 = 0x7f7f7f7f7f7f7f7fULL;
constexpr uint64_t kHigh = 0x8080808080808080ULL;
constexpr uint64_t kOnes = 0x0101010101010101ULL;

[[noreturn]] void fail(const std::string& msg) {
  throw std::invalid_argument(msg);
}

std::string size_str(int64_t h, int64_t w) {
  return std::to_string(h) + "x" + std::to_string(w);
}

// Throws unless h, w >= 0 and h*w fits cocoapi's 32-bit counts; returns h*w.
uint64_t checked_pixels(int64_t h, int64_t w, const char* what) {
  if (h < 0 || w < 0) fail(std::string(what) + ": negative size " + size_str(h, w));
  const uint64_t uh = static_cast<uint64_t>(h), uw = static_cast<uint64_t>(w);
  if (uh != 0 && uw > kMaxPixels / uh)
    fail(std::string(what) + ": size " + size_str(h, w) + " has more than 2^32-1 pixels");
  return uh * uw;
}

inline int ctz64(uint64_t v) {
#if defined(__GNUC__) || defined(__clang__)
  return __builtin_ctzll(v);
#else
  int n = 0;
  while (!(v & 1)) v >>= 1, ++n;
  return n;
#endif
}

// 0x80 in every byte of v that is nonzero, 0x00 elsewhere.
inline uint64_t nonzero_high_bits(uint64_t v) {
  return (((v & kLow7) + kLow7) | v) & kHigh;
}

// Transposes the 8x8 byte matrix whose row s is r[s] (column i = byte i): afterwards byte s of
// r[i] is the old byte i of r[s]. Three rounds of off-diagonal block swaps (4x4, 2x2, 1x1).
inline void transpose8x8_bytes(uint64_t r[8]) {
  for (int i = 0; i < 4; ++i) {
    const uint64_t a = r[i], b = r[i + 4];
    r[i] = (a & 0x00000000FFFFFFFFULL) | (b << 32);
    r[i + 4] = (a >> 32) | (b & 0xFFFFFFFF00000000ULL);
  }
  constexpr uint64_t m2 = 0x0000FFFF0000FFFFULL;
  for (int i : {0, 1, 4, 5}) {
    const uint64_t a = r[i], b = r[i + 2];
    r[i] = (a & m2) | ((b << 16) & ~m2);
    r[i + 2] = ((a >> 16) & m2) | (b & ~m2);
  }
  constexpr uint64_t m1 = 0x00FF00FF00FF00FFULL;
  for (int i : {0, 2, 4, 6}) {
    const uint64_t a = r[i], b = r[i + 1];
    r[i] = (a & m1) | ((b << 8) & ~m1);
    r[i + 1] = ((a >> 8) & m1) | (b & ~m1);
  }
}

// Forces a product to be rounded to double before it is added to anything: cocoapi's reference
// build does not fuse multiply-adds, but GCC contracts them across statements with -mfma
// (-march=native), which changes rleFrPoly's rounding on a few boundary points.
inline double rounded(double product) {
  volatile double v = product;
  return v;
}

// Sets bits [y0, y1) of one column's bitmap (y0 < y1).
inline void set_bits(uint64_t* words, uint64_t y0, uint64_t y1) {
  const uint64_t k0 = y0 / 64, k1 = (y1 - 1) / 64;
  const uint64_t lo = ~0ULL << (y0 % 64), hi = ~0ULL >> (63 - (y1 - 1) % 64);
  if (k0 == k1) {
    words[k0] |= lo & hi;
    return;
  }
  words[k0] |= lo;
  for (uint64_t k = k0 + 1; k < k1; ++k) words[k] = ~0ULL;
  words[k1] |= hi;
}

// Walks two validated same-size RLEs in lockstep, calling f(length, a_set, b_set) per segment.
template <class F>
void walk_pair(const Rle& a, const Rle& b, F&& f) {
  const uint64_t total = static_cast<uint64_t>(a.h) * static_cast<uint64_t>(a.w);
  size_t ia = 0, ib = 0;
  uint64_t ra = a.counts.empty() ? 0 : a.counts[0], rb = b.counts.empty() ? 0 : b.counts[0];
  for (uint64_t done = 0; done < total;) {
    while (ra == 0) ra = a.counts[++ia];  // validated: a nonzero run follows while done < total
    while (rb == 0) rb = b.counts[++ib];
    const uint64_t c = std::min(ra, rb);
    f(c, (ia & 1) != 0, (ib & 1) != 0);
    ra -= c;
    rb -= c;
    done += c;
  }
}

void check_same_size(const Rle& a, const Rle& b, const char* what) {
  if (a.h != b.h || a.w != b.w)
    fail(std::string(what) + ": RLE sizes differ (" + size_str(a.h, a.w) + " vs " +
         size_str(b.h, b.w) + ")");
}

// Pixel extent of the set pixels: {xs, ys, xe, ye} inclusive; returns false for an empty mask.
bool extent(const Rle& r, uint64_t e[4]) {
  rle_validate(r);
  const uint64_t h = static_cast<uint64_t>(r.h);
  uint64_t xs = ~0ULL, ys = ~0ULL, xe = 0, ye = 0, pos = 0;
  bool any = false;
  for (size_t j = 0; j < r.counts.size(); ++j) {
    const uint64_t c = r.counts[j];
    if ((j & 1) && c > 0) {
      const uint64_t first = pos, last = pos + c - 1;
      const uint64_t x0 = first / h, x1 = last / h;
      xs = std::min(xs, x0);
      xe = std::max(xe, x1);
      if (x1 > x0) {  // the run wraps a column end: it covers row h-1 and row 0
        ys = 0;
        ye = h - 1;
      } else {
        ys = std::min(ys, first % h);
        ye = std::max(ye, last % h);
      }
      any = true;
    }
    pos += c;
  }
  e[0] = xs, e[1] = ys, e[2] = xe, e[3] = ye;
  return any;
}

}  // namespace

void rle_validate(const Rle& r) {
  const uint64_t n = checked_pixels(r.h, r.w, "RLE");
  uint64_t sum = 0;  // cannot wrap: that would take more than 2^32 counts
  for (const uint32_t c : r.counts) sum += c;
  if (sum != n)
    fail("RLE: counts sum to " + std::to_string(sum) + " but the size " + size_str(r.h, r.w) +
         " has " + std::to_string(n) + " pixels");
}

Rle rle_encode(const uint8_t* mask, int64_t h, int64_t w) {
  checked_pixels(h, w, "rle_encode");
  Rle r;
  r.h = h;
  r.w = w;
  if (h == 0 || w == 0) {
    r.counts = {0};
    return r;
  }
  // Column bitmaps: column x occupies words [x*wpc, (x+1)*wpc); rows >= h stay 0.
  const int64_t wpc = (h + 63) / 64, ngroups = (w + 7) / 8, full_groups = w / 8;
  std::vector<uint64_t> bits(static_cast<size_t>(w * wpc));
  // acc[s*ngroups + g], byte i, bit r: pixel (yb + 8s + r, 8g + i) of the current 64-row block.
  // Rows are read sequentially (the inner loop vectorises); each block is then transposed.
  std::vector<uint64_t> acc(static_cast<size_t>(8 * ngroups));
  for (int64_t yb = 0, word = 0; yb < h; yb += 64, ++word) {
    std::fill(acc.begin(), acc.end(), 0);
    const int64_t nrows = std::min<int64_t>(64, h - yb);
    for (int64_t r = 0; r < nrows; ++r) {
      const uint8_t* row = mask + (yb + r) * w;
      uint64_t* a = acc.data() + (r >> 3) * ngroups;
      const int shift = 7 - static_cast<int>(r & 7);
      for (int64_t g = 0; g < full_groups; ++g) {
        uint64_t v;
        std::memcpy(&v, row + 8 * g, 8);
        a[g] |= nonzero_high_bits(v) >> shift;
      }
      if (full_groups < ngroups) {
        uint64_t v = 0;
        std::memcpy(&v, row + 8 * full_groups, static_cast<size_t>(w - 8 * full_groups));
        a[full_groups] |= nonzero_high_bits(v) >> shift;
      }
    }
    for (int64_t g = 0; g < ngroups; ++g) {
      uint64_t col[8];
      for (int s = 0; s < 8; ++s) col[s] = acc[static_cast<size_t>(s * ngroups + g)];
      transpose8x8_bytes(col);  // col[i] bit 8s+r: pixel (yb + 8s + r, 8g + i)
      const int64_t ncols = std::min<int64_t>(8, w - 8 * g);
      for (int64_t i = 0; i < ncols; ++i)
        bits[static_cast<size_t>((8 * g + i) * wpc + word)] = col[i];
    }
  }
  // Runs over the column-major bit sequence; the state carries across column boundaries.
  const int tail = static_cast<int>(h % 64);
  const uint64_t tail_mask = tail ? (1ULL << tail) - 1 : ~0ULL;
  uint64_t run = 0;
  bool value = false;
  r.counts.reserve(64);
  const uint64_t* p = bits.data();
  for (int64_t x = 0; x < w; ++x) {
    for (int64_t k = 0; k < wpc; ++k, ++p) {
      const uint64_t valid = k + 1 == wpc ? tail_mask : ~0ULL;
      const int nvalid = k + 1 == wpc && tail ? tail : 64;
      uint64_t diff = (value ? ~*p : *p) & valid;  // bits that differ from the current run value
      int pos = 0;
      while (diff) {
        const int t = ctz64(diff);
        run += static_cast<uint64_t>(t - pos);
        r.counts.push_back(static_cast<uint32_t>(run));
        run = 0;
        value = !value;
        pos = t;
        diff = ~diff & valid & (~0ULL << t);
      }
      run += static_cast<uint64_t>(nvalid - pos);
    }
  }
  r.counts.push_back(static_cast<uint32_t>(run));
  return r;
}

void rle_decode(const Rle& r, uint8_t* out) {
  rle_validate(r);
  const int64_t h = r.h, w = r.w;
  if (h == 0 || w == 0) return;
  const int64_t wpc = (h + 63) / 64;
  std::vector<uint64_t> bits(static_cast<size_t>(w * wpc), 0);
  const uint64_t uh = static_cast<uint64_t>(h);
  uint64_t pos = 0;
  for (size_t j = 0; j < r.counts.size(); ++j) {
    const uint64_t c = r.counts[j];
    if ((j & 1) && c > 0) {  // paint [pos, pos+c) column by column
      for (uint64_t a = pos, end = pos + c; a < end;) {
        const uint64_t x = a / uh, y0 = a % uh, y1 = std::min(uh, y0 + (end - a));
        set_bits(bits.data() + x * static_cast<uint64_t>(wpc), y0, y1);
        a += y1 - y0;
      }
    }
    pos += c;
  }
  // Unpack 64-row blocks: transpose 8 column words per 8-column group into acc (layout as in
  // rle_encode), then expand bit r of every byte to a 0/1 byte, writing rows sequentially.
  const int64_t ngroups = (w + 7) / 8, full_groups = w / 8;
  std::vector<uint64_t> acc(static_cast<size_t>(8 * ngroups));
  for (int64_t yb = 0, word = 0; yb < h; yb += 64, ++word) {
    for (int64_t g = 0; g < ngroups; ++g) {
      uint64_t col[8] = {0, 0, 0, 0, 0, 0, 0, 0};
      const int64_t ncols = std::min<int64_t>(8, w - 8 * g);
      for (int64_t i = 0; i < ncols; ++i)
        col[i] = bits[static_cast<size_t>((8 * g + i) * wpc + word)];
      transpose8x8_bytes(col);
      for (int s = 0; s < 8; ++s) acc[static_cast<size_t>(s * ngroups + g)] = col[s];
    }
    const int64_t nrows = std::min<int64_t>(64, h - yb);
    for (int64_t r = 0; r < nrows; ++r) {
      uint8_t* row = out + (yb + r) * w;
      const uint64_t* a = acc.data() + (r >> 3) * ngroups;
      const int shift = static_cast<int>(r & 7);
      for (int64_t g = 0; g < full_groups; ++g) {
        const uint64_t v = (a[g] >> shift) & kOnes;
        std::memcpy(row + 8 * g, &v, 8);
      }
      if (full_groups < ngroups) {
        const uint64_t v = (a[full_groups] >> shift) & kOnes;
        std::memcpy(row + 8 * full_groups, &v, static_cast<size_t>(w - 8 * full_groups));
      }
    }
  }
}

std::string rle_to_string(const Rle& r) {
  std::string s;
  s.reserve(r.counts.size() * 2);
  for (size_t i = 0; i < r.counts.size(); ++i) {
    int64_t x = r.counts[i];
    if (i > 2) x -= r.counts[i - 2];  // cocoapi deltas start at i = 3 (not 2)
    for (;;) {
      int c = static_cast<int>(x & 0x1f);
      x >>= 5;  // arithmetic shift (sign-propagating) on every supported compiler
      const bool more = (c & 0x10) ? x != -1 : x != 0;
      if (more) c |= 0x20;
      s.push_back(static_cast<char>(c + 48));
      if (!more) break;
    }
  }
  return s;
}

Rle rle_from_string(std::string_view s, int64_t h, int64_t w) {
  checked_pixels(h, w, "RLE string");
  Rle r;
  r.h = h;
  r.w = w;
  r.counts.reserve(s.size());
  size_t p = 0;
  while (p < s.size()) {
    const size_t start = p, index = r.counts.size();
    auto where = [&] {
      return " in count #" + std::to_string(index) + " (starting at offset " +
             std::to_string(start) + ")";
    };
    int64_t x = 0;
    for (int k = 0;; ++k) {
      if (p >= s.size())
        fail("RLE string: truncated: the string ends inside a count" + where() +
             " (its last character has the continuation bit 0x20)");
      const unsigned char ch = static_cast<unsigned char>(s[p]);
      if (ch < 48 || ch > 111)
        fail("RLE string: invalid character (code " + std::to_string(ch) + ") at offset " +
             std::to_string(p) + "; valid characters are codes 48..111 ('0'..'o')");
      if (k == 7)
        fail("RLE string: overflow" + where() + ": more than 7 characters, beyond 32-bit counts");
      const int c = ch - 48;
      x |= static_cast<int64_t>(c & 0x1f) << (5 * k);
      ++p;
      if (!(c & 0x20)) {
        if (c & 0x10) x -= static_cast<int64_t>(1) << (5 * (k + 1));  // sign-extend
        break;
      }
    }
    if (index > 2) x += r.counts[index - 2];
    if (x < 0) fail("RLE string: negative run length " + std::to_string(x) + where());
    if (x > static_cast<int64_t>(kMaxPixels))
      fail("RLE string: overflow" + where() + ": run length " + std::to_string(x) +
           " exceeds 2^32-1");
    r.counts.push_back(static_cast<uint32_t>(x));
  }
  rle_validate(r);
  return r;
}

uint64_t rle_area(const Rle& r) {
  uint64_t a = 0;
  for (size_t j = 1; j < r.counts.size(); j += 2) a += r.counts[j];
  return a;
}

std::array<double, 4> rle_bbox_coco(const Rle& r) {
  uint64_t e[4];
  if (!extent(r, e)) return {0, 0, 0, 0};
  return {static_cast<double>(e[0]), static_cast<double>(e[1]),
          static_cast<double>(e[2] - e[0] + 1), static_cast<double>(e[3] - e[1] + 1)};
}

std::array<int64_t, 4> rle_bbox_inclusive(const Rle& r) {
  uint64_t e[4];
  if (!extent(r, e)) return {0, 0, 0, 0};
  return {static_cast<int64_t>(e[0]), static_cast<int64_t>(e[1]), static_cast<int64_t>(e[2]),
          static_cast<int64_t>(e[3])};
}

double rle_iou(const Rle& a, const Rle& b, bool b_is_crowd) {
  rle_validate(a);
  rle_validate(b);
  check_same_size(a, b, "rle_iou");
  uint64_t inter = 0, uni = 0;
  walk_pair(a, b, [&](uint64_t c, bool va, bool vb) {
    if (va || vb) uni += c;
    if (va && vb) inter += c;
  });
  if (inter == 0) return 0.0;
  const uint64_t denom = b_is_crowd ? rle_area(a) : uni;
  return static_cast<double>(inter) / static_cast<double>(denom);
}

Rle rle_merge(const std::vector<Rle>& rles, bool intersect) {
  if (rles.empty()) return Rle{};
  for (const Rle& r : rles) {
    rle_validate(r);
    check_same_size(rles[0], r, "rle_merge");
  }
  Rle acc = rles[0];
  for (size_t i = 1; i < rles.size(); ++i) {
    Rle out;
    out.h = acc.h;
    out.w = acc.w;
    bool cur = false;  // canonical output: starts with a (possibly empty) 0-run, maximal runs
    uint64_t len = 0;
    walk_pair(acc, rles[i], [&](uint64_t c, bool va, bool vb) {
      const bool v = intersect ? (va && vb) : (va || vb);
      if (v == cur) {
        len += c;
      } else {
        out.counts.push_back(static_cast<uint32_t>(len));
        cur = v;
        len = c;
      }
    });
    out.counts.push_back(static_cast<uint32_t>(len));
    acc = std::move(out);
  }
  return acc;
}

Rle rle_from_polygon(const std::vector<double>& xy, int64_t h, int64_t w) {
  checked_pixels(h, w, "rle_from_polygon");
  if (xy.size() % 2)
    fail("rle_from_polygon: odd number of coordinates (" + std::to_string(xy.size()) +
         "); expected x0,y0,x1,y1,...");
  for (size_t i = 0; i < xy.size(); ++i)
    if (!std::isfinite(xy[i]) || std::fabs(xy[i]) > 1e8)
      fail("rle_from_polygon: coordinate #" + std::to_string(i) + " (" + std::to_string(xy[i]) +
           ") is not finite or exceeds 1e8 in magnitude");
  Rle r;
  r.h = h;
  r.w = w;
  if (h == 0 || w == 0) {
    r.counts = {0};
    return r;
  }
  const double scale = 5;
  const size_t k = xy.size() / 2;
  // Vertices on the 5x upsampled grid, rounded the cocoapi way (truncation of v*5 + 0.5).
  std::vector<int64_t> vx(k + 1), vy(k + 1);
  for (size_t j = 0; j < k; ++j) {
    vx[j] = static_cast<int64_t>(rounded(scale * xy[2 * j]) + .5);
    vy[j] = static_cast<int64_t>(rounded(scale * xy[2 * j + 1]) + .5);
  }
  if (k > 0) vx[k] = vx[0], vy[k] = vy[0];

  // Walk the dense boundary (every upsampled column/row step of every edge, from the edge start to
  // its end); each step across the centre line of a pixel column gives one toggle position
  // x*h + y, y being the first pixel row whose centre lies below the crossing.
  std::vector<uint64_t> toggles;
  bool have_prev = false;
  int64_t pu = 0, pv = 0;
  auto visit = [&](int64_t u, int64_t v) {
    if (have_prev && u != pu) {
      double xd = static_cast<double>(u < pu ? u : u - 1);
      xd = (xd + .5) / scale - .5;
      if (std::floor(xd) == xd && xd >= 0 && xd <= static_cast<double>(w - 1)) {
        double yd = static_cast<double>(v < pv ? v : pv);
        yd = (yd + .5) / scale - .5;
        if (yd < 0)
          yd = 0;
        else if (yd > static_cast<double>(h))
          yd = static_cast<double>(h);
        yd = std::ceil(yd);
        toggles.push_back(static_cast<uint64_t>(xd) * static_cast<uint64_t>(h) +
                          static_cast<uint64_t>(yd));
      }
    }
    pu = u;
    pv = v;
    have_prev = true;
  };
  for (size_t j = 0; j < k; ++j) {
    int64_t xs = vx[j], xe = vx[j + 1], ys = vy[j], ye = vy[j + 1];
    const int64_t dx = std::llabs(xe - xs), dy = std::llabs(ys - ye);
    if (dx == 0 && dy == 0) {  // repeated vertex (cocoapi computes 0/0 here; the value is unused)
      visit(xs, ys);
      continue;
    }
    // Points are always visited from the edge start to its end, but computed from the endpoint
    // with the smaller major coordinate, so that both directions round identically.
    const bool flip = (dx >= dy && xs > xe) || (dx < dy && ys > ye);
    if (flip) std::swap(xs, xe), std::swap(ys, ye);
    if (dx >= dy) {
      const double s = static_cast<double>(ye - ys) / static_cast<double>(dx);
      for (int64_t d = 0; d <= dx; ++d) {
        const int64_t t = flip ? dx - d : d;
        const double v = static_cast<double>(ys) + rounded(s * static_cast<double>(t)) + .5;
        visit(t + xs, static_cast<int64_t>(v));
      }
    } else {
      const double s = static_cast<double>(xe - xs) / static_cast<double>(dy);
      for (int64_t d = 0; d <= dy; ++d) {
        const int64_t t = flip ? dy - d : d;
        const double u = static_cast<double>(xs) + rounded(s * static_cast<double>(t)) + .5;
        visit(static_cast<int64_t>(u), t + ys);
      }
    }
  }

  // Sorted toggle positions (plus the end h*w) -> run lengths; two toggles at the same position
  // cancel, which merges the runs on either side (cocoapi's zero-difference rule).
  toggles.push_back(static_cast<uint64_t>(h) * static_cast<uint64_t>(w));
  std::sort(toggles.begin(), toggles.end());
  uint64_t prev = 0;
  for (uint64_t& t : toggles) {
    const uint64_t cur = t;
    t -= prev;
    prev = cur;
  }
  r.counts.reserve(toggles.size());
  size_t j = 0;
  r.counts.push_back(static_cast<uint32_t>(toggles[j++]));
  while (j < toggles.size()) {
    if (toggles[j] > 0) {
      r.counts.push_back(static_cast<uint32_t>(toggles[j++]));
    } else {
      ++j;
      if (j < toggles.size()) r.counts.back() += static_cast<uint32_t>(toggles[j++]);
    }
  }
  return r;
}

Rle rle_from_bbox(double x, double y, double bw, double bh, int64_t h, int64_t w) {
  const double xe = x + bw, ye = y + bh;
  return rle_from_polygon({x, y, x, ye, xe, ye, xe, y}, h, w);
}

nlohmann::json rle_to_json(const Rle& r, bool compressed) {
  nlohmann::json j;
  j["size"] = {r.h, r.w};
  if (compressed)
    j["counts"] = rle_to_string(r);
  else
    j["counts"] = r.counts;
  return j;
}

Rle rle_from_json(const nlohmann::json& j) {
  if (!j.is_object())
    fail(std::string("RLE JSON: expected an object {\"size\":[h,w],\"counts\":...}, got ") +
         j.type_name());
  const auto size = j.find("size");
  if (size == j.end()) fail("RLE JSON: missing \"size\"");
  if (!size->is_array() || size->size() != 2)
    fail("RLE JSON: \"size\" must be an array [h, w] of two non-negative integers, got " +
         size->dump());
  int64_t hw[2];
  for (int i = 0; i < 2; ++i) {
    const auto& v = (*size)[static_cast<size_t>(i)];
    const bool ok = v.is_number_unsigned() || (v.is_number_integer() && v.get<int64_t>() >= 0);
    if (!ok || (v.is_number_unsigned() && v.get<uint64_t>() > kMaxPixels))
      fail("RLE JSON: \"size\" must be an array [h, w] of two non-negative integers, got " +
           size->dump());
    hw[i] = v.get<int64_t>();
  }
  const auto counts = j.find("counts");
  if (counts == j.end()) fail("RLE JSON: missing \"counts\"");
  if (counts->is_string())
    return rle_from_string(counts->get_ref<const std::string&>(), hw[0], hw[1]);
  if (!counts->is_array())
    fail(std::string("RLE JSON: \"counts\" must be a string or an array of integers, got ") +
         counts->type_name());
  Rle r;
  r.h = hw[0];
  r.w = hw[1];
  r.counts.reserve(counts->size());
  for (size_t i = 0; i < counts->size(); ++i) {
    const auto& v = (*counts)[i];
    const bool ok = (v.is_number_unsigned() && v.get<uint64_t>() <= kMaxPixels) ||
                    (v.is_number_integer() && v.get<int64_t>() >= 0 &&
                     v.get<int64_t>() <= static_cast<int64_t>(kMaxPixels));
    if (!ok)
      fail("RLE JSON: counts[" + std::to_string(i) + "] = " + v.dump() +
           " is not an integer in 0..2^32-1");
    r.counts.push_back(static_cast<uint32_t>(v.get<uint64_t>()));
  }
  rle_validate(r);
  return r;
}

}  // namespace sam::mask
