"""Regenerates ember's golden reference files in tests/reference/data/.

    /usr/bin/python3 tests/reference/generate.py

Deterministic: fixed seeds, one thread, deterministic algorithms; running it
twice gives byte-identical files. See tests/reference/README.md for contents.
"""
import os
import sys

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import torch                                                        # noqa: E402
import torch.nn.functional as F                                     # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from model import GPT, GPTConfig, get_lr, make_adamw               # noqa: E402
from safetensors_io import save_file                                # noqa: E402

DATA = os.path.join(HERE, "data")

# one tiny config per positional kind, flags varied so both settings are covered
VARIANTS = [
    ("learned", True, True),        # (pos, tie_weights, bias)
    ("sinusoidal", False, True),
    ("rope", False, False),
    ("alibi", True, True),
    ("none", False, True),
]
TINY = dict(vocab_size=17, block_size=8, n_layer=2, n_head=2, n_embd=32, dropout=0.0)
BATCH, T = 3, 8
OPT = dict(max_lr=1e-2, min_lr=1e-3, warmup_iters=1, lr_decay_iters=3,
           beta1=0.9, beta2=0.95, eps=1e-8, weight_decay=0.1, grad_clip=1.0, steps=3)


def clone_all(named):
    return {k: v.detach().clone() for k, v in named}


@torch.no_grad()
def perturb(model, gen):
    """Move LayerNorm weights/biases and Linear biases off their 1/0 init."""
    for m in model.modules():
        if isinstance(m, torch.nn.LayerNorm):
            m.weight.add_(0.1 * torch.randn(m.weight.shape, generator=gen))
            if m.bias is not None:
                m.bias.add_(0.1 * torch.randn(m.bias.shape, generator=gen))
        elif isinstance(m, torch.nn.Linear) and m.bias is not None:
            m.bias.add_(0.05 * torch.randn(m.bias.shape, generator=gen))


def gpt_reference(pos, tie, bias, seed):
    torch.manual_seed(seed)
    cfg = GPTConfig(**TINY, bias=bias, tie_weights=tie, pos=pos)
    model = GPT(cfg)
    gen = torch.Generator().manual_seed(seed + 1)
    perturb(model, gen)
    idx = torch.randint(0, cfg.vocab_size, (BATCH, T), generator=gen)
    targets = torch.randint(0, cfg.vocab_size, (BATCH, T), generator=gen)
    targets[0, 3] = -1                                              # ignored positions
    targets[2, 7] = -1

    out = {"idx": idx, "targets": targets}
    for k, v in model.state_dict().items():
        out["param." + k] = v.clone()

    logits, loss = model(idx, targets)
    loss.backward()
    out["logits"] = logits.detach().clone()
    out["loss"] = loss.detach().clone()
    for k, p in model.named_parameters():
        out["grad." + k] = p.grad.clone()
    if tie:   # convenience copy: the tied Parameter's grad under its second name
        out["grad.lm_head.weight"] = model.lm_head.weight.grad.clone()

    opt = make_adamw(model, OPT["weight_decay"], OPT["max_lr"], (OPT["beta1"], OPT["beta2"]))
    lrs, norms, losses = [], [], []
    for step in range(OPT["steps"]):
        opt.zero_grad(set_to_none=True)
        _, loss = model(idx, targets)
        loss.backward()
        if step > 0:   # step 0's gradients are grad.*; these let a test feed AdamW PyTorch's own inputs
            for k, p in model.named_parameters():
                out[f"adamw.grad{step}." + k] = p.grad.clone()
        norm = torch.nn.utils.clip_grad_norm_(model.parameters(), OPT["grad_clip"])
        lr = get_lr(step, OPT["max_lr"], OPT["min_lr"], OPT["warmup_iters"], OPT["lr_decay_iters"])
        for g in opt.param_groups:
            g["lr"] = lr
        opt.step()
        lrs.append(lr)
        norms.append(float(norm))
        losses.append(float(loss))
    out["adamw.lr"] = torch.tensor(lrs, dtype=torch.float32)
    out["adamw.grad_norm"] = torch.tensor(norms, dtype=torch.float32)
    out["adamw.loss"] = torch.tensor(losses, dtype=torch.float32)
    for k, v in model.state_dict().items():
        out["after." + k] = v.clone()

    meta = {k: str(v) for k, v in TINY.items()}
    meta.update(bias=str(bias).lower(), tie_weights=str(tie).lower(), pos=pos,
                batch_size=str(BATCH), seq_len=str(T), seed=str(seed))
    meta.update({k: repr(v) for k, v in OPT.items()})
    save_file(out, os.path.join(DATA, f"gpt_{pos}.safetensors"), meta)


