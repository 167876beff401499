"""Compares our tokenizer ids, written by the release-only TokenizerCorpus test into OUT, with the
`tokenizers` package on the same files; prints mismatches and speed, exits 1 on any mismatch.

Usage: compare_tokenizer_ids.py MODEL[:MODEL...] FILE[:FILE...] OUT
"""
import os, sys, time
import numpy as np
from tokenizers import Tokenizer

models, files, out = sys.argv[1].split(":"), sys.argv[2].split(":"), sys.argv[3]
ours = {}
for row in open(os.path.join(out, "timings.tsv")):
    model, name, seconds, count, size = row.rstrip("\n").split("\t")
    ours[(model, name)] = float(seconds)
total_mismatch = 0
print(f"{'tokenizer':34} {'file':28} {'MB':>6} {'tokens':>9} {'mismatch':>8} {'lines':>6} {'ours s':>7} {'py s':>7} {'speedup':>7}")
for model_path in models:
    model = os.path.basename(model_path)
    tokenizer = Tokenizer.from_file(os.path.join(model_path, "tokenizer.json"))
    print(f"{model:34} {'(load)':28} {'':6} {'':9} {'':8} {'':6} {ours[(model, 'load')]:7.3f}")
    for path in files:
        name = os.path.basename(path)
        text = open(path, encoding="utf-8", newline="").read()
        start = time.perf_counter()
        expected = tokenizer.encode(text, add_special_tokens=False).ids
        seconds = time.perf_counter() - start
        got = np.fromfile(os.path.join(out, f"{model}__{name}.ids"), dtype="<i4").tolist()
        mismatch = sum(a != b for a, b in zip(got, expected)) + abs(len(got) - len(expected))
        lines = text.split("\n")[:2000]
        ours_lines = open(os.path.join(out, f"{model}__{name}.lines")).read().split("\n")[:-1]
        line_mismatch = sum(
            [int(x) for x in row.split()] != tokenizer.encode(line, add_special_tokens=False).ids
            for row, line in zip(ours_lines, lines)) + abs(len(ours_lines) - len(lines))
        total_mismatch += mismatch + line_mismatch
        ours_s = ours[(model, name)]
        print(f"{model:34} {name:28} {len(text.encode()) / 1e6:6.2f} {len(expected):9d} {mismatch:8d} "
              f"{line_mismatch:6d} {ours_s:7.3f} {seconds:7.3f} {seconds / ours_s:6.2f}x")
print(f"total mismatches: {total_mismatch}")
sys.exit(1 if total_mismatch else 0)
