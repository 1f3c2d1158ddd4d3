"""Memory and tokenizing speed of `gpt train` on a large text.

Writes a text of --mb megabytes (the lines of --corpus in a seeded random
order, or seeded sentences without one), runs a short `gpt train` on it twice
(the first builds the token cache, the second reuses it) and prints, for each,
the peak resident memory of the gpt process per character of text and the
tokenizing speed gpt reports. --gpt runs another build (an older binary, to
compare) in the same way.

  /usr/bin/python3 bench/bench_data.py --mb 300 --corpus ../shared/data/tinyshakespeare.txt
  /usr/bin/python3 bench/bench_data.py --mb 300 --tokenizer bpe --keep /tmp/text300.txt
"""
import argparse
import os
import random
import re
import shutil
import subprocess
import tempfile
import time

SHORT_RUN = ["--n-layer", "1", "--n-head", "2", "--n-embd", "16", "--block-size", "16", "--batch-size", "4",
             "--max-iters", "5", "--eval-interval", "5", "--eval-iters", "2", "--threads", "1"]


def write_text(path, mb, corpus):
    rng = random.Random(1)
    if corpus:
        with open(corpus, encoding="utf-8") as f:
            lines = f.read().splitlines(keepends=True)
    else:
        words = "the fox hen owl saw chased found over and then its den".split()
        lines = [" ".join(rng.choice(words) for _ in range(8)) + ".\n" for _ in range(5000)]
    written = 0
    with open(path, "w", encoding="utf-8") as f:
        while written < mb * 1e6:
            block = "".join(rng.choices(lines, k=20000))
            f.write(block)
            written += len(block.encode("utf-8"))


def count_chars(path):
    """Characters of a UTF-8 file, read a megabyte at a time (so this process stays small)."""
    chars = 0
    with open(path, encoding="utf-8") as f:
        while block := f.read(1 << 20):
            chars += len(block)
    return chars


def run(cmd):
    """(peak RSS bytes, stdout, seconds) of one command, from wait4. A forked
    child starts out sharing this process's ~10 MB, a floor far below gpt's."""
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    out = proc.stdout.read().decode("utf-8", "replace")
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} exited {proc.returncode}:\n{out[-2000:]}")
    return usage.ru_maxrss * 1024, out, time.perf_counter() - start


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--build", default="build")
    p.add_argument("--gpt", help="the gpt binary (default: BUILD/gpt)")
    p.add_argument("--mb", type=float, default=300.0)
    p.add_argument("--corpus", help="a text whose lines make up the large text")
    p.add_argument("--tokenizer", default="char", choices=["char", "bpe"])
    p.add_argument("--keep", help="write the text here and keep it (reused when it exists)")
    a = p.parse_args()
    gpt = a.gpt or os.path.join(a.build, "gpt")
    work = tempfile.mkdtemp(prefix="ember_bench_data_")
    try:
        text = a.keep or os.path.join(work, "text.txt")
        if not os.path.exists(text):
            write_text(text, a.mb, a.corpus)
        chars = count_chars(text)
        print(f"text: {text}, {os.path.getsize(text) / 1e6:.1f} MB, {chars} characters")
        cmd = [gpt, "train", "--data", text, "--out", os.path.join(work, "run"), "--tokenizer", a.tokenizer]
        for label, extra in (("first run (builds the cache)", []), ("second run (reuses it)", ["--overwrite"])):
            peak, out, seconds = run(cmd + SHORT_RUN + extra)
            m = re.search(r"^tokens: .* in ([\d.]+) s \(([\d.]+) MB/s\)", out, re.M)
            speed = f"tokenizing {m.group(2)} MB/s ({m.group(1)} s)" if m else "no tokenizing line"
            print(f"{label}: peak RSS {peak / 1e6:.1f} MB = {peak / chars:.3f} bytes/char; {speed}; "
                  f"{seconds:.1f} s in all")
    finally:
        shutil.rmtree(work)


if __name__ == "__main__":
    main()
