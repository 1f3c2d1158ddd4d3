"""`make bench`: ember against PyTorch on the same training steps, in one run.
Measures the machine's ceilings once (bench_peak), then alternates ember and
PyTorch, one process each (so peak RSS is per process), for several rounds per
workload; prints a markdown table of medians and writes it to <build>/bench/results.md.
The "sample" workload times sampling instead (bench_sample vs torch_sample.py:
ember's KV cache against nanoGPT's sample.py) and gets a table of its own, as
does the "sweep" (bench/sweep.py: ms per token as the context and the width
grow, also drawn to <build>/bench/sweep.svg).
"""
import argparse
import datetime
import json
import os
import platform
import statistics
import subprocess
import sys

import sweep

HERE = os.path.dirname(os.path.abspath(__file__))
PYTHON = "/usr/bin/python3"   # Debian's torch lives here, whatever python is first on PATH
WORKLOADS = ("S", "M", "input", "sample", "sweep")
# Issue #11's goals for a training step's share of the FMA peak.
FMA_GOALS = {"S": 75, "M": 85}


def cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def run_json(cmd, timeout):
    """Runs one benchmark process and returns its last stdout line as JSON, or
    None (after saying why on stderr) when it fails: one failed run must not
    cost the whole table."""
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except (OSError, subprocess.TimeoutExpired) as e:
        print(f"run_bench: {' '.join(cmd)}: {e}", file=sys.stderr)
        return None
    lines = p.stdout.strip().splitlines()
    if p.returncode != 0 or not lines:
        print(f"run_bench: {' '.join(cmd)} exited {p.returncode}: {p.stderr.strip()[-500:]}", file=sys.stderr)
        return None
    try:
        return json.loads(lines[-1])
    except json.JSONDecodeError:
        print(f"run_bench: {' '.join(cmd)} printed no JSON: {lines[-1][:200]}", file=sys.stderr)
        return None


def measure_peak(args, peaks):
    """One bench_peak run (about a second). run_bench takes several, spread
    over the whole run, and keeps the best: other work on the machine can
    only pull a ceiling down, so the highest reading is the truest."""
    res = run_json([os.path.join(args.build, "bench", "bench_peak")], args.timeout)
    if res is not None:
        peaks.append(res)


def best_peak(peaks):
    if not peaks:
        return None
    best = dict(peaks[0])
    for key in ("sgemm_gflops", "sgemm_1t_gflops", "fma_gflops", "fma_1t_gflops", "fma_1t_cpu_gflops"):
        best[key] = max(p[key] for p in peaks)
    return best


def commands(workload, args):
    """(ember command, PyTorch command) for one workload, same steps and warm-up."""
    ember = [os.path.join(args.build, "bench", "bench_gpt")]
    torch = [PYTHON, os.path.join(HERE, "torch_bench.py")]
    if workload == "input":
        common = ["--input-layer", "--steps", str(args.steps_input), "--warmup", "20"]
    else:
        steps = args.steps_s if workload == "S" else args.steps_m
        warmup = 3 if workload == "S" else 1
        common = ["--config", workload, "--steps", str(steps), "--warmup", str(warmup)]
    if args.threads:
        ember += ["--threads", str(args.threads)]
    return ember + common, torch + common


def summarize(runs):
    """Medians across rounds of each field, plus the spread of ms/step."""
    if not runs:
        return None
    out = dict(runs[0])
    for key in ("median_ms", "cpu_ms", "tokens_per_s", "peak_rss_mb", "gflop_per_s"):
        if key in out and all(key in r for r in runs):
            out[key] = statistics.median(r[key] for r in runs)
    ms = [r["median_ms"] for r in runs]
    out["spread"] = (min(ms), max(ms))
    out["rounds"] = len(runs)
    return out


def fmt_ms(x):
    return f"{x:.3f}" if x < 10 else f"{x:.1f}"


def table_rows(workload, ember, torch, peak):
    label = {"S": "GPT S", "M": "GPT M", "input": "input layer"}[workload]
    ratio = (f"**{ember['tokens_per_s'] / torch['tokens_per_s']:.2f}x**"
             if ember and torch else "n/a")
    rows = []
    for name, r in (("ember", ember), ("PyTorch", torch)):
        if r is None:
            rows.append(f"| {label} | {name} | failed | | | | | | | | |")
            continue
        lo, hi = r["spread"]
        cells = [label, name, fmt_ms(r["median_ms"]), f"{fmt_ms(lo)}-{fmt_ms(hi)}",
                 f"{r['tokens_per_s']:,.0f}", ratio if name == "ember" else "",
                 f"{r['peak_rss_mb']:.0f}"]
        if "gflop_per_step" in r:
            gf = r["gflop_per_s"]
            cells += [f"{r['gflop_per_step']:.3f}", f"{gf:.1f}",
                      f"{100 * gf / peak['sgemm']:.0f}%" if peak else "n/a",
                      f"{100 * gf / peak['fma']:.0f}%" if peak else "n/a"]
        else:
            cells += ["-", "-", "-", "-"]
        rows.append("| " + " | ".join(cells) + " |")
    return rows


