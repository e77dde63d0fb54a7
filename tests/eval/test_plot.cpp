// The SVG plot helper: nice ticks, series drawn as paths broken at non-finite points, legend,
// escaping, log axes, and the HTML page.
#include <catch2/catch.hpp>

#include <cmath>
#include <limits>
#include <regex>

#include "eval/report/plot.h"

using namespace sam::eval;

namespace {

size_t count(const std::string& s, const std::string& what) {
  size_t n = 0;
  for (size_t p = s.find(what); p != std::string::npos; p = s.find(what, p + 1)) ++n;
  return n;
}

}  // namespace

TEST_CASE("nice ticks", "[eval][plot]") {
  const auto u = nice_ticks(0, 1, 5);  // step 0.2
  REQUIRE(u.size() == 6);
  for (size_t i = 0; i < u.size(); ++i) CHECK(u[i] == Approx(0.2 * i));
  const auto t = nice_ticks(1, 20, 6);
  CHECK(t.front() == 5);  // step 5: 5, 10, 15, 20
  CHECK(t.back() == 20);
  CHECK(t.size() == 4);
  CHECK(nice_ticks(-3, 3, 6) == std::vector<double>{-3, -2, -1, 0, 1, 2, 3});
  CHECK(nice_ticks(2, 2) == std::vector<double>{2});
}

TEST_CASE("line plot SVG", "[eval][plot]") {
  const double nan = std::numeric_limits<double>::quiet_NaN();
  PlotSeries a{"train <loss>", {1, 2, 3, 4, 5}, {0.9, 0.5, nan, 0.3, 0.2}, ""};
  PlotSeries b{"val", {1, 5}, {0.8, 0.4}, "#ff0000", true, true};
  PlotOptions o;
  o.title = "Loss & more";
  o.x_label = "step";
  o.y_label = "loss";
  const std::string svg = svg_line_plot({a, b}, o);
  CHECK(svg.rfind("<svg", 0) == 0);
  CHECK(svg.find("</svg>") != std::string::npos);
  CHECK(svg.find("Loss &amp; more") != std::string::npos);
  CHECK(svg.find("train &lt;loss&gt;") != std::string::npos);  // legend text escaped
  CHECK(svg.find(">step</text>") != std::string::npos);
  CHECK(svg.find(">loss</text>") != std::string::npos);
  CHECK(count(svg, "<path") == 2);
  // The NaN splits series a into two pieces: two move commands in its path.
  std::smatch m;
  REQUIRE(std::regex_search(svg, m, std::regex("<path d=\"([^\"]*)\"")));
  CHECK(count(m[1].str(), "M") == 2);
  CHECK(count(m[1].str(), "L") == 2);
  CHECK(count(svg, "<circle") == 3);  // markers of b, and b's legend entry
  CHECK(svg.find("stroke-dasharray") != std::string::npos);
  CHECK(svg.find("#ff0000") != std::string::npos);
  // Tick labels of the x axis 1..5.
  for (const char* t : {">1</text>", ">3</text>", ">5</text>"})
    CHECK(svg.find(t) != std::string::npos);
  CHECK_THROWS_AS(svg_line_plot({PlotSeries{"bad", {1, 2}, {1}, ""}}, o), std::invalid_argument);
}

TEST_CASE("log axis and fixed ranges", "[eval][plot]") {
  PlotSeries s{"AR", {10, 100, 1000}, {0.1, 0.3, 0.5}, ""};
  PlotOptions o;
  o.log_x = true;
  o.y_min = 0;
  o.y_max = 1;
  const std::string svg = svg_line_plot({s}, o);
  for (const char* t : {">10</text>", ">100</text>", ">1000</text>", ">0.0</text>", ">1.0</text>"})
    CHECK(svg.find(t) != std::string::npos);
  // An empty plot still renders axes.
  CHECK(svg_line_plot({}, PlotOptions{}).find("<rect") != std::string::npos);
}

TEST_CASE("HTML page and table", "[eval][plot]") {
  const std::string page =
      html_page("A <b> title", {html_table({"k", "v"}, {{"x&y", "1"}}), "<p>hi</p>"});
  CHECK(page.rfind("<!DOCTYPE html>", 0) == 0);
  CHECK(page.find("<title>A &lt;b&gt; title</title>") != std::string::npos);
  CHECK(page.find("<td>x&amp;y</td>") != std::string::npos);
  CHECK(page.find("<p>hi</p>") != std::string::npos);
  CHECK(page.find("http") == std::string::npos);  // self-contained: no external resources
  CHECK(html_escape("'\"") == "&#39;&quot;");
}

TEST_CASE("automatic legend placement avoids the curves", "[eval][plot]") {
  // A curve along the top edge: the legend goes to the bottom (right first).
  PlotSeries top{"top", {0, 1, 2, 3, 4}, {1, 1, 1, 1, 1}, ""};
  PlotOptions o;
  o.y_min = 0;
  o.y_max = 1;
  o.width = 400;
  o.height = 300;
  auto legend_xy = [](const std::string& svg) {
    std::smatch m;
    REQUIRE(std::regex_search(
        svg, m, std::regex("<rect x=\"([0-9.]+)\" y=\"([0-9.]+)\"[^>]*fill-opacity")));
    return std::make_pair(std::stod(m[1]), std::stod(m[2]));
  };
  auto [x1, y1] = legend_xy(svg_line_plot({top}, o));
  CHECK(x1 > 200);
  CHECK(y1 > 150);
  // A falling diagonal plus a curve along the bottom: the top-right corner is free.
  PlotSeries fall{"fall", {0, 4}, {1, 0}, ""}, bottom{"bottom", {0, 4}, {0, 0}, ""};
  auto [x2, y2] = legend_xy(svg_line_plot({fall, bottom}, o));
  CHECK(x2 > 200);
  CHECK(y2 < 150);
  // A fixed position is kept.
  o.legend_pos = PlotOptions::LegendPos::kTopLeft;
  auto [x3, y3] = legend_xy(svg_line_plot({top}, o));
  CHECK(x3 < 200);
  CHECK(y3 < 150);
}
