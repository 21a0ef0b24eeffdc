// The report's building blocks: escaping, ticks, and chart positions that map back to values.
#include "report/chart.h"

#include <regex>

#include <gtest/gtest.h>

#include "report/markup.h"

namespace cdmoe::report {
namespace {

TEST(Markup, EveryTextAndAttributeIsEscaped) {
  Element p("p");
  p.attr("title", "a\"b<c>'&").text("<script>alert(1)</script> & co");
  EXPECT_EQ(p.str(), "<p title=\"a&quot;b&lt;c&gt;&#39;&amp;\">&lt;script&gt;alert(1)&lt;/script&gt; &amp; co</p>");
  Element style("style");
  style.trusted_text("a > b { color: red }");
  EXPECT_EQ(style.str(), "<style>a > b { color: red }</style>") << "the page's own CSS is written as is";
  Element meta("meta");
  meta.attr("charset", "utf-8");
  EXPECT_EQ(meta.str(), "<meta charset=\"utf-8\">") << "void elements have no end tag";
}

TEST(Ticks, RoundStepsCoveringTheRange) {
  std::vector<double> unit = nice_ticks(0, 1);
  ASSERT_EQ(unit.size(), 6u);
  for (size_t i = 0; i < unit.size(); ++i) EXPECT_NEAR(unit[i], 0.2 * double(i), 1e-12);
  std::vector<double> t = nice_ticks(0.953, 1.0);
  ASSERT_GE(t.size(), 3u);
  EXPECT_LE(t.front(), 0.953);
  EXPECT_GE(t.back(), 1.0 - 1e-12);
  EXPECT_EQ(nice_ticks(1, 2, 6, /*integer=*/true), (std::vector<double>{1, 2}));
  EXPECT_EQ(nice_ticks(3, 3), (std::vector<double>{3})) << "an empty range";
}

// Reads back every point: its data values and its pixel position, mapped through the chart's
// published plot box and domains.
struct ReadPoint {
  std::string series;
  double x, y, px, py;
};

std::vector<ReadPoint> read_points(const std::string& svg, double* mapped_x_error, double* mapped_y_error) {
  std::smatch m;
  std::regex plot("data-plot=\"([^ ]+) ([^ ]+) ([^ ]+) ([^\"]+)\" data-x-domain=\"([^ ]+) ([^\"]+)\" data-y-domain=\"([^ ]+) ([^\"]+)\"");
  EXPECT_TRUE(std::regex_search(svg, m, plot));
  double left = std::stod(m[1]), top = std::stod(m[2]), width = std::stod(m[3]), height = std::stod(m[4]);
  double x0 = std::stod(m[5]), x1 = std::stod(m[6]), y0 = std::stod(m[7]), y1 = std::stod(m[8]);
  std::regex point("class=\"point[^\"]*\" data-series=\"([^\"]*)\" data-candidate=\"[^\"]*\" data-x=\"([^\"]+)\" "
                   "data-y=\"([^\"]+)\" transform=\"translate\\(([^,]+),([^)]+)\\)\"");
  std::vector<ReadPoint> out;
  *mapped_x_error = *mapped_y_error = 0;
  for (auto it = std::sregex_iterator(svg.begin(), svg.end(), point); it != std::sregex_iterator(); ++it) {
    ReadPoint p{(*it)[1], std::stod((*it)[2]), std::stod((*it)[3]), std::stod((*it)[4]), std::stod((*it)[5])};
    double x = x0 + (p.px - left) / width * (x1 - x0);
    double y = y0 + (top + height - p.py) / height * (y1 - y0);
    *mapped_x_error = std::max(*mapped_x_error, std::abs(x - p.x) / (x1 - x0));
    *mapped_y_error = std::max(*mapped_y_error, std::abs(y - p.y) / (y1 - y0));
    out.push_back(p);
  }
  return out;
}

TEST(Chart, EveryPointIsDrawnWhereItsValuesSay) {
  ChartSpec spec;
  spec.title = "t";
  ChartSeries a{"cdmoe_s", 1, true, {}}, b{"drop <b>", 2, true, {}};
  for (int i = 0; i < 5; ++i) {
    ChartPoint p;
    p.x = 0.7 + 0.05 * i, p.y = 0.4 + 0.01 * i * i, p.y_error = 0.01, p.candidate = i;
    a.points.push_back(p);
    p.y -= 0.1, p.highlighted = i == 2, p.candidate = 10 + i;
    b.points.push_back(p);
  }
  spec.series = {a, b};
  spec.highlight_label = "front";
  std::string svg = render_chart(spec).str();
  double dx = 1, dy = 1;
  std::vector<ReadPoint> points = read_points(svg, &dx, &dy);
  ASSERT_EQ(points.size(), 10u);
  EXPECT_LT(dx, 0.001) << "within a pixel of a 400 px axis";
  EXPECT_LT(dy, 0.001);
  EXPECT_EQ(points[0].x, 0.7);
  EXPECT_EQ(points[9].series, "drop &lt;b&gt;") << "series names are escaped";
  EXPECT_NE(svg.find("class=\"point highlighted\""), std::string::npos);
  EXPECT_NE(svg.find(">front</text>"), std::string::npos) << "the ring is in the legend";
  EXPECT_NE(svg.find("class=\"error-bar\""), std::string::npos);
}

TEST(Chart, AnEmptyChartSaysSo) {
  ChartSpec spec;
  spec.empty_message = "no full evaluation yet";
  std::string svg = render_chart(spec).str();
  EXPECT_NE(svg.find("no full evaluation yet"), std::string::npos);
  EXPECT_EQ(svg.find("class=\"point"), std::string::npos);
}

TEST(Heatmap, DarkerForLargerValues) {
  HeatmapSpec spec;
  spec.rows = {"1"};
  spec.columns = {"0", "1", "2"};
  spec.cells = {{0.0, 0.5, 1.0}};
  std::string svg = render_heatmap(spec).str();
  EXPECT_NE(svg.find("fill=\"#f7fbff\""), std::string::npos);
  EXPECT_NE(svg.find("fill=\"#08306b\""), std::string::npos);
}

}  // namespace
}  // namespace cdmoe::report
