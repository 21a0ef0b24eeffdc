// Charts as standalone SVG: a scatter of series on linear axes with "nice" ticks, each point
// joined to the next in its series' order, optional error bars, points highlighted with a ring
// (the Pareto front), a legend, and a <title> on every point for hover text (no script).
// Series are told apart by colour (Okabe-Ito, safe for colour-blindness), marker shape and line
// dash, so a greyscale print still separates them.
// Every point is a <g class="point"> carrying data-series, data-candidate, data-x and data-y and
// placed by transform="translate(px,py)"; the <svg> carries data-plot ("left top width height"
// of the plot area in px) and data-x-domain / data-y-domain ("low high"), so a reader (or a
// test) can map a position back to its values.
#pragma once

#include <cmath>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "report/markup.h"

namespace cdmoe::report {

struct ChartPoint {
  double x = 0, y = 0;
  double y_error = NAN;               // half-width of a vertical error bar
  double x_low = NAN, x_high = NAN;   // a horizontal interval (e.g. a confidence interval)
  std::string title;                  // hover text
  int64_t candidate = -1;
  bool highlighted = false;
};

struct ChartSeries {
  std::string name;
  int style = 0;  // index into the palette of colours, markers and dashes (stable across charts)
  bool joined = true;
  std::vector<ChartPoint> points;
};

struct ChartAxis {
  std::string label;     // with its unit, e.g. "parameters (fraction of the original)"
  bool integer = false;  // counts: ticks at whole numbers only
};

// A thin dotted segment from one point to another (a fine-tuned candidate to the one it was
// fine-tuned from): drawn under the series, with a hover title.
struct ChartLink {
  double from_x = 0, from_y = 0, to_x = 0, to_y = 0;
  int64_t from_candidate = -1, to_candidate = -1;
  std::string title;
};

struct ChartSpec {
  std::string title;
  ChartAxis x, y;
  std::vector<ChartSeries> series;
  std::vector<ChartLink> links;
  std::string highlight_label;  // legend text of the ring; empty: no highlighted points expected
  std::string empty_message = "no data yet";
  int width = 640, height = 420;
};

Element render_chart(const ChartSpec& spec);

// Up to ~`count` evenly spaced round values (1, 2, 5 x 10^k steps) covering [low, high].
std::vector<double> nice_ticks(double low, double high, int count = 6, bool integer = false);

// A heat map of values in [0, 1]: rows x columns cells, darker for larger values (a single-hue
// ramp of falling luminance, readable in greyscale), with row and column labels and a title per
// cell. cells[r][c]; NAN draws an empty cell.
struct HeatmapSpec {
  std::string title, row_label, column_label;
  std::vector<std::string> rows, columns;
  std::vector<std::vector<double>> cells;
  std::vector<std::vector<std::string>> cell_titles;
};
Element render_heatmap(const HeatmapSpec& spec);

}  // namespace cdmoe::report
