// ablation.svg: val loss against evaluation length (log-2 axis), one line per
// row of the ablation's table, error bars of one standard deviation over
// seeds, and a dotted line at the length the models were trained at.
#include <fmt/format.h>

#include <algorithm>
#include <cmath>

#include "train/ablation.h"
#include "train/svg.h"

namespace ember {
namespace {

constexpr const char* kGrid = "#e3e3e3";

std::string colour_of(PosKind kind) {
  switch (kind) {
    case PosKind::Learned:
      return "#1f77b4";
    case PosKind::Sinusoidal:
      return "#ff7f0e";
    case PosKind::Rope:
      return "#2ca02c";
    case PosKind::Alibi:
      return "#d62728";
    case PosKind::None:
      return "#7f7f7f";
  }
  return "#000000";
}

struct Range {
  double lo = INFINITY, hi = -INFINITY;
  void cover(double v) { lo = std::min(lo, v), hi = std::max(hi, v); }
};

// The loss range of every point and error bar, with a margin.
Range loss_range(const std::vector<AblationRow>& rows) {
  Range y;
  for (const AblationRow& row : rows)
    for (const Spread& s : row.val_loss) {
      if (s.n == 0) continue;
      const double sd = std::isfinite(s.sd) ? s.sd : 0.0;
      y.cover(s.mean - sd);
      y.cover(s.mean + sd);
    }
  if (!std::isfinite(y.lo)) return {0.0, 1.0};
  const double pad = y.hi > y.lo ? 0.06 * (y.hi - y.lo) : 0.05 * std::max(1e-3, std::abs(y.lo));
  return {y.lo - pad, y.hi + pad};
}

std::string legend_label(const AblationRow& row, int64_t T) {
  if (row.kind == PosKind::Learned && !row.stretched) return fmt::format("learned (no rows past {})", T);
  return row.label;
}

}  // namespace

std::string ablation_svg(const AblationResult& r) {
  const double W = 780, H = 440, left = 74, right = 220, top = 46, bottom = 58;
  const double pw = W - left - right, ph = H - top - bottom;
  const int64_t T = r.block_size;
  const std::vector<AblationRow> rows = ablation_rows(r);
  // x: log2 of the length, half a doubling of margin at each end.
  const double x_lo = std::log2(static_cast<double>(r.eval_lengths.front() * T)) - 0.5;
  const double x_hi = std::log2(static_cast<double>(r.eval_lengths.back() * T)) + 0.5;
  const Range yr = loss_range(rows);
  auto mx = [&](double length) { return left + (std::log2(length) - x_lo) / (x_hi - x_lo) * pw; };
  auto my = [&](double loss) { return top + (yr.hi - loss) / (yr.hi - yr.lo) * ph; };
  Svg svg(W, H);
  svg.text(left + pw / 2, 26, "val loss against evaluation length (whole val split)", 15, "middle");
  for (double v : linear_ticks(yr.lo, yr.hi)) {
    if (v < yr.lo || v > yr.hi) continue;
    svg.line(left, my(v), left + pw, my(v), kGrid);
    svg.text(left - 8, my(v) + 4, tick_label(v), 11, "end");
  }
  for (int64_t k : r.eval_lengths) {
    const double x = mx(static_cast<double>(k * T));
    svg.line(x, top, x, top + ph, kGrid);
    svg.text(x, top + ph + 18, fmt::format("{} ({}x)", k * T, k), 11, "middle");
  }
  const double trained_x = mx(static_cast<double>(T));
  svg.line(trained_x, top, trained_x, top + ph, "#888888", 1.0);
  svg.text(trained_x + 4, top + 14, fmt::format("trained at {}", T), 11, "start", 0, "fill=\"#555555\"");
  svg.rect(left, top, pw, ph, "none", "stroke=\"#444444\"");
  svg.text(left + pw / 2, H - 14, "evaluation length (tokens, log scale)", 13, "middle");
  svg.text(20, top + ph / 2, "val loss (nats)", 13, "middle", -90);
  for (size_t i = 0; i < rows.size(); ++i) {
    const AblationRow& row = rows[i];
    const std::string colour = colour_of(row.kind), dash = row.stretched ? "stroke-dasharray=\"6 3\"" : "";
    std::vector<std::pair<double, double>> points;
    for (size_t j = 0; j < r.eval_lengths.size(); ++j) {
      const Spread& s = row.val_loss[j];
      if (s.n == 0) continue;
      // Rows side by side, a few pixels apart, so equal losses keep their error bars apart.
      const double dodge = 4.0 * (static_cast<double>(i) - static_cast<double>(rows.size() - 1) / 2.0);
      const double x = mx(static_cast<double>(r.eval_lengths[j] * T)) + dodge, y = my(s.mean);
      points.emplace_back(x, y);
      if (std::isfinite(s.sd) && s.sd > 0) {  // one standard deviation over seeds
        svg.line(x, my(s.mean - s.sd), x, my(s.mean + s.sd), colour, 1.2);
        svg.line(x - 4, my(s.mean - s.sd), x + 4, my(s.mean - s.sd), colour, 1.2);
        svg.line(x - 4, my(s.mean + s.sd), x + 4, my(s.mean + s.sd), colour, 1.2);
      }
    }
    if (points.size() > 1) svg.polyline(points, colour, 2.0, dash);
    for (const auto& [x, y] : points)
      if (row.stretched)
        svg.rect(x - 3, y - 3, 6, 6, "none", fmt::format("stroke=\"{}\" stroke-width=\"1.5\"", colour));
      else
        svg.circle(x, y, 3.5, colour);
    const double ly = top + 14 + 20 * static_cast<double>(i), lx = left + pw + 16;
    svg.polyline({{lx, ly}, {lx + 26, ly}}, colour, 2.0, dash);
    svg.text(lx + 32, ly + 4, legend_label(row, T), 12);
  }
  const bool bars = std::any_of(rows.begin(), rows.end(), [](const AblationRow& row) {
    return std::any_of(row.val_loss.begin(), row.val_loss.end(), [](const Spread& s) { return s.n > 1; });
  });
  if (bars) svg.text(left + pw + 16, top + 18 + 20 * static_cast<double>(rows.size()), "bars: ± 1 sd over seeds", 11);
  if (rows.empty()) svg.text(left + pw / 2, top + ph / 2, "no runs", 14, "middle");
  return svg.str();
}

}  // namespace ember
