// The positional-encoding ablation: its runs see the same batches and differ
// only in the encoding; a model moved to another context length keeps its
// function on the positions it shares; a stretched table interpolates as the
// hand computation says; the table's spread over seeds is a sample deviation.
#include <filesystem>
#include <fstream>

#include "tests/core/test_helpers.h"
#include "tests/nn/tiny_gpt.h"
#include "tests/train/temp_dir.h"
#include "train/ablation.h"
#include "train/crc32.h"
#include "train/data.h"
#include "train/tokenizer.h"
#include "train/trainer.h"

using namespace ember;
namespace fs = std::filesystem;

namespace {

struct Recorded {
  std::vector<std::vector<int64_t>> batches;  // x then y of each batch, in the order the steps took them
};

void record(void* ctx, const Batch& b) {
  std::vector<int64_t> tokens = b.x.data;
  tokens.insert(tokens.end(), b.y.data.begin(), b.y.data.end());
  static_cast<Recorded*>(ctx)->batches.push_back(std::move(tokens));
}

// A few thousand characters of text in `dir` (the built-in corpus is 400 kB:
// evaluating ten runs on its whole val split would take seconds).
std::string small_text(const fs::path& dir) {
  fs::create_directories(dir);
  std::string text;
  for (int i = 0; text.size() < 6000; ++i)
    text += "the " + std::string(i % 3 ? "fox" : "hen") + " saw " + std::to_string(i % 7) + ".\n";
  const std::string path = (dir / "text.txt").string();
  std::ofstream(path) << text;
  return path;
}

AblationConfig tiny_ablation(const fs::path& dir) {
  AblationConfig c;
  c.out = (dir / "abl").string();
  c.base.data = small_text(dir);
  c.base.rng = RngKind::Ember;
  c.base.model.n_layer = 1;
  c.base.model.n_head = 2;
  c.base.model.n_embd = 16;
  c.base.model.block_size = 8;
  c.base.batch_size = 3;
  c.base.max_iters = 4;
  c.base.warmup_iters = 1;
  c.base.lr_decay_iters = 4;
  c.base.eval_interval = 4;
  c.base.eval_iters = 1;
  c.base.quiet = true;
  c.seeds = 2;
  c.eval_lengths = {1, 2};
  return c;
}

// Logits of `model` on the first n tokens of `tokens`: [1, n, V] as a vector.
std::vector<float> logits_of(const GPT& model, const std::vector<int64_t>& tokens, int64_t n) {
  return model.forward(IntTensor({1, n}, std::vector<int64_t>(tokens.begin(), tokens.begin() + n))).to_vector();
}

}  // namespace

