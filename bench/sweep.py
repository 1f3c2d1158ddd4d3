"""make bench's cost sweep: milliseconds per token of a training step, ember
against PyTorch, as the context grows (64 to 1024 at config S's width) and as
the width grows (128 to 768 at context 256). run_bench.py runs it (--only
sweep, or as part of all) and gets back a markdown table and an SVG plot
(written by hand here: no plotting library needed). The raw results go to
<build>/bench/sweep.json; `python3 bench/sweep.py build/bench/sweep.json OUT.svg`
prints the table and draws the plot again from them.
"""
import json
import math
import statistics
import sys

# Config S (4 layers, 4 heads, 128 channels, vocab 65) with one dimension
# changed. Every step of a sweep holds the same number of tokens (batch =
# tokens / context), so ms per token compares like with like, and at least
# two sequences, so that both of a 2-core machine's threads get a slice.
CONTEXTS = (64, 128, 256, 512, 1024)
WIDTHS = (128, 256, 384, 512, 768)
CONTEXT_TOKENS, WIDTH_TOKENS = 2048, 1024
LAYERS, HEADS, VOCAB = 4, 4, 65
RUN_GFLOP = 40.0  # timed work per run: steps = RUN_GFLOP / GFLOP per step, within [3, 15]


def points():
    """(sweep, x, shape) for every point, in order."""
    for T in CONTEXTS:
        yield "context", T, dict(n_layer=LAYERS, n_head=HEADS, n_embd=128, block_size=T, batch=CONTEXT_TOKENS // T)
    for C in WIDTHS:
        yield "width", C, dict(n_layer=LAYERS, n_head=HEADS, n_embd=C, block_size=256, batch=WIDTH_TOKENS // 256)


def model_gflop(shape):
    """(whole step, attention's part) in GFLOP by bench/README.md's model:
    per token 6 N + 12 L H D T, N = the parameters but wpe (tied lm_head once;
    LayerNorm weights, no biases: nanoGPT's bias=False)."""
    L, C, T, B = shape["n_layer"], shape["n_embd"], shape["block_size"], shape["batch"]
    n = L * (12 * C * C + 2 * C) + C + VOCAB * C
    attention = 12 * L * C * T  # H D = C
    return (6 * n + attention) * B * T / 1e9, attention * B * T / 1e9


def flags(shape):
    return [arg for k, v in shape.items() for arg in ("--" + k.replace("_", "-"), str(v))]


def run(args, run_json, log):
    """Alternates ember and PyTorch at every point for args.sweep_rounds
    rounds; returns [(sweep, x, shape, ember results, torch results)]."""
    import os
    here = os.path.dirname(os.path.abspath(__file__))
    out = []
    for sweep, x, shape in points():
        total, _ = model_gflop(shape)
        steps = str(max(3, min(15, round(RUN_GFLOP / total))))
        common = ["--config", "S", "--steps", steps, "--warmup", "1"] + flags(shape)
        ember = [os.path.join(args.build, "bench", "bench_gpt")] + common
        if args.threads:
            ember += ["--threads", str(args.threads)]
        torch = ["/usr/bin/python3", os.path.join(here, "torch_bench.py")] + common
        runs = {"ember": [], "torch": []}
        for r in range(args.sweep_rounds):
            for side, cmd in (("ember", ember), ("torch", torch)):
                res = run_json(cmd, args.timeout)
                if res is not None:
                    runs[side].append(res)
                    log(f"  sweep {sweep} {x} round {r + 1} {side:5s} {res['median_ms']:10.1f} ms/step")
        out.append((sweep, x, shape, runs["ember"], runs["torch"]))
    return out


def ms_per_token(runs, shape):
    if not runs:
        return None
    return statistics.median(r["median_ms"] for r in runs) / (shape["batch"] * shape["block_size"])


def crossover(results, side):
    """Least-squares ms/token = a + b T over the context sweep: a is what a
    token costs whatever the context (projections, MLP, LayerNorm, the
    optimizer's share), b T what attention adds (its products and softmax
    grow with T per token). Returns (a, b), or None with fewer than 2 points."""
    pts = [(r[1], ms_per_token(r[3 if side == "ember" else 4], r[2])) for r in results if r[0] == "context"]
    pts = [(t, y) for t, y in pts if y]
    if len(pts) < 2:
        return None
    mt, my = statistics.mean(t for t, _ in pts), statistics.mean(y for _, y in pts)
    b = sum((t - mt) * (y - my) for t, y in pts) / sum((t - mt) ** 2 for t, _ in pts)
    return my - b * mt, b


def crossover_note(results):
    """Where attention's part of a token's cost equals the rest: measured (T = a / b) and in the FLOP model."""
    shape = next(r[2] for r in results if r[0] == "context")
    total, attention = model_gflop(shape)
    T0 = shape["block_size"]
    model_T = T0 * (total - attention) / attention  # the T where 12 L C T = 6 N
    parts = []
    for side in ("ember", "PyTorch"):
        fit = crossover(results, "ember" if side == "ember" else "torch")
        if fit and fit[1] > 0:
            a, b = fit
            parts.append(f"{side} {a:.4f} + {b:.6f} T, so attention costs as much as the rest of "
                         f"the step at T = {a / b:.0f}")
    return ("Fitted over the context sweep, ms per token = " + "; ".join(parts) +
            f". The FLOP model puts that point at T = 6 N / (12 L C) = {model_T:.0f} (ember's causal blocks "
            "skip about half of attention's products at long contexts, which alone would move it to about "
            f"{2 * model_T:.0f}).") if parts else ""


def table(results, rounds):
    lines = ["", f"### Cost sweep: ms per token, config S with one dimension changed "
             f"({CONTEXT_TOKENS} tokens a step as the context grows, {WIDTH_TOKENS} as the width does)", "",
             "| sweep | context T | width C | batch | ember ms/token | PyTorch ms/token | ember speed-up "
             "| ember GFLOP/s | attention's share of the model FLOPs |",
             "|---|--:|--:|--:|--:|--:|--:|--:|--:|"]
    for sweep, _, shape, ember, torch in results:
        e, t = ms_per_token(ember, shape), ms_per_token(torch, shape)
        total, attention = model_gflop(shape)
        cells = [sweep, str(shape["block_size"]), str(shape["n_embd"]), str(shape["batch"]),
                 f"{e:.4f}" if e else "failed", f"{t:.4f}" if t else "failed",
                 f"**{t / e:.2f}x**" if e and t else "",
                 f"{total / (e * shape['batch'] * shape['block_size'] / 1e3):.1f}" if e else "",
                 f"{100 * attention / total:.0f}%"]
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", f"Medians over {rounds} round(s) of alternating runs; {LAYERS} layers, {HEADS} heads, vocab "
              f"{VOCAB}. The context sweep runs at width 128, the width sweep at context 256. Attention's share "
              "is 12 L C T over 6 N + 12 L C T per token (bench/README.md's FLOP model, which counts the whole "
              "T x T score matrix; ember computes only the blocks on and below the diagonal).", "",
              crossover_note(results)]
    return "\n".join(lines) + "\n"


# ---- the plot ----

def svg(results):
    """Two panels, ms/token against the context and against the width, log-x,
    one line for ember and one for PyTorch, and a dashed line for what
    ember's cost would be if it grew as the FLOP model does (scaled to fit
    ember's points best: one GFLOP/s for the whole sweep)."""
    W, H, pad = 420, 300, dict(left=62, right=16, top=34, bottom=46)
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{2 * W}" height="{H + 30}" '
             'font-family="sans-serif" font-size="12">', f'<rect width="{2 * W}" height="{H + 30}" fill="white"/>']
    for panel, (sweep, label) in enumerate((("context", "context T (width 128)"), ("width", "width C (context 256)"))):
        rows = [r for r in results if r[0] == sweep]
        xs = [r[1] for r in rows]
        series = {"ember": [ms_per_token(r[3], r[2]) for r in rows],
                  "PyTorch": [ms_per_token(r[4], r[2]) for r in rows]}
        per_token = [model_gflop(r[2])[0] / (r[2]["batch"] * r[2]["block_size"]) for r in rows]
        fit = [(f, y) for f, y in zip(per_token, series["ember"]) if y]
        if fit:  # least squares y = k f
            k = sum(f * y for f, y in fit) / sum(f * f for f, _ in fit)
            series["FLOP model"] = [k * f for f in per_token]
        parts.append(panel_svg(panel * W, W, H, pad, xs, series, label))
    legend = [("ember", "#d95f02", ""), ("PyTorch", "#1b6ac9", ""), ("ember if its cost followed the FLOP model",
                                                                      "#d95f02", ' stroke-dasharray="5,4"')]
    x = pad["left"]
    for name, color, dash in legend:
        parts.append(f'<line x1="{x}" y1="{H + 14}" x2="{x + 24}" y2="{H + 14}" stroke="{color}" '
                     f'stroke-width="2"{dash}/><text x="{x + 30}" y="{H + 18}">{name}</text>')
        x += 40 + 7 * len(name)
    parts.append("</svg>")
    return "\n".join(parts) + "\n"