def with_grads(fn, inputs, gout):
    """Runs fn on leaf copies of inputs; returns (out, grads of sum(out * gout))."""
    leaves = [x.detach().clone().requires_grad_(x.is_floating_point()) for x in inputs]
    y = fn(*leaves)
    if gout is None:          # scalar output: gradient of y itself
        y.backward()
    else:
        (y * gout).sum().backward()
    return y.detach(), [x.grad for x in leaves if x.requires_grad]


def ops_reference(seed):
    g = torch.Generator().manual_seed(seed)
    rn = lambda *s: torch.randn(*s, generator=g)                    # noqa: E731
    out = {}

    for op, fn in (("softmax", F.softmax), ("log_softmax", F.log_softmax)):
        for case, dim in (("dim1", 1), ("last", -1)):
            x, go = rn(3, 5, 4), rn(3, 5, 4)
            y, (gx,) = with_grads(lambda t: fn(t, dim=dim), [x], go)
            p = f"{op}.{case}."
            out.update({p + "x": x, p + "gout": go, p + "out": y, p + "grad_x": gx})

    # cross-entropy: mean over non-ignored targets (ignore_index -1); grads of the loss
    logits = 2.0 * rn(6, 7)
    tg = torch.randint(0, 7, (6,), generator=g)
    tg[1] = -1
    tg[4] = -1
    y, (gl,) = with_grads(lambda l: F.cross_entropy(l, tg, ignore_index=-1), [logits], None)
    out.update({"cross_entropy.flat.logits": logits, "cross_entropy.flat.targets": tg,
                "cross_entropy.flat.loss": y, "cross_entropy.flat.grad_logits": gl})
    logits = 2.0 * rn(2, 3, 7)
    tg = torch.randint(0, 7, (2, 3), generator=g)
    tg[1, 0] = -1
    y, (gl,) = with_grads(lambda l: F.cross_entropy(l.view(-1, 7), tg.view(-1), ignore_index=-1),
                          [logits], None)
    out.update({"cross_entropy.btv.logits": logits, "cross_entropy.btv.targets": tg,
                "cross_entropy.btv.loss": y, "cross_entropy.btv.grad_logits": gl})

    x, w, b, go = rn(2, 3, 8), 1.0 + 0.3 * rn(8), 0.3 * rn(8), rn(2, 3, 8)
    y, (gx, gw, gb) = with_grads(lambda a, c, d: F.layer_norm(a, (8,), c, d, eps=1e-5), [x, w, b], go)
    out.update({"layer_norm.last.x": x, "layer_norm.last.weight": w, "layer_norm.last.bias": b,
                "layer_norm.last.gout": go, "layer_norm.last.out": y, "layer_norm.last.grad_x": gx,
                "layer_norm.last.grad_weight": gw, "layer_norm.last.grad_bias": gb})

    # 49 evenly spaced points -6..6 (step 0.25, includes 0) plus one off-grid point
    xg = torch.cat([torch.linspace(-6.0, 6.0, 49), torch.tensor([0.1])])
    for case, approx in (("erf", "none"), ("tanh", "tanh")):
        go = rn(50)
        y, (gx,) = with_grads(lambda t: F.gelu(t, approximate=approx), [xg], go)
        p = f"gelu.{case}."
        out.update({p + "x": xg, p + "gout": go, p + "out": y, p + "grad_x": gx})

    for case, sa, sb in (("bcast", (2, 1, 3, 4), (5, 4, 2)), ("2d", (3, 4), (4, 5))):
        a, b = rn(*sa), rn(*sb)
        go = rn(*torch.matmul(a, b).shape)
        y, (ga, gb) = with_grads(torch.matmul, [a, b], go)
        p = f"matmul.{case}."
        out.update({p + "a": a, p + "b": b, p + "gout": go, p + "out": y,
                    p + "grad_a": ga, p + "grad_b": gb})

    w = rn(10, 6)
    ids = torch.tensor([[1, 4, 4, 9, 0], [4, 7, 1, 1, 3]], dtype=torch.int64)
    go = rn(2, 5, 6)
    y, (gw,) = with_grads(lambda t: F.embedding(ids, t), [w], go)
    out.update({"embedding.repeat.weight": w, "embedding.repeat.ids": ids,
                "embedding.repeat.gout": go, "embedding.repeat.out": y,
                "embedding.repeat.grad_weight": gw})

    save_file({k: v.contiguous() for k, v in out.items()},
              os.path.join(DATA, "ops.safetensors"), {"seed": str(seed)})


