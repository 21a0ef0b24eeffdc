// Reads back the points of a chart drawn by report/chart.h: each point's series, candidate and
// values from its data attributes, and its drawn position mapped through the chart's published
// plot box and domains, so a test can check that what is drawn is where the values say.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <regex>
#include <string>
#include <vector>

namespace cdmoe::testing {

struct SvgPoint {
  std::string series;
  int64_t candidate = -1;
  double x = 0, y = 0;  // the values the point carries
  double px = 0, py = 0;  // where it is drawn
};

// Every point of one <svg> chart; `worst_misplacement` receives the largest distance between a
// point's drawn position and its values' position, as a fraction of the axis (0 when none).
inline std::vector<SvgPoint> read_svg_points(const std::string& svg, double* worst_misplacement) {
  std::smatch m;
  const std::regex plot("data-plot=\"([^ ]+) ([^ ]+) ([^ ]+) ([^\"]+)\" data-x-domain=\"([^ ]+) ([^\"]+)\" "
                        "data-y-domain=\"([^ ]+) ([^\"]+)\"");
  *worst_misplacement = 0;
  if (!std::regex_search(svg, m, plot)) {
    *worst_misplacement = INFINITY;
    return {};
  }
  double left = std::stod(m[1]), top = std::stod(m[2]), width = std::stod(m[3]), height = std::stod(m[4]);
  double x0 = std::stod(m[5]), x1 = std::stod(m[6]), y0 = std::stod(m[7]), y1 = std::stod(m[8]);
  const std::regex point("class=\"point[^\"]*\" data-series=\"([^\"]*)\" data-candidate=\"([^\"]*)\" data-x=\"([^\"]+)\" "
                         "data-y=\"([^\"]+)\" transform=\"translate\\(([^,]+),([^)]+)\\)\"");
  std::vector<SvgPoint> out;
  for (auto it = std::sregex_iterator(svg.begin(), svg.end(), point); it != std::sregex_iterator(); ++it) {
    SvgPoint p{(*it)[1], std::stoll((*it)[2]), std::stod((*it)[3]), std::stod((*it)[4]), std::stod((*it)[5]),
               std::stod((*it)[6])};
    double x = x0 + (p.px - left) / width * (x1 - x0), y = y0 + (top + height - p.py) / height * (y1 - y0);
    *worst_misplacement = std::max({*worst_misplacement, std::abs(x - p.x) / (x1 - x0), std::abs(y - p.y) / (y1 - y0)});
    out.push_back(p);
  }
  return out;
}

}  // namespace cdmoe::testing
