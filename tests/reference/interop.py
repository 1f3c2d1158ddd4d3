"""`make parity`: ember checkpoints load into the PyTorch reference GPT (model.py)
and PyTorch-written checkpoints load into `build/gpt`, with the same logits and the
same val loss both ways; damaged checkpoints fail cleanly (exit 2, one line).
Needs only the standard library and Debian's python3-torch. Usage:
    /usr/bin/python3 tests/reference/interop.py [--build build] [--keep]
"""
import argparse
import json
import math
import os
import random
import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import asdict

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from model import GPT, GPTConfig, make_adamw  # noqa: E402
from safetensors_io import load_file, save_file  # noqa: E402

# Both sides compute in float32 with different summation orders (ember's sgemm
# blocking vs torch's kernels, fused vs spelled-out attention). Over a dozen
# layers of width <= 128 that leaves errors of ~1e-7 of the largest value; 1e-5
# is two orders above that and still far below what any real mismatch (a wrong
# transpose, a missing bias, a swapped q/k) produces, which is O(1e-1).
TOL = 1e-5
EVAL_BATCH = 32   # `gpt eval` evaluates (and dumps) the val windows 32 at a time
SMALL = ["--n-layer", "2", "--n-head", "2", "--n-embd", "32", "--block-size", "16"]

failures = []


def report(ok, what, detail):
    print(f"{'PASS' if ok else 'FAIL'}  {what}: {detail}", flush=True)
    if not ok:
        failures.append(what)


def make_text(path):
    """~30 KB of seeded sentences: lowercase words, punctuation, newlines and one
    non-ASCII letter (é), so the char vocabulary is not just ASCII."""
    rng = random.Random(1234)
    nouns = "cat dog bird fox river tree house café garden child teacher ship".split()
    verbs = "sees finds follows paints visits likes hears builds leaves".split()
    adjs = "small red quiet old bright green lazy busy".split()
    lines = []
    while sum(len(s) + 1 for s in lines) < 30000:
        s = f"the {rng.choice(adjs)} {rng.choice(nouns)} {rng.choice(verbs)} a {rng.choice(nouns)}"
        if rng.random() < 0.3:
            s += f", and the {rng.choice(nouns)} {rng.choice(verbs)} it"
        lines.append(s + rng.choice([".", "!", "?"]))
    with open(path, "w", encoding="utf-8") as f:
        f.write("\n".join(lines) + "\n")
    return "\n".join(lines) + "\n"


def val_windows(ids, T):
    """nanoGPT's split (val = last 10%) cut into every non-overlapping window:
    x = val[wT : wT+T], y = val[wT+1 : wT+T+1] for w < (n_val-1)//T."""
    val = ids[int(len(ids) * 0.9):]
    W = (len(val) - 1) // T
    x = torch.tensor([val[w * T:w * T + T] for w in range(W)], dtype=torch.int64)
    y = torch.tensor([val[w * T + 1:w * T + T + 1] for w in range(W)], dtype=torch.int64)
    return x, y


@torch.no_grad()
def torch_val_loss(model, x, y):
    """Mean next-token loss over all windows, summed in float64."""
    logits, _ = model(x)
    per_token = F.cross_entropy(logits.reshape(-1, logits.size(-1)), y.reshape(-1), reduction="none")
    return per_token.double().mean().item()


def gpt(build, *args):
    return subprocess.run([os.path.join(build, "gpt"), *args, "--threads", "1"],
                          capture_output=True, text=True, encoding="utf-8")


