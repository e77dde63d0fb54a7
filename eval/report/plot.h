#pragma once
// Small, dependency-free plots for reports: line plots as SVG strings (axes, "nice" ticks, grid,
// legend) and a self-contained HTML page to put them in. Used by the evaluation reports (mIoU
// against clicks, precision-recall curves), the trainer's loss curves and the data engine's
// reports; nothing here knows about SAM.
#include <optional>
#include <string>
#include <vector>

namespace sam::eval {

/// One named curve. x and y have the same length; points with a non-finite x or y break the line
/// (the segments on either side are drawn, the gap is not).
struct PlotSeries {
  std::string name = "";  ///< legend text ("" = not in the legend)
  std::vector<double> x = {}, y = {};
  std::string color = "";  ///< any SVG colour; "" = the next colour of the built-in palette
  bool markers = false;    ///< draw a dot at every point
  bool dashed = false;     ///< dashed line
  double width = 2.0;      ///< stroke width in px
};

/// Axes, size and labels of a plot. Ranges not given are taken from the data (padded to nice
/// tick values); a log axis drops non-positive values.
struct PlotOptions {
  std::string title, x_label, y_label;
  int width = 640, height = 400;  ///< whole SVG in px, margins included
  std::optional<double> x_min, x_max, y_min, y_max;
  bool log_x = false, log_y = false;
  bool legend = true;
  /// kAuto: the corner whose legend box covers the fewest points of the curves.
  enum class LegendPos { kTopRight, kBottomRight, kTopLeft, kBottomLeft, kAuto };
  LegendPos legend_pos = LegendPos::kAuto;
  bool grid = true;
};

/// A line plot of `series` as one <svg> element (inline in HTML, or saved as a .svg file).
/// Throws std::invalid_argument naming the series whose x and y lengths differ.
std::string svg_line_plot(const std::vector<PlotSeries>& series, const PlotOptions& opts);

/// "Nice" tick positions (1, 2 or 5 x 10^k steps) covering [lo, hi] with about `target` ticks.
std::vector<double> nice_ticks(double lo, double hi, int target = 6);

/// Escapes &, <, >, " and ' for HTML text and attribute values.
std::string html_escape(const std::string& s);

/// An HTML table: a header row and body rows of cells (escaped).
std::string html_table(const std::vector<std::string>& header,
                       const std::vector<std::vector<std::string>>& rows);

/// A complete, self-contained HTML page (inline CSS, no external resources) with `title` as <h1>
/// and the given HTML fragments (tables, SVG plots, paragraphs) in order.
std::string html_page(const std::string& title, const std::vector<std::string>& body_fragments);

}  // namespace sam::eval