def panel_svg(x0, W, H, pad, xs, series, label):
    values = [v for s in series.values() for v in s if v]
    if not values:
        return ""
    ymax = nice_ceiling(max(values))
    lx0, lx1 = math.log(xs[0]), math.log(xs[-1])
    left, right, top, bottom = x0 + pad["left"], x0 + W - pad["right"], pad["top"], H - pad["bottom"]

    def px(x):
        return left + (math.log(x) - lx0) / (lx1 - lx0) * (right - left)

    def py(y):
        return bottom - y / ymax * (bottom - top)

    out = [f'<text x="{(left + right) / 2}" y="{top - 14}" text-anchor="middle" font-weight="bold">'
           f'ms per token as the {label.split()[0]} grows</text>',
           f'<line x1="{left}" y1="{bottom}" x2="{right}" y2="{bottom}" stroke="black"/>',
           f'<line x1="{left}" y1="{top}" x2="{left}" y2="{bottom}" stroke="black"/>',
           f'<text x="{(left + right) / 2}" y="{H - 10}" text-anchor="middle">{label}</text>',
           f'<text x="{x0 + 14}" y="{(top + bottom) / 2}" text-anchor="middle" '
           f'transform="rotate(-90 {x0 + 14} {(top + bottom) / 2})">ms per token</text>']
    for x in xs:
        out.append(f'<line x1="{px(x):.1f}" y1="{bottom}" x2="{px(x):.1f}" y2="{bottom + 4}" stroke="black"/>'
                   f'<text x="{px(x):.1f}" y="{bottom + 17}" text-anchor="middle">{x}</text>')
    for k in range(5):
        y = ymax * k / 4
        out.append(f'<line x1="{left - 4}" y1="{py(y):.1f}" x2="{right}" y2="{py(y):.1f}" stroke="#ddd"/>'
                   f'<text x="{left - 7}" y="{py(y) + 4:.1f}" text-anchor="end">{y:g}</text>')
    styles = {"ember": ("#d95f02", ""), "PyTorch": ("#1b6ac9", ""), "FLOP model": ("#d95f02", ' stroke-dasharray="5,4"')}
    for name, ys in series.items():
        color, dash = styles[name]
        pts = [(px(x), py(y)) for x, y in zip(xs, ys) if y]
        out.append(f'<polyline fill="none" stroke="{color}" stroke-width="2"{dash} points="'
                   + " ".join(f"{a:.1f},{b:.1f}" for a, b in pts) + '"/>')
        if not dash:
            out += [f'<circle cx="{a:.1f}" cy="{b:.1f}" r="3" fill="{color}"/>' for a, b in pts]
    return "\n".join(out)


def nice_ceiling(v):
    """The smallest of 1, 2, 2.5, 4, 5, 8 times a power of ten that is >= v, so that quarters are round."""
    p = 10 ** math.floor(math.log10(v))
    return next(m * p for m in (1, 2, 2.5, 4, 5, 8, 10) if m * p >= v)


def main():
    if len(sys.argv) != 3:
        sys.exit("usage: sweep.py SWEEP.json OUT.svg  (SWEEP.json: what make bench wrote to build/bench/sweep.json)")
    with open(sys.argv[1]) as f:
        saved = json.load(f)
    results = [tuple(r) for r in saved["results"]]
    print(table(results, saved["rounds"]))
    with open(sys.argv[2], "w") as f:
        f.write(svg(results))


if __name__ == "__main__":
    main()