TEST_CASE("ablation: the runs of one seed take identical batches and differ only in the encoding") {
  const fs::path dir = fs::temp_directory_path() / "ember_test_ablation_batches";
  fs::remove_all(dir);
  AblationConfig c = tiny_ablation(dir);
  Recorded rec;
  c.base.on_batch = record;
  c.base.on_batch_ctx = &rec;
  const AblationResult r = run_ablation(c);
  const size_t kinds = c.kinds.size(), steps = static_cast<size_t>(c.base.max_iters);
  REQUIRE(r.runs.size() == 2 * kinds);
  REQUIRE(rec.batches.size() == r.runs.size() * steps);  // runs go one after another, seed by seed
  for (size_t i = 0; i < r.runs.size(); ++i) {
    const AblationRun& run = r.runs[i];
    CAPTURE(run.dir);
    CHECK(run.kind == c.kinds[i % kinds]);
    CHECK(run.seed == c.base.seed + i / kinds);
    CHECK(run.batches == static_cast<int64_t>(steps));
    // The same tokens, step for step, as the first kind of the same seed.
    const size_t first = (i / kinds) * kinds;
    for (size_t s = 0; s < steps; ++s) CHECK(rec.batches[i * steps + s] == rec.batches[first * steps + s]);
    CHECK(run.batches_crc32 == r.runs[first].batches_crc32);
    // Saved settings: only pos, out and seed tell the runs apart.
    nlohmann::json settings = saved_run_settings(run.dir).to_json();
    CHECK(settings.at("pos") == pos_kind_name(run.kind));
    CHECK(settings.at("seed") == run.seed);
    for (const char* key : {"pos", "out", "seed"}) settings.erase(key);
    CHECK(settings == r.settings);
  }
  // The CRC covers every token of every batch, x then y, in step order
  // (the CRC of a concatenation is one CRC carried across the pieces).
  for (size_t seed = 0; seed < 2; ++seed) {
    uint32_t crc = 0;
    for (size_t s = 0; s < steps; ++s) {
      const std::vector<int64_t>& t = rec.batches[seed * kinds * steps + s];
      crc = crc32_update(crc, t.data(), t.size() * sizeof(int64_t));
    }
    CHECK(r.runs[seed * kinds].batches_crc32 == crc);
  }
  // The other seed drew other batches (so the equalities above could fail).
  CHECK(rec.batches[0] != rec.batches[kinds * steps]);
  CHECK(r.runs[0].batches_crc32 != r.runs[kinds].batches_crc32);
  // And they are the data stream's: windows of the train split from Generator(seed), as rng ember draws them.
  const std::string text = read_text_file(c.base.data);
  const TokenSplit split = split_tokens(CharTokenizer::train(text).encode(text));
  Generator gen(c.base.seed);
  const Batch expected = sample_batch(split.train, c.base.batch_size, c.base.model.block_size, gen);
  std::vector<int64_t> tokens = expected.x.data;
  tokens.insert(tokens.end(), expected.y.data.begin(), expected.y.data.end());
  CHECK(rec.batches[0] == tokens);
  // Only the learned model has parameters of its own: its table, block_size x n_embd.
  CHECK(r.runs[0].parameters - r.runs[1].parameters == 8 * 16);
  for (size_t i = 2; i < kinds; ++i) CHECK(r.runs[i].parameters == r.runs[1].parameters);
  fs::remove_all(dir);
}

TEST_CASE("ablation: a learned run has no loss past its table; every other loss is finite") {
  const fs::path dir = fs::temp_directory_path() / "ember_test_ablation_losses";
  fs::remove_all(dir);
  AblationConfig c = tiny_ablation(dir);
  c.seeds = 1;
  c.kinds = {PosKind::Learned, PosKind::Sinusoidal, PosKind::Rope};
  const AblationResult r = run_ablation(c);
  REQUIRE(r.runs.size() == 3);
  CHECK(std::isfinite(r.runs[0].val_loss[0]));
  CHECK(std::isnan(r.runs[0].val_loss[1]));
  CHECK(r.runs[0].stretched[0] == r.runs[0].val_loss[0]);  // at 1x the stretched table is the table
  CHECK(std::isfinite(r.runs[0].stretched[1]));
  for (const AblationRun& run : {r.runs[1], r.runs[2]}) {
    CHECK(run.stretched.empty());
    for (double v : run.val_loss) CHECK(std::isfinite(v));
  }
  for (const AblationRun& run : {r.runs[0], r.runs[1]})
    CHECK((std::isfinite(run.zeroed) && std::isfinite(run.shuffled)));
  CHECK((std::isnan(r.runs[2].zeroed) && std::isnan(r.runs[2].shuffled)));
  fs::remove_all(dir);
}

