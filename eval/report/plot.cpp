#include "eval/report/plot.h"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdio>
#include <limits>
#include <sstream>
#include <stdexcept>

namespace sam::eval {
namespace {

// Colour-blind-friendly palette (Okabe-Ito, without yellow which is unreadable on white).
const char* kPalette[] = {"#0072B2", "#D55E00", "#009E73", "#CC79A7",
                          "#56B4E9", "#E69F00", "#000000", "#999999"};

std::string fmt(double v) {
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%.2f", v);
  return buf;
}

// A tick label: few digits, no trailing zeros, scientific for very large or small values.
std::string tick_label(double v, double step) {
  if (std::abs(v) < 1e-12 * std::max(1.0, std::abs(step))) v = 0;
  char buf[32];
  const double a = std::abs(v);
  if (a != 0 && (a >= 1e6 || a < 1e-3)) {
    std::snprintf(buf, sizeof(buf), "%.3g", v);
  } else {
    int decimals = 0;
    if (step > 0) decimals = std::max(0, static_cast<int>(std::ceil(-std::log10(step) - 1e-9)));
    std::snprintf(buf, sizeof(buf), "%.*f", std::min(decimals, 6), v);
  }
  return buf;
}

struct Axis {
  double lo = 0, hi = 1;  // data range (log10 values on a log axis)
  bool log = false;
  std::vector<double> ticks;  // in the same space as lo/hi
};

double to_axis(double v, bool log) {
  return log ? std::log10(v) : v;
}

bool usable(double v, bool log) {
  return std::isfinite(v) && (!log || v > 0);
}

Axis make_axis(const std::vector<PlotSeries>& series, bool is_x, bool log,
               std::optional<double> fixed_lo, std::optional<double> fixed_hi) {
  Axis ax;
  ax.log = log;
  double lo = std::numeric_limits<double>::infinity(), hi = -lo;
  for (const auto& s : series) {
    for (size_t i = 0; i < s.x.size(); ++i) {
      const double v = is_x ? s.x[i] : s.y[i];
      const double other = is_x ? s.y[i] : s.x[i];
      if (!usable(v, log) || !std::isfinite(other)) continue;
      lo = std::min(lo, to_axis(v, log));
      hi = std::max(hi, to_axis(v, log));
    }
  }
  if (!std::isfinite(lo)) lo = 0, hi = 1;
  const bool has_lo = fixed_lo && usable(*fixed_lo, log);
  const bool has_hi = fixed_hi && usable(*fixed_hi, log);
  if (has_lo) lo = to_axis(*fixed_lo, log);
  if (has_hi) hi = to_axis(*fixed_hi, log);
  if (hi <= lo) {
    const double pad = lo == 0 ? 1 : std::abs(lo) * 0.1;
    if (!has_lo) lo -= pad;
    if (!has_hi || hi <= lo) hi = lo + 2 * pad;
  }
  if (log) {
    // Decades as ticks (or nice ticks over the exponent when the range is short).
    const double a = std::floor(lo), b = std::ceil(hi);
    if (!has_lo) lo = a;
    if (!has_hi) hi = b;
    for (double e = std::ceil(lo - 1e-9); e <= hi + 1e-9; e += 1) ax.ticks.push_back(e);
    if (ax.ticks.size() < 2) ax.ticks = nice_ticks(lo, hi, 4);
  } else {
    auto t = nice_ticks(lo, hi, 6);
    if (!t.empty()) {
      const double step = t.size() > 1 ? t[1] - t[0] : 1;
      if (!has_lo) lo = std::min(lo, std::floor(lo / step + 1e-9) * step);
      if (!has_hi) hi = std::max(hi, std::ceil(hi / step - 1e-9) * step);
      ax.ticks = nice_ticks(lo, hi, 6);
    }
  }
  ax.lo = lo;
  ax.hi = hi;
  return ax;
}

}  // namespace

std::vector<double> nice_ticks(double lo, double hi, int target) {
  std::vector<double> out;
  if (!std::isfinite(lo) || !std::isfinite(hi) || target < 1) return out;
  if (hi < lo) std::swap(lo, hi);
  if (hi == lo) return {lo};
  const double raw = (hi - lo) / target;
  const double mag = std::pow(10.0, std::floor(std::log10(raw)));
  double step = mag;
  for (double m : {1.0, 2.0, 5.0, 10.0}) {
    step = m * mag;
    if (step >= raw) break;
  }
  const double first = std::ceil(lo / step - 1e-9) * step;
  for (int i = 0; i < 1000; ++i) {
    const double v = first + i * step;
    if (v > hi + step * 1e-9) break;
    out.push_back(std::abs(v) < step * 1e-9 ? 0.0 : v);
  }
  return out;
}

std::string html_escape(const std::string& s) {
  std::string out;
  out.reserve(s.size());
  for (char c : s) {
    switch (c) {
      case '&':
        out += "&amp;";
        break;
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '"':
        out += "&quot;";
        break;
      case '\'':
        out += "&#39;";
        break;
      default:
        out += c;
    }
  }
  return out;
}

std::string svg_line_plot(const std::vector<PlotSeries>& series, const PlotOptions& o) {
  for (const auto& s : series)
    if (s.x.size() != s.y.size())
      throw std::invalid_argument("plot series '" + s.name + "': " + std::to_string(s.x.size()) +
                                  " x values but " + std::to_string(s.y.size()) + " y values");
  const Axis ax = make_axis(series, true, o.log_x, o.x_min, o.x_max);
  const Axis ay = make_axis(series, false, o.log_y, o.y_min, o.y_max);
  const double W = std::max(o.width, 160), H = std::max(o.height, 120);
  const double ml = 64, mr = 16, mt = o.title.empty() ? 16 : 36, mb = 52;
  const double pw = W - ml - mr, ph = H - mt - mb;
  auto px = [&](double v) { return ml + (to_axis(v, ax.log) - ax.lo) / (ax.hi - ax.lo) * pw; };
  auto py = [&](double v) { return mt + ph - (to_axis(v, ay.log) - ay.lo) / (ay.hi - ay.lo) * ph; };
  auto tx = [&](double a) { return ml + (a - ax.lo) / (ax.hi - ax.lo) * pw; };
  auto ty = [&](double a) { return mt + ph - (a - ay.lo) / (ay.hi - ay.lo) * ph; };

  std::ostringstream svg;
  svg << "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"" << W << "\" height=\"" << H
      << "\" viewBox=\"0 0 " << W << " " << H
      << "\" font-family=\"sans-serif\" font-size=\"12\">\n";
  svg << "<rect x=\"0\" y=\"0\" width=\"" << W << "\" height=\"" << H << "\" fill=\"white\"/>\n";
  if (!o.title.empty())
    svg << "<text x=\"" << fmt(ml + pw / 2) << "\" y=\"22\" text-anchor=\"middle\" font-size=\"14\""
        << " font-weight=\"bold\">" << html_escape(o.title) << "</text>\n";

  // Grid and ticks.
  const double xstep = ax.ticks.size() > 1 ? ax.ticks[1] - ax.ticks[0] : 1;
  const double ystep = ay.ticks.size() > 1 ? ay.ticks[1] - ay.ticks[0] : 1;
  for (double t : ax.ticks) {
    if (t < ax.lo - 1e-9 * xstep || t > ax.hi + 1e-9 * xstep) continue;
    const std::string x = fmt(tx(t));
    if (o.grid)
      svg << "<line x1=\"" << x << "\" y1=\"" << fmt(mt) << "\" x2=\"" << x << "\" y2=\""
          << fmt(mt + ph) << "\" stroke=\"#e4e4e4\"/>\n";
    svg << "<line x1=\"" << x << "\" y1=\"" << fmt(mt + ph) << "\" x2=\"" << x << "\" y2=\""
        << fmt(mt + ph + 5) << "\" stroke=\"#333\"/>\n";
    const std::string label =
        ax.log ? tick_label(std::pow(10.0, t), std::pow(10.0, t)) : tick_label(t, xstep);
    svg << "<text x=\"" << x << "\" y=\"" << fmt(mt + ph + 18) << "\" text-anchor=\"middle\">"
        << html_escape(label) << "</text>\n";
  }
  for (double t : ay.ticks) {
    if (t < ay.lo - 1e-9 * ystep || t > ay.hi + 1e-9 * ystep) continue;
    const std::string y = fmt(ty(t));
    if (o.grid)
      svg << "<line x1=\"" << fmt(ml) << "\" y1=\"" << y << "\" x2=\"" << fmt(ml + pw) << "\" y2=\""
          << y << "\" stroke=\"#e4e4e4\"/>\n";
    svg << "<line x1=\"" << fmt(ml - 5) << "\" y1=\"" << y << "\" x2=\"" << fmt(ml) << "\" y2=\""
        << y << "\" stroke=\"#333\"/>\n";
    const std::string label =
        ay.log ? tick_label(std::pow(10.0, t), std::pow(10.0, t)) : tick_label(t, ystep);
    svg << "<text x=\"" << fmt(ml - 8) << "\" y=\"" << fmt(ty(t) + 4) << "\" text-anchor=\"end\">"
        << html_escape(label) << "</text>\n";
  }
  svg << "<rect x=\"" << fmt(ml) << "\" y=\"" << fmt(mt) << "\" width=\"" << fmt(pw)
      << "\" height=\"" << fmt(ph) << "\" fill=\"none\" stroke=\"#333\"/>\n";
  if (!o.x_label.empty())
    svg << "<text x=\"" << fmt(ml + pw / 2) << "\" y=\"" << fmt(H - 12)
        << "\" text-anchor=\"middle\">" << html_escape(o.x_label) << "</text>\n";
  if (!o.y_label.empty())
    svg << "<text transform=\"translate(16," << fmt(mt + ph / 2)
        << ") rotate(-90)\" text-anchor=\"middle\">" << html_escape(o.y_label) << "</text>\n";

  // Curves, clipped to the plot area.
  // Unique per SVG so that several plots can share one page.
  static std::atomic<int> clip_counter{0};
  const std::string clip = "samplotclip" + std::to_string(++clip_counter);
  svg << "<clipPath id=\"" << clip << "\"><rect x=\"" << fmt(ml) << "\" y=\"" << fmt(mt)
      << "\" width=\"" << fmt(pw) << "\" height=\"" << fmt(ph) << "\"/></clipPath>\n";
  std::vector<std::string> colors;
  size_t next_color = 0;
  for (const auto& s : series) {
    const std::string color =
        s.color.empty() ? kPalette[next_color++ % (sizeof(kPalette) / sizeof(kPalette[0]))]
                        : s.color;
    colors.push_back(color);
    svg << "<g clip-path=\"url(#" << clip << ")\" fill=\"none\" stroke=\"" << html_escape(color)
        << "\" stroke-width=\"" << s.width << "\"" << (s.dashed ? " stroke-dasharray=\"6 4\"" : "")
        << ">\n";
    std::string path;
    bool pen_down = false;
    for (size_t i = 0; i < s.x.size(); ++i) {
      if (!usable(s.x[i], ax.log) || !usable(s.y[i], ay.log)) {
        pen_down = false;
        continue;
      }
      path += (pen_down ? " L" : " M") + fmt(px(s.x[i])) + " " + fmt(py(s.y[i]));
      pen_down = true;
    }
    if (!path.empty()) svg << "<path d=\"" << path.substr(1) << "\"/>\n";
    if (s.markers)
      for (size_t i = 0; i < s.x.size(); ++i)
        if (usable(s.x[i], ax.log) && usable(s.y[i], ay.log))
          svg << "<circle cx=\"" << fmt(px(s.x[i])) << "\" cy=\"" << fmt(py(s.y[i]))
              << "\" r=\"3\" fill=\"" << html_escape(color) << "\" stroke=\"none\"/>\n";
    svg << "</g>\n";
  }

  // Legend.
  std::vector<size_t> named;
  for (size_t i = 0; i < series.size(); ++i)
    if (!series[i].name.empty()) named.push_back(i);
  if (o.legend && !named.empty()) {
    size_t longest = 0;
    for (size_t i : named) longest = std::max(longest, series[i].name.size());
    const double lw = 34 + 7.0 * static_cast<double>(std::min<size_t>(longest, 60)),
                 lh = 8 + 18.0 * named.size();
    using LP = PlotOptions::LegendPos;
    auto box_of = [&](LP pos, double& lx, double& ly) {
      const bool right = pos == LP::kTopRight || pos == LP::kBottomRight;
      const bool top = pos == LP::kTopRight || pos == LP::kTopLeft;
      lx = right ? ml + pw - lw - 8 : ml + 8;
      ly = top ? mt + 8 : mt + ph - lh - 8;
    };
    LP pos = o.legend_pos;
    if (pos == LP::kAuto) {
      // Count the curve points (and points along each segment) under each candidate box.
      std::vector<std::pair<double, double>> pts;
      for (const auto& s : series) {
        bool have_prev = false;
        double qx = 0, qy = 0;
        for (size_t i = 0; i < s.x.size(); ++i) {
          if (!usable(s.x[i], ax.log) || !usable(s.y[i], ay.log)) {
            have_prev = false;
            continue;
          }
          const double cx = px(s.x[i]), cy = py(s.y[i]);
          for (int k = have_prev ? 1 : 8; k <= 8; ++k)
            pts.push_back({qx + (cx - qx) * k / 8.0, qy + (cy - qy) * k / 8.0});
          qx = cx, qy = cy, have_prev = true;
        }
      }
      size_t best = std::numeric_limits<size_t>::max();
      for (LP cand : {LP::kTopRight, LP::kBottomRight, LP::kTopLeft, LP::kBottomLeft}) {
        double bx = 0, by = 0;
        box_of(cand, bx, by);
        size_t n = 0;
        const double m = 10;  // a curve just outside the box still crowds it
        for (const auto& [x, y] : pts)
          n += x >= bx - m && x <= bx + lw + m && y >= by - m && y <= by + lh + m;
        if (n < best) best = n, pos = cand;
      }
    }
    double lx = 0, ly = 0;
    box_of(pos, lx, ly);
    svg << "<rect x=\"" << fmt(lx) << "\" y=\"" << fmt(ly) << "\" width=\"" << fmt(lw)
        << "\" height=\"" << fmt(lh)
        << "\" fill=\"white\" fill-opacity=\"0.85\" stroke=\"#bbb\"/>\n";
    for (size_t k = 0; k < named.size(); ++k) {
      const auto& s = series[named[k]];
      const double y = ly + 14 + 18.0 * k;
      if (s.width > 0)
        svg << "<line x1=\"" << fmt(lx + 6) << "\" y1=\"" << fmt(y - 4) << "\" x2=\""
            << fmt(lx + 26) << "\" y2=\"" << fmt(y - 4) << "\" stroke=\""
            << html_escape(colors[named[k]]) << "\" stroke-width=\"" << s.width << "\""
            << (s.dashed ? " stroke-dasharray=\"6 4\"" : "") << "/>\n";
      if (s.markers)
        svg << "<circle cx=\"" << fmt(lx + 16) << "\" cy=\"" << fmt(y - 4) << "\" r=\"3\" fill=\""
            << html_escape(colors[named[k]]) << "\"/>\n";
      svg << "<text x=\"" << fmt(lx + 30) << "\" y=\"" << fmt(y) << "\">" << html_escape(s.name)
          << "</text>\n";
    }
  }
  svg << "</svg>\n";
  return svg.str();
}

std::string html_table(const std::vector<std::string>& header,
                       const std::vector<std::vector<std::string>>& rows) {
  std::ostringstream t;
  t << "<table>\n<tr>";
  for (const auto& h : header) t << "<th>" << html_escape(h) << "</th>";
  t << "</tr>\n";
  for (const auto& r : rows) {
    t << "<tr>";
    for (const auto& c : r) t << "<td>" << html_escape(c) << "</td>";
    t << "</tr>\n";
  }
  t << "</table>\n";
  return t.str();
}

std::string html_page(const std::string& title, const std::vector<std::string>& body_fragments) {
  std::ostringstream p;
  p << "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<title>"
    << html_escape(title) << "</title>\n<style>\n"
    << "body{font-family:sans-serif;margin:24px;color:#222;max-width:1100px}\n"
    << "table{border-collapse:collapse;margin:12px 0}\n"
    << "th,td{border:1px solid #ccc;padding:4px 10px;text-align:right}\n"
    << "th{background:#f3f3f3}\ntd:first-child,th:first-child{text-align:left}\n"
    << "svg{display:block;margin:12px 0}\ncode,pre{background:#f6f6f6}\n"
    << "</style>\n</head>\n<body>\n<h1>" << html_escape(title) << "</h1>\n";
  for (const auto& f : body_fragments) p << f << "\n";
  p << "</body>\n</html>\n";
  return p.str();
}

}  // namespace sam::eval
