#pragma once
// Random cases for the suites that compare our COCO code with pycocotools at test time
// (tests/data/test_coco_peer.cpp, tests/eval/test_coco_eval_peer.cpp): binary masks and polygons
// of many kinds, drawn with the platform-independent sam::data::Rng, and the round trip through a
// peer script of tests/peers/ (a JSON file in, a JSON file out). Every draw depends on the seed
// only, so a failing case is reproduced by its seed (SAM_PEER_SEED replaces the fixed one).
#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include "data/mask/rle.h"
#include "data/rng.h"
#include "test_util.h"

namespace sam_test::peer {

using sam::data::Rng;

/// The base seed of a suite: `fixed`, or $SAM_PEER_SEED when set (to explore other cases).
inline uint64_t base_seed(uint64_t fixed) {
  const char* env = std::getenv("SAM_PEER_SEED");
  return env && *env ? std::strtoull(env, nullptr, 0) : fixed;
}

/// A row-major h x w mask of 0/1 bytes (other nonzero values only where a case asks for them).
struct Mask {
  int64_t h = 0, w = 0;
  std::vector<uint8_t> px;
  Mask() = default;
  Mask(int64_t h_, int64_t w_) : h(h_), w(w_), px(static_cast<size_t>(h_ * w_), 0) {}
  uint8_t& at(int64_t y, int64_t x) { return px[static_cast<size_t>(y * w + x)]; }
};

/// Sets the pixels of the axis-aligned rectangle [x0, x1) x [y0, y1), clipped to the mask.
inline void fill_rect(Mask& m, int64_t x0, int64_t y0, int64_t x1, int64_t y1, uint8_t v = 1) {
  for (int64_t y = std::max<int64_t>(0, y0); y < std::min(m.h, y1); ++y)
    for (int64_t x = std::max<int64_t>(0, x0); x < std::min(m.w, x1); ++x) m.at(y, x) = v;
}

/// Sets the pixels whose centres lie in the ellipse of centre (cx, cy) and radii (rx, ry).
inline void fill_ellipse(Mask& m, double cx, double cy, double rx, double ry, uint8_t v = 1) {
  for (int64_t y = 0; y < m.h; ++y)
    for (int64_t x = 0; x < m.w; ++x) {
      const double dx = (x + 0.5 - cx) / rx, dy = (y + 0.5 - cy) / ry;
      if (dx * dx + dy * dy <= 1) m.at(y, x) = v;
    }
}

/// The kinds of random_mask.
inline const std::vector<std::string>& mask_kinds() {
  static const std::vector<std::string> kinds = {"zeros",   "ones",  "sparse", "half",  "dense",
                                                 "noise",   "blobs", "rects",  "rows",  "cols",
                                                 "checker", "frame", "pixels", "holes", "x255"};
  return kinds;
}

/// A random mask of one kind: zeros, ones, noise of density 3 / 50 / 97 % (sparse, half, dense)
/// or of a random density (noise),
/// unions of ellipses and rectangles (blobs, rects: blobby shapes, some cut by the border),
/// alternate rows or columns (runs that cross column ends), a checkerboard, the one-pixel frame,
/// a few single pixels including the corners, ones with holes, and blobs of value 255 (x255).
inline Mask random_mask(Rng& rng, int64_t h, int64_t w, const std::string& kind) {
  Mask m(h, w);
  if (h * w == 0) return m;
  const double big = static_cast<double>(std::max(h, w));
  if (kind == "ones") {
    std::fill(m.px.begin(), m.px.end(), 1);
  } else if (kind == "sparse" || kind == "half" || kind == "dense" || kind == "noise") {
    const double p = kind == "sparse"  ? 0.03
                     : kind == "half"  ? 0.5
                     : kind == "dense" ? 0.97
                                       : rng.uniform();
    for (auto& v : m.px) v = rng.chance(p) ? 1 : 0;
  } else if (kind == "blobs" || kind == "x255") {
    const int n = static_cast<int>(rng.range(1, 5));
    for (int b = 0; b < n; ++b)
      fill_ellipse(m, rng.uniform(-0.2, 1.2) * w, rng.uniform(-0.2, 1.2) * h,
                   rng.log_uniform(0.4, big * 0.6), rng.log_uniform(0.4, big * 0.6),
                   kind == "x255" ? 255 : 1);
  } else if (kind == "rects") {
    const int n = static_cast<int>(rng.range(1, 6));
    for (int b = 0; b < n; ++b) {
      const int64_t x0 = rng.range(-w / 4, w), y0 = rng.range(-h / 4, h);
      fill_rect(m, x0, y0, x0 + rng.range(1, w), y0 + rng.range(1, h));
    }
  } else if (kind == "rows" || kind == "cols") {
    const int64_t period = rng.range(1, 3);
    for (int64_t y = 0; y < h; ++y)
      for (int64_t x = 0; x < w; ++x) m.at(y, x) = ((kind == "rows" ? y : x) / period) % 2 == 0;
  } else if (kind == "checker") {
    for (int64_t y = 0; y < h; ++y)
      for (int64_t x = 0; x < w; ++x) m.at(y, x) = (x + y) % 2;
  } else if (kind == "frame") {
    for (int64_t y = 0; y < h; ++y)
      for (int64_t x = 0; x < w; ++x) m.at(y, x) = y == 0 || x == 0 || y == h - 1 || x == w - 1;
  } else if (kind == "pixels") {
    m.at(0, 0) = 1;
    m.at(h - 1, w - 1) = 1;
    if (rng.chance(0.5)) m.at(h - 1, 0) = 1;
    for (int i = 0, n = static_cast<int>(rng.range(0, 4)); i < n; ++i)
      m.at(rng.range(0, h - 1), rng.range(0, w - 1)) = 1;
  } else if (kind == "holes") {
    std::fill(m.px.begin(), m.px.end(), 1);
    for (int i = 0, n = static_cast<int>(rng.range(1, 4)); i < n; ++i)
      fill_ellipse(m, rng.uniform(0, 1) * w, rng.uniform(0, 1) * h, rng.log_uniform(0.4, big / 3),
                   rng.log_uniform(0.4, big / 3), 0);
  }  // "zeros": nothing set
  return m;
}

/// The kinds of random_polygon.
inline const std::vector<std::string>& polygon_kinds() {
  static const std::vector<std::string> kinds = {"star", "star_int", "star_tenths", "tangled",
                                                 "tiny", "border",   "outside",     "degenerate"};
  return kinds;
}

/// A random polygon {x0, y0, x1, y1, ...} (at least 3 points) for an h x w image: star-shaped
/// around a centre that may lie outside the image, with fractional, integer or 0.1-grid
/// coordinates (the grid puts upsampled vertices on cocoapi's rounding edges); random points in
/// random order (self-intersecting); subpixel; along or across the image border (vertices exactly
/// on 0, w and h); mostly outside; collinear or repeated points.
inline std::vector<double> random_polygon(Rng& rng, int64_t h, int64_t w, const std::string& kind) {
  const double W = static_cast<double>(w), H = static_cast<double>(h);
  std::vector<double> xy;
  auto star = [&](double cx, double cy, double r, int k) {
    std::vector<double> ang(static_cast<size_t>(k));
    for (auto& a : ang) a = rng.uniform(0, 6.283185307179586);
    std::sort(ang.begin(), ang.end());
    for (double a : ang) {
      const double rr = r * rng.uniform(0.3, 1.0);
      xy.push_back(cx + rr * std::cos(a));
      xy.push_back(cy + rr * std::sin(a));
    }
  };
  const int k = static_cast<int>(rng.range(3, 12));
  if (kind == "star" || kind == "star_int" || kind == "star_tenths") {
    star(rng.uniform(-0.1, 1.1) * W, rng.uniform(-0.1, 1.1) * H,
         rng.log_uniform(0.5, std::max(W, H) * 0.7 + 0.6), k);
    for (auto& v : xy)
      v = kind == "star_int" ? std::round(v) : kind == "star_tenths" ? std::round(v * 10) / 10 : v;
  } else if (kind == "tangled") {
    for (int i = 0; i < k; ++i) {
      xy.push_back(rng.uniform(-0.2, 1.2) * W);
      xy.push_back(rng.uniform(-0.2, 1.2) * H);
    }
  } else if (kind == "tiny") {
    star(rng.uniform(0, W), rng.uniform(0, H), rng.uniform(0.05, 0.9), std::max(3, k / 2));
  } else if (kind == "border") {
    // Corners and edge points of the image itself, some pushed outward or inward.
    const std::vector<std::array<double, 2>> pts = {{0, 0}, {W / 2, 0}, {W, 0}, {W, H / 2},
                                                    {W, H}, {W / 2, H}, {0, H}, {0, H / 2}};
    for (const auto& p : pts) {
      if (rng.chance(0.3)) continue;
      double x = p[0], y = p[1];
      if (rng.chance(0.3)) x += rng.uniform(-2, 2);
      if (rng.chance(0.3)) y += rng.uniform(-2, 2);
      if (rng.chance(0.3)) x = std::round(x * 2) / 2, y = std::round(y * 2) / 2;
      xy.push_back(x);
      xy.push_back(y);
    }
    while (xy.size() < 6) {  // keep at least a triangle
      xy.push_back(rng.uniform(0, W));
      xy.push_back(rng.uniform(0, H));
    }
  } else if (kind == "outside") {
    const double cx = rng.chance(0.5) ? -rng.uniform(0.5, 5) : W + rng.uniform(0.5, 5);
    star(cx, rng.uniform(-0.5, 1.5) * H, rng.uniform(0.5, std::max(W, H)), k);
  } else {  // degenerate: points on a line, or a triangle with repeated vertices
    const double x0 = rng.uniform(-1, W + 1), y0 = rng.uniform(-1, H + 1);
    const double dx = rng.uniform(-W, W), dy = rng.uniform(-H, H);
    if (rng.chance(0.5)) {
      for (int i = 0; i < std::max(3, k / 2); ++i) {
        const double t = rng.uniform(0, 1);
        xy.push_back(x0 + t * dx);
        xy.push_back(y0 + t * dy);
      }
    } else {
      xy = {x0, y0, x0, y0, x0 + dx, y0, x0 + dx, y0 + dy, x0 + dx, y0 + dy};
    }
  }
  return xy;
}

/// A random box {x, y, bw, bh}: fractional or integer, inside, across the border or outside,
/// sometimes of zero width or height.
inline std::array<double, 4> random_box(Rng& rng, int64_t h, int64_t w) {
  const double W = static_cast<double>(w), H = static_cast<double>(h);
  std::array<double, 4> b{rng.uniform(-0.2, 1.1) * W, rng.uniform(-0.2, 1.1) * H,
                          rng.uniform(0, 0.8) * W + rng.uniform(0, 2),
                          rng.uniform(0, 0.8) * H + rng.uniform(0, 2)};
  if (rng.chance(0.3))
    for (auto& v : b) v = std::round(v);
  if (rng.chance(0.1)) b[2] = 0;
  if (rng.chance(0.1)) b[3] = 0;
  return b;
}

inline sam::mask::Rle encode(const Mask& m) {
  return sam::mask::rle_encode(m.px.data(), m.h, m.w);
}

/// The union of the polygons' rasterisations (COCO.annToRLE for a polygon annotation).
inline sam::mask::Rle polygons_rle(const std::vector<std::vector<double>>& polys, int64_t h,
                                   int64_t w) {
  std::vector<sam::mask::Rle> parts;
  for (const auto& p : polys) parts.push_back(sam::mask::rle_from_polygon(p, h, w));
  return parts.size() == 1 ? parts[0] : sam::mask::rle_merge(parts, false);
}

/// Writes `j` to `path`.
inline void write_json(const std::filesystem::path& path, const nlohmann::json& j) {
  std::ofstream f(path);
  f << j.dump();
  REQUIRE(f.good());
}

/// Runs tests/peers/<script> with the peers' Python (`py`, from SAM_REQUIRE_PEERS) on `input`
/// (written to <dir>/<stem>.in.json) and returns the JSON it writes to <dir>/<stem>.out.json.
inline nlohmann::json run_peer(const std::string& py, const std::string& script,
                               const std::filesystem::path& dir, const std::string& stem,
                               const nlohmann::json& input) {
  const auto in = dir / (stem + ".in.json"), out = dir / (stem + ".out.json");
  write_json(in, input);
  const std::string cmd = py + " " + (source_dir() / "tests" / "peers" / script).string() + " " +
                          in.string() + " " + out.string();
  std::string log;
  const int rc = run_command(cmd, &log);
  INFO(cmd << "\n" << log);
  REQUIRE(rc == 0);
  std::ifstream f(out);
  REQUIRE(f.good());
  return nlohmann::json::parse(f);
}

/// Collects the differences of one suite, so that a failure lists the first ones with their case
/// instead of stopping at the first.
struct Mismatches {
  std::vector<std::string> items;
  size_t checks = 0;
  void expect(bool ok, const std::string& what) {
    ++checks;
    if (!ok) items.push_back(what);
  }
  std::string report(size_t first = 25) const {
    std::ostringstream s;
    s << items.size() << " of " << checks << " comparisons differ";
    for (size_t i = 0; i < items.size() && i < first; ++i) s << "\n  " << items[i];
    return s.str();
  }
  /// The end of a suite: no differences. The case files in `dir` are kept (and named) when there
  /// are some, removed otherwise.
  void check_none(const std::filesystem::path& dir) const {
    INFO("cases in " << dir.string());
    CHECK(items.empty());
    if (!items.empty())
      FAIL_CHECK(report());
    else
      std::filesystem::remove_all(dir);
  }
};

/// A double written so that it reads back exactly (17 significant digits).
inline std::string exact(double v) {
  std::ostringstream s;
  s.precision(17);
  s << v;
  return s.str();
}

}  // namespace sam_test::peer
