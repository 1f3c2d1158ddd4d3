// What `gpt ablate` writes: the rows of its table (mean and spread over
// seeds), the markdown table, every run's numbers as JSON, and ablation.svg
// (val loss against evaluation length, one line per row; svg.h draws).
#include <fmt/format.h>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <filesystem>

#include "train/ablation.h"
#include "train/checkpoint.h"
#include "train/plots.h"
#include "train/svg.h"

namespace ember {
namespace {

namespace fs = std::filesystem;

// Mean and sample standard deviation of the finite values (n = 0 when there are none).
Spread spread(const std::vector<double>& values) {
  Spread s;
  double sum = 0.0;
  for (double v : values)
    if (std::isfinite(v)) sum += v, ++s.n;
  if (s.n == 0) return s;
  s.mean = sum / static_cast<double>(s.n);
  if (s.n > 1) {
    double sq = 0.0;
    for (double v : values)
      if (std::isfinite(v)) sq += (v - s.mean) * (v - s.mean);
    s.sd = std::sqrt(sq / static_cast<double>(s.n - 1));
  }
  return s;
}

std::string loss_cell(const Spread& s) {
  return s.n > 1 ? fmt::format("{:.4f} ± {:.4f}", s.mean, s.sd) : fmt::format("{:.4f}", s.mean);
}

nlohmann::json number_or_null(double v) { return std::isfinite(v) ? nlohmann::json(v) : nlohmann::json(); }

std::string seed_list(const AblationResult& r) {
  std::vector<uint64_t> seeds;
  for (const AblationRun& run : r.runs)
    if (std::find(seeds.begin(), seeds.end(), run.seed) == seeds.end()) seeds.push_back(run.seed);
  std::string s;
  for (uint64_t seed : seeds) s += fmt::format("{}{}", s.empty() ? "" : ", ", seed);
  return s;
}

// Whether the runs of each seed took the same batches, said with their CRC-32s.
std::string batches_note(const AblationResult& r) {
  std::string same, differ;
  for (size_t i = 0; i < r.runs.size(); ++i) {
    const AblationRun& first = r.runs[i];
    if (std::any_of(r.runs.begin(), r.runs.begin() + static_cast<long>(i),
                    [&](const AblationRun& o) { return o.seed == first.seed; }))
      continue;
    bool equal = true;
    for (const AblationRun& o : r.runs)
      if (o.seed == first.seed) equal = equal && o.batches == first.batches && o.batches_crc32 == first.batches_crc32;
    (equal ? same : differ) +=
        fmt::format("{}seed {}: {:08x}", (equal ? same : differ).empty() ? "" : ", ", first.seed, first.batches_crc32);
  }
  std::string note;
  if (!same.empty())
    note += fmt::format("The runs of each seed trained on identical batches ({} batches; CRC-32 of their tokens: {}).",
                        r.runs.front().batches, same);
  if (!differ.empty()) note += fmt::format(" The runs of {} did NOT train on identical batches.", differ);
  return note;
}

}  // namespace

std::vector<AblationRow> ablation_rows(const AblationResult& r) {
  std::vector<PosKind> kinds;
  for (const AblationRun& run : r.runs)
    if (std::find(kinds.begin(), kinds.end(), run.kind) == kinds.end()) kinds.push_back(run.kind);
  std::vector<AblationRow> rows;
  for (PosKind kind : kinds) {
    std::vector<const AblationRun*> runs;
    for (const AblationRun& run : r.runs)
      if (run.kind == kind) runs.push_back(&run);
    auto over_seeds = [&](auto get) {
      std::vector<double> v;
      for (const AblationRun* run : runs) v.push_back(get(*run));
      return spread(v);
    };
    for (bool stretched : {false, true}) {
      if (stretched && kind != PosKind::Learned) continue;
      AblationRow row;
      row.kind = kind;
      row.stretched = stretched;
      row.label = stretched ? "learned, stretched table" : pos_kind_name(kind);
      row.parameters = runs.front()->parameters;
      for (size_t i = 0; i < r.eval_lengths.size(); ++i)
        row.val_loss.push_back(
            over_seeds([&](const AblationRun& a) { return (stretched ? a.stretched : a.val_loss)[i]; }));
      if (!stretched) {
        row.zeroed = over_seeds([](const AblationRun& a) { return a.zeroed; });
        row.shuffled = over_seeds([](const AblationRun& a) { return a.shuffled; });
        row.seconds = over_seeds([](const AblationRun& a) { return a.seconds; });
      }
      rows.push_back(row);
    }
  }
  return rows;
}

std::string ablation_markdown(const AblationResult& r) {
  const int64_t T = r.block_size;
  std::string md = "| positions | parameters |";
  std::string rule = "|---|--:|";
  for (size_t i = 0; i < r.eval_lengths.size(); ++i) {
    md += fmt::format(" {} {} ({}x) |", i == 0 ? "val loss at" : "at", r.eval_lengths[i] * T, r.eval_lengths[i]);
    rule += "--:|";
  }
  md += fmt::format(" table zeroed ({}) | rows shuffled ({}) | training time |\n", T, T);
  md += rule + "--:|--:|--:|\n";
  for (const AblationRow& row : ablation_rows(r)) {
    md += fmt::format("| {} | {} |", row.label, row.parameters);
    for (const Spread& s : row.val_loss)
      md += fmt::format(" {} |", s.n ? loss_cell(s) : fmt::format("no rows past {}", T));
    if (row.stretched) {
      md += " as learned | as learned | as learned |\n";
      continue;
    }
    for (const Spread* s : {&row.zeroed, &row.shuffled}) md += fmt::format(" {} |", s->n ? loss_cell(*s) : "no table");
    md += fmt::format(" {:.1f} s |\n", row.seconds.mean);
  }
  const nlohmann::json& c = r.settings;
  const size_t seeds = r.runs.empty() ? 0 : std::count_if(r.runs.begin(), r.runs.end(), [&](const AblationRun& a) {
    return a.kind == r.runs.front().kind;
  });
  md += fmt::format(
      "\nVal loss: mean next-token cross-entropy (nats) over every non-overlapping window of the whole val split ({} "
      "tokens) at each length; {}. Training time: mean over seeds.\n",
      r.val_tokens,
      seeds > 1 ? fmt::format("mean ± sample standard deviation over {} seeds ({})", seeds, seed_list(r))
                : fmt::format("seed {}", seed_list(r)));
  md += fmt::format(
      "Every run: {} layers, {} heads, {} channels, context {}, {} steps of {} sequences, lr {} to {}, rng ember; "
      "only the positions differ. {}\n",
      c.value("n_layer", 0), c.value("n_head", 0), c.value("n_embd", 0), T, c.value("max_iters", 0),
      c.value("batch_size", 0), c.value("lr", 0.0), c.value("min_lr", 0.0), r.runs.empty() ? "" : batches_note(r));
  md += fmt::format(
      "Table zeroed / rows shuffled: the loss at {} tokens with the positional table set to zero or its rows "
      "permuted (learned: the trained table; sinusoidal: its fixed one); no table: nothing to zero.\n",
      T);
  if (std::any_of(r.runs.begin(), r.runs.end(), [](const AblationRun& a) { return a.kind == PosKind::Learned; }))
    md += fmt::format(
        "No rows past {}: a learned table has one row per position it was trained at. Learned, stretched table: "
        "the same models with the table stretched to each length L, position p reading between the rows around "
        "p({} - 1)/(L - 1) (linear interpolation).\n",
        T, T);
  return md;
}

nlohmann::json ablation_json(const AblationResult& r) {
  nlohmann::json runs = nlohmann::json::array();
  for (const AblationRun& a : r.runs) {
    nlohmann::json j = {{"pos", pos_kind_name(a.kind)},
                        {"seed", a.seed},
                        {"dir", a.dir},
                        {"parameters", a.parameters},
                        {"seconds", a.seconds},
                        {"batches", a.batches},
                        {"batches_crc32", fmt::format("{:08x}", a.batches_crc32)},
                        {"zeroed", number_or_null(a.zeroed)},
                        {"shuffled", number_or_null(a.shuffled)}};
    for (auto [key, values] : {std::pair{"val_loss", &a.val_loss}, std::pair{"stretched", &a.stretched}}) {
      j[key] = nlohmann::json::array();
      for (double v : *values) j[key].push_back(number_or_null(v));
    }
    runs.push_back(j);
  }
  return {{"block_size", r.block_size},
          {"eval_lengths", r.eval_lengths},
          {"val_tokens", r.val_tokens},
          {"settings", r.settings},
          {"runs", runs}};
}

AblationResult ablation_from_json(const nlohmann::json& j, const std::string& file) {
  AblationResult r;
  r.block_size = json_field<int64_t>(j, "block_size", file);
  r.val_tokens = json_field<int64_t>(j, "val_tokens", file);
  EMBER_CHECK(j.contains("eval_lengths") && j["eval_lengths"].is_array() && j.contains("runs") && j["runs"].is_array(),
              "ablate: '{}' needs the arrays 'eval_lengths' and 'runs'", file);
  for (const nlohmann::json& k : j["eval_lengths"]) {
    EMBER_CHECK(k.is_number_integer() && k.get<int64_t>() >= 1,
                "ablate: '{}' field 'eval_lengths' must hold integers >= 1", file);
    r.eval_lengths.push_back(k.get<int64_t>());
  }
  r.settings = j.value("settings", nlohmann::json::object());
  for (const nlohmann::json& a : j["runs"]) {
    AblationRun run;
    run.kind = parse_pos_kind(json_field<std::string>(a, "pos", file));
    run.seed = json_field<uint64_t>(a, "seed", file);
    run.dir = json_field<std::string>(a, "dir", file);
    run.parameters = json_field<int64_t>(a, "parameters", file);
    run.seconds = json_field<double>(a, "seconds", file);
    run.batches = json_field<int64_t>(a, "batches", file);
    const std::string crc = json_field<std::string>(a, "batches_crc32", file);
    const auto [end, ec] = std::from_chars(crc.data(), crc.data() + crc.size(), run.batches_crc32, 16);
    EMBER_CHECK(ec == std::errc() && end == crc.data() + crc.size() && !crc.empty(),
                "ablate: '{}' field 'batches_crc32' must be 8 hex digits, got '{}'", file, crc);
    auto loss = [&](const nlohmann::json& v) {
      EMBER_CHECK(v.is_null() || v.is_number(), "ablate: '{}' holds a loss that is neither a number nor null: {}", file,
                  v.dump());
      return v.is_null() ? std::nan("") : v.get<double>();
    };
    run.zeroed = loss(a.value("zeroed", nlohmann::json()));
    run.shuffled = loss(a.value("shuffled", nlohmann::json()));
    for (auto [key, values] : {std::pair{"val_loss", &run.val_loss}, std::pair{"stretched", &run.stretched}}) {
      const nlohmann::json v = a.value(key, nlohmann::json::array());
      EMBER_CHECK(v.is_array(), "ablate: '{}' field '{}' must be an array", file, key);
      for (const nlohmann::json& x : v) values->push_back(loss(x));
    }
    EMBER_CHECK(run.val_loss.size() == r.eval_lengths.size() &&
                    (run.stretched.empty() || run.stretched.size() == r.eval_lengths.size()),
                "ablate: '{}': run '{}' has {} losses for {} evaluation lengths", file, run.dir, run.val_loss.size(),
                r.eval_lengths.size());
    r.runs.push_back(std::move(run));
  }
  return r;
}

void write_ablation(const std::string& out, const AblationResult& r) {
  const fs::path dir(out);
  write_text_file((dir / "ablation.md").string(), ablation_markdown(r));
  write_text_file((dir / "ablation.json").string(), ablation_json(r).dump(2) + "\n");
  write_text_file((dir / "ablation.svg").string(), ablation_svg(r));
}

}  // namespace ember
