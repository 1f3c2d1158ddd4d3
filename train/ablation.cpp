// The positional-encoding ablation: its settings, the runs (one normal
// training run per kind and seed, every batch recorded by a CRC-32), their
// evaluation at several lengths, and the model surgery evaluation needs.
#include "train/ablation.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <map>
#include <sstream>

#include "core/error.h"
#include "train/checkpoint.h"
#include "train/crc32.h"
#include "train/data.h"
#include "train/default_corpus.h"
#include "train/evaluate.h"
#include "train/plots.h"
#include "train/tokenizer.h"
#include "train/trainer.h"

namespace ember {
namespace {

namespace fs = std::filesystem;

constexpr const char* kWpe = "transformer.wpe.weight";
constexpr int64_t kMaxLengthMultiple = 64;
constexpr int64_t kMaxSeeds = 100;

std::vector<std::string> split_list(const std::string& list) {
  std::vector<std::string> items;
  std::stringstream in(list);
  for (std::string item; std::getline(in, item, ',');) items.push_back(item);
  if (!list.empty() && list.back() == ',') items.emplace_back();
  return items;
}

std::map<std::string, Tensor> state_map(const GPT& model) {
  std::map<std::string, Tensor> state;
  for (const auto& [name, t] : model.state_dict()) state.emplace(name, t);
  return state;
}

// A fresh GPT of config `c` holding `state`; its own init draws are overwritten.
std::unique_ptr<GPT> rebuilt(const GPTConfig& c, const std::map<std::string, Tensor>& state, bool training) {
  auto m = std::make_unique<GPT>(c);
  m->load_state_dict(state);
  m->train(training);
  return m;
}

// The CRC-32 of every training batch a run takes, in order (TrainConfig::on_batch).
struct BatchRecord {
  uint32_t crc = 0;
  int64_t count = 0;
  void (*chained)(void*, const Batch&) = nullptr;  // the caller's own hook, if any
  void* chained_ctx = nullptr;
};

void record_batch(void* ctx, const Batch& b) {
  auto* r = static_cast<BatchRecord*>(ctx);
  for (const IntTensor* t : {&b.x, &b.y}) r->crc = crc32_update(r->crc, t->data.data(), t->data.size() * 8);
  ++r->count;
  if (r->chained) r->chained(r->chained_ctx, b);
}

std::unique_ptr<Tokenizer> make_tokenizer(const TrainConfig& c, const std::string& text) {
  if (c.tokenizer == "bpe")
    return std::make_unique<BpeTokenizer>(BpeTokenizer::train(text, static_cast<int32_t>(c.bpe_vocab_size)));
  return std::make_unique<CharTokenizer>(CharTokenizer::train(text));
}

// Every loss of one trained run (its checkpoint, loaded as `gpt eval` loads it).
void evaluate_run(AblationRun& run, const TokenArray& val, const std::vector<int64_t>& multiples,
                  const Tokenizer& tokenizer) {
  LoadedModel m = load_model(run.dir);
  EMBER_CHECK(m.tokenizer->to_json() == tokenizer.to_json(),
              "ablate: run '{}' built another tokenizer than the ablation's from the same text", run.dir);
  const GPT& model = *m.model;
  run.parameters = model.num_parameters();
  const int64_t T = model.config().block_size;
  for (int64_t k : multiples) {
    const int64_t L = k * T;
    const bool readable = run.kind != PosKind::Learned || L <= T;
    run.val_loss.push_back(readable ? sequential_loss(*at_context_length(model, L), val) : std::nan(""));
    if (run.kind == PosKind::Learned)
      run.stretched.push_back(L == T ? run.val_loss.back() : sequential_loss(*with_stretched_table(model, L), val));
  }
  const int64_t all_blocks = static_cast<int64_t>(val.size()) / T + 1;
  std::unique_ptr<GPT> table_model;
  if (run.kind == PosKind::Learned) table_model = at_context_length(model, T);
  if (run.kind == PosKind::Sinusoidal) table_model = sinusoidal_as_table(model);
  if (table_model) {
    const PositionAblation a = position_ablation(*table_model, val, run.seed, all_blocks);
    run.zeroed = a.zeroed;
    run.shuffled = a.shuffled;
  }
}

void print_line(const AblationConfig& cfg, const std::string& line) {
  if (cfg.base.quiet) return;
  fmt::print("{}\n", line);
  std::fflush(stdout);
}

std::string run_summary(const AblationRun& run, const std::vector<int64_t>& multiples, int64_t T) {
  std::string s =
      fmt::format("{} seed {}: trained in {:.1f} s; val loss", pos_kind_name(run.kind), run.seed, run.seconds);
  for (size_t i = 0; i < multiples.size(); ++i)
    s += std::isnan(run.val_loss[i]) ? fmt::format(" | at {}: no rows", multiples[i] * T)
                                     : fmt::format(" | at {}: {:.4f}", multiples[i] * T, run.val_loss[i]);
  return s;
}

}  // namespace

std::vector<PosKind> parse_pos_kinds(const std::string& list) {
  std::vector<PosKind> kinds;
  for (const std::string& name : split_list(list)) {
    EMBER_CHECK(!name.empty(), "ablate: --kinds '{}' has an empty name (give names separated by commas)", list);
    const PosKind k = parse_pos_kind(name);
    EMBER_CHECK(std::find(kinds.begin(), kinds.end(), k) == kinds.end(), "ablate: --kinds names '{}' twice", name);
    kinds.push_back(k);
  }
  EMBER_CHECK(!kinds.empty(), "ablate: --kinds is empty (give one or more of learned, sinusoidal, rope, alibi, none)");
  return kinds;
}

std::vector<int64_t> parse_eval_lengths(const std::string& list) {
  std::vector<int64_t> out;
  for (const std::string& item : split_list(list)) {
    size_t used = 0;
    int64_t k = 0;
    try {
      k = std::stoll(item, &used);
    } catch (const std::exception&) {
      used = 0;
    }
    EMBER_CHECK(used == item.size() && used > 0 && k >= 1 && k <= kMaxLengthMultiple,
                "ablate: --eval-lengths '{}': '{}' is not an integer in [1, {}] (multiples of --block-size)", list,
                item, kMaxLengthMultiple);
    EMBER_CHECK(out.empty() || k > out.back(), "ablate: --eval-lengths '{}' must increase (got {} after {})", list, k,
                out.empty() ? 0 : out.back());
    out.push_back(k);
  }
  EMBER_CHECK(!out.empty(), "ablate: --eval-lengths is empty (give multiples of --block-size, such as 1,2,4)");
  return out;
}

void AblationConfig::validate() const {
  EMBER_CHECK(!out.empty(), "ablate: --out is empty; give the ablation's directory");
  EMBER_CHECK(!kinds.empty(), "ablate: --kinds is empty (give one or more of learned, sinusoidal, rope, alibi, none)");
  EMBER_CHECK(seeds >= 1 && seeds <= kMaxSeeds, "ablate: --seeds must be in [1, {}], got {}", kMaxSeeds, seeds);
  EMBER_CHECK(!eval_lengths.empty(), "ablate: --eval-lengths is empty (give multiples of --block-size)");
  for (size_t i = 0; i < eval_lengths.size(); ++i)
    EMBER_CHECK(eval_lengths[i] >= 1 && eval_lengths[i] <= kMaxLengthMultiple &&
                    (i == 0 || eval_lengths[i] > eval_lengths[i - 1]),
                "ablate: --eval-lengths must be increasing integers in [1, {}], got {} at position {}",
                kMaxLengthMultiple, eval_lengths[i], i + 1);
  EMBER_CHECK(base.rng == RngKind::Ember,
              "ablate: every run must draw with rng ember (its batches come from a generator of their own, so all "
              "kinds see the same batches); got rng {}",
              rng_kind_name(base.rng));
  EMBER_CHECK(base.seed <= UINT64_MAX - static_cast<uint64_t>(seeds), "ablate: --seed {} + --seeds {} overflows",
              base.seed, seeds);
  for (PosKind k : kinds) {
    TrainConfig c = base;
    c.model.pos = k;
    c.out = out;
    c.validate();
  }
}

std::unique_ptr<GPT> at_context_length(const GPT& model, int64_t block_size) {
  GPTConfig c = model.config();
  EMBER_CHECK(block_size >= 1, "positions: a context length must be >= 1, got {}", block_size);
  std::map<std::string, Tensor> state = state_map(model);
  if (c.pos == PosKind::Learned) {
    EMBER_CHECK(block_size <= c.block_size,
                "positions: the learned table was trained at context length {} and has no rows past it, so it cannot "
                "read {} positions (sinusoidal, rope, alibi and none can)",
                c.block_size, block_size);
    state[kWpe] = state.at(kWpe).narrow(0, 0, block_size);
  }
  c.block_size = block_size;
  return rebuilt(c, state, model.is_training());
}

Tensor stretch_table(const Tensor& table, int64_t length) {
  EMBER_CHECK(table.dim() == 2 && table.size(0) >= 1, "stretch_table: the table must be [rows, C], got {}",
              shape_str(table.shape()));
  EMBER_CHECK(length >= 1, "stretch_table: the length must be >= 1, got {}", length);
  const int64_t R = table.size(0), C = table.size(1);
  const Tensor src = table.contiguous();
  Tensor out = empty({length, C});
  for (int64_t p = 0; p < length; ++p) {
    // Position p of the new length sits at the same fraction of the way along the old table.
    const double at = length == 1 ? 0.0 : static_cast<double>(p * (R - 1)) / static_cast<double>(length - 1);
    const auto lo = std::min(static_cast<int64_t>(at), R - 1), hi = std::min(lo + 1, R - 1);
    const double f = at - static_cast<double>(lo);
    for (int64_t c = 0; c < C; ++c)
      out.data()[p * C + c] =
          static_cast<float>((1.0 - f) * src.data()[lo * C + c] + f * static_cast<double>(src.data()[hi * C + c]));
  }
  return out;
}

std::unique_ptr<GPT> with_stretched_table(const GPT& model, int64_t block_size) {
  GPTConfig c = model.config();
  EMBER_CHECK(c.pos == PosKind::Learned, "positions: only a learned table can be stretched (pos is {})",
              pos_kind_name(c.pos));
  std::map<std::string, Tensor> state = state_map(model);
  state[kWpe] = stretch_table(state.at(kWpe), block_size);
  c.block_size = block_size;
  return rebuilt(c, state, model.is_training());
}

std::unique_ptr<GPT> sinusoidal_as_table(const GPT& model) {
  GPTConfig c = model.config();
  EMBER_CHECK(c.pos == PosKind::Sinusoidal, "positions: the model has no sinusoidal encoding (pos is {})",
              pos_kind_name(c.pos));
  std::map<std::string, Tensor> state = state_map(model);
  state[kWpe] = sinusoidal_table(c.block_size, c.n_embd);
  c.pos = PosKind::Learned;
  return rebuilt(c, state, model.is_training());
}

namespace {

// The val split the runs are evaluated on, tokenized as each run tokenizes its text.
struct ValSplit {
  std::unique_ptr<Tokenizer> tokenizer;
  TokenArray tokens;
};

ValSplit val_split(const AblationConfig& cfg) {
  const TrainConfig& base = cfg.base;
  const std::string text = base.data.empty() ? default_corpus() : read_text_file(base.data);
  ValSplit v;
  v.tokenizer = make_tokenizer(base, text);
  v.tokens = split_tokens(v.tokenizer->encode(text)).val;
  const int64_t T = base.model.block_size, longest = cfg.eval_lengths.back() * T;
  EMBER_CHECK(static_cast<int64_t>(v.tokens.size()) >= longest + 1,
              "ablate: the val split has {} tokens, too few for one window of {} x --block-size {} = {} tokens (+1); "
              "use more text, a smaller --block-size or smaller --eval-lengths",
              v.tokens.size(), cfg.eval_lengths.back(), T, longest);
  return v;
}

// Written into a run's directory once it has trained to the end: what the
// table needs from its training, so that the same command run again (after
// Ctrl-C, say) reuses the run instead of training it again.
constexpr const char* kRunRecord = "ablation-run.json";

// What an earlier ablation left in a run's directory.
enum class EarlierRun { None, Finished, Unfinished, OtherSettings };

EarlierRun earlier_run(const TrainConfig& c) {
  if (!holds_checkpoint(c.out)) return EarlierRun::None;
  nlohmann::json saved = saved_run_settings(c.out).to_json(), wanted = c.to_json();
  // The vocabulary comes from the text (evaluate_run checks the tokenizer);
  // the progress lines and the checkpoints kept do not change what is trained.
  for (const char* key : {"vocab_size", "log_interval", "keep_checkpoints"}) {
    saved.erase(key);
    wanted.erase(key);
  }
  if (saved != wanted) return EarlierRun::OtherSettings;
  return fs::exists(fs::path(c.out) / kRunRecord) ? EarlierRun::Finished : EarlierRun::Unfinished;
}

// Trains `run` (its kind and seed set) into its directory, recording its
// batches, or reuses it when an earlier ablation finished it with the same
// settings; returns the signal that stopped it, or 0. A run with the same
// settings that did not finish (Ctrl-C) is trained again from the start.
int train_run(const AblationConfig& cfg, AblationRun& run) {
  TrainConfig c = cfg.base;
  c.model.pos = run.kind;
  c.seed = run.seed;
  c.out = run.dir;
  const std::string record_file = (fs::path(c.out) / kRunRecord).string();
  const EarlierRun earlier = c.overwrite ? EarlierRun::None : earlier_run(c);
  if (earlier == EarlierRun::Finished) {
    const nlohmann::json j = read_json_file(record_file);
    run.seconds = json_field<double>(j, "seconds", record_file);
    run.batches = json_field<int64_t>(j, "batches", record_file);
    run.batches_crc32 = json_field<uint32_t>(j, "batches_crc32", record_file);
    print_line(cfg, fmt::format("reusing the finished run in {} (same settings)", run.dir));
    return 0;
  }
  EMBER_CHECK(earlier != EarlierRun::OtherSettings,
              "ablate: '{}' holds a run with other settings; give --overwrite to train every run again, or choose "
              "another --out",
              c.out);
  if (earlier == EarlierRun::Unfinished) {
    print_line(cfg, fmt::format("the run in {} did not finish: training it again", run.dir));
    c.overwrite = true;
  }
  std::error_code ec;
  fs::remove(record_file, ec);  // a record must never outlive the run it describes
  BatchRecord record{0, 0, cfg.base.on_batch, cfg.base.on_batch_ctx};
  c.on_batch = record_batch;
  c.on_batch_ctx = &record;
  const TrainResult trained = train(c);
  if (trained.stopped_by) return trained.stopped_by;
  write_run_plots(run.dir);
  run.seconds = trained.seconds;
  run.batches = record.count;
  run.batches_crc32 = record.crc;
  const nlohmann::json done = {
      {"seconds", run.seconds}, {"batches", run.batches}, {"batches_crc32", run.batches_crc32}};
  write_text_file(record_file, done.dump(2) + "\n");
  return 0;
}

}  // namespace

AblationResult run_ablation(const AblationConfig& cfg) {
  cfg.validate();
  const int64_t T = cfg.base.model.block_size;
  const ValSplit val = val_split(cfg);
  AblationResult result;
  result.block_size = T;
  result.eval_lengths = cfg.eval_lengths;
  result.val_tokens = static_cast<int64_t>(val.tokens.size());
  result.settings = cfg.base.to_json();
  for (const char* key : {"pos", "out", "seed"}) result.settings.erase(key);
  result.settings["vocab_size"] = val.tokenizer->vocab_size();  // as each run saves it
  std::error_code ec;
  fs::create_directories(cfg.out, ec);
  EMBER_CHECK(fs::is_directory(cfg.out), "ablate: cannot create '{}' ({})", cfg.out,
              ec ? ec.message() : "a file of that name is in the way");
  const size_t total = cfg.kinds.size() * static_cast<size_t>(cfg.seeds);
  std::string lengths;
  for (int64_t k : cfg.eval_lengths) lengths += fmt::format("{}{}", lengths.empty() ? "" : ", ", k * T);
  for (int64_t s = 0; s < cfg.seeds; ++s)
    for (PosKind kind : cfg.kinds) {
      AblationRun run;
      run.kind = kind;
      run.seed = cfg.base.seed + static_cast<uint64_t>(s);
      run.dir = (fs::path(cfg.out) / fmt::format("{}-seed{}", pos_kind_name(kind), run.seed)).string();
      print_line(cfg, fmt::format("== ablation run {}/{}: pos {}, seed {} -> {}", result.runs.size() + 1, total,
                                  pos_kind_name(kind), run.seed, run.dir));
      if ((result.stopped_by = train_run(cfg, run)) != 0) {
        result.stopped_run = run.dir;
        return result;
      }
      print_line(cfg, fmt::format("evaluating on the whole val split ({} tokens) at {} tokens...", val.tokens.size(),
                                  lengths));
      evaluate_run(run, val.tokens, cfg.eval_lengths, *val.tokenizer);
      print_line(cfg, run_summary(run, cfg.eval_lengths, T));
      result.runs.push_back(std::move(run));
    }
  return result;
}

}  // namespace ember
