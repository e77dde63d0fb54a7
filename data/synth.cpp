// Synthetic scenes: shapes rasterised into an owner map (which instance is the visible surface
// at each pixel centre), textures evaluated per pixel, masks read back from the owner map.
#include "data/synth.h"

#include <opencv2/imgproc.hpp>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <stdexcept>

#include "data/convert.h"
#include "data/codec.h"
#include "data/parallel.h"
#include "data/rng.h"

namespace sam::data {
namespace {

constexpr double kPi = 3.14159265358979323846;

struct Rgb {
  double r = 0, g = 0, b = 0;
};

Rgb mix(const Rgb& a, const Rgb& b, double t) {
  return {a.r + (b.r - a.r) * t, a.g + (b.g - a.g) * t, a.b + (b.b - a.b) * t};
}

double dist(const Rgb& a, const Rgb& b) {
  return std::sqrt((a.r - b.r) * (a.r - b.r) + (a.g - b.g) * (a.g - b.g) +
                   (a.b - b.b) * (a.b - b.b));
}

// HSV (h in degrees, s and v in [0, 1]) to RGB in [0, 255].
Rgb hsv(double h, double s, double v) {
  h = std::fmod(h, 360.0) / 60.0;
  const int i = static_cast<int>(h);
  const double f = h - i, p = v * (1 - s), q = v * (1 - s * f), t = v * (1 - s * (1 - f));
  double r, g, b;
  switch (i) {
    case 0:
      r = v, g = t, b = p;
      break;
    case 1:
      r = q, g = v, b = p;
      break;
    case 2:
      r = p, g = v, b = t;
      break;
    case 3:
      r = p, g = q, b = v;
      break;
    case 4:
      r = t, g = p, b = v;
      break;
    default:
      r = v, g = p, b = q;
      break;
  }
  return {r * 255, g * 255, b * 255};
}

Rgb random_colour(Rng& rng) {
  return hsv(rng.uniform(0, 360), rng.uniform(0.2, 1.0), rng.uniform(0.2, 1.0));
}

// A colour at least `min_dist` from every colour in `avoid` (best of 24 tries).
Rgb distinct_colour(Rng& rng, const std::vector<Rgb>& avoid, double min_dist) {
  Rgb best;
  double best_d = -1;
  for (int t = 0; t < 24; ++t) {
    const Rgb c = random_colour(rng);
    double d = 1e9;
    for (const Rgb& a : avoid) d = std::min(d, dist(a, c));
    if (d > best_d) best = c, best_d = d;
    if (d >= min_dist) break;
  }
  return best;
}

// Value noise: a smooth random field with features about `period` pixels apart.
double lattice(uint64_t key, int64_t i, int64_t j) {
  return static_cast<double>(splitmix64(key ^ splitmix64(static_cast<uint64_t>(i) * 0x9E3779B1ULL +
                                                         static_cast<uint64_t>(j))) >>
                             11) *
         0x1.0p-53;
}

double value_noise(uint64_t key, double x, double y) {
  const double fx = std::floor(x), fy = std::floor(y);
  const int64_t i = static_cast<int64_t>(fx), j = static_cast<int64_t>(fy);
  double tx = x - fx, ty = y - fy;
  tx = tx * tx * (3 - 2 * tx);
  ty = ty * ty * (3 - 2 * ty);
  const double a = lattice(key, i, j), b = lattice(key, i + 1, j);
  const double c = lattice(key, i, j + 1), d = lattice(key, i + 1, j + 1);
  return (a + (b - a) * tx) + ((c + (d - c) * tx) - (a + (b - a) * tx)) * ty;
}

enum class Tex { solid, gradient, stripes, checker, dots, noise, rings };

struct Texture {
  Tex type = Tex::solid;
  Rgb c1, c2;
  double cx = 0, cy = 0, cos_t = 1, sin_t = 0, period = 10, extent = 10;
  double shade = 0, shade_cos = 1, shade_sin = 0;  // linear shading across the object
  uint64_t key = 0;