def torch_rng_reference():
    """PyTorch's CPU stream for train/torch_generator: randint, uniform_, normal_ (with
    and without a partial last block of 16) from torch.manual_seed(1337), then a
    tiny GPT built from torch.manual_seed(1234) and the draws that follow it."""
    out = {}
    torch.manual_seed(1337)
    out["randint"] = torch.randint(1000, (12,))
    out["uniform"] = torch.empty(5).uniform_(-0.5, 0.25)
    out["normal20"] = torch.empty(20).normal_(0.1, 2.0)
    out["normal37"] = torch.empty(37).normal_()
    for tie, bias in ((True, True), (False, False)):
        torch.manual_seed(1234)
        model = GPT(GPTConfig(**TINY, bias=bias, tie_weights=tie, pos="learned"))
        tag = f"tie{int(tie)}_bias{int(bias)}"
        for k, v in model.state_dict().items():
            out[f"{tag}.{k}"] = v.detach().clone()
        out[f"{tag}.after"] = torch.randint(1000, (4,))   # the stream position after the constructor
    save_file({k: v.contiguous() for k, v in out.items()}, os.path.join(DATA, "torch_rng.safetensors"))


# The trainer's rng "nanogpt" against PyTorch running nanoGPT train.py's loop:
# this text, a character vocabulary, 90/10 split, TRAIN_RUN's settings.
TRAIN_TEXT = "".join(f"the {a} saw the {b} by the {c}.\n" for a, b, c in [
    ("fox", "hen", "barn"), ("owl", "cat", "well"), ("hen", "fox", "hill"), ("cat", "owl", "gate"),
    ("dog", "cow", "pond"), ("cow", "dog", "mill")] * 6)
TRAIN_RUN = dict(n_layer=1, n_head=2, n_embd=16, block_size=16, batch_size=4, max_iters=6, eval_interval=3,
                 eval_iters=2, lr=1e-2, min_lr=1e-3, warmup_iters=2, lr_decay_iters=6, seed=1337)


def trainer_reference():
    r = TRAIN_RUN
    chars = sorted(set(TRAIN_TEXT))
    data = torch.tensor([chars.index(ch) for ch in TRAIN_TEXT], dtype=torch.long)
    n = int(len(data) * 0.9)
    splits = {"train": data[:n], "val": data[n:]}
    B, T = r["batch_size"], r["block_size"]
    torch.manual_seed(r["seed"])
    cfg = GPTConfig(vocab_size=len(chars), block_size=T, n_layer=r["n_layer"], n_head=r["n_head"],
                    n_embd=r["n_embd"], dropout=0.0, bias=False, tie_weights=True, pos="learned")
    model = GPT(cfg)
    opt = make_adamw(model, 0.1, r["lr"], (0.9, 0.99))

    def get_batch(split):
        d = splits[split]
        ix = torch.randint(len(d) - T, (B,))
        return torch.stack([d[i:i + T] for i in ix]), torch.stack([d[i + 1:i + 1 + T] for i in ix])

    def estimate():
        model.eval()
        out = []
        with torch.no_grad():
            for split in ("train", "val"):
                out.append(sum(model(*get_batch(split))[1].item() for _ in range(r["eval_iters"])) / r["eval_iters"])
        model.train()
        return out

    losses, estimates = [], []
    X, Y = get_batch("train")
    for it in range(r["max_iters"] + 1):
        for g in opt.param_groups:
            g["lr"] = get_lr(it, r["lr"], r["min_lr"], r["warmup_iters"], r["lr_decay_iters"])
        if it % r["eval_interval"] == 0:
            estimates.append(estimate())
        if it == r["max_iters"]:
            break
        _, loss = model(X, Y)
        X, Y = get_batch("train")
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        losses.append(loss.item())
    save_file({"losses": torch.tensor(losses), "estimates": torch.tensor(estimates)},
              os.path.join(DATA, "trainer_nanogpt.safetensors"))


def main():
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    os.makedirs(DATA, exist_ok=True)
    for n, (pos, tie, bias) in enumerate(VARIANTS):
        gpt_reference(pos, tie, bias, seed=1000 + n)
    ops_reference(seed=7)
    torch_rng_reference()
    trainer_reference()
    for name in sorted(os.listdir(DATA)):
        print(f"{os.path.getsize(os.path.join(DATA, name)):8d}  data/{name}")


if __name__ == "__main__":
    main()
