// loss.svg and positions.svg: reading the run's files and laying out the two
// pictures (svg.h does the drawing primitives).
#include "train/plots.h"

#include <fmt/format.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "train/checkpoint.h"
#include "train/safetensors.h"
#include "train/svg.h"

namespace ember {
namespace {

namespace fs = std::filesystem;

constexpr const char* kWpeName = "transformer.wpe.weight";
constexpr const char* kGrid = "#e3e3e3";
constexpr const char* kTrainColour = "#1f77b4";
constexpr const char* kValColour = "#d62728";

struct Range {
  double lo, hi;
};

// The x and log-y ranges covering every point with a finite, positive loss.
std::pair<Range, Range> loss_ranges(const LossCurves& c) {
  Range x{INFINITY, -INFINITY}, y{INFINITY, -INFINITY};
  for (const auto* series : {&c.train, &c.train_estimate, &c.val})
    for (const auto& [step, loss] : *series) {
      if (!std::isfinite(loss) || loss <= 0) continue;
      x = {std::min(x.lo, step), std::max(x.hi, step)};
      y = {std::min(y.lo, loss), std::max(y.hi, loss)};
    }
  if (!std::isfinite(x.lo)) return {{0, 1}, {1, 10}};
  if (x.hi <= x.lo) x.hi = x.lo + 1;
  // 4% of the log range as a margin above and below (half a decade around a single value).
  const double pad = y.hi > y.lo ? 0.04 * std::log(y.hi / y.lo) : std::log(10.0) / 4;
  return {{std::min(0.0, x.lo), x.hi}, {y.lo * std::exp(-pad), y.hi * std::exp(pad)}};
}

// One series as points in the plot's pixel frame (finite, positive losses only).
template <typename MapX, typename MapY>
std::vector<std::pair<double, double>> to_pixels(const std::vector<std::pair<double, double>>& series, MapX mx,
                                                 MapY my) {
  std::vector<std::pair<double, double>> out;
  for (const auto& [step, loss] : series)
    if (std::isfinite(loss) && loss > 0) out.emplace_back(mx(step), my(loss));
  return out;
}

// Row similarities averaged over blocks of rows, so a long table stays at most max_cells cells a side.
std::vector<std::vector<double>> pooled(const std::vector<std::vector<double>>& m, size_t max_cells) {
  const size_t T = m.size(), f = (T + max_cells - 1) / max_cells;
  if (f <= 1) return m;
  const size_t n = (T + f - 1) / f;
  std::vector<std::vector<double>> out(n, std::vector<double>(n, 0.0));
  for (size_t a = 0; a < n; ++a)
    for (size_t b = 0; b < n; ++b) {
      double sum = 0;
      size_t count = 0;
      for (size_t i = a * f; i < std::min(T, (a + 1) * f); ++i)
        for (size_t j = b * f; j < std::min(T, (b + 1) * f); ++j, ++count) sum += m[i][j];
      out[a][b] = sum / static_cast<double>(count);
    }
  return out;
}

constexpr int kLevels = 40;  // colour steps of 0.05 between -1 and 1
int level_of(double v) { return std::clamp(static_cast<int>(std::floor((v + 1.0) / 2.0 * kLevels)), 0, kLevels - 1); }
double level_value(int level) { return -1.0 + (level + 0.5) * 2.0 / kLevels; }

// One heatmap: a path per colour level, each cell a unit square scaled to
// `size` pixels in all; rows of equal level are merged into one rectangle.
void heatmap(Svg& svg, const std::vector<std::vector<double>>& m, double x0, double y0, double size) {
  const size_t n = m.size();
  std::vector<std::string> paths(kLevels);
  for (size_t i = 0; i < n; ++i)
    for (size_t j = 0; j < n;) {
      const int level = level_of(m[i][j]);
      size_t k = j + 1;
      while (k < n && level_of(m[i][k]) == level) ++k;
      paths[level] += fmt::format("M{} {}h{}v1h-{}z", j, i, k - j, k - j);
      j = k;
    }
  svg.raw(fmt::format("<g transform=\"translate({:.1f} {:.1f}) scale({:.4f})\" shape-rendering=\"crispEdges\">\n", x0,
                      y0, size / static_cast<double>(n)));
  for (int l = 0; l < kLevels; ++l)
    if (!paths[l].empty())
      svg.raw(fmt::format("<path fill=\"{}\" d=\"{}\"/>\n", diverging_colour(level_value(l)), paths[l]));
  svg.raw("</g>\n");
}

void panel(Svg& svg, const Tensor& table, const std::string& title, double x0, double y0, double size) {
  const int64_t T = table.size(0);
  heatmap(svg, pooled(cosine_similarity_rows(table), 128), x0, y0, size);
  svg.rect(x0, y0, size, size, "none", "stroke=\"#444444\"");
  svg.text(x0 + size / 2, y0 - 12, title, 14, "middle");
  const double cell = size / static_cast<double>(T);
  for (double p : linear_ticks(0, static_cast<double>(T - 1), 4)) {
    const double at = (p + 0.5) * cell;
    svg.line(x0 + at, y0 + size, x0 + at, y0 + size + 4, "#444444");
    svg.text(x0 + at, y0 + size + 16, tick_label(p), 11, "middle");
    svg.line(x0 - 4, y0 + at, x0, y0 + at, "#444444");
    svg.text(x0 - 7, y0 + at + 4, tick_label(p), 11, "end");
  }
  svg.text(x0 + size / 2, y0 + size + 34, "position j", 12, "middle");
  svg.text(x0 - 34, y0 + size / 2, "position i", 12, "middle", -90);
}

void colour_bar(Svg& svg, double x0, double y0, double height) {
  const double step = height / kLevels;
  for (int l = 0; l < kLevels; ++l)  // +1 at the top
    svg.rect(x0, y0 + (kLevels - 1 - l) * step, 16, step + 0.3, diverging_colour(level_value(l)));
  svg.rect(x0, y0, 16, height, "none", "stroke=\"#444444\"");
  for (double v : {-1.0, -0.5, 0.0, 0.5, 1.0}) {
    const double y = y0 + (1.0 - v) / 2.0 * height;
    svg.line(x0 + 16, y, x0 + 20, y, "#444444");
    svg.text(x0 + 23, y + 4, tick_label(v), 11);
  }
  svg.text(x0 + 62, y0 + height / 2, "cosine similarity of rows i and j", 12, "middle", -90);
}

}  // namespace

LossCurves read_metrics(const std::string& path) {
  std::ifstream in(path);
  EMBER_CHECK(in.good(), "plot: cannot read '{}' ({})", path, std::strerror(errno));
  LossCurves c;
  for (std::string line; std::getline(in, line);) {
    const nlohmann::json j = nlohmann::json::parse(line, nullptr, /*allow_exceptions=*/false);
    if (!j.is_object() || !j.contains("step") || !j["step"].is_number()) continue;
    const double step = j["step"].get<double>();
    for (auto [key, series] : {std::pair{"train_loss", &c.train}, std::pair{"train_loss_estimate", &c.train_estimate},
                               std::pair{"val_loss", &c.val}})
      if (j.contains(key) && j[key].is_number()) series->emplace_back(step, j[key].get<double>());
  }
  return c;
}

std::string loss_svg(const LossCurves& c, const std::string& title) {
  const double W = 720, H = 440, left = 74, right = 24, top = 46, bottom = 58;
  const double pw = W - left - right, ph = H - top - bottom;
  const auto [xr, yr] = loss_ranges(c);
  auto mx = [&, xr = xr](double s) { return left + (s - xr.lo) / (xr.hi - xr.lo) * pw; };
  auto my = [&, yr = yr](double v) { return top + std::log(yr.hi / v) / std::log(yr.hi / yr.lo) * ph; };
  Svg svg(W, H);
  svg.text(W / 2, 26, title, 15, "middle");
  for (double v : log_ticks(yr.lo, yr.hi)) {
    svg.line(left, my(v), left + pw, my(v), kGrid);
    svg.text(left - 8, my(v) + 4, tick_label(v), 11, "end");
  }
  for (double s : linear_ticks(xr.lo, xr.hi)) {
    svg.line(mx(s), top, mx(s), top + ph, kGrid);
    svg.text(mx(s), top + ph + 18, tick_label(s), 11, "middle");
  }
  svg.rect(left, top, pw, ph, "none", "stroke=\"#444444\"");
  svg.text(left + pw / 2, H - 14, "step", 13, "middle");
  svg.text(20, top + ph / 2, "loss (log scale)", 13, "middle", -90);
  svg.polyline(to_pixels(c.train, mx, my), kTrainColour, 1.0, "stroke-opacity=\"0.8\"");
  svg.polyline(to_pixels(c.train_estimate, mx, my), kTrainColour, 2.0, "stroke-dasharray=\"6 3\"");
  svg.polyline(to_pixels(c.val, mx, my), kValColour, 2.0);
  for (const auto& [x, y] : to_pixels(c.val, mx, my)) svg.circle(x, y, 3, kValColour);
  // Legend, top right inside the frame.
  std::vector<std::pair<std::string, std::string>> legend;  // (label, line style)
  if (!c.train.empty()) legend.emplace_back("train loss (one batch)", "");
  if (!c.train_estimate.empty()) legend.emplace_back("train loss (eval estimate)", "stroke-dasharray=\"6 3\"");
  if (!c.val.empty()) legend.emplace_back("val loss (eval estimate)", "");
  for (size_t i = 0; i < legend.size(); ++i) {
    const double y = top + 18 + 18 * static_cast<double>(i), x = left + pw - 210;
    const std::string colour = legend[i].first.starts_with("val") ? kValColour : kTrainColour;
    svg.polyline({{x, y}, {x + 26, y}}, colour, 2.0, legend[i].second);
    svg.text(x + 32, y + 4, legend[i].first, 12);
  }
  if (legend.empty()) svg.text(left + pw / 2, top + ph / 2, "no losses logged yet", 14, "middle");
  return svg.str();
}

std::vector<std::vector<double>> cosine_similarity_rows(const Tensor& table) {
  EMBER_CHECK(table.dim() == 2, "plot: a positional table must be [T, C], got {}", shape_str(table.shape()));
  const int64_t T = table.size(0), C = table.size(1);
  const std::vector<float> v = table.to_vector();
  std::vector<double> norm(static_cast<size_t>(T), 0.0);
  for (int64_t i = 0; i < T; ++i)
    for (int64_t k = 0; k < C; ++k) norm[i] += static_cast<double>(v[i * C + k]) * v[i * C + k];
  std::vector<std::vector<double>> m(static_cast<size_t>(T), std::vector<double>(static_cast<size_t>(T), 0.0));
  for (int64_t i = 0; i < T; ++i)
    for (int64_t j = 0; j < T; ++j) {
      double dot = 0;
      for (int64_t k = 0; k < C; ++k) dot += static_cast<double>(v[i * C + k]) * v[j * C + k];
      const double denom = std::sqrt(norm[i] * norm[j]);
      m[i][j] = denom > 0 ? dot / denom : 0.0;
    }
  return m;
}

std::string positions_svg(const Tensor& initial, const Tensor& trained, const std::string& trained_label) {
  const double size = 320, left = 70, top = 74, gap = 80;
  const int panels = initial.defined() ? 2 : 1;
  const double W = left + panels * size + (panels - 1) * gap + 110, H = top + size + 56;
  Svg svg(W, H);
  svg.text(W / 2, 24,
           fmt::format("learned positional table: cosine similarity between rows ({} positions x {} channels)",
                       trained.size(0), trained.size(1)),
           14, "middle");
  double x = left;
  if (initial.defined()) {
    panel(svg, initial, "step 0 (initial table)", x, top, size);
    x += size + gap;
  }
  panel(svg, trained, trained_label, x, top, size);
  colour_bar(svg, x + size + 24, top, size);
  return svg.str();
}

void write_text_file(const std::string& path, const std::string& text) {
  const std::string tmp = path + ".tmp";
  std::FILE* f = std::fopen(tmp.c_str(), "wb");
  EMBER_CHECK(f != nullptr, "cannot create '{}' ({})", tmp, std::strerror(errno));
  const bool written = std::fwrite(text.data(), 1, text.size(), f) == text.size();
  const int saved_errno = errno;
  const bool closed = std::fclose(f) == 0;
  if (!written || !closed) {
    std::remove(tmp.c_str());
    fail("cannot write '{}' ({})", path, std::strerror(written ? errno : saved_errno));
  }
  std::error_code ec;
  fs::rename(tmp, path, ec);
  EMBER_CHECK(!ec, "cannot write '{}' ({})", path, ec.message());
}

void save_initial_positions(const std::string& run_dir, const GPT& model) {
  std::error_code ec;
  for (const char* old : {"loss.svg", "positions.svg"}) fs::remove(fs::path(run_dir) / old, ec);
  const std::string path = (fs::path(run_dir) / "wpe_init.safetensors").string();
  if (!model.transformer->wpe) {
    fs::remove(path, ec);
    return;
  }
  SafetensorsFile f;
  f.tensors[kWpeName] = model.transformer->wpe->weight.detach().clone();
  f.metadata.emplace("step", "0");
  save_safetensors(path, f);
}

RunPlots write_run_plots(const std::string& run_dir) {
  RunPlots out;
  const fs::path dir(run_dir);
  const std::string loss_path = (dir / "loss.svg").string();
  write_text_file(loss_path, loss_svg(read_metrics((dir / "metrics.jsonl").string()), "loss of " + run_dir));
  out.written.push_back(loss_path);
  const SafetensorsFile weights =
      load_safetensors((fs::path(resolve_checkpoint(run_dir)) / "model.safetensors").string());
  const std::string positions_path = (dir / "positions.svg").string();
  std::error_code ec;
  if (!weights.tensors.count(kWpeName)) {
    fs::remove(positions_path, ec);
    out.note = "positions.svg not drawn: the model has no learned positional table";
    return out;
  }
  const Tensor trained = weights.tensor(kWpeName);
  Tensor initial;
  if (fs::exists(dir / "wpe_init.safetensors")) {
    initial = load_safetensors((dir / "wpe_init.safetensors").string()).tensor(kWpeName);
    if (initial.shape() != trained.shape()) initial = Tensor();
  }
  if (!initial.defined()) out.note = "positions.svg shows the trained table only (no matching wpe_init.safetensors)";
  const auto step = weights.metadata.find("step");
  write_text_file(positions_path,
                  positions_svg(initial, trained, step != weights.metadata.end() ? "step " + step->second : "trained"));
  out.written.push_back(positions_path);
  return out;
}

}  // namespace ember
