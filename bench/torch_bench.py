"""PyTorch side of `make bench`: times nanoGPT-style training steps (or the seed's
input layer) on the CPU and prints one JSON line, for side-by-side ratios with
ember. Run with Debian's torch: /usr/bin/python3 bench/torch_bench.py --config S
--n-layer, --n-head, --n-embd, --block-size and --batch change the config's
shape (make bench's cost sweep), as bench_gpt's flags of the same names.
"""
import os

# Threads must be fixed before torch loads OpenBLAS; on the 2-core bench machine
# OpenBLAS on 2 threads with torch's intra-op pool at 1 measured fastest.
os.environ["OPENBLAS_NUM_THREADS"] = "2"

import argparse                                                     # noqa: E402
import json                                                         # noqa: E402
import resource                                                     # noqa: E402
import statistics                                                   # noqa: E402
import sys                                                          # noqa: E402
import time                                                         # noqa: E402

import torch                                                        # noqa: E402

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "reference"))
from model import GPT, GPTConfig, make_adamw                        # noqa: E402

# S: the shakespeare_char model shrunk for a quick run; M: its real size
# (6 layers, 6 heads, 384 channels, context 256) with batch 16. nanoGPT's
# train.py defaults to bias=False and the shakespeare_char config keeps it.
CONFIGS = {
    "S": dict(n_layer=4, n_head=4, n_embd=128, block_size=64, batch=12),
    "M": dict(n_layer=6, n_head=6, n_embd=384, block_size=256, batch=16),
}
VOCAB = 65


def peak_rss_mb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0   # KiB on Linux


def flops_per_step(model, cfg, batch):
    """nanoGPT's estimate (PaLM appendix B): per token 6*N + 12*L*H*D*T, where N
    counts parameters except the position table wpe (the tied wte/lm_head counted
    once), L layers, H heads, D head size, T context; times B*T tokens per step.
    6N is 2 (multiply-add) x 3 (forward + two backward matmuls) per weight; the
    attention term is QK^T and att@V, both T*D per head per token, same 2x3."""
    n = sum(p.numel() for p in model.parameters())
    if cfg.pos == "learned":
        n -= model.transformer.wpe.weight.numel()
    L, H, T = cfg.n_layer, cfg.n_head, cfg.block_size
    D = cfg.n_embd // H
    return (6 * n + 12 * L * H * D * T) * batch * T


def time_steps(step, warmup, steps, cpu=None):
    """Median wall seconds per step; cpu (a list) gets the process's CPU
    seconds per step (a mean over the timed steps, all threads)."""
    for _ in range(warmup):
        step()
    times = []
    c0 = time.process_time()
    for _ in range(steps):
        t0 = time.perf_counter()
        step()
        times.append(time.perf_counter() - t0)
    if cpu is not None:
        cpu.append((time.process_time() - c0) / steps)
    return statistics.median(times)


SHAPE_FLAGS = ("n_layer", "n_head", "n_embd", "block_size", "batch")


def bench_gpt(name, args):
    c = dict(CONFIGS[name])
    for key in SHAPE_FLAGS:
        if getattr(args, key) is not None:
            c[key] = getattr(args, key)
    cfg = GPTConfig(vocab_size=VOCAB, block_size=c["block_size"], n_layer=c["n_layer"],
                    n_head=c["n_head"], n_embd=c["n_embd"], dropout=0.0, bias=False,
                    tie_weights=True, pos="learned")
    model = GPT(cfg)
    model.train()
    opt = make_adamw(model, weight_decay=0.1, learning_rate=1e-3, betas=(0.9, 0.99))
    B, T = c["batch"], cfg.block_size
    gen = torch.Generator().manual_seed(args.seed)

    def step():
        # data content does not matter for timing; shapes do
        idx = torch.randint(0, VOCAB, (B, T), generator=gen)
        targets = torch.randint(0, VOCAB, (B, T), generator=gen)
        _, loss = model(idx, targets)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)

    cpu = []
    med = time_steps(step, args.warmup, args.steps, cpu)
    flops = flops_per_step(model, cfg, B)
    return {"impl": "pytorch", "config": name, **{k: c[k] for k in SHAPE_FLAGS}, "median_ms": round(med * 1e3, 3),
            "cpu_ms": round(cpu[0] * 1e3, 3), "tokens_per_s": round(B * T / med, 1), "gflop_per_step": round(flops / 1e9, 4),
            "gflop_per_s": round(flops / med / 1e9, 3), "peak_rss_mb": round(peak_rss_mb(), 1),
            "steps": args.steps, "torch_version": torch.__version__}


def bench_input_layer(args):
    """The seed: token embedding [50257,256] + learned positions [4,256], ids [8,4]."""
    V, C, B, T = 50257, 256, 8, 4
    torch.manual_seed(args.seed)
    wte = torch.nn.Embedding(V, C)
    wpe = torch.nn.Embedding(T, C)
    params = list(wte.parameters()) + list(wpe.parameters())
    gen = torch.Generator().manual_seed(args.seed)
    ids = torch.randint(0, V, (B, T), generator=gen)
    pos = torch.arange(T)

    def step():
        x = wte(ids) + wpe(pos)                                     # [B,T,C] + [T,C]
        loss = (x * x).mean()                                       # scalar: mean of squares
        loss.backward()
        for p in params:
            p.grad = None

    med = time_steps(step, args.warmup, args.steps)
    return {"impl": "pytorch", "config": "input_layer", "median_ms": round(med * 1e3, 4),
            "tokens_per_s": round(B * T / med, 1), "peak_rss_mb": round(peak_rss_mb(), 1),
            "steps": args.steps, "torch_version": torch.__version__}


def main():
    ap = argparse.ArgumentParser(description="PyTorch CPU training-step benchmark (ember's reference).")
    ap.add_argument("--config", choices=sorted(CONFIGS), default="S", help="model size (default S)")
    ap.add_argument("--steps", type=int, default=20, help="timed steps (default 20)")
    ap.add_argument("--warmup", type=int, default=3, help="untimed warm-up steps (default 3)")
    ap.add_argument("--seed", type=int, default=1337)
    for key in SHAPE_FLAGS:
        ap.add_argument("--" + key.replace("_", "-"), type=int, default=None,
                        help=f"{key} (default: the config's)")
    ap.add_argument("--input-layer", action="store_true",
                    help="time the seed's input layer (embedding + positions) instead of a GPT")
    args = ap.parse_args()
    if args.steps < 1 or args.warmup < 0:
        ap.error("--steps must be >= 1 and --warmup >= 0")
    shape = {k: CONFIGS[args.config][k] if getattr(args, k) is None else getattr(args, k) for k in SHAPE_FLAGS}
    if min(shape.values()) < 1 or shape["n_embd"] % shape["n_head"]:
        ap.error(f"shape {shape}: sizes must be >= 1 and n_embd divisible by n_head")
    torch.set_num_threads(1)
    torch.manual_seed(args.seed)
    result = bench_input_layer(args) if args.input_layer else bench_gpt(args.config, args)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