def flop_mismatch(ember, torch):
    """The two sides count FLOPs with the same formula over their own
    parameters; a difference means the models differ, which voids the ratio."""
    if not ember or not torch or "gflop_per_step" not in ember:
        return None
    e, t = ember["gflop_per_step"], torch["gflop_per_step"]
    return None if abs(e - t) <= 1e-3 * t else f"GFLOP/step differs: ember {e} vs PyTorch {t} (models differ?)"


# ---- sampling: config M checkpoint, --sample-tokens tokens from "\n" ----

def sample_runs(args):
    """(label, threads, command) per run: ember with the KV cache on one thread
    and on all, the crop-free window_shift variant, ember's recompute path,
    and PyTorch as nanoGPT's sample.py on one thread and on two."""
    ckpt = os.path.join(args.build, "bench", "sample_M")
    ember = [os.path.join(args.build, "bench", "bench_sample"), "--ckpt", ckpt, "--tokens", str(args.sample_tokens)]
    torch = [PYTHON, os.path.join(HERE, "torch_sample.py"), "--ckpt", ckpt, "--tokens", str(args.sample_tokens)]
    all_threads = args.threads or os.cpu_count()
    return [("ember KV cache", 1, ember + ["--threads", "1"]),
            ("PyTorch", 1, torch + ["--threads", "1"]),
            ("ember KV cache", all_threads, ember + ["--threads", str(all_threads)]),
            ("PyTorch", 2, torch + ["--threads", "2"]),
            ("ember recompute (--no-kv-cache)", 1, ember + ["--threads", "1", "--no-kv-cache"]),
            ("ember KV cache, window shift 64 (not the crop's tokens)", 1,
             ember + ["--threads", "1", "--window-shift", "64"])]


def run_sample(args):
    """Writes the checkpoint once, then --sample-rounds rounds of every run;
    returns {(label, threads): [results]}."""
    ckpt = os.path.join(args.build, "bench", "sample_M")
    if not any(os.path.exists(os.path.join(ckpt, f)) for f in ("latest", "model.safetensors")):
        subprocess.run([os.path.join(args.build, "bench", "bench_sample"), "--init-ckpt", ckpt], check=True,
                       capture_output=True)
    runs = {}
    for r in range(args.sample_rounds):
        for label, threads, cmd in sample_runs(args):
            res = run_json(cmd, args.timeout)
            if res is not None:
                runs.setdefault((label, threads), []).append(res)
                print(f"  sample round {r + 1} {label} ({threads} thr) {res['tokens_per_s']:.1f} tokens/s",
                      file=sys.stderr)
    return runs


def sample_rates(m):
    """tokens/s overall, over the tokens drawn in context, and over the later ones (None where none)."""
    n, s, n_in, s_in = m["tokens"], m["seconds"], m["in_context_tokens"], m["in_context_seconds"]
    return (n / s, n_in / s_in if n_in and s_in > 0 else None,
            (n - n_in) / (s - s_in) if n > n_in and s > s_in else None)


def render_sample(args, runs):
    med = {k: v[0] | {f: statistics.median(r[f] for r in v) for f in ("seconds", "in_context_seconds")}
           for k, v in runs.items()}
    torch_rates = {t: sample_rates(m) for (label, t), m in med.items() if label == "PyTorch"}
    n_in = next(iter(med.values()))["in_context_tokens"] if med else 0
    lines = ["", f"### Sampling: config M checkpoint, {args.sample_tokens} tokens from \"\\n\" "
             "(temperature 0.8, top-k 200; context 256)", "",
             "| impl | threads | s | tokens/s | vs PyTorch | in context: tokens/s | vs PyTorch "
             "| past the context: tokens/s | vs PyTorch |",
             "|---|--:|--:|--:|--:|--:|--:|--:|--:|"]
    for (label, threads), m in med.items():
        rates, ref = sample_rates(m), torch_rates.get(1 if threads == 1 else 2)
        cells = [label, str(threads), f"{m['seconds']:.2f}"]
        for i, r in enumerate(rates):
            cells.append("-" if r is None else f"{r:.1f}")
            cells.append(f"**{r / ref[i]:.1f}x**" if label != "PyTorch" and r and ref and ref[i] else "")
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", f"Medians over {args.sample_rounds} round(s). Ratios are against PyTorch on 1 thread for "
              "1-thread rows, with OpenBLAS on 2 (its fastest setting) for the rest. In context: the first "
              f"{n_in} tokens, drawn before the window slides (each from the whole text so far); past the "
              "context each token sees the last block_size (nanoGPT's crop), which costs ember a forward "
              "over the window per token, as it does PyTorch."]
    return "\n".join(lines) + "\n"


