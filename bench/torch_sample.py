"""PyTorch side of the sampling benchmark: loads an ember checkpoint (config.json,
model.safetensors) into the reference GPT (tests/reference/model.py, nanoGPT's
model) and samples as nanoGPT's sample.py does: crop the context to block_size,
a full forward per token, keep the last position's logits, temperature, top-k,
multinomial. Prints one JSON line in bench_sample's schema.
Run with Debian's torch: /usr/bin/python3 bench/torch_sample.py --ckpt DIR --threads 1
"""
import argparse
import os
import sys

# --threads N gives OpenBLAS N threads and torch's intra-op pool one, torch_bench.py's
# setting (an intra-op pool of 2 on the 2-core machine made sampling 5x slower).
# OpenBLAS reads its thread count when torch loads it, so take it from argv first.
_threads = sys.argv[sys.argv.index("--threads") + 1] if "--threads" in sys.argv[:-1] else "1"
os.environ["OPENBLAS_NUM_THREADS"] = _threads

import json                                                         # noqa: E402
import resource                                                     # noqa: E402
import time                                                         # noqa: E402

import torch                                                        # noqa: E402
import torch.nn.functional as F                                     # noqa: E402

REF = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "reference")
sys.path.insert(0, REF)
from model import GPT, GPTConfig                                    # noqa: E402
from safetensors_io import load_file                                # noqa: E402


def resolve(ckpt):
    """The directory holding the checkpoint's files: `ckpt` itself, or in a run
    directory the checkpoint its `latest` file names (as ember's resolve_checkpoint)."""
    if os.path.exists(os.path.join(ckpt, "config.json")):
        return ckpt
    with open(os.path.join(ckpt, "latest"), encoding="utf-8") as f:
        return os.path.join(ckpt, f.read().strip())


def load(ckpt):
    with open(os.path.join(ckpt, "config.json")) as f:
        c = json.load(f)
    cfg = GPTConfig(vocab_size=c["vocab_size"], block_size=c["block_size"], n_layer=c["n_layer"],
                    n_head=c["n_head"], n_embd=c["n_embd"], dropout=0.0, bias=c["bias"],
                    tie_weights=c["tie_weights"], pos=c["pos"])
    model = GPT(cfg)
    state, _ = load_file(os.path.join(ckpt, "model.safetensors"))
    model.load_state_dict(state, strict=True)
    model.eval()
    return model


def last_logits(model, idx):
    """nanoGPT's forward without targets: lm_head on the last position only."""
    t = model.transformer
    T = idx.size(1)
    x = t.wte(idx)
    if model.config.pos == "learned":
        x = x + t.wpe(torch.arange(T))
    elif model.config.pos == "sinusoidal":
        x = x + model.pe[:T]
    x = t.drop(x)
    for block in t.h:
        x = block(x)
    return model.lm_head(t.ln_f(x[:, [-1], :]))[:, -1, :]       # [B,V]


@torch.no_grad()
def generate(model, idx, n, temperature, top_k, gen, in_context):
    """nanoGPT's GPT.generate; also returns when the first `in_context` tokens
    (those drawn before the window has to slide) were done."""
    bs = model.config.block_size
    t_in = None
    for i in range(n):
        if i == in_context:
            t_in = time.perf_counter()
        idx_cond = idx if idx.size(1) <= bs else idx[:, -bs:]
        logits = last_logits(model, idx_cond) / temperature
        if top_k:
            v, _ = torch.topk(logits, min(top_k, logits.size(-1)))
            logits[logits < v[:, [-1]]] = -float("inf")
        probs = F.softmax(logits, dim=-1)
        idx = torch.cat((idx, torch.multinomial(probs, num_samples=1, generator=gen)), dim=1)
    return idx, t_in if t_in is not None else time.perf_counter()


def main():
    ap = argparse.ArgumentParser(description="PyTorch nanoGPT-style sampling benchmark (ember's reference).")
    ap.add_argument("--ckpt", required=True, help="checkpoint directory (bench_sample --init-ckpt writes one)")
    ap.add_argument("--tokens", type=int, default=500)
    ap.add_argument("--temperature", type=float, default=0.8)
    ap.add_argument("--top-k", type=int, default=200)
    ap.add_argument("--threads", type=int, default=1, help="OpenBLAS threads; torch's own pool stays at 1 (default 1)")
    ap.add_argument("--seed", type=int, default=1337)
    args = ap.parse_args()
    if args.tokens < 1 or args.threads < 1 or args.temperature <= 0:
        ap.error("--tokens and --threads must be >= 1, --temperature > 0")
    torch.set_num_threads(1)
    ckpt = resolve(args.ckpt)
    model = load(ckpt)
    with open(os.path.join(ckpt, "tokenizer.json")) as f:
        chars = json.load(f).get("chars")
    start = chars.index("\n") if isinstance(chars, list) and "\n" in chars else 0   # sample.py's start "\n"
    idx = torch.tensor([[start]], dtype=torch.long)
    gen = torch.Generator().manual_seed(args.seed)
    in_context = min(args.tokens, model.config.block_size)   # token i (from 1) sees i tokens of context
    t0 = time.perf_counter()
    _, t_in = generate(model, idx, args.tokens, args.temperature, args.top_k, gen, in_context)
    s = time.perf_counter() - t0
    print(json.dumps({"impl": "pytorch", "tokens": args.tokens, "prompt_tokens": 1, "seconds": round(s, 3),
                      "tokens_per_s": round(args.tokens / s, 2), "in_context_tokens": in_context,
                      "in_context_seconds": round(t_in - t0, 3), "threads": args.threads,
                      "block_size": model.config.block_size,
                      "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
                      "torch_version": torch.__version__}))


if __name__ == "__main__":
    main()
