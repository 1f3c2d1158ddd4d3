// TrainConfig: validation of every setting, and the JSON form trainer.json keeps.
#include "train/train_config.h"

#include <algorithm>
#include <cmath>

#include "core/error.h"
#include "train/checkpoint.h"

namespace ember {
namespace {

// Names a setting in an error: the flag, or the file and field it was read from.
struct Where {
  const std::string& file;
  std::string operator()(const char* key, const char* flag) const {
    return file.empty() ? std::string(flag) : fmt::format("'{}' field '{}'", file, key);
  }
};

template <typename T>
void check(bool ok, const Where& where, const char* key, const char* flag, const char* rule, const T& value) {
  EMBER_CHECK(ok, "train: {} must be {}, got {}", where(key, flag), rule, value);
}

bool finite_at_least(double v, double low) { return std::isfinite(v) && v >= low; }

void validate_model(const GPTConfig& m, const Where& w) {
  // Bounds far above anything this CPU trains keep every size product (V x C,
  // L x 12 C^2, B x T x C) inside int64.
  constexpr int64_t kMaxSize = int64_t{1} << 24;
  auto size = [&](int64_t v, const char* key, const char* flag) {
    check(v >= 1 && v <= kMaxSize, w, key, flag, "in [1, 16777216]", v);
  };
  size(m.n_layer, "n_layer", "--n-layer");
  size(m.n_head, "n_head", "--n-head");
  size(m.n_embd, "n_embd", "--n-embd");
  size(m.block_size, "block_size", "--block-size");
  check(m.n_embd % m.n_head == 0, w, "n_embd", "--n-embd", fmt::format("a multiple of n_head {}", m.n_head).c_str(),
        m.n_embd);
  check(m.dropout >= 0.0f && m.dropout < 1.0f, w, "dropout", "--dropout", "in [0, 1)", m.dropout);
  check(m.pos != PosKind::Rope || (m.n_embd / m.n_head) % 2 == 0, w, "n_embd", "--n-embd",
        "such that the head size n_embd / n_head is even, as rope needs", m.n_embd);
}

}  // namespace

void TrainConfig::validate(const std::string& file) const {
  const Where w{file};
  EMBER_CHECK(!out.empty(), "train: {} is empty; give the run directory", w("out", "--out"));
  check(tokenizer == "char" || tokenizer == "bpe", w, "tokenizer", "--tokenizer", "char or bpe", tokenizer);
  check(bpe_vocab_size >= 256 && bpe_vocab_size <= 65536, w, "bpe_vocab_size", "--vocab-size", "in [256, 65536]",
        bpe_vocab_size);
  check(batch_size >= 1 && batch_size <= (int64_t{1} << 24), w, "batch_size", "--batch-size", "in [1, 16777216]",
        batch_size);
  check(finite_at_least(lr, 0.0), w, "lr", "--lr", "a finite number >= 0", lr);
  check(finite_at_least(min_lr, 0.0), w, "min_lr", "--min-lr", "a finite number >= 0", min_lr);
  check(warmup_iters >= 0, w, "warmup_iters", "--warmup-iters", ">= 0", warmup_iters);
  check(max_iters >= 0, w, "max_iters", "--max-iters", ">= 0", max_iters);
  check(lr_decay_iters >= 0, w, "lr_decay_iters", "--lr-decay-iters", ">= 0", lr_decay_iters);
  check(finite_at_least(weight_decay, 0.0), w, "weight_decay", "--weight-decay", "a finite number >= 0",
        weight_decay);
  check(beta1 >= 0.0 && beta1 < 1.0, w, "beta1", "--beta1", "in [0, 1)", beta1);
  check(beta2 >= 0.0 && beta2 < 1.0, w, "beta2", "--beta2", "in [0, 1)", beta2);
  check(finite_at_least(grad_clip, 0.0), w, "grad_clip", "--grad-clip", "a finite number >= 0 (0: off)", grad_clip);
  check(eval_interval >= 1, w, "eval_interval", "--eval-interval", ">= 1", eval_interval);
  check(eval_iters >= 1, w, "eval_iters", "--eval-iters", ">= 1", eval_iters);
  check(log_interval >= 1, w, "log_interval", "--log-interval", ">= 1", log_interval);
  check(rng != RngKind::Nanogpt || seed < (uint64_t{1} << 32), w, "seed", "--seed",
        "below 2^32 with rng nanogpt (torch.manual_seed's range here)", seed);
  check(keep_checkpoints >= 1, w, "keep_checkpoints", "--keep-checkpoints", ">= 1", keep_checkpoints);
  validate_model(model, w);
}

nlohmann::json TrainConfig::to_json() const {
  nlohmann::json j = {{"vocab_size", model.vocab_size}};
  for_each_setting(*this, [&](const char* key, const char*, const char*, const auto& value) {
    using T = std::decay_t<decltype(value)>;
    if constexpr (std::is_same_v<T, PosKind>)
      j[key] = pos_kind_name(value);
    else if constexpr (std::is_same_v<T, RngKind>)
      j[key] = rng_kind_name(value);
    else
      j[key] = value;
  });
  return j;
}

TrainConfig TrainConfig::from_json(const nlohmann::json& j, const std::string& file) {
  EMBER_CHECK(j.is_object(), "train: '{}' holds no training settings (expected a JSON object)", file);
  TrainConfig c;
  c.rng = RngKind::Ember;  // runs saved before the setting existed used ember's generators
  c.model.vocab_size = json_field<int64_t>(j, "vocab_size", file);
  for_each_setting(c, [&](const char* key, const char*, const char*, auto& value) {
    using T = std::decay_t<decltype(value)>;
    const bool optional = std::string_view(key) == "rng" || std::string_view(key) == "keep_checkpoints";
    if (optional && !j.contains(key)) return;
    if constexpr (std::is_same_v<T, PosKind>)
      value = parse_pos_kind(json_field<std::string>(j, key, file));
    else if constexpr (std::is_same_v<T, RngKind>)
      value = parse_rng_kind(json_field<std::string>(j, key, file));
    else
      value = json_field<T>(j, key, file);
  });
  c.validate(file);
  EMBER_CHECK(c.model.vocab_size >= 1 && c.model.vocab_size <= (int64_t{1} << 24),
              "train: '{}' field 'vocab_size' must be in [1, 16777216], got {}", file, c.model.vocab_size);
  return c;
}

void check_resume_flags(const TrainConfig& flags, const std::vector<std::string>& given, const TrainConfig& saved,
                        const std::vector<std::string>& overridable) {
  const nlohmann::json mine = flags.to_json(), theirs = saved.to_json();
  const auto is_given = [&](const std::string& f) { return std::find(given.begin(), given.end(), f) != given.end(); };
  EMBER_CHECK(!is_given("--out"), "train: --out cannot be combined with --resume (a resumed run goes on in its own "
                                  "directory)");
  for_each_setting(flags, [&](const char* key, const char* flag, const char*, const auto&) {
    if (!is_given(flag) || mine[key] == theirs[key]) return;
    if (std::find(overridable.begin(), overridable.end(), flag) != overridable.end()) return;
    std::string allowed;
    for (const std::string& f : overridable) allowed += (allowed.empty() ? "" : ", ") + f;
    fail("train: {} {} differs from the resumed run's {} = {}; on --resume only {} may change", flag, mine[key].dump(),
         key, theirs[key].dump(), allowed);
  });
}

}  // namespace ember