TEST_CASE("at_context_length: the same weights read longer windows; the first positions' logits do not change") {
  std::vector<int64_t> tokens(32);
  for (size_t i = 0; i < tokens.size(); ++i) tokens[i] = static_cast<int64_t>((i * 5 + 2) % 13);
  for (PosKind kind : {PosKind::Sinusoidal, PosKind::Rope, PosKind::Alibi, PosKind::None}) {
    CAPTURE(pos_kind_name(kind));
    GPTConfig cfg = ember::testing::tiny_gpt();
    cfg.pos = kind;
    GPT model(cfg, 3);
    model.eval();
    const std::unique_ptr<GPT> longer = at_context_length(model, 32);
    CHECK(longer->config().block_size == 32);
    // Causal attention: position t sees tokens 0..t whatever comes after, so the
    // first 8 positions of a 32-token window must give the 8-token window's logits.
    const std::vector<float> short_logits = logits_of(model, tokens, 8), long_logits = logits_of(*longer, tokens, 32);
    // Different T changes how matmuls block their sums: float rounding, not a different function.
    for (size_t i = 0; i < short_logits.size(); ++i)
      CHECK(long_logits[i] == doctest::Approx(short_logits[i]).epsilon(1e-5));
  }
  GPT learned(ember::testing::tiny_gpt(), 3);
  learned.eval();
  const std::unique_ptr<GPT> shorter = at_context_length(learned, 5);
  CHECK(shorter->transformer->wpe->weight.size(0) == 5);
  const std::vector<float> a = logits_of(learned, tokens, 5), b = logits_of(*shorter, tokens, 5);
  for (size_t i = 0; i < a.size(); ++i) CHECK(b[i] == doctest::Approx(a[i]).epsilon(1e-5));
  CHECK_THROWS_WITH_AS(at_context_length(learned, 16),
                       "positions: the learned table was trained at context length 8 and has no rows past it, so it "
                       "cannot read 16 positions (sinusoidal, rope, alibi and none can)",
                       Error);
}

TEST_CASE("stretch_table: linear interpolation between the rows around p (rows - 1) / (length - 1)") {
  // Rows 0, 1, 2 hold (0, 10), (1, 30), (2, 20); stretched to 5 rows they are read
  // at 0, 0.5, 1, 1.5, 2: by hand, (0,10) (0.5,20) (1,30) (1.5,25) (2,20).
  const Tensor table = tensor({3, 2}, {0, 10, 1, 30, 2, 20});
  CHECK(stretch_table(table, 5).to_vector() == std::vector<float>{0, 10, 0.5f, 20, 1, 30, 1.5f, 25, 2, 20});
  CHECK(stretch_table(table, 3).to_vector() == table.to_vector());  // its own length: the table itself
  CHECK(stretch_table(table, 1).to_vector() == std::vector<float>{0, 10});
  GPT learned(ember::testing::tiny_gpt(), 3);
  const std::unique_ptr<GPT> stretched = with_stretched_table(learned, 15);  // 15 = 2 x 8 - 1: even rows are old rows
  const std::vector<float> old_rows = learned.transformer->wpe->weight.to_vector();
  const std::vector<float> new_rows = stretched->transformer->wpe->weight.to_vector();
  for (int64_t p = 0; p < 8; ++p)
    for (int64_t c = 0; c < 16; ++c) CHECK(new_rows[(2 * p) * 16 + c] == old_rows[p * 16 + c]);
  GPTConfig rope = ember::testing::tiny_gpt();
  rope.pos = PosKind::Rope;
  CHECK_THROWS_WITH_AS(with_stretched_table(GPT(rope), 16),
                       "positions: only a learned table can be stretched (pos is rope)", Error);
}

TEST_CASE("sinusoidal_as_table: a learned model holding the sinusoidal table computes the same logits") {
  GPTConfig cfg = ember::testing::tiny_gpt();
  cfg.pos = PosKind::Sinusoidal;
  GPT model(cfg, 5);
  const std::unique_ptr<GPT> as_table = sinusoidal_as_table(model);
  REQUIRE(as_table->transformer->wpe != nullptr);
  std::vector<int64_t> tokens(8);
  for (size_t i = 0; i < tokens.size(); ++i) tokens[i] = static_cast<int64_t>((i * 3 + 1) % 13);
  const std::vector<float> a = logits_of(model, tokens, 8), b = logits_of(*as_table, tokens, 8);
  for (size_t i = 0; i < a.size(); ++i) CHECK(b[i] == doctest::Approx(a[i]).epsilon(1e-6));
}

