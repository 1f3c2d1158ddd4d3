"""`make bench-mpi`: training across MPI ranks against threads, on this machine.
Times configs S and M (bench_gpt's steps: forward, backward, clip, AdamW) as
2 ranks x 1 thread (mpirun, OpenMPI on shared memory: tools/mpi_local.sh) and
as 1 process x 2 threads, alternating one fresh run of each for several
rounds; then MPI_Allreduce against message size and the gradient sums of S
and M (bench_allreduce). Prints markdown tables with the load average of each
run and writes them to <build>/bench/mpi_results.md. bench/README.md turns the
numbers into a model of scaling over N machines.
"""
import argparse
import datetime
import json
import os
import statistics
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
MPI_LOCAL = os.path.join(ROOT, "tools", "mpi_local.sh")


def load():
    return os.getloadavg()[0]


def run_lines(cmd, timeout):
    """The JSON lines a benchmark printed (rank 0's), or None after saying why."""
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except (OSError, subprocess.TimeoutExpired) as e:
        print(f"run_bench_mpi: {' '.join(cmd)}: {e}", file=sys.stderr)
        return None
    if p.returncode != 0:
        print(f"run_bench_mpi: {' '.join(cmd)} exited {p.returncode}: {p.stderr.strip()[-500:]}", file=sys.stderr)
        return None
    out = []
    for line in p.stdout.splitlines():
        if line.startswith("{"):
            out.append(json.loads(line))
    return out


def bench_steps(args, config):
    """{layout: [(median_ms, comm_ms, load)]} over the rounds, runs alternating."""
    steps = args.steps_s if config == "S" else args.steps_m
    warmup = 3 if config == "S" else 1
    gpt = os.path.join(args.build, "mpi", "bench", "bench_gpt")
    common = ["--config", config, "--steps", str(steps), "--warmup", str(warmup)]
    layouts = {
        "1 process x 2 threads": [gpt] + common + ["--threads", "2"],
        "2 ranks x 1 thread": [MPI_LOCAL, "mpirun", "-np", "2", gpt] + common + ["--threads", "1"],
        # mpirun pins each of 2 ranks to a core; unpinned, a rank can move
        # off a core another tenant of the machine is using.
        "2 ranks x 1 thread, --bind-to none": [MPI_LOCAL, "mpirun", "-np", "2", "--bind-to", "none", gpt] + common +
                                              ["--threads", "1"],
    }
    results = {name: [] for name in layouts}
    for r in range(args.rounds):
        for name, cmd in layouts.items():
            before = load()
            lines = run_lines(cmd, args.timeout)
            if lines:
                results[name].append((lines[-1]["median_ms"], lines[-1].get("comm_ms", 0.0), before))
                print(f"  {config} round {r + 1} {name}: {lines[-1]['median_ms']:.1f} ms/step, "
                      f"{lines[-1].get('comm_ms', 0.0):.1f} in cross-rank sums (load {before:.2f})", file=sys.stderr)
    return results


def steps_table(all_results):
    rows = ["| config | layout | ms/step (median of rounds) | each round | of which cross-rank sums, ms "
            "| load avg at start of each |",
            "|---|---|--:|---|--:|---|"]
    for config, results in all_results.items():
        for name, runs in results.items():
            if not runs:
                continue
            ms = statistics.median(r[0] for r in runs)
            comm = statistics.median(r[1] for r in runs)
            each = ", ".join(f"{r[0]:.0f}" for r in runs)
            loads = ", ".join(f"{r[2]:.1f}" for r in runs)
            rows.append(f"| {config} | {name} | {ms:.1f} | {each} | {comm:.1f} | {loads} |")
        a, b = (results.get("2 ranks x 1 thread"), results.get("1 process x 2 threads"))
        if a and b:
            ratio = statistics.median(r[0] for r in a) / statistics.median(r[0] for r in b)
            rows.append(f"| {config} | ranks / threads | {ratio:.2f}x | | | |")
    return "\n".join(rows)


def bench_allreduce(args):
    exe = os.path.join(args.build, "mpi", "bench", "bench_allreduce")
    before = load()
    lines = run_lines([MPI_LOCAL, "mpirun", "-np", "2", exe, "--reps", str(args.reps)], args.timeout)
    if not lines:
        return "(bench_allreduce failed)"
    rows = [f"MPI_Allreduce (sum, in place), 2 ranks, {args.reps} calls each; load {before:.2f} at the start",
            "", "| what | MB | median ms | min ms | GB/s (MB / median) |", "|---|--:|--:|--:|--:|"]
    for l in lines:
        gbs = l["mb"] / l["median_ms"] if l["median_ms"] > 0 else float("nan")
        rows.append(f"| {l['what']} | {l['mb']:.3f} | {l['median_ms']:.3f} | {l['min_ms']:.3f} | {gbs:.2f} |")
    return "\n".join(rows)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--build", default="build")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--steps-s", type=int, default=30)
    ap.add_argument("--steps-m", type=int, default=5)
    ap.add_argument("--reps", type=int, default=15, help="calls per size in the MPI_Allreduce sweep")
    ap.add_argument("--only", choices=("S", "M", "allreduce", "all"), default="all")
    ap.add_argument("--timeout", type=float, default=900.0)
    args = ap.parse_args()
    if min(args.rounds, args.steps_s, args.steps_m, args.reps) < 1:
        ap.error("--rounds, --steps-s, --steps-m and --reps must be >= 1")
    print(f"load average at start: {load():.2f} (other work on the machine slows both layouts)", file=sys.stderr)
    parts = [f"# ember across MPI ranks, {datetime.datetime.now():%Y-%m-%d %H:%M}, {os.cpu_count()} cores", ""]
    configs = [c for c in ("S", "M") if args.only in (c, "all")]
    if configs:
        parts += [steps_table({c: bench_steps(args, c) for c in configs}), ""]
    if args.only in ("allreduce", "all"):
        parts += [bench_allreduce(args), ""]
    text = "\n".join(parts)
    print(text)
    os.makedirs(os.path.join(args.build, "bench"), exist_ok=True)
    with open(os.path.join(args.build, "bench", "mpi_results.md"), "w") as f:
        f.write(text)


if __name__ == "__main__":
    main()
