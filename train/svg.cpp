// SVG text building, round axis ticks and the diverging colour scale.
#include "train/svg.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>

namespace ember {

Svg::Svg(double width, double height) : width_(width), height_(height) {}

void Svg::line(double x1, double y1, double x2, double y2, const std::string& stroke, double width) {
  body_ +=
      fmt::format("<line x1=\"{:.1f}\" y1=\"{:.1f}\" x2=\"{:.1f}\" y2=\"{:.1f}\" stroke=\"{}\" stroke-width=\"{}\"/>\n",
                  x1, y1, x2, y2, stroke, width);
}

void Svg::polyline(const std::vector<std::pair<double, double>>& points, const std::string& stroke, double width,
                   const std::string& extra) {
  if (points.empty()) return;
  std::string pts;
  for (const auto& [x, y] : points) pts += fmt::format("{}{:.1f},{:.1f}", pts.empty() ? "" : " ", x, y);
  body_ += fmt::format("<polyline points=\"{}\" fill=\"none\" stroke=\"{}\" stroke-width=\"{}\"{}{}/>\n", pts, stroke,
                       width, extra.empty() ? "" : " ", extra);
}

void Svg::circle(double x, double y, double r, const std::string& fill) {
  body_ += fmt::format("<circle cx=\"{:.1f}\" cy=\"{:.1f}\" r=\"{}\" fill=\"{}\"/>\n", x, y, r, fill);
}

void Svg::rect(double x, double y, double w, double h, const std::string& fill, const std::string& extra) {
  body_ += fmt::format("<rect x=\"{:.1f}\" y=\"{:.1f}\" width=\"{:.1f}\" height=\"{:.1f}\" fill=\"{}\"{}{}/>\n", x, y,
                       w, h, fill, extra.empty() ? "" : " ", extra);
}

void Svg::text(double x, double y, const std::string& s, double size, const std::string& anchor, double rotate,
               const std::string& extra) {
  const std::string turn = rotate != 0 ? fmt::format(" transform=\"rotate({} {:.1f} {:.1f})\"", rotate, x, y) : "";
  body_ += fmt::format("<text x=\"{:.1f}\" y=\"{:.1f}\" font-size=\"{}\" text-anchor=\"{}\"{}{}{}>{}</text>\n", x, y,
                       size, anchor, turn, extra.empty() ? "" : " ", extra, xml_escape(s));
}

std::string Svg::str() const {
  return fmt::format(
      "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
      "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{0}\" height=\"{1}\" viewBox=\"0 0 {0} {1}\" "
      "font-family=\"Helvetica, Arial, sans-serif\">\n<rect width=\"100%\" height=\"100%\" "
      "fill=\"white\"/>\n{2}</svg>\n",
      width_, height_, body_);
}

std::string xml_escape(const std::string& s) {
  std::string out;
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
        out += "&apos;";
        break;
      default:
        out += c;
    }
  }
  return out;
}

std::vector<double> linear_ticks(double lo, double hi, int count) {
  if (!(hi > lo)) return {lo};
  const double raw = (hi - lo) / std::max(count, 1);
  const double decade = std::pow(10.0, std::floor(std::log10(raw)));
  double step = decade;
  for (double m : {1.0, 2.0, 5.0, 10.0})
    if (m * decade >= raw) {
      step = m * decade;
      break;
    }
  std::vector<double> ticks;
  // A small tolerance keeps an end that is itself a round number (0, 2000).
  for (double v = std::ceil(lo / step - 1e-9) * step; v <= hi + step * 1e-9; v += step)
    ticks.push_back(std::abs(v) < step * 1e-9 ? 0.0 : v);
  return ticks;
}

std::vector<double> log_ticks(double lo, double hi) {
  std::vector<double> ticks;
  if (!(lo > 0) || !(hi > lo)) return {lo};
  const int first = static_cast<int>(std::floor(std::log10(lo))), last = static_cast<int>(std::ceil(std::log10(hi)));
  // Every integer multiple when the axis covers little (under about a decade), else 1-2-5.
  const bool narrow = hi / lo < 12.0;
  for (int k = first; k <= last; ++k)
    for (int m = 1; m <= 9; ++m) {
      if (!narrow && m != 1 && m != 2 && m != 5) continue;
      const double v = m * std::pow(10.0, k);
      if (v >= lo * (1 - 1e-9) && v <= hi * (1 + 1e-9)) ticks.push_back(v);
    }
  if (narrow && ticks.size() < 3) {  // within one step of ten: the largest round step giving 4 or more ticks
    for (int k = first; k > first - 6 && ticks.size() < 4; --k)
      for (double m : {5.0, 2.0, 1.0}) {
        const double step = m * std::pow(10.0, k - 1);
        ticks.clear();
        for (double v = std::ceil(lo / step) * step; v <= hi; v += step) ticks.push_back(v);
        if (ticks.size() >= 4) break;
      }
  }
  return ticks;
}

std::string tick_label(double v) { return fmt::format("{:.4g}", v); }

std::string diverging_colour(double v) {
  v = std::clamp(v, -1.0, 1.0);
  // Linear in RGB from white to the end colour on each side.
  const double white[3] = {247, 247, 247}, blue[3] = {59, 76, 192}, red[3] = {180, 4, 38};
  const double* end = v < 0 ? blue : red;
  const double a = std::abs(v);
  int rgb[3];
  for (int i = 0; i < 3; ++i) rgb[i] = static_cast<int>(std::lround(white[i] + (end[i] - white[i]) * a));
  return fmt::format("#{:02x}{:02x}{:02x}", rgb[0], rgb[1], rgb[2]);
}

}  // namespace ember