TEST_CASE("ablation table: mean and sample standard deviation over seeds, marked cells, batch check") {
  AblationResult r;
  r.block_size = 4;
  r.eval_lengths = {1, 2};
  r.val_tokens = 100;
  r.settings = {{"n_layer", 1}, {"n_head", 2}, {"n_embd", 8}, {"max_iters", 3}, {"batch_size", 2}};
  auto run = [](PosKind kind, uint64_t seed, double at1, double at2, uint32_t crc) {
    AblationRun a;
    a.kind = kind;
    a.seed = seed;
    a.val_loss = {at1, at2};
    if (kind == PosKind::Learned) a.stretched = {at1, at2 + 1.0}, a.zeroed = 5.0, a.shuffled = 6.0;
    a.batches = 3;
    a.batches_crc32 = crc;
    a.seconds = 2.0;
    return a;
  };
  const double nan = std::nan("");
  r.runs = {run(PosKind::Learned, 1, 1.0, nan, 7), run(PosKind::Rope, 1, 2.0, 2.5, 7),
            run(PosKind::Learned, 2, 3.0, nan, 9), run(PosKind::Rope, 2, 4.0, 4.5, 9)};
  const std::vector<AblationRow> rows = ablation_rows(r);
  REQUIRE(rows.size() == 3);  // learned, learned stretched, rope
  // Mean of 1 and 3 is 2; sample sd sqrt(((1-2)^2 + (3-2)^2) / 1) = sqrt(2).
  CHECK(rows[0].val_loss[0].mean == 2.0);
  CHECK(rows[0].val_loss[0].sd == doctest::Approx(std::sqrt(2.0)));
  CHECK(rows[0].val_loss[1].n == 0);
  CHECK(rows[1].stretched);
  CHECK(rows[1].val_loss[1].n == 0);  // at2 + 1 of NaN is NaN: nothing to show
  const std::string md = ablation_markdown(r);
  CHECK(md.find("| learned | 0 | 2.0000 ± 1.4142 | no rows past 4 | 5.0000 ± 0.0000 | 6.0000 ± 0.0000 | 2.0 s |") !=
        std::string::npos);
  CHECK(md.find("| rope | 0 | 3.0000 ± 1.4142 | 3.5000 ± 1.4142 | no table | no table | 2.0 s |") != std::string::npos);
  CHECK(md.find("identical batches (3 batches; CRC-32 of their tokens: seed 1: 00000007, seed 2: 00000009)") !=
        std::string::npos);
  // ablation.json holds all the table is made of: read back, it makes the same table.
  CHECK(ablation_markdown(ablation_from_json(ablation_json(r), "a.json")) == md);
  nlohmann::json broken = ablation_json(r);
  broken["runs"][1]["batches_crc32"] = "xyz";
  CHECK_THROWS_WITH_AS(ablation_from_json(broken, "a.json"),
                       "ablate: 'a.json' field 'batches_crc32' must be 8 hex digits, got 'xyz'", Error);
  broken["runs"][1].erase("batches_crc32");
  CHECK_THROWS_WITH_AS(ablation_from_json(broken, "a.json"), "checkpoint: 'a.json' has no field 'batches_crc32'",
                       Error);
  r.runs[3].batches_crc32 = 8;  // rope's seed-2 run took other batches than learned's
  CHECK(ablation_markdown(r).find("The runs of seed 2: 00000009 did NOT train on identical batches.") !=
        std::string::npos);
}