def parse_args():
    ap = argparse.ArgumentParser(description="ember vs PyTorch training-step benchmark (make bench)")
    ap.add_argument("--build", default="build", help="ember build directory (default build)")
    ap.add_argument("--steps-s", type=int, default=30, help="timed steps per run, config S (default 30)")
    ap.add_argument("--steps-m", type=int, default=5, help="timed steps per run, config M (default 5)")
    ap.add_argument("--steps-input", type=int, default=100, help="timed steps per run, input layer (default 100)")
    ap.add_argument("--rounds", type=int, default=3, help="ember/PyTorch alternations per workload (default 3)")
    ap.add_argument("--only", default="all",
                    help=f"workloads to run, comma-separated, from {', '.join(WORKLOADS)}; or all (the default)")
    ap.add_argument("--sample-tokens", type=int, default=500, help="tokens per sampling run (default 500)")
    ap.add_argument("--sample-rounds", type=int, default=1,
                    help="rounds of the sampling runs (default 1: a PyTorch run takes about a minute)")
    ap.add_argument("--sweep-rounds", type=int, default=1,
                    help="rounds of the cost sweep (default 1: about two minutes each)")
    ap.add_argument("--threads", type=int, default=0, help="ember threads (default: all cores)")
    ap.add_argument("--timeout", type=float, default=600, help="seconds allowed per process (default 600)")
    args = ap.parse_args()
    if min(args.steps_s, args.steps_m, args.steps_input, args.rounds, args.sample_tokens,
           args.sample_rounds, args.sweep_rounds) < 1 or args.threads < 0:
        ap.error("--steps-*, --rounds and --sample-* must be >= 1, --threads >= 0")
    unknown = [w for w in args.only.split(",") if w not in WORKLOADS + ("all",)]
    if unknown:
        ap.error(f"--only: unknown workload {unknown[0]!r} (expected {', '.join(WORKLOADS)} or all)")
    for exe in ("bench_gpt", "bench_peak", "bench_sample"):
        if not os.access(os.path.join(args.build, "bench", exe), os.X_OK):
            ap.error(f"{args.build}/bench/{exe} is missing: run `make bench` (or make {args.build}/bench/{exe})")
    return args


def run_workload(w, args):
    """Alternates ember and PyTorch for --rounds rounds; returns their summaries."""
    ember_cmd, torch_cmd = commands(w, args)
    runs = {"ember": [], "torch": []}
    for r in range(args.rounds):
        for side, cmd in (("ember", ember_cmd), ("torch", torch_cmd)):
            res = run_json(cmd, args.timeout)
            if res is not None:
                runs[side].append(res)
                print(f"  {w} round {r + 1} {side:5s} {res['median_ms']:10.3f} ms/step", file=sys.stderr)
    return summarize(runs["ember"]), summarize(runs["torch"])


def fma_summary(results, peak, peak_1t):
    """One line per GPT config: each side's share of the FMA peak, against the
    goal; and, from the CPU time the step used, its rate while it had a core
    against one core's FMA rate per CPU-second (bench_peak), which other work
    on the machine lowers far less than wall-clock rates."""
    out = []
    for w, goal in FMA_GOALS.items():
        ember, torch = results.get(w, (None, None))
        if not ember or "gflop_per_s" not in ember:
            continue
        share = 100 * ember["gflop_per_s"] / peak["fma"]
        torch_share = f", PyTorch {100 * torch['gflop_per_s'] / peak['fma']:.0f}%" if torch else ""
        line = (f"**GPT {w}: ember at {share:.0f}% of the FMA peak** ({ember['gflop_per_s']:.1f} of "
                f"{peak['fma']:.1f} GFLOP/s; goal {goal}%{torch_share})")
        if ember.get("cpu_ms"):
            on_core = 100 * ember["gflop_per_step"] / (ember["cpu_ms"] / 1e3) / peak_1t
            line += (f"; per CPU-second used, {on_core:.0f}% of one core's FMA peak ({ember['cpu_ms']:.1f} CPU ms "
                     f"per {ember['median_ms']:.1f} ms step)")
        out.append(line + ".")
    return [""] + out if out else []