def compare_with_ember(build, what, model, ckpt, text_path, ids, dump_path):
    """`gpt eval --dump-logits` on ckpt vs the PyTorch model: the first val batch's
    logits, then the val loss over every window."""
    T = model.config.block_size
    x, y = val_windows(ids, T)
    r = gpt(build, "eval", "--ckpt", ckpt, "--data", text_path, "--dump-logits", dump_path)
    m = re.search(r"^val_loss (\S+)$", r.stdout, re.M)
    if r.returncode != 0 or not m:
        report(False, f"{what}: gpt eval", f"exit {r.returncode}, stderr: {r.stderr.strip()}")
        return
    dump, _ = load_file(dump_path)
    idx, ember_logits = dump["idx"], dump["logits"]
    expected_idx = x[:EVAL_BATCH]
    if not torch.equal(idx, expected_idx):
        report(False, f"{what}: logits", f"ember's first val batch {list(idx.shape)} is not "
               f"PyTorch's windows {list(expected_idx.shape)} (the val splits disagree)")
    else:
        with torch.no_grad():
            torch_logits, _ = model(idx)
        scale = torch_logits.abs().max().item()
        err = (torch_logits - ember_logits).abs().max().item()
        same_shape = ember_logits.shape == torch_logits.shape
        report(same_shape and err <= TOL * scale, f"{what}: logits",
               f"{list(ember_logits.shape)}, largest |diff| {err:.3e} = {err / scale:.2e} of max |logit| "
               f"{scale:.3f} (tol {TOL:g})")
    ember_loss, torch_loss = float(m.group(1)), torch_val_loss(model, x, y)
    rel = abs(ember_loss - torch_loss) / abs(torch_loss)
    report(rel <= TOL, f"{what}: val loss", f"ember {ember_loss:.6f} vs PyTorch {torch_loss:.6f} over "
           f"{x.size(0)} windows (rel {rel:.2e}, tol {TOL:g}; ln V = {math.log(model.config.vocab_size):.4f})")


def newest_checkpoint(run_dir):
    """The checkpoint directory a run directory's `latest` file names."""
    with open(os.path.join(run_dir, "latest"), encoding="utf-8") as f:
        return os.path.join(run_dir, f.read().strip())


def ember_to_torch(build, tmp, text_path, text):
    """Train with build/gpt, load the directory into model.py's GPT (strict)."""
    cases = [("learned", ["--tie-weights", "--bias"]),
             ("rope", ["--no-tie-weights", "--bias"]),
             ("sinusoidal", ["--tie-weights", "--no-bias"])]
    for pos, flags in cases:
        what = f"ember->torch {pos} {' '.join(f[2:] for f in flags)}"
        ckpt = os.path.join(tmp, f"ember_{pos}")
        r = gpt(build, "train", "--data", text_path, "--out", ckpt, "--pos", pos, *flags, *SMALL,
                "--batch-size", "8", "--max-iters", "30", "--eval-interval", "30", "--lr", "1e-2",
                "--warmup-iters", "3", "--lr-decay-iters", "30", "--seed", "7")
        if r.returncode != 0:
            report(False, f"{what}: gpt train", f"exit {r.returncode}, stderr: {r.stderr.strip()}")
            continue
        ckpt = newest_checkpoint(ckpt)
        with open(os.path.join(ckpt, "config.json"), encoding="utf-8") as f:
            cfg = GPTConfig(**json.load(f))
        with open(os.path.join(ckpt, "tokenizer.json"), encoding="utf-8") as f:
            chars = json.load(f)["chars"]
        stoi = {c: i for i, c in enumerate(chars)}
        model = GPT(cfg).eval()
        state, _ = load_file(os.path.join(ckpt, "model.safetensors"))
        try:
            model.load_state_dict(state, strict=True)
        except RuntimeError as e:
            report(False, f"{what}: load_state_dict(strict=True)", str(e).replace("\n", " "))
            continue
        ids = [stoi[c] for c in text]
        compare_with_ember(build, what, model, ckpt, text_path, ids, os.path.join(tmp, f"dump_{pos}.safetensors"))


def write_checkpoint(ckpt, model, chars, drop_lm_head=False):
    """The files `gpt eval` and `gpt sample` need: weights, config, tokenizer."""
    os.makedirs(ckpt, exist_ok=True)
    state = {k: v for k, v in model.state_dict().items() if not (drop_lm_head and k == "lm_head.weight")}
    save_file(state, os.path.join(ckpt, "model.safetensors"), metadata={"format": "pt"})
    with open(os.path.join(ckpt, "config.json"), "w", encoding="utf-8") as f:
        json.dump(asdict(model.config), f, indent=2)
    with open(os.path.join(ckpt, "tokenizer.json"), "w", encoding="utf-8") as f:
        json.dump({"kind": "char", "chars": chars}, f, ensure_ascii=False, indent=1)


