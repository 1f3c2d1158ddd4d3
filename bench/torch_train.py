"""The PyTorch side of the shakespeare_char CPU run: trains the reference GPT
(tests/reference/model.py, nanoGPT's architecture) with exactly the pipeline
`gpt train` uses (character vocabulary, 90/10 split, random windows, AdamW with
decay groups, warmup + cosine LR, clipping) and reports the same numbers: the
20-batch val estimate every eval interval and, at the end, the mean loss over
every non-overlapping block of the val split (what `gpt eval` prints).
With --nanogpt-order the random draws come in nanoGPT train.py's order instead
(first batch fetched before the loop, the next one right after each forward,
an evaluation of train and val at step 0 and every interval): same maths, a
different stream of batches from the same seed. --dump DIR also writes the
initial weights (DIR/init.safetensors, nanoGPT names) and every batch's window
offsets (DIR/batches.safetensors: train_offsets [steps, B], and val_offsets
[20, B] of the last val estimate), which bench/replay_run.cpp feeds to ember.
  /usr/bin/python3 bench/torch_train.py --data ../shared/data/tinyshakespeare.txt
"""
import os
os.environ.setdefault("OPENBLAS_NUM_THREADS", "2")

import argparse   # noqa: E402
import sys        # noqa: E402
import time       # noqa: E402

import torch      # noqa: E402

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "reference"))
from model import GPT, GPTConfig, get_lr, make_adamw  # noqa: E402
from safetensors_io import save_file  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", required=True)
    ap.add_argument("--max-iters", type=int, default=2000)
    ap.add_argument("--eval-interval", type=int, default=250)
    ap.add_argument("--seed", type=int, default=1337)
    ap.add_argument("--nanogpt-order", action="store_true", help="draw batches in nanoGPT train.py's order")
    ap.add_argument("--dump", metavar="DIR", help="write the initial weights and every batch's offsets to DIR")
    a = ap.parse_args()
    torch.set_num_threads(1)
    torch.manual_seed(a.seed)
    text = open(a.data, encoding="utf-8").read()
    chars = sorted(set(text))
    index = {c: i for i, c in enumerate(chars)}
    data = torch.tensor([index[c] for c in text], dtype=torch.long)
    n = int(len(data) * 0.9)
    train, val = data[:n], data[n:]
    B, T = 12, 64
    cfg = GPTConfig(vocab_size=len(chars), block_size=T, n_layer=4, n_head=4, n_embd=128,
                    dropout=0.0, bias=False, tie_weights=True, pos="learned")
    model = GPT(cfg)
    opt = make_adamw(model, 0.1, 1e-3, (0.9, 0.99))

    if a.dump:
        os.makedirs(a.dump, exist_ok=True)
        save_file({k: v.detach().clone().contiguous() for k, v in model.state_dict().items()},
                  os.path.join(a.dump, "init.safetensors"))
    step_offsets, val_offsets = [], []  # what --dump writes

    def batch(split, record=None):
        ix = torch.randint(len(split) - T, (B,))
        if record is not None:
            record.append(ix)
        return torch.stack([split[i:i + T] for i in ix]), torch.stack([split[i + 1:i + T + 1] for i in ix])

    def estimate(split):
        model.eval()
        with torch.no_grad():
            record = val_offsets if split is val else None
            est = sum(model(*batch(split, record))[1].item() for _ in range(20)) / 20
        model.train()
        return est

    start = time.time()
    if a.nanogpt_order:
        x, y = batch(train, step_offsets)
        for it in range(a.max_iters + 1):
            for g in opt.param_groups:
                g["lr"] = get_lr(it, 1e-3, 1e-4, 100, a.max_iters)
            if it % a.eval_interval == 0:
                tr = estimate(train)
                print(f"step {it}: train loss {tr:.4f}, val loss {estimate(val):.4f} ({time.time() - start:.0f} s)",
                      flush=True)
            if it == a.max_iters:  # nanoGPT would take one more step after this report
                break
            _, loss = model(x, y)
            x, y = batch(train, step_offsets)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            opt.zero_grad(set_to_none=True)
    else:
        for it in range(a.max_iters):
            for g in opt.param_groups:
                g["lr"] = get_lr(it, 1e-3, 1e-4, 100, a.max_iters)
            x, y = batch(train, step_offsets)
            _, loss = model(x, y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            if (it + 1) % a.eval_interval == 0:
                print(f"step {it + 1}: val loss {estimate(val):.4f} ({time.time() - start:.0f} s)", flush=True)
    if a.dump:  # nanoGPT order draws one batch past the last step: keep max_iters
        save_file({"train_offsets": torch.stack(step_offsets[:a.max_iters]),
                   "val_offsets": torch.stack(val_offsets[-20:])},
                  os.path.join(a.dump, "batches.safetensors"))
    model.eval()
    with torch.no_grad():
        w = (len(val) - 1) // T
        x = torch.stack([val[i * T:i * T + T] for i in range(w)])
        y = torch.stack([val[i * T + 1:i * T + T + 1] for i in range(w)])
        full = sum(model(x[i:i + 32], y[i:i + 32])[1].item() * len(x[i:i + 32]) for i in range(0, w, 32)) / w
    print(f"val loss over every block of the val split: {full:.4f}; trained in {time.time() - start:.1f} s")


if __name__ == "__main__":
    main()
