// build/gpt: train a toy GPT on a text file, sample from it, evaluate it.
//   gpt train [--data FILE] [--out DIR] [hyperparameters...]   (no --data: the built-in corpus)
//   gpt train --resume DIR [--max-iters N]
//   gpt sample --ckpt DIR [--prompt TEXT] [--tokens N] [--temperature X] [--top-k K] [--seed S] [--no-kv-cache]
//   gpt eval --ckpt DIR [--data FILE] [--dump-logits FILE] [--block-size N]
//   gpt ablate [--data FILE] [--kinds LIST] [--seeds N] [--eval-lengths LIST] [hyperparameters...]
//   gpt plot --ckpt DIR        redraw DIR/loss.svg and DIR/positions.svg
//   gpt train --debug-step     one step of a tiny model, for gdb (docs/debugging.md)
// Exit codes: 0 done; 2 bad input or a failure (one line on stderr); 3 the
// training diverged; 130 / 143 stopped by SIGINT / SIGTERM after saving.
// build/mpi/gpt (make mpi) trains across processes under mpirun: see README.md.
#include <fmt/format.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <cerrno>
#include <cmath>
#include <csignal>
#include <cstring>
#include <filesystem>
#include <new>
#include <span>

#include "core/autograd.h"
#include "core/parallel.h"
#include "train/ablation.h"
#include "train/checkpoint.h"
#include "train/data.h"
#include "train/debug_step.h"
#include "train/distributed.h"
#include "train/evaluate.h"
#include "train/interrupt.h"
#include "train/plots.h"
#include "train/safetensors.h"
#include "train/token_cache.h"
#include "train/trainer.h"

using namespace ember;

