"""The PyTorch side of the shakespeare_char CPU run: trains the reference GPT
(tests/reference/model.py, nanoGPT's architecture) with exactly the pipeline
`gpt train` uses (character vocabulary, 90/10 split, random windows, AdamW with
decay groups, warmup + cosine LR, clipping) and reports the same numbers: the
20-batch val estimate every eval interval and, at the end, the mean loss over
every non-overlapping block of the val split (what `gpt eval` prints).
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


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", required=True)
    ap.add_argument("--max-iters", type=int, default=2000)
    ap.add_argument("--eval-interval", type=int, default=250)
    ap.add_argument("--seed", type=int, default=1337)
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

    def batch(split):
        ix = torch.randint(len(split) - T, (B,))
        return torch.stack([split[i:i + T] for i in ix]), torch.stack([split[i + 1:i + T + 1] for i in ix])

    start = time.time()
    for it in range(a.max_iters):
        for g in opt.param_groups:
            g["lr"] = get_lr(it, 1e-3, 1e-4, 100, a.max_iters)
        x, y = batch(train)
        _, loss = model(x, y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        if (it + 1) % a.eval_interval == 0:
            model.eval()
            with torch.no_grad():
                est = sum(model(*batch(val))[1].item() for _ in range(20)) / 20
            model.train()
            print(f"step {it + 1}: val loss {est:.4f} ({time.time() - start:.0f} s)", flush=True)
    model.eval()
    with torch.no_grad():
        w = (len(val) - 1) // T
        x = torch.stack([val[i * T:i * T + T] for i in range(w)])
        y = torch.stack([val[i * T + 1:i * T + T + 1] for i in range(w)])
        full = sum(model(x[i:i + 32], y[i:i + 32])[1].item() * len(x[i:i + 32]) for i in range(0, w, 32)) / w
    print(f"val loss over every block of the val split: {full:.4f}; trained in {time.time() - start:.1f} s")


if __name__ == "__main__":
    main()