  Rgb eval(double x, double y) const {
    const double dx = x - cx, dy = y - cy;
    const double u = dx * cos_t + dy * sin_t, v = -dx * sin_t + dy * cos_t;
    Rgb c;
    switch (type) {
      case Tex::solid:
        c = c1;
        break;
      case Tex::gradient:
        c = mix(c1, c2, std::clamp(0.5 + 0.5 * u / extent, 0.0, 1.0));
        break;
      case Tex::stripes: {
        const double s = std::sin(2 * kPi * u / period);
        c = mix(c1, c2, std::clamp(0.5 + 2.0 * s, 0.0, 1.0));
        break;
      }
      case Tex::checker: {
        const int64_t a = static_cast<int64_t>(std::floor(u / period)),
                      b = static_cast<int64_t>(std::floor(v / period));
        c = ((a + b) & 1) ? c2 : c1;
        break;
      }
      case Tex::dots: {
        const double fu = u / period - std::floor(u / period) - 0.5;
        const double fv = v / period - std::floor(v / period) - 0.5;
        c = (fu * fu + fv * fv < 0.09) ? c2 : c1;
        break;
      }
      case Tex::noise: {
        const double n = 0.65 * value_noise(key, u / period, v / period) +
                         0.35 * value_noise(key + 1, 2.7 * u / period, 2.7 * v / period);
        c = mix(c1, c2, std::clamp((n - 0.25) * 2.0, 0.0, 1.0));
        break;
      }
      case Tex::rings: {
        const double s = std::sin(2 * kPi * std::sqrt(dx * dx + dy * dy) / period);
        c = mix(c1, c2, std::clamp(0.5 + 2.0 * s, 0.0, 1.0));
        break;
      }
    }
    if (shade != 0) {
      const double t = std::clamp((dx * shade_cos + dy * shade_sin) / extent, -1.0, 1.0);
      const double f = 1.0 + shade * t;
      c = {c.r * f, c.g * f, c.b * f};
    }
    return c;
  }
};

Texture random_texture(Rng& rng, Rgb c1, double cx, double cy, double extent, bool allow_fancy,
                       double contrast = 1.0, double pattern_prob = 1.0) {
  Texture t;
  t.c1 = c1;
  t.cx = cx;
  t.cy = cy;
  t.extent = std::max(extent, 1.0);
  const double ang = rng.uniform(0, kPi);
  t.cos_t = std::cos(ang);
  t.sin_t = std::sin(ang);
  t.key = rng.next();
  // Second colour: a lighter/darker or hue-shifted variant, so the object reads as one thing.
  const double k = contrast * rng.uniform(0.45, 0.8) * (rng.chance(0.5) ? 1 : -1);
  t.c2 = (contrast < 1 || rng.chance(0.6))
             ? Rgb{c1.r + k * (k > 0 ? 255 - c1.r : c1.r), c1.g + k * (k > 0 ? 255 - c1.g : c1.g),
                   c1.b + k * (k > 0 ? 255 - c1.b : c1.b)}
             : random_colour(rng);
  const double r = rng.uniform();
  if (!allow_fancy || extent < 6) {
    t.type = r < 0.7 ? Tex::solid : Tex::gradient;
  } else if (r >= pattern_prob) {
    t.type = rng.chance(0.7) ? Tex::solid : Tex::gradient;
  } else {
    static const Tex kinds[] = {Tex::solid, Tex::solid, Tex::gradient, Tex::stripes, Tex::checker,
                                Tex::dots,  Tex::noise, Tex::noise,    Tex::rings};
    t.type = kinds[rng.below(9)];
  }
  t.period = std::max(3.0, extent * rng.uniform(0.08, 0.35));
  if (rng.chance(0.5)) {
    t.shade = rng.uniform(0.1, 0.3);
    const double sa = rng.uniform(0, 2 * kPi);
    t.shade_cos = std::cos(sa);
    t.shade_sin = std::sin(sa);
  }
  return t;
}

enum class ShapeType { ellipse, rect, polygon, blob, ground };

struct Shape {
  ShapeType type = ShapeType::ellipse;
  double cx = 0, cy = 0, a = 1, b = 1, cos_t = 1, sin_t = 0;
  double corner = 0;                             // rect: rounded corner radius (unit frame)
  std::vector<double> vx, vy;                    // polygon vertices (unit frame)
  double amp[3] = {0, 0, 0}, ph[3] = {0, 0, 0};  // blob harmonics k = 2..4
  bool hole = false, hole_rect = false;
  double hx = 0, hy = 0, ha = 0, hb = 0;  // hole in the unit frame
  double g_y0 = 0, g_a1 = 0, g_f1 = 0, g_p1 = 0, g_a2 = 0, g_f2 = 0, g_p2 = 0;  // ground edge