namespace {

// What the program is doing, for the one line an out-of-memory failure prints.
const char* phase = "starting";

struct SampleArgs {
  std::string ckpt, prompt = "\n";
  int64_t tokens = 300, top_k = 0;
  double temperature = 0.8;
  uint64_t seed = 1337;
  bool kv_cache = true;
  int64_t window_shift = 1;
};

struct TrainArgs {
  TrainConfig cfg;
  std::string pos = pos_kind_name(cfg.model.pos), rng = rng_kind_name(cfg.rng);  // the enums, as typed
  std::string resume;
  bool debug_step = false;
};

// One CLI option per setting of TrainConfig (train/train_config.h), each
// showing the default a run really uses; the flags in `skip` are left out.
void add_setting_options(CLI::App& cmd, TrainArgs& a, const std::vector<std::string_view>& skip = {}) {
  for_each_setting(a.cfg, [&](const char*, const char* flag, const char* help, auto& value) {
    using T = std::decay_t<decltype(value)>;
    if (std::find(skip.begin(), skip.end(), flag) != skip.end()) return;
    if constexpr (std::is_same_v<T, bool>) {
      // --x sets it, --no-x clears it (listed in x's help, not on its own line).
      cmd.add_flag(flag, value, fmt::format("{} [default: {}]", help, value ? "on" : "off"));
      cmd.add_flag_callback(fmt::format("--no-{}", flag + 2), [&value] { value = false; })->group("");
    } else if constexpr (std::is_same_v<T, PosKind>) {
      cmd.add_option(flag, a.pos, help)->capture_default_str();
    } else if constexpr (std::is_same_v<T, RngKind>) {
      cmd.add_option(flag, a.rng, help)->capture_default_str();
    } else {
      CLI::Option* o = cmd.add_option(flag, value, help);
      if (std::string_view(flag) != "--data") o->capture_default_str();
    }
  });
}

void add_train_options(CLI::App& cmd, TrainArgs& a) {
  add_setting_options(cmd, a);
  cmd.add_option("--resume", a.resume, "continue the run saved in this directory");
  cmd.add_flag("--overwrite", a.cfg.overwrite, "replace the checkpoints of another run in --out");
  cmd.add_flag("--debug-step", a.debug_step,
               "take one step of a tiny GPT (1 layer, C=8, T=4, B=2 unless given) on one thread, with no evaluation "
               "and nothing saved: for stepping through in gdb (docs/debugging.md)");
  cmd.add_option("--dump-graph", a.cfg.dump_graph,
                 "write the first step's autograd graph, with its gradients, to this file (Graphviz DOT)");
}

struct AblateArgs {
  TrainArgs train;
  std::string out = "out/ablation", kinds = "learned,sinusoidal,rope,alibi,none", eval_lengths = "1,2,4";
  int64_t seeds = 1;
  bool redraw = false;
};

// The model and optimizer flags of `gpt train`, less --pos (the ablation's
// --kinds), --rng (always ember: train/ablation.h) and --out (its own).
void add_ablate_options(CLI::App& cmd, AblateArgs& a) {
  a.train.cfg.rng = RngKind::Ember;
  add_setting_options(cmd, a.train, {"--out", "--pos", "--rng"});
  cmd.add_option("--out", a.out,
                 "directory: a run directory per kind and seed (<kind>-seed<S>/), ablation.md/.json/.svg")
      ->capture_default_str();
  cmd.add_option("--kinds", a.kinds, "positional encodings to compare, comma-separated")->capture_default_str();
  cmd.add_option("--seeds", a.seeds, "runs per kind, seeds --seed, --seed + 1, ...")->capture_default_str();
  cmd.add_option("--eval-lengths", a.eval_lengths, "evaluation lengths, as multiples of --block-size")
      ->capture_default_str();
  cmd.add_flag("--overwrite", a.train.cfg.overwrite,
               "train every run again, replacing earlier ones in --out (without it, finished runs are reused)");
  cmd.add_flag("--redraw", a.redraw, "rewrite ablation.md and ablation.svg from --out/ablation.json, training nothing");
}

// Flags the user typed, for the checks on --resume (--no-x counts as --x).
std::vector<std::string> given_flags(const CLI::App& cmd) {
  std::vector<std::string> given;
  for (const CLI::Option* o : cmd.get_options()) {
    if (o->count() == 0 || o->get_lnames().empty()) continue;
    const std::string name = o->get_lnames().front();
    given.push_back("--" + (name.starts_with("no-") ? name.substr(3) : name));
  }
  return given;
}

// Set once a write to stdout met a closed pipe: the reader went away
// (`gpt sample | head -1`), which ends the output quietly.
bool stdout_closed = false;

// Writes text to stdout now; false once the reader has gone.
bool emit(const std::string& text) {
  if (stdout_closed) return false;
  if (std::fwrite(text.data(), 1, text.size(), stdout) != text.size() || std::fflush(stdout) != 0) {
    EMBER_CHECK(errno == EPIPE, "cannot write to standard output ({})", std::strerror(errno));
    stdout_closed = true;
  }
  return !stdout_closed;
}

// generate's callback: prints a token as it is drawn, false once the reader
// has gone. Both tokenizers decode id by id to the same bytes as all at once.
bool print_token(void* tokenizer, int32_t id) {
  return emit(static_cast<const Tokenizer*>(tokenizer)->decode(std::span<const int32_t>(&id, 1)));
}

void print_sample(GPT& model, const Tokenizer& tok, const SampleArgs& a) {
  EMBER_CHECK(a.tokens >= 0, "sample: --tokens must be >= 0, got {}", a.tokens);
  EMBER_CHECK(a.top_k >= 0, "sample: --top-k must be >= 0 (0: all tokens), got {}", a.top_k);
  EMBER_CHECK(std::isfinite(a.temperature) && a.temperature > 0.0,
              "sample: --temperature must be a finite number > 0, got {}", a.temperature);
  Generator gen(a.seed);
  const std::vector<int32_t> prompt = tok.encode(a.prompt);
  if (!emit(tok.decode(prompt))) return;
  GenerateOptions o;
  o.temperature = a.temperature;
  o.top_k = a.top_k;
  o.kv_cache = a.kv_cache;
  o.window_shift = a.window_shift;
  o.on_token = print_token;  // printed as drawn; stops when the reader has gone
  o.on_token_ctx = const_cast<Tokenizer*>(&tok);
  generate(model, prompt, a.tokens, o, gen);
  emit("\n");
}

// The val split of `data` ("" = the built-in corpus) under `tok`: mapped from
// the run's token cache when it holds that text, else streamed into memory.
TokenArray val_tokens(const std::string& data, const Tokenizer& tok, const std::string& ckpt) {
  TokenDataOptions o;  // quiet: eval prints its loss alone
  o.text = data;
  o.cache_dir = token_cache_dir_of_checkpoint(ckpt);
  o.write_cache = false;
  return load_token_data(o, {}, &tok).split.val;
}

void report_positions(GPT& model, const std::string& data, const Tokenizer& tok, uint64_t seed,
                      const std::string& run_dir) {
  if (!model.transformer->wpe) return;
  const PositionAblation a = position_ablation(model, val_tokens(data, tok, run_dir), seed);
  fmt::print("positional table check (val loss over the first {} blocks of the val split):\n", a.blocks);
  fmt::print("  as trained         {:.4f}\n  table zeroed       {:.4f}\n  rows shuffled      {:.4f}\n", a.trained,
             a.zeroed, a.shuffled);
}

// --dump-logits: the first val batch's ids (I64 [B,T]) and the model's logits for
// them (F32 [B,T,V]), so tests/reference/interop.py can compare with PyTorch's.
void dump_logits(GPT& model, const TokenArray& val, const std::string& path) {
  const Batch first = sequential_batches(val, 32, model.config().block_size).front();
  NoGradGuard no_grad;
  model.eval();
  SafetensorsFile out;
  out.int_tensors["idx"] = first.x;
  out.tensors["logits"] = model.forward(first.x);
  save_safetensors(path, out);
}

// Prints where loss.svg and positions.svg went (and why one was not drawn).
void draw_plots(const std::string& run_dir) {
  phase = "drawing the plots";
  const RunPlots p = write_run_plots(run_dir);
  std::string files;
  for (const std::string& f : p.written) files += (files.empty() ? "" : ", ") + f;
  fmt::print("plots: {}{}\n", files, p.note.empty() ? "" : " (" + p.note + ")");
}

int run_debug_step(TrainArgs& a, const CLI::App& cmd) {
  EMBER_CHECK(world_size() == 1, "train: --debug-step runs in one process; start it without mpirun");
  EMBER_CHECK(cmd.count("--resume") == 0,
              "train: --debug-step cannot be combined with --resume (it takes a fresh model's first step)");
  a.cfg.model.pos = parse_pos_kind(a.pos);
  apply_debug_step_sizes(a.cfg, given_flags(cmd));
  set_num_threads(1);  // one thread: breakpoints fire once, stepping is not interleaved
  phase = "taking the debug step";
  debug_step(a.cfg, a.cfg.dump_graph);
  return 0;
}

int run_train(TrainArgs& a, const CLI::App& cmd) {
  if (a.debug_step) return run_debug_step(a, cmd);
  const std::vector<std::string> given = given_flags(cmd);
  const bool resuming = cmd.count("--resume") > 0;
  EMBER_CHECK(!resuming || a.cfg.dump_graph.empty(),
              "train: --dump-graph cannot be combined with --resume (it draws a fresh run's first step)");
  install_stop_handlers();
  TrainResult r;
  if (resuming) {
    EMBER_CHECK(!a.resume.empty(), "train: --resume needs the run directory (it was given an empty string)");
    a.cfg.model.pos = parse_pos_kind(a.pos);
    a.cfg.rng = parse_rng_kind(a.rng);
    phase = "reading the checkpoint";
    const std::vector<std::string> overridable(std::begin(kResumeOverridable), std::end(kResumeOverridable));
    check_resume_flags(a.cfg, given, saved_run_settings(a.resume), overridable);
    EMBER_CHECK(!a.cfg.overwrite, "train: --overwrite cannot be combined with --resume");
    ResumeOptions o;
    if (cmd.count("--max-iters")) o.max_iters = std::max<int64_t>(a.cfg.max_iters, 1);
    if (cmd.count("--log-interval")) o.log_interval = a.cfg.log_interval;
    if (cmd.count("--keep-checkpoints")) o.keep_checkpoints = a.cfg.keep_checkpoints;
    o.live_progress = isatty(STDOUT_FILENO) && world_size() == 1;  // mpirun gives ranks a terminal of its own
    phase = "training";
    r = resume(a.resume, o);
  } else {
    EMBER_CHECK(cmd.count("--data") == 0 || !a.cfg.data.empty(),
                "train: --data was given an empty file name (leave the flag out to use the built-in corpus)");
    a.cfg.model.pos = parse_pos_kind(a.pos);
    a.cfg.rng = parse_rng_kind(a.rng);
    a.cfg.live_progress = isatty(STDOUT_FILENO) && world_size() == 1;
    phase = "training";
    r = train(a.cfg);
  }
  if (!is_main_rank()) return r.stopped_by ? 128 + r.stopped_by : 0;  // rank 0 reports for the job
  if (r.stopped_by) {
    fmt::print("stopped by {} at step {}; checkpoint in {}; continue with: gpt train --resume {}\n",
               r.stopped_by == SIGINT ? "SIGINT" : "SIGTERM", r.step, r.checkpoint, r.out_dir);
    return 128 + r.stopped_by;  // 130 for SIGINT, 143 for SIGTERM
  }
  fmt::print("trained in {:.1f} s; final val loss {:.4f}; checkpoint in {} (step {})\n", r.seconds, r.val_loss,
             r.checkpoint, r.step);
  draw_plots(r.out_dir);
  phase = "checking the trained model";
  LoadedModel m = load_model(r.out_dir);
  const TrainConfig settings = saved_run_settings(r.out_dir);
  report_positions(*m.model, settings.data, *m.tokenizer, settings.seed, r.out_dir);
  fmt::print("sample:\n");
  print_sample(*m.model, *m.tokenizer, SampleArgs{});
  return 0;
}

int run_ablate(AblateArgs& a, const CLI::App& cmd) {
  if (a.redraw) {
    const std::string file = (std::filesystem::path(a.out) / "ablation.json").string();
    phase = "redrawing the ablation";
    const AblationResult r = ablation_from_json(read_json_file(file), file);
    write_ablation(a.out, r);
    fmt::print("{}\nwritten: {}/ablation.md, ablation.json and ablation.svg\n", ablation_markdown(r), a.out);
    return 0;
  }
  EMBER_CHECK(cmd.count("--data") == 0 || !a.train.cfg.data.empty(),
              "ablate: --data was given an empty file name (leave the flag out to use the built-in corpus)");
  AblationConfig c;
  c.base = a.train.cfg;
  c.base.live_progress = isatty(STDOUT_FILENO);
  c.out = a.out;
  c.kinds = parse_pos_kinds(a.kinds);
  c.seeds = a.seeds;
  c.eval_lengths = parse_eval_lengths(a.eval_lengths);
  install_stop_handlers();
  phase = "running the ablation";
  const AblationResult r = run_ablation(c);
  if (r.stopped_by) {
    fmt::print(
        "stopped by {} in {}; the table was not written. The same command again reuses the finished runs "
        "and trains the stopped one again\n",
        r.stopped_by == SIGINT ? "SIGINT" : "SIGTERM", r.stopped_run);
    return 128 + r.stopped_by;
  }
  phase = "writing the ablation's table";
  write_ablation(c.out, r);
  fmt::print("\n{}\nwritten: {}/ablation.md, ablation.json and ablation.svg\n", ablation_markdown(r), c.out);
  return 0;
}

// The text file a run trained on ("" when it used the built-in corpus).
std::string training_data(const std::string& ckpt) {
  try {
    return saved_run_settings(ckpt).data;
  } catch (const Error& e) {
    fail("eval: give --data: the checkpoint's training settings cannot tell what it trained on ({})", e.what());
  }
}

// block_size 0: the length the model was trained at.
int run_eval(const std::string& ckpt, const std::string& data, const std::string& dump_path, int64_t block_size) {
  phase = "loading the checkpoint";
  LoadedModel m = load_model(ckpt);
  const GPTConfig& trained = m.model->config();
  if (block_size != 0 && block_size != trained.block_size) {
    EMBER_CHECK(trained.pos != PosKind::Learned || block_size < trained.block_size,
                "eval: --block-size {} is longer than the context length {} the learned positional table was "
                "trained at (it has {} rows); only sinusoidal, rope, alibi and none positions go past it",
                block_size, trained.block_size, trained.block_size);
    m.model = at_context_length(*m.model, block_size);
  }
  phase = "evaluating";
  const TokenArray val = val_tokens(data.empty() ? training_data(ckpt) : data, *m.tokenizer, ckpt);
  fmt::print("val_loss {:.6f}\n", sequential_loss(*m.model, val));
  if (!dump_path.empty()) dump_logits(*m.model, val, dump_path);
  return 0;
}

// The exit status for an exception that reached main, after printing its one
// line. In an MPI job, `everywhere` tells whether every rank raised the same
// error at the same point (a diverged run, a JobError): rank 0 alone prints
// those. Any other error is this rank's own, and its line names the rank.
int report_failure(bool& everywhere) {
  const std::string rank = rank_prefix();
  everywhere = false;
  try {
    throw;
  } catch (const Diverged& e) {
    everywhere = true;
    if (is_main_rank()) fmt::print(stderr, "error: {}\n", e.what());
    return 3;
  } catch (const JobError& e) {
    everywhere = true;
    if (is_main_rank()) fmt::print(stderr, "error: {}\n", e.what());
  } catch (const OutOfMemory& e) {
    fmt::print(stderr, "error: {}out of memory while {}: {}\n", rank, phase, e.what());
  } catch (const Error& e) {
    fmt::print(stderr, "error: {}{}\n", rank, e.what());
  } catch (const std::bad_alloc&) {
    fmt::print(stderr, "error: {}out of memory while {}\n", rank, phase);
  } catch (const std::exception& e) {
    fmt::print(stderr, "error: {}unexpected failure while {} ({}); please report it\n", rank, phase, e.what());
  }
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  std::signal(SIGPIPE, SIG_IGN);  // a closed pipe becomes EPIPE on write, handled where it happens
  try {
    init_distributed(argc, argv);  // MPI, when mpirun started this MPI build
  } catch (const Error& e) {
    fmt::print(stderr, "error: {}\n", e.what());
    return 2;
  }
  CLI::App app{"ember gpt: train a toy GPT on a text file, sample from it, evaluate it"};
  app.require_subcommand(1);
  TrainArgs train_args;
  int threads = 0;
  SampleArgs sample;
  CLI::App* train_cmd = app.add_subcommand("train", "train a GPT (no --data: the built-in corpus)");
  add_train_options(*train_cmd, train_args);
  CLI::App* sample_cmd = app.add_subcommand("sample", "generate text from a checkpoint");
  sample_cmd->add_option("--ckpt", sample.ckpt, "run or checkpoint directory")->required();
  sample_cmd->add_option("--prompt", sample.prompt, "text to continue [default: a newline]");
  sample_cmd->add_option("--tokens", sample.tokens, "tokens to generate")->capture_default_str();
  sample_cmd->add_option("--temperature", sample.temperature, "softmax temperature (> 0)")->capture_default_str();
  sample_cmd->add_option("--top-k", sample.top_k, "sample among the k likeliest tokens (0: all)")
      ->capture_default_str();
  sample_cmd->add_option("--seed", sample.seed, "random seed")->capture_default_str();
  sample_cmd->add_flag("!--no-kv-cache", sample.kv_cache, "recompute the whole window for every token (same tokens)");
  sample_cmd
      ->add_option("--window-shift", sample.window_shift,
                   "past the context, rebuild the cache every N tokens (1: nanoGPT's crop, exact; larger is "
                   "faster but sees fewer tokens)")
      ->capture_default_str();
  std::string eval_ckpt, eval_data, dump_path;
  CLI::App* eval_cmd = app.add_subcommand("eval", "mean loss over every block of a file's val split");
  eval_cmd->add_option("--ckpt", eval_ckpt, "run or checkpoint directory")->required();
  eval_cmd->add_option("--data", eval_data, "text file (its last 10% is the val split) [default: the run's own]");
  eval_cmd->add_option("--dump-logits", dump_path, "also write the first val batch's idx and logits (safetensors)");
  int64_t eval_block_size = 0;
  eval_cmd->add_option("--block-size", eval_block_size,
                       "evaluate in windows of N tokens [default: the context length it was trained at; a learned "
                       "positional table cannot go past it]");
  AblateArgs ablate;
  CLI::App* ablate_cmd = app.add_subcommand(
      "ablate", "train the same GPT with each positional encoding, evaluate each at 1x, 2x, 4x its context");
  add_ablate_options(*ablate_cmd, ablate);
  std::string plot_dir;
  CLI::App* plot_cmd = app.add_subcommand("plot", "redraw a run's loss.svg and positions.svg in its directory");
  plot_cmd->add_option("--ckpt", plot_dir, "run directory (metrics.jsonl, checkpoints)")->required();
  for (CLI::App* cmd : {train_cmd, sample_cmd, eval_cmd, ablate_cmd})
    cmd->add_option("--threads", threads, "threads (default: all cores, or EMBER_NUM_THREADS)");
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return finish_distributed(is_main_rank() ? app.exit(e) : 0, true);
  } catch (const CLI::CallForAllHelp& e) {
    return finish_distributed(is_main_rank() ? app.exit(e) : 0, true);
  } catch (const CLI::ParseError& e) {
    fmt::print(stderr, "error: {}{}\n", rank_prefix(), e.what());  // ranks may have been given other lines
    return finish_distributed(2, false);
  }
  int status = 0;
  bool everywhere = true;  // every rank ends with this status (train/distributed.h)
  try {
    EMBER_CHECK(world_size() == 1 || *train_cmd, "mpi: only `gpt train` runs across ranks; run gpt {} without mpirun",
                app.get_subcommands().front()->get_name());
    if (threads != 0 || train_cmd->count("--threads") + sample_cmd->count("--threads") + eval_cmd->count("--threads") +
                            ablate_cmd->count("--threads"))
      set_num_threads(threads);
    if (*train_cmd) status = run_train(train_args, *train_cmd);
    if (*sample_cmd) {
      phase = "loading the checkpoint";
      LoadedModel m = load_model(sample.ckpt);
      phase = "sampling";
      print_sample(*m.model, *m.tokenizer, sample);
    }
    if (*eval_cmd) {
      EMBER_CHECK(eval_cmd->count("--data") == 0 || !eval_data.empty(), "eval: --data was given an empty file name");
      EMBER_CHECK(eval_cmd->count("--block-size") == 0 || eval_block_size >= 1,
                  "eval: --block-size must be >= 1, got {}", eval_block_size);
      status = run_eval(eval_ckpt, eval_data, dump_path, eval_block_size);
    }
    if (*plot_cmd) draw_plots(plot_dir);
    if (*ablate_cmd) status = run_ablate(ablate, *ablate_cmd);
  } catch (...) {
    status = report_failure(everywhere);
  }
  if (status == 0 && !stdout_closed && (std::fflush(stdout) != 0 || std::ferror(stdout))) {
    fmt::print(stderr, "error: {}cannot write to standard output ({})\n", rank_prefix(), std::strerror(errno));
    status = 2, everywhere = false;
  }
  return finish_distributed(status, everywhere);
}
