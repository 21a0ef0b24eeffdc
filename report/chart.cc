#include "report/chart.h"

#include <algorithm>
#include <cstdio>

namespace cdmoe::report {
namespace {

// Okabe & Ito's colour-blind-safe palette (yellow left out: it vanishes on white).
constexpr const char* kColours[] = {"#000000", "#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9"};
constexpr const char* kDashes[] = {"", "6 3", "2 2", "8 3 2 3", "4 4", "1 3", "10 4"};
constexpr int kMarkers = 7;  // circle, square, triangle, diamond, triangle down, cross, plus

std::string px(double v) { return format_number(std::round(v * 10) / 10, 7); }

// The marker of `style` centred on the origin, as path data (radius ~4.5 px).
std::string marker_path(int style) {
  switch (style % kMarkers) {
    case 0: return "M-4.5,0a4.5,4.5 0 1,0 9,0a4.5,4.5 0 1,0 -9,0";
    case 1: return "M-4,-4h8v8h-8z";
    case 2: return "M0,-5L4.5,3.5H-4.5z";
    case 3: return "M0,-5.5L5,0L0,5.5L-5,0z";
    case 4: return "M0,5L4.5,-3.5H-4.5z";
    case 5: return "M-4,-4L4,4M4,-4L-4,4";
    default: return "M-5,0H5M0,-5V5";
  }
}
bool marker_is_stroke(int style) { return style % kMarkers >= 5; }

struct Scale {
  double low, high, from, to;  // value domain -> pixel range
  double operator()(double v) const { return from + (v - low) / (high - low) * (to - from); }
};

// The domain: the data's range (error bars included) widened to the outer ticks.
std::pair<double, double> domain(std::vector<double> values, bool integer) {
  if (values.empty()) return {0, 1};
  auto [lo, hi] = std::minmax_element(values.begin(), values.end());
  double low = *lo, high = *hi;
  if (low == high) {
    double pad = low == 0 ? 1 : std::abs(low) * 0.05;
    low -= pad, high += pad;
  }
  std::vector<double> ticks = nice_ticks(low, high, 6, integer);
  return {std::min(low, ticks.front()), std::max(high, ticks.back())};
}

std::string tick_label(double v, double step) {
  // Enough decimals to tell ticks `step` apart, no more.
  int decimals = step >= 1 ? 0 : int(std::ceil(-std::log10(step) - 1e-9));
  char buffer[32];
  if (std::abs(v) >= 1e6 || (v != 0 && std::abs(v) < 1e-4)) std::snprintf(buffer, sizeof buffer, "%.3g", v);
  else std::snprintf(buffer, sizeof buffer, "%.*f", std::min(decimals, 8), v);
  return buffer;
}

Element styled_marker(int style) {
  Element marker("path");
  marker.attr("d", marker_path(style));
  const char* colour = kColours[style % 7];
  if (marker_is_stroke(style)) marker.attr("fill", "none").attr("stroke", colour).attr("stroke-width", "2");
  else marker.attr("fill", colour).attr("stroke", "#ffffff").attr("stroke-width", "0.8");
  return marker;
}

}  // namespace

std::vector<double> nice_ticks(double low, double high, int count, bool integer) {
  if (!(high > low) || !std::isfinite(low) || !std::isfinite(high)) return {low};
  double raw = (high - low) / std::max(1, count - 1);
  if (integer) raw = std::max(raw, 1.0);
  double magnitude = std::pow(10, std::floor(std::log10(raw)));
  double step = magnitude;
  for (double m : {1.0, 2.0, 5.0, 10.0}) {
    step = m * magnitude;
    if (step >= raw) break;
  }
  std::vector<double> ticks;
  for (double t = std::floor(low / step) * step; t <= high + step * 0.999; t += step) {
    ticks.push_back(std::abs(t) < step * 1e-9 ? 0 : t);
    if (ticks.size() > 50) break;
  }
  return ticks;
}

Element render_chart(const ChartSpec& spec) {
  const double left = 72, top = 36, right = 190, bottom = 52;  // room for labels and the legend
  const double plot_w = spec.width - left - right, plot_h = spec.height - top - bottom;
  std::vector<double> xs, ys;
  size_t points = 0;
  for (const ChartSeries& s : spec.series) {
    for (const ChartPoint& p : s.points) {
      ++points;
      xs.push_back(p.x);
      ys.push_back(p.y);
      if (std::isfinite(p.y_error)) ys.push_back(p.y - p.y_error), ys.push_back(p.y + p.y_error);
      if (std::isfinite(p.x_low)) xs.push_back(p.x_low);
      if (std::isfinite(p.x_high)) xs.push_back(p.x_high);
    }
  }
  auto [x_low, x_high] = domain(xs, spec.x.integer);
  auto [y_low, y_high] = domain(ys, spec.y.integer);
  Scale sx{x_low, x_high, left, left + plot_w}, sy{y_low, y_high, top + plot_h, top};

  Element svg("svg");
  svg.attr("xmlns", "http://www.w3.org/2000/svg").attr("class", "chart");
  svg.attr("width", double(spec.width)).attr("height", double(spec.height));
  svg.attr("viewBox", "0 0 " + std::to_string(spec.width) + " " + std::to_string(spec.height));
  svg.attr("font-family", "sans-serif").attr("font-size", "12");
  svg.attr("data-plot", px(left) + " " + px(top) + " " + px(plot_w) + " " + px(plot_h));
  svg.attr("data-x-domain", format_number(x_low, 12) + " " + format_number(x_high, 12));
  svg.attr("data-y-domain", format_number(y_low, 12) + " " + format_number(y_high, 12));
  svg.child("title").text(spec.title);
  svg.child("text").attr("x", 8.0).attr("y", 20.0).attr("font-size", "14").attr("font-weight", "bold").text(spec.title);
  svg.child("rect").attr("x", left).attr("y", top).attr("width", plot_w).attr("height", plot_h)
      .attr("fill", "#ffffff").attr("stroke", "#444444");

  // Axes: grid lines and tick labels.
  Element& grid = svg.child("g");
  grid.attr("class", "axes").attr("stroke", "#dddddd");
  std::vector<double> xt = nice_ticks(x_low, x_high, 6, spec.x.integer), yt = nice_ticks(y_low, y_high, 6, spec.y.integer);
  double x_step = xt.size() > 1 ? xt[1] - xt[0] : 1, y_step = yt.size() > 1 ? yt[1] - yt[0] : 1;
  for (double t : xt) {
    if (t < x_low - 1e-12 || t > x_high + 1e-12) continue;
    grid.child("line").attr("x1", px(sx(t))).attr("x2", px(sx(t))).attr("y1", top).attr("y2", top + plot_h);
    grid.child("text").attr("x", px(sx(t))).attr("y", top + plot_h + 16).attr("text-anchor", "middle")
        .attr("stroke", "none").attr("fill", "#222222").text(tick_label(t, x_step));
  }
  for (double t : yt) {
    if (t < y_low - 1e-12 || t > y_high + 1e-12) continue;
    grid.child("line").attr("x1", left).attr("x2", left + plot_w).attr("y1", px(sy(t))).attr("y2", px(sy(t)));
    grid.child("text").attr("x", left - 6).attr("y", px(sy(t) + 4)).attr("text-anchor", "end")
        .attr("stroke", "none").attr("fill", "#222222").text(tick_label(t, y_step));
  }
  svg.child("text").attr("x", px(left + plot_w / 2)).attr("y", double(spec.height - 12)).attr("text-anchor", "middle")
      .text(spec.x.label);
  svg.child("text").attr("transform", "translate(16," + px(top + plot_h / 2) + ") rotate(-90)")
      .attr("text-anchor", "middle").text(spec.y.label);
  if (points == 0) {
    svg.child("text").attr("x", px(left + plot_w / 2)).attr("y", px(top + plot_h / 2)).attr("text-anchor", "middle")
        .attr("fill", "#666666").attr("class", "empty").text(spec.empty_message);
  }

  // Links (under the series), each a thin dotted grey segment with its meaning on hover.
  if (!spec.links.empty()) {
    Element& links = svg.child("g");
    links.attr("class", "links").attr("stroke", "#777777").attr("stroke-width", "1").attr("stroke-dasharray", "2,2");
    for (const ChartLink& link : spec.links) {
      Element& line = links.child("line");
      line.attr("class", "link").attr("data-from", std::to_string(link.from_candidate)).attr("data-to", std::to_string(link.to_candidate));
      line.attr("x1", px(sx(link.from_x))).attr("y1", px(sy(link.from_y))).attr("x2", px(sx(link.to_x))).attr("y2", px(sy(link.to_y)));
      line.child("title").text(link.title);
    }
  }

  // Series: line, error bars, highlight rings, markers (in that order, markers on top).
  for (const ChartSeries& s : spec.series) {
    const char* colour = kColours[s.style % 7];
    Element& group = svg.child("g");
    group.attr("class", "series").attr("data-series", s.name);
    if (s.joined && s.points.size() > 1) {
      std::string d;
      for (size_t i = 0; i < s.points.size(); ++i) {
        d += (i ? "L" : "M") + px(sx(s.points[i].x)) + "," + px(sy(s.points[i].y));
      }
      Element& line = group.child("path");
      line.attr("d", d).attr("fill", "none").attr("stroke", colour).attr("stroke-width", "1.5");
      if (*kDashes[s.style % 7]) line.attr("stroke-dasharray", kDashes[s.style % 7]);
    }
    for (const ChartPoint& p : s.points) {
      if (std::isfinite(p.y_error) && p.y_error > 0) {
        group.child("path").attr("class", "error-bar").attr("stroke", colour).attr("fill", "none")
            .attr("d", "M" + px(sx(p.x)) + "," + px(sy(p.y - p.y_error)) + "V" + px(sy(p.y + p.y_error)) +
                       "M" + px(sx(p.x) - 3) + "," + px(sy(p.y - p.y_error)) + "h6M" + px(sx(p.x) - 3) + "," +
                       px(sy(p.y + p.y_error)) + "h6");
      }
      if (std::isfinite(p.x_low) && std::isfinite(p.x_high)) {
        group.child("path").attr("class", "error-bar").attr("stroke", colour).attr("fill", "none")
            .attr("d", "M" + px(sx(p.x_low)) + "," + px(sy(p.y)) + "H" + px(sx(p.x_high)));
      }
    }
    for (const ChartPoint& p : s.points) {
      Element& point = group.child("g");
      point.attr("class", p.highlighted ? "point highlighted" : "point").attr("data-series", s.name);
      point.attr("data-candidate", std::to_string(p.candidate));
      point.attr("data-x", format_number(p.x, 17)).attr("data-y", format_number(p.y, 17));  // exact round trip
      point.attr("transform", "translate(" + px(sx(p.x)) + "," + px(sy(p.y)) + ")");
      point.child("title").text(p.title);
      if (p.highlighted) {
        point.child("circle").attr("r", "8").attr("fill", "none").attr("stroke", "#000000").attr("stroke-width", "1.5");
      }
      point.add(styled_marker(s.style));
    }
  }

  // Legend: marker, dash and name per series; the ring's meaning.
  Element& legend = svg.child("g");
  legend.attr("class", "legend");
  double ly = top + 8;
  auto legend_row = [&](const std::string& name) {
    legend.child("text").attr("x", left + plot_w + 42).attr("y", px(ly + 4)).text(name);
    ly += 18;
  };
  for (const ChartSeries& s : spec.series) {
    Element& sample = legend.child("g");
    sample.attr("transform", "translate(" + px(left + plot_w + 22) + "," + px(ly) + ")");
    Element& line = sample.child("path");
    line.attr("d", "M-14,0H14").attr("stroke", kColours[s.style % 7]).attr("stroke-width", "1.5");
    if (*kDashes[s.style % 7]) line.attr("stroke-dasharray", kDashes[s.style % 7]);
    sample.add(styled_marker(s.style));
    legend_row(s.name);
  }
  if (!spec.highlight_label.empty()) {
    legend.child("circle").attr("cx", px(left + plot_w + 22)).attr("cy", px(ly)).attr("r", "8").attr("fill", "none")
        .attr("stroke", "#000000").attr("stroke-width", "1.5");
    legend_row(spec.highlight_label);
  }
  return svg;
}

Element render_heatmap(const HeatmapSpec& spec) {
  const double left = 80, top = 40, cell = 14;
  size_t columns = spec.columns.size();
  double width = std::max(560.0, left + double(columns) * cell + 30), height = top + double(spec.rows.size()) * cell + 50;
  Element svg("svg");
  svg.attr("xmlns", "http://www.w3.org/2000/svg").attr("class", "heatmap").attr("font-family", "sans-serif")
      .attr("font-size", "11").attr("width", width).attr("height", height)
      .attr("viewBox", "0 0 " + px(width) + " " + px(height));
  svg.child("title").text(spec.title);
  svg.child("text").attr("x", 8.0).attr("y", 18.0).attr("font-size", "14").attr("font-weight", "bold").text(spec.title);
  for (size_t r = 0; r < spec.rows.size(); ++r) {
    double y = top + double(r) * cell;
    svg.child("text").attr("x", left - 6).attr("y", px(y + cell - 3)).attr("text-anchor", "end").text(spec.rows[r]);
    for (size_t c = 0; c < columns && c < spec.cells[r].size(); ++c) {
      double v = spec.cells[r][c];
      Element& rect = svg.child("rect");
      rect.attr("x", px(left + double(c) * cell)).attr("y", px(y)).attr("width", cell - 1).attr("height", cell - 1);
      if (std::isfinite(v)) {
        // From #f7fbff (v = 0) to #08306b (v = 1): luminance falls steadily with the value.
        double t = std::clamp(v, 0.0, 1.0);
        char colour[8];
        std::snprintf(colour, sizeof colour, "#%02x%02x%02x", int(247 + (8 - 247) * t), int(251 + (48 - 251) * t),
                      int(255 + (107 - 255) * t));
        rect.attr("fill", colour).attr("class", "cell").attr("data-value", format_number(v));
      } else {
        rect.attr("fill", "#ffffff").attr("stroke", "#eeeeee");
      }
      if (r < spec.cell_titles.size() && c < spec.cell_titles[r].size()) rect.child("title").text(spec.cell_titles[r][c]);
    }
  }
  for (size_t c = 0; c < columns; c += columns > 32 ? 4 : 1) {
    svg.child("text").attr("x", px(left + double(c) * cell + cell / 2)).attr("y", px(top - 4))
        .attr("text-anchor", "middle").text(spec.columns[c]);
  }
  svg.child("text").attr("x", 8.0).attr("y", px(height - 16)).text(spec.column_label + " (columns) by " + spec.row_label +
                                                                     " (rows); darker: larger");
  return svg;
}

}  // namespace cdmoe::report
