// The report's building blocks: escaping, ticks, and chart positions that map back to values.
#include "report/chart.h"

#include <gtest/gtest.h>

#include "report/markup.h"
#include "tests/report/svg_points.h"

namespace cdmoe::report {
namespace {

TEST(Markup, EveryTextAndAttributeIsEscaped) {
  Element p("p");
  p.attr("title", "a\"b<c>'&").text("<script>alert(1)</script> & co");
  EXPECT_EQ(p.str(), "<p title=\"a&quot;b&lt;c&gt;&#39;&amp;\">&lt;script&gt;alert(1)&lt;/script&gt; &amp; co</p>");
  Element style("style");
  style.trusted_text("a > b { color: red }");
  EXPECT_EQ(style.str(), "<style>a > b { color: red }</style>") << "the page's own CSS is written as is";
  // What XML 1.0 cannot carry even escaped (C0 controls but tab/LF/CR, invalid UTF-8) becomes
  // U+FFFD, so a name from an old database cannot make the page or an SVG ill-formed.
  Element bad("text");
  bad.attr("data-x", std::string("a\0b\x1b", 4)).text(std::string("c\x01" "d\te\n") + "\xff");
  const std::string replacement = "\xEF\xBF\xBD";  // U+FFFD
  EXPECT_EQ(bad.str(), "<text data-x=\"a" + replacement + "b" + replacement + "\">c" + replacement + "d\te\n" + replacement + "</text>");
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
  double misplaced = 1;
  std::vector<testing::SvgPoint> points = testing::read_svg_points(svg, &misplaced);
  ASSERT_EQ(points.size(), 10u);
  EXPECT_LT(misplaced, 0.001) << "within a pixel of a 400 px axis";
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