TEST_CASE("ablation settings: bad lists and kinds a model cannot use are clear errors") {
  CHECK(parse_pos_kinds("rope,learned") == std::vector<PosKind>{PosKind::Rope, PosKind::Learned});
  CHECK_THROWS_WITH_AS(parse_pos_kinds("rope,absolute"), doctest::Contains("unknown positional encoding 'absolute'"),
                       Error);
  CHECK_THROWS_WITH_AS(parse_pos_kinds("rope,rope"), "ablate: --kinds names 'rope' twice", Error);
  CHECK_THROWS_WITH_AS(parse_pos_kinds("rope,"), doctest::Contains("empty name"), Error);
  CHECK(parse_eval_lengths("1,3,8") == std::vector<int64_t>{1, 3, 8});
  CHECK_THROWS_WITH_AS(parse_eval_lengths("2,1"), "ablate: --eval-lengths '2,1' must increase (got 1 after 2)", Error);
  CHECK_THROWS_WITH_AS(parse_eval_lengths("1,x"), doctest::Contains("'x' is not an integer in [1, 64]"), Error);
  CHECK_THROWS_WITH_AS(parse_eval_lengths("0"), doctest::Contains("'0' is not an integer"), Error);
  CHECK_THROWS_WITH_AS(parse_eval_lengths("1.5"), doctest::Contains("'1.5' is not an integer"), Error);
  AblationConfig c = tiny_ablation(fs::temp_directory_path() / "ember_test_ablation_settings");
  c.base.rng = RngKind::Nanogpt;
  CHECK_THROWS_WITH_AS(c.validate(), doctest::Contains("must draw with rng ember"), Error);
  c.base.rng = RngKind::Ember;
  c.base.model.n_embd = 6;  // head size 3: rope needs it even
  CHECK_THROWS_WITH_AS(c.validate(), doctest::Contains("as rope needs"), Error);
  c.kinds = {PosKind::Learned, PosKind::Alibi};
  CHECK_NOTHROW(c.validate());
  c.seeds = 0;
  CHECK_THROWS_WITH_AS(c.validate(), "ablate: --seeds must be in [1, 100], got 0", Error);
  fs::remove_all(fs::temp_directory_path() / "ember_test_ablation_settings");
}

TEST_CASE(
    "ablation: the same command again reuses finished runs, trains unfinished ones again, refuses other settings") {
  ember::testing::TempDir dir("ablation_reuse");
  AblationConfig c = tiny_ablation(dir.path);
  c.seeds = 1;
  c.kinds = {PosKind::Learned, PosKind::Rope};
  const int64_t steps = c.base.max_iters;
  Recorded first, again, retrained;
  c.base.on_batch = record;
  c.base.on_batch_ctx = &first;
  const AblationResult r1 = run_ablation(c);
  REQUIRE(first.batches.size() == 2 * static_cast<size_t>(steps));
  auto same_results = [&](const AblationResult& r) {
    REQUIRE(r.runs.size() == r1.runs.size());
    for (size_t i = 0; i < r.runs.size(); ++i) {
      CHECK(r.runs[i].batches_crc32 == r1.runs[i].batches_crc32);
      CHECK(r.runs[i].batches == steps);
      CHECK(r.runs[i].val_loss[0] == r1.runs[i].val_loss[0]);  // the same model, or one trained alike
      CHECK((r.runs[i].zeroed == r1.runs[i].zeroed || (std::isnan(r.runs[i].zeroed) && std::isnan(r1.runs[i].zeroed))));
    }
  };
  // Again: nothing is trained, the table is the same (training time included).
  c.base.on_batch_ctx = &again;
  const AblationResult r2 = run_ablation(c);
  CHECK(again.batches.empty());
  same_results(r2);
  for (size_t i = 0; i < r2.runs.size(); ++i) CHECK(r2.runs[i].seconds == r1.runs[i].seconds);
  // A run without its record (stopped before the end) is trained again, alike; the finished one is reused.
  fs::remove(fs::path(r1.runs[1].dir) / "ablation-run.json");
  Recorded resumed;
  c.base.on_batch_ctx = &resumed;
  same_results(run_ablation(c));
  CHECK(resumed.batches == std::vector<std::vector<int64_t>>(first.batches.begin() + steps, first.batches.end()));
  // Other settings are not silently replaced.
  AblationConfig changed = c;
  changed.base.lr *= 2;
  CHECK_THROWS_WITH_AS(run_ablation(changed), doctest::Contains("holds a run with other settings"), Error);
  // --overwrite trains every run again, alike.
  c.base.overwrite = true;
  c.base.on_batch_ctx = &retrained;
  same_results(run_ablation(c));
  CHECK(retrained.batches == first.batches);
}