def train_torch(model, ids, steps=40, B=16, seed=3):
    """A few AdamW steps on random train windows, so the weights are far from
    their init and a loss near ln V could not pass by accident."""
    T = model.config.block_size
    train = torch.tensor(ids[:int(len(ids) * 0.9)], dtype=torch.int64)
    g = torch.Generator().manual_seed(seed)
    opt = make_adamw(model, 0.1, 1e-2, (0.9, 0.95))
    model.train()
    for _ in range(steps):
        start = torch.randint(0, len(train) - T - 1, (B,), generator=g)
        x = torch.stack([train[s:s + T] for s in start])
        y = torch.stack([train[s + 1:s + T + 1] for s in start])
        _, loss = model(x, y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    model.eval()


def torch_to_ember(build, tmp, text_path, text):
    """Build and train model.py's GPT, write a checkpoint directory, evaluate and
    sample it with build/gpt. Returns one good (model, chars) for the bad-input checks."""
    chars = sorted(set(text))
    stoi = {c: i for i, c in enumerate(chars)}
    ids = [stoi[c] for c in text]
    cases = [("alibi", dict(tie_weights=True, bias=True), False),
             ("alibi", dict(tie_weights=True, bias=True), True),    # tied, wte stored once
             ("learned", dict(tie_weights=False, bias=False), False),
             ("none", dict(tie_weights=True, bias=True), False)]
    good = None
    for n, (pos, extra, drop_lm_head) in enumerate(cases):
        torch.manual_seed(100 + n)
        cfg = GPTConfig(vocab_size=len(chars), block_size=16, n_layer=2, n_head=2, n_embd=32, dropout=0.0,
                        pos=pos, **extra)
        model = GPT(cfg)
        train_torch(model, ids)
        layout = "tied, wte only" if drop_lm_head else ("tied, both keys" if cfg.tie_weights else "untied")
        what = f"torch->ember {pos} ({layout}, bias={cfg.bias})"
        ckpt = os.path.join(tmp, f"torch_{n}_{pos}")
        write_checkpoint(ckpt, model, chars, drop_lm_head)
        compare_with_ember(build, what, model, ckpt, text_path, ids, os.path.join(tmp, f"dump_torch_{n}.safetensors"))
        prompt = "the small café"
        r = gpt(build, "sample", "--ckpt", ckpt, "--tokens", "20", "--prompt", prompt, "--seed", "5")
        # One token is one character here, so the printed text is the prompt, 20
        # more characters and print_sample's newline.
        ok = r.returncode == 0 and r.stdout.startswith(prompt) and len(r.stdout) == len(prompt) + 21
        report(ok, f"{what}: gpt sample", f"exit {r.returncode}, printed {r.stdout!r}"
               + (f", stderr: {r.stderr.strip()}" if r.stderr.strip() else ""))
        good = good or (model, chars)
    return good


def bad_inputs(build, tmp, text_path, model, chars):
    """A key removed, then a tensor of the wrong shape: exit 2, one stderr line naming the key."""
    state = model.state_dict()
    key = "transformer.h.1.mlp.c_fc.weight"
    wrong_shape = dict(state)
    wrong_shape["transformer.ln_f.weight"] = torch.ones(model.config.n_embd + 1)
    cases = [("missing key", {k: v for k, v in state.items() if k != key}, key),
             ("mis-shaped tensor", wrong_shape, "transformer.ln_f.weight")]
    for n, (what, tensors, named) in enumerate(cases):
        ckpt = os.path.join(tmp, f"bad_{n}")
        write_checkpoint(ckpt, model, chars)
        save_file(tensors, os.path.join(ckpt, "model.safetensors"))
        r = gpt(build, "eval", "--ckpt", ckpt, "--data", text_path)
        err = r.stderr.strip()
        ok = r.returncode == 2 and "\n" not in err and named in err and not r.stdout
        report(ok, f"bad checkpoint: {what}", f"exit {r.returncode}, stderr {err!r}")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--build", default="build", help="ember's build directory (holds gpt)")
    ap.add_argument("--keep", action="store_true", help="keep the temporary directory and print its path")
    args = ap.parse_args()
    if not os.access(os.path.join(args.build, "gpt"), os.X_OK):
        sys.exit(f"interop: {args.build}/gpt not found; run make first")
    torch.set_num_threads(1)
    tmp = tempfile.mkdtemp(prefix="ember_parity_")
    text_path = os.path.join(tmp, "text.txt")
    text = make_text(text_path)
    print(f"interop: {len(text)} characters of generated text, vocabulary {len(set(text))}; "
          f"PyTorch {torch.__version__}", flush=True)
    ember_to_torch(args.build, tmp, text_path, text)
    good = torch_to_ember(args.build, tmp, text_path, text)
    bad_inputs(args.build, tmp, text_path, *good)
    if args.keep:
        print(f"interop: files kept in {tmp}")
    else:
        shutil.rmtree(tmp)
    if failures:
        print(f"interop: {len(failures)} check(s) FAILED: {', '.join(failures)}")
        return 1
    print("interop: all checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