  double radius() const {
    double m = std::max(a, b);
    if (type == ShapeType::blob) m *= 1 + amp[0] + amp[1] + amp[2];
    return m + 1;
  }

  bool inside(double x, double y) const {
    if (type == ShapeType::ground)
      return y > g_y0 + g_a1 * std::sin(g_f1 * x + g_p1) + g_a2 * std::sin(g_f2 * x + g_p2);
    const double dx = x - cx, dy = y - cy;
    const double u = (dx * cos_t + dy * sin_t) / a, v = (-dx * sin_t + dy * cos_t) / b;
    if (!inside_unit(u, v)) return false;
    if (hole) {
      const double hu = (u - hx) / ha, hv = (v - hy) / hb;
      const bool in_hole =
          hole_rect ? (std::fabs(hu) <= 1 && std::fabs(hv) <= 1) : (hu * hu + hv * hv <= 1);
      if (in_hole) return false;
    }
    return true;
  }

  bool inside_unit(double u, double v) const {
    switch (type) {
      case ShapeType::ellipse:
        return u * u + v * v <= 1;
      case ShapeType::rect: {
        const double au = std::fabs(u), av = std::fabs(v);
        if (au > 1 || av > 1) return false;
        const double k = 1 - corner;
        if (au > k && av > k) return (au - k) * (au - k) + (av - k) * (av - k) <= corner * corner;
        return true;
      }
      case ShapeType::polygon: {
        bool in = false;
        const size_t n = vx.size();
        for (size_t i = 0, j = n - 1; i < n; j = i++) {
          if ((vy[i] > v) != (vy[j] > v) &&
              u < (vx[j] - vx[i]) * (v - vy[i]) / (vy[j] - vy[i]) + vx[i])
            in = !in;
        }
        return in;
      }
      case ShapeType::blob: {
        const double rho2 = u * u + v * v;
        const double rmax = 1 + amp[0] + amp[1] + amp[2];
        if (rho2 > rmax * rmax) return false;
        const double th = std::atan2(v, u);
        double r = 1;
        for (int k = 0; k < 3; ++k) r += amp[k] * std::cos((k + 2) * th + ph[k]);
        return rho2 <= r * r;
      }
      case ShapeType::ground:
        return false;
    }
    return false;
  }
};

Shape random_shape(Rng& rng, double cx, double cy, double r, double hole_prob) {
  Shape s;
  s.cx = cx;
  s.cy = cy;
  s.a = r;
  s.b = r * rng.uniform(0.45, 1.0);
  const double ang = rng.uniform(0, kPi);
  s.cos_t = std::cos(ang);
  s.sin_t = std::sin(ang);
  const double pick = rng.uniform();
  if (pick < 0.25) {
    s.type = ShapeType::ellipse;
  } else if (pick < 0.45) {
    s.type = ShapeType::rect;
    s.corner = rng.chance(0.5) ? rng.uniform(0.1, 0.5) : 0.0;
  } else if (pick < 0.8) {
    s.type = ShapeType::polygon;
    const double kind = rng.uniform();
    int n;
    double inner = 1.0;
    if (kind < 0.3) {
      n = 3;  // triangle with random corners
    } else if (kind < 0.65) {
      n = static_cast<int>(rng.range(4, 8));  // regular-ish polygon
    } else {
      n = static_cast<int>(rng.range(4, 7));  // star
      inner = rng.uniform(0.35, 0.65);
    }
    const double start = rng.uniform(0, 2 * kPi);
    if (n == 3) {
      double t[3] = {start, start + rng.uniform(1.6, 2.6), 0};
      t[2] = t[1] + rng.uniform(1.6, std::max(1.7, 2 * kPi - (t[1] - t[0]) - 0.6));
      for (double th : t) s.vx.push_back(std::cos(th)), s.vy.push_back(std::sin(th));
    } else {
      const int m = inner < 1 ? 2 * n : n;
      for (int i = 0; i < m; ++i) {
        const double th = start + 2 * kPi * i / m;
        const double rr = (inner < 1 && (i & 1)) ? inner : rng.uniform(0.85, 1.0);
        s.vx.push_back(rr * std::cos(th));
        s.vy.push_back(rr * std::sin(th));
      }
    }
  } else {
    s.type = ShapeType::blob;
    double left = 0.42;
    for (int k = 0; k < 3; ++k) {
      s.amp[k] = rng.uniform(0, left * 0.6);
      left -= s.amp[k];
      s.ph[k] = rng.uniform(0, 2 * kPi);
    }
  }
  if (hole_prob > 0 && r > 12 && rng.chance(hole_prob)) {
    s.hole = true;
    s.hole_rect = rng.chance(0.35);
    s.ha = rng.uniform(0.25, 0.5);
    s.hb = s.ha * rng.uniform(0.6, 1.0);
    s.hx = rng.uniform(-0.15, 0.15);
    s.hy = rng.uniform(-0.15, 0.15);
  }
  return s;
}

// One drawn instance. Instances are kept in painting order, each whole followed by its parts and
// their sub-parts, so the instances a mask covers are the contiguous range [i, end).
struct Prim {
  Shape shape;
  Texture tex;
  int parent = -1;  // prim index
  int level = 0;
  bool clip = false;  // drawn only inside the parent's shape
  int end = 0;        // one past the last prim of this prim's subtree
  int outline = 0;    // outline width in pixels (0 = none)
  double outline_gain = 1.0;
  int x0 = 0, y0 = 0, x1 = 0, y1 = 0;  // pixel bbox of the shape, clipped, [x0, x1) x [y0, y1)
};

// A point drawn uniformly from inside `s` (rejection sampling; the centre when unlucky).
void point_inside(Rng& rng, const Shape& s, double& x, double& y) {
  const double r = s.radius();
  for (int t = 0; t < 64; ++t) {
    const double px = s.cx + rng.uniform(-r, r), py = s.cy + rng.uniform(-r, r);
    if (s.inside(px, py)) {
      x = px, y = py;
      return;
    }
  }
  x = s.cx, y = s.cy;
}

Rgb mean_colour(const Texture& t) {
  return t.type == Tex::solid ? t.c1 : mix(t.c1, t.c2, 0.5);
}

void build_scene(Rng& rng, const SynthOptions& o, std::vector<Prim>& prims, Texture& background) {
  const double W = o.width, H = o.height, short_side = std::min(W, H);
  // Background: broad texture with muted colours.
  const Rgb bg1 = hsv(rng.uniform(0, 360), rng.uniform(0.0, 0.5), rng.uniform(0.3, 0.9));
  background = random_texture(rng, bg1, W / 2, H / 2, std::max(W, H) / 2, true,
                              rng.uniform(0.2, 0.5), o.pattern_prob);
  background.shade = 0;
  if (background.type == Tex::dots || background.type == Tex::rings) background.type = Tex::noise;
  background.period = std::max(8.0, std::max(W, H) * rng.uniform(0.05, 0.2));
  const Rgb bg_mean = mean_colour(background);

  auto add = [&](Prim p) {
    p.end = static_cast<int>(prims.size()) + 1;
    prims.push_back(std::move(p));
    return static_cast<int>(prims.size()) - 1;
  };

  if (rng.chance(o.ground_prob)) {  // ground region along the bottom
    Prim g;
    g.shape.type = ShapeType::ground;
    g.shape.g_y0 = H * rng.uniform(0.55, 0.85);
    g.shape.g_a1 = H * rng.uniform(0.0, 0.06);
    g.shape.g_f1 = 2 * kPi / (W * rng.uniform(0.3, 1.5));
    g.shape.g_p1 = rng.uniform(0, 2 * kPi);
    g.shape.g_a2 = H * rng.uniform(0.0, 0.02);
    g.shape.g_f2 = 2 * kPi / (W * rng.uniform(0.05, 0.2));
    g.shape.g_p2 = rng.uniform(0, 2 * kPi);
    const Rgb c = distinct_colour(rng, {bg_mean}, 90);
    g.tex = random_texture(rng, c, W / 2, H, W / 2, true, 1.0, o.pattern_prob);
    g.x0 = 0, g.x1 = o.width;
    g.y0 = std::max(0, static_cast<int>(g.shape.g_y0 - g.shape.g_a1 - g.shape.g_a2) - 1);
    g.y1 = o.height;
    add(std::move(g));
  }

  struct Whole {
    double r, key;
  };
  const int n = static_cast<int>(rng.range(o.min_objects, o.max_objects));
  std::vector<Whole> wholes(static_cast<size_t>(n));
  // Sizes (defaults): a third large (8-42% of the short side), the rest log-uniform from tiny
  // (0.8%) to medium (15%); size_min and size_max move the ends, the large and medium bounds
  // stay inside them.
  const double rmin = std::max(2.5, short_side * o.size_min);
  const double large_lo = std::clamp(0.08, o.size_min, o.size_max);
  const double medium = std::max(rmin, short_side * std::clamp(0.15, o.size_min, o.size_max));
  for (auto& w : wholes) {
    w.r = rng.chance(0.33) ? short_side * rng.uniform(large_lo, o.size_max)
                           : rng.log_uniform(rmin, medium);
    w.key = w.r * rng.uniform(0.5, 1.5);  // mostly large behind small, not strictly
  }
  std::sort(wholes.begin(), wholes.end(),
            [](const Whole& a, const Whole& b) { return a.key > b.key; });

  auto bbox_of = [&](Prim& p) {
    const double r = p.shape.radius();
    p.x0 = std::clamp(static_cast<int>(std::floor(p.shape.cx - r)), 0, o.width);
    p.x1 = std::clamp(static_cast<int>(std::ceil(p.shape.cx + r)) + 1, 0, o.width);
    p.y0 = std::clamp(static_cast<int>(std::floor(p.shape.cy - r)), 0, o.height);
    p.y1 = std::clamp(static_cast<int>(std::ceil(p.shape.cy + r)) + 1, 0, o.height);
  };
  auto style = [&](Rng& r_, Prim& p, std::vector<Rgb> avoid, bool fancy) {
    const Rgb c = distinct_colour(r_, avoid, 80);
    p.tex = random_texture(r_, c, p.shape.cx, p.shape.cy, std::max(p.shape.a, p.shape.b), fancy,
                           1.0, o.pattern_prob);
    if (p.shape.a > 5 && r_.chance(o.outline_prob)) {
      p.outline = p.shape.a > 40 && r_.chance(0.4) ? 2 : 1;
      p.outline_gain = r_.chance(0.75) ? r_.uniform(0.3, 0.6) : r_.uniform(1.3, 1.7);
    }
  };

  // One object (a whole, its parts and their sub-parts) drawn from `r_` at (cx, cy) with radius r.
  auto add_object = [&](Rng& r_, double cx, double cy, double r, const Rgb& avoid) {
    Prim p;
    p.shape = random_shape(r_, cx, cy, r, o.hole_prob);
    p.level = 0;
    bbox_of(p);
    style(r_, p, {avoid}, true);
    const int wi = add(std::move(p));
    if (r < 10 || !r_.chance(o.part_prob)) return;
    const int nparts = static_cast<int>(r_.range(1, o.max_parts));
    for (int k = 0; k < nparts; ++k) {
      Prim part;
      double px, py;
      point_inside(r_, prims[wi].shape, px, py);
      const double pr = prims[wi].shape.b * r_.uniform(o.part_size_min, o.part_size_max);
      part.shape = random_shape(r_, px, py, pr, 0.0);
      part.parent = wi;
      part.level = 1;
      part.clip = r_.chance(0.7);
      bbox_of(part);
      style(r_, part, {mean_colour(prims[wi].tex)}, true);
      const int pi = add(std::move(part));
      prims[wi].end = pi + 1;
      if (pr < 6 || !r_.chance(o.subpart_prob)) continue;
      const int nsub = static_cast<int>(r_.range(1, 2));
      for (int s = 0; s < nsub; ++s) {
        Prim sub;
        point_inside(r_, prims[pi].shape, px, py);
        sub.shape = random_shape(r_, px, py, prims[pi].shape.b * r_.uniform(0.2, 0.45), 0.0);
        sub.parent = pi;
        sub.level = 2;
        sub.clip = r_.chance(0.8);
        bbox_of(sub);
        style(r_, sub, {mean_colour(prims[pi].tex)}, false);
        const int si = add(std::move(sub));
        prims[pi].end = si + 1;
        prims[wi].end = si + 1;
      }
    }
  };

  // Kinds (o.kinds > 0): every whole is an instance of one of o.kinds objects drawn once from
  // o.kinds_seed at radius kRef around the origin (its shape, texture, colours, outline and its
  // parts' layout), placed with a radius, rotation and position of its own.
  constexpr double kRef = 100;
  std::vector<std::vector<Prim>> kind_prims(static_cast<size_t>(std::max(0, o.kinds)));
  for (const Whole& w : wholes) {
    const double cx = rng.uniform(-0.08 * W, 1.08 * W), cy = rng.uniform(-0.08 * H, 1.08 * H);
    if (o.kinds <= 0) {
      add_object(rng, cx, cy, w.r, bg_mean);
      continue;
    }
    const auto k = static_cast<size_t>(rng.below(static_cast<uint64_t>(o.kinds)));
    const double angle = rng.uniform(0, 2 * kPi);
    if (kind_prims[k].empty()) {  // drawn into prims, moved out: the same draws in every image
      Rng krng(derive_seed({o.kinds_seed, static_cast<uint64_t>(k), 0x4B1DEu}));
      const size_t first = prims.size();
      add_object(krng, 0, 0, kRef, Rgb{-1000, -1000, -1000});
      kind_prims[k].assign(prims.begin() + static_cast<std::ptrdiff_t>(first), prims.end());
      prims.resize(first);
      for (Prim& p : kind_prims[k]) {  // indices from 0
        if (p.parent >= 0) p.parent -= static_cast<int>(first);
        p.end -= static_cast<int>(first);
      }
    }
    const double scale = w.r / kRef, ca = std::cos(angle), sa = std::sin(angle);
    // The instance's similarity transform: a point of the kind's frame moved into the image, and
    // a direction (cos, sin) turned by the instance's angle.
    auto place = [&](double& x, double& y) {
      const double x0 = x, y0 = y;
      x = cx + scale * (ca * x0 - sa * y0);
      y = cy + scale * (sa * x0 + ca * y0);
    };
    auto turn = [&](double& c, double& s_) {
      const double c0 = c, s0 = s_;
      c = c0 * ca - s0 * sa;
      s_ = s0 * ca + c0 * sa;
    };
    const int offset = static_cast<int>(prims.size());
    for (Prim p : kind_prims[k]) {
      place(p.shape.cx, p.shape.cy);
      p.shape.a *= scale;
      p.shape.b *= scale;
      turn(p.shape.cos_t, p.shape.sin_t);
      place(p.tex.cx, p.tex.cy);
      turn(p.tex.cos_t, p.tex.sin_t);
      turn(p.tex.shade_cos, p.tex.shade_sin);
      p.tex.period = std::max(3.0, p.tex.period * scale);
      p.tex.extent = std::max(1.0, p.tex.extent * scale);
      if (p.outline > 0 && p.shape.a <= 40) p.outline = 1;
      if (p.shape.a <= 5) p.outline = 0;
      if (p.parent >= 0) p.parent += offset;
      p.end += offset;
      bbox_of(p);
      prims.push_back(std::move(p));
    }
  }
}

// Inside test of prim i including its clipping chain (a clipped part is also inside its parent).
bool prim_inside(const std::vector<Prim>& prims, int i, double x, double y) {
  while (true) {
    const Prim& p = prims[static_cast<size_t>(i)];
    if (!p.shape.inside(x, y)) return false;
    if (!p.clip || p.parent < 0) return true;
    i = p.parent;
  }
}

}  // namespace

void SynthOptions::validate() const {
  auto bad = [](const std::string& m) { throw std::invalid_argument("synth: " + m); };
  if (width < 16 || height < 16 || width > 16384 || height > 16384)
    bad("image size must be 16..16384 on each side, got " + std::to_string(width) + "x" +
        std::to_string(height));
  if (int64_t(width) * height > (int64_t(1) << 28)) bad("image too large (more than 2^28 pixels)");
  if (min_objects < 0 || max_objects < min_objects || max_objects > 10000)
    bad("need 0 <= min_objects <= max_objects <= 10000, got " + std::to_string(min_objects) + ".." +
        std::to_string(max_objects));
  if (!(part_prob >= 0 && part_prob <= 1)) bad("part_prob must be in [0, 1]");
  if (max_parts < 1 || max_parts > 64) bad("max_parts must be in [1, 64], got " + std::to_string(max_parts));
  if (!(part_size_min > 0 && part_size_min <= part_size_max && part_size_max <= 1))
    bad("need 0 < part_size_min <= part_size_max <= 1, got " + std::to_string(part_size_min) + ".." +
        std::to_string(part_size_max));
  if (min_area < 1) bad("min_area must be >= 1");
  if (!(size_min > 0 && size_min <= size_max && size_max <= 2))
    bad("need 0 < size_min <= size_max <= 2, got " + std::to_string(size_min) + ".." +
        std::to_string(size_max));
  const std::pair<const char*, double> probs[] = {{"pattern_prob", pattern_prob},
                                                  {"outline_prob", outline_prob},
                                                  {"hole_prob", hole_prob},
                                                  {"ground_prob", ground_prob},
                                                  {"blur_prob", blur_prob},
                                                  {"subpart_prob", subpart_prob}};
  for (const auto& [name, v] : probs)
    if (!(v >= 0 && v <= 1)) bad(std::string(name) + " must be in [0, 1], got " + std::to_string(v));
  if (!(noise >= 0 && noise <= 64)) bad("noise must be in [0, 64], got " + std::to_string(noise));
  if (kinds < 0 || kinds > 100000) bad("kinds must be in [0, 100000], got " + std::to_string(kinds));
}

SynthImage synth_image(const SynthOptions& o, int64_t index) {
  o.validate();
  Rng rng(derive_seed({o.seed, static_cast<uint64_t>(index), 0x5EEDu}));
  std::vector<Prim> prims;
  Texture background;
  build_scene(rng, o, prims, background);
  const int W = o.width, H = o.height;

  // Owner map: the prim that is the visible surface at each pixel centre (-1: background).
  std::vector<int32_t> owner(size_t(W) * H, -1);
  for (size_t i = 0; i < prims.size(); ++i) {
    const Prim& p = prims[i];
    for (int y = p.y0; y < p.y1; ++y) {
      int32_t* row = owner.data() + size_t(y) * W;
      for (int x = p.x0; x < p.x1; ++x)
        if (prim_inside(prims, static_cast<int>(i), x + 0.5, y + 0.5))
          row[x] = static_cast<int32_t>(i);
    }
  }

  // Colours.
  SynthImage out;
  out.rgb.create(H, W, CV_8UC3);
  const uint64_t noise_key = rng.next();
  const double noise_amp = rng.uniform(std::min(1.0, o.noise), o.noise);
  for (int y = 0; y < H; ++y) {
    const int32_t* row = owner.data() + size_t(y) * W;
    uint8_t* px = out.rgb.ptr<uint8_t>(y);
    for (int x = 0; x < W; ++x) {
      const int32_t o_ = row[x];
      Rgb c =
          o_ < 0 ? background.eval(x + 0.5, y + 0.5) : prims[size_t(o_)].tex.eval(x + 0.5, y + 0.5);
      if (o_ >= 0 && prims[size_t(o_)].outline > 0) {
        const int wdt = prims[size_t(o_)].outline;
        bool edge = false;
        for (int d = 1; d <= wdt && !edge; ++d) {
          edge = (x - d >= 0 && row[x - d] != o_) || (x + d < W && row[x + d] != o_) ||
                 (y - d >= 0 && owner[size_t(y - d) * W + x] != o_) ||
                 (y + d < H && owner[size_t(y + d) * W + x] != o_);
        }
        if (edge) {
          const double g = prims[size_t(o_)].outline_gain;
          c = {c.r * g, c.g * g, c.b * g};
        }
      }
      const uint64_t h = splitmix64(noise_key + uint64_t(y) * uint64_t(W) + uint64_t(x));
      const double n0 = ((h & 0xFF) / 127.5 - 1.0) * noise_amp;
      const double n1 = (((h >> 8) & 0xFF) / 127.5 - 1.0) * noise_amp;
      const double n2 = (((h >> 16) & 0xFF) / 127.5 - 1.0) * noise_amp;
      px[3 * x + 0] = static_cast<uint8_t>(std::clamp(std::lround(c.r + n0), 0L, 255L));
      px[3 * x + 1] = static_cast<uint8_t>(std::clamp(std::lround(c.g + n1), 0L, 255L));
      px[3 * x + 2] = static_cast<uint8_t>(std::clamp(std::lround(c.b + n2), 0L, 255L));
    }
  }
  if (rng.chance(o.blur_prob)) {
    const double sigma = rng.uniform(0.4, 1.0);
    cv::GaussianBlur(out.rgb, out.rgb, cv::Size(0, 0), sigma, sigma, cv::BORDER_REFLECT_101);
  }

  // Masks: instance i covers owners in [i, end_i).
  out.info.id = index;
  out.info.width = W;
  out.info.height = H;
  out.info.file_name = "sa_" + std::to_string(index) + ".jpg";
  std::vector<uint8_t> buf(size_t(W) * H, 0);
  std::vector<int> ann_of(prims.size(), -1);
  for (size_t i = 0; i < prims.size(); ++i) {
    const Prim& p = prims[i];
    int x0 = p.x0, y0 = p.y0, x1 = p.x1, y1 = p.y1;
    for (int j = static_cast<int>(i) + 1; j < p.end; ++j) {
      const Prim& q = prims[size_t(j)];
      x0 = std::min(x0, q.x0), y0 = std::min(y0, q.y0), x1 = std::max(x1, q.x1),
      y1 = std::max(y1, q.y1);
    }
    if (x0 >= x1 || y0 >= y1) continue;
    int64_t area = 0;
    for (int y = y0; y < y1; ++y) {
      const int32_t* row = owner.data() + size_t(y) * W;
      uint8_t* b = buf.data() + size_t(y) * W;
      for (int x = x0; x < x1; ++x) {
        const bool in = row[x] >= static_cast<int32_t>(i) && row[x] < p.end;
        b[x] = in;
        area += in;
      }
    }
    auto clear = [&] {
      for (int y = y0; y < y1; ++y)
        std::fill(buf.begin() + size_t(y) * W + x0, buf.begin() + size_t(y) * W + x1, 0);
    };
    if (area < o.min_area) {
      clear();
      continue;
    }
    mask::Rle rle = mask::rle_encode(buf.data(), H, W);
    int parent_ann = -1;
    for (int q = p.parent; q >= 0 && parent_ann < 0; q = prims[size_t(q)].parent)
      parent_ann = ann_of[size_t(q)];
    if (parent_ann >= 0 &&
        out.annotations[size_t(parent_ann)].segmentation.rle.counts == rle.counts) {
      clear();
      continue;  // identical to its parent's mask: the part is all that is left of the whole
    }
    // Prompt point: the mask pixel farthest from its edge (the box spans the whole subtree, so
    // its sides are either beyond the mask or the image border).
    const auto pt =
        interior_point(cv::Mat(H, W, CV_8UC1, buf.data())(cv::Rect(x0, y0, x1 - x0, y1 - y0)));
    clear();

    Annotation a;
    a.id = index * 100000 + static_cast<int64_t>(out.annotations.size()) + 1;
    a.segmentation.kind = Segmentation::Kind::rle;
    a.segmentation.h = H;
    a.segmentation.w = W;
    const auto box = mask::rle_bbox_inclusive(rle);
    a.bbox = {double(box[0]), double(box[1]), double(box[2] - box[0]), double(box[3] - box[1])};
    a.area = static_cast<double>(mask::rle_area(rle));
    a.segmentation.rle = std::move(rle);
    a.predicted_iou = 1.0;
    a.stability_score = 1.0;
    a.crop_box = std::array<double, 4>{0, 0, double(W), double(H)};
    a.point_coords.push_back({pt[0] + x0, pt[1] + y0});
    a.source = out.info.file_name;
    ann_of[i] = static_cast<int>(out.annotations.size());
    out.annotations.push_back(std::move(a));
    out.level.push_back(p.level);
    out.parent.push_back(parent_ann);
  }
  return out;
}

SynthStats synth_write(const std::string& out_dir, const SynthOptions& o, int64_t count,
                       int64_t first_index, bool png, int jobs,
                       const ProgressFn& progress) {
  o.validate();
  if (count < 0) throw std::invalid_argument("synth: image count must be >= 0");
  namespace fs = std::filesystem;
  std::error_code ec;
  fs::create_directories(out_dir, ec);
  if (!fs::is_directory(out_dir, ec))
    throw std::runtime_error(out_dir + ": cannot create the output folder");
  std::atomic<int64_t> done{0}, masks{0};
  parallel_for_workers(count, jobs, [&](int64_t k, int) {
    const int64_t index = first_index + k;
    SynthImage im = synth_image(o, index);
    const std::string stem = (fs::path(out_dir) / ("sa_" + std::to_string(index))).string();
    cv::Mat bgr;
    cv::cvtColor(im.rgb, bgr, cv::COLOR_RGB2BGR);
    image_write(stem + ".jpg", bgr, 95);
    if (png) image_write(stem + ".png", bgr, 1);
    const std::string text = sa1b_json(im.info, im.annotations).dump();
    std::ofstream f(stem + ".json", std::ios::binary);
    f << text;
    if (!f) throw std::runtime_error(stem + ".json: cannot write");
    masks += static_cast<int64_t>(im.annotations.size());
    ++done;
  }, {}, progress);
  return {done.load(), masks.load()};
}

}  // namespace sam::data