def render(args, started, load, peaks, results, warnings, sampled=None):
    """The markdown report: heading, ceilings, table, notes."""
    peak_json = best_peak(peaks)
    # The ceiling is the best of all-thread and one-thread runs: a ceiling
    # can only be underestimated by interference, never overestimated.
    peak = None if peak_json is None else {
        "sgemm": max(peak_json["sgemm_gflops"], peak_json["sgemm_1t_gflops"]),
        "fma": max(peak_json["fma_gflops"], peak_json["fma_1t_gflops"])}
    if peak and any(r and r.get("gflop_per_s", 0) > peak["sgemm"] for pair in results.values() for r in pair):
        warnings.append("a step ran faster than the measured sgemm ceiling: the machine was busy "
                        "while bench_peak ran, so the ceilings (and shares) are off; rerun on a quiet machine")
    torch_runs = [t for _, t in results.values() if t] + [r for v in (sampled or {}).values() for r in v]
    torch_version = next((t["torch_version"] for t in torch_runs if "torch_version" in t), "?")
    ember_threads = next((e["threads"] for e, _ in results.values() if e and "threads" in e), "?")
    lines = [f"## ember vs PyTorch {torch_version}: {started:%Y-%m-%d %H:%M}, {cpu_model()}, "
             f"{os.cpu_count()} cores", ""]
    if peak_json:
        lines += [f"Machine ceilings (bench_peak): sgemm {peak_json['sgemm_n']}^3 "
                  f"{peak_json['sgemm_gflops']:.1f} GFLOP/s on {peak_json['threads']} threads "
                  f"({peak_json['sgemm_1t_gflops']:.1f} on 1); FMA loop {peak_json['fma_gflops']:.1f} GFLOP/s "
                  f"({peak_json['fma_1t_gflops']:.1f} on 1; {peak_json['fma_1t_cpu_gflops']:.1f} per CPU-second of "
                  f"one core), best of {len(peaks)} runs spread over the benchmark. Shares below are of the higher "
                  "of each pair.", ""]
    if results:
        lines += ["| workload | impl | ms/step | rounds min-max | tokens/s | ember/PyTorch tokens/s | peak RSS MB "
                  "| GFLOP/step | GFLOP/s | % of sgemm | % of FMA |",
                  "|---|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|"]
        for w, (ember, torch) in results.items():
            lines += table_rows(w, ember, torch, peak)
        lines += ["", f"Medians over {args.rounds} alternating rounds (one process per run); steps per run: "
                  f"S {args.steps_s}, M {args.steps_m}, input layer {args.steps_input}. ember on {ember_threads} "
                  f"threads; PyTorch with 1 intra-op thread and OpenBLAS on 2."]
    if peak:
        lines += fma_summary(results, peak, peak_json["fma_1t_cpu_gflops"])
    lines += [f"Load average at start: {load:.2f}."]
    lines += [f"WARNING: {w}" for w in warnings]
    return "\n".join(lines) + "\n", peak is not None


def main():
    args = parse_args()
    load = os.getloadavg()[0]
    if load > 0.5:
        print(f"run_bench: load average {load:.2f} before starting: other work will skew the numbers",
              file=sys.stderr)
    started = datetime.datetime.now()
    workloads = WORKLOADS if args.only == "all" else tuple(w for w in WORKLOADS if w in args.only.split(","))
    peaks, results, warnings = [], {}, []
    for w in workloads:
        if w in ("sample", "sweep"):
            continue
        measure_peak(args, peaks)
        results[w] = run_workload(w, args)
        if (msg := flop_mismatch(*results[w])):
            warnings.append(f"{w}: {msg}")
    measure_peak(args, peaks)
    sampled = run_sample(args) if "sample" in workloads else None
    swept = sweep.run(args, run_json, lambda line: print(line, file=sys.stderr)) if "sweep" in workloads else None
    text, have_peak = render(args, started, load, peaks, results, warnings, sampled)
    if sampled is not None:
        text += render_sample(args, sampled)
    if swept is not None:
        text += sweep.table(swept, args.sweep_rounds)
        svg_path = os.path.join(args.build, "bench", "sweep.svg")
        with open(svg_path, "w") as f:
            f.write(sweep.svg(swept))
        with open(os.path.join(args.build, "bench", "sweep.json"), "w") as f:
            json.dump({"rounds": args.sweep_rounds, "results": swept}, f)
        text += f"\nPlot: {svg_path}\n"
    print(text)
    out_path = os.path.join(args.build, "bench", "results.md")
    with open(out_path, "w") as f:
        f.write(text)
    print(f"(written to {out_path}; took {(datetime.datetime.now() - started).total_seconds():.0f} s)")
    sample_ok = sampled is None or len(sampled) == len(sample_runs(args))
    sweep_ok = swept is None or all(e and t for _, _, _, e, t in swept)
    return 0 if have_peak and sample_ok and sweep_ok and all(e and t for e, t in results.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
