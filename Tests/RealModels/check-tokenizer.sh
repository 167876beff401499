#!/usr/bin/env bash
# Compares BPETokenizer ids with the `tokenizers` Python package on whole corpus files, for the
# SmolLM2 and Qwen2.5 tokenizers, and prints token counts, mismatches and throughput of both.
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
models_dir="${QTOOLCHAIN_MODELS:-$HOME/.cache/qtoolchain-models}"
corpus="${models_dir}/corpus"
models="${models_dir}/smollm2-135m-instruct-hf:${models_dir}/qwen2.5-coder-0.5b-instruct-hf"
files=$(ls "$corpus"/*.txt "$corpus"/*.jsonl 2>/dev/null | tr '\n' ':' | sed 's/:$//')
out="$(mktemp -d)"
trap 'rm -rf "$out"' EXIT

cd "$root"
QENGINE_TOKENIZER_MODELS="$models" QENGINE_TOKENIZER_CORPUS="$files" QENGINE_TOKENIZER_OUT="$out" \
  swift test -c release --filter TokenizerCorpus 2>&1 | grep -E "error|failed|passed|issue" | tail -5

PYTHONPATH="${models_dir}/py" python3 - "$models" "$files" "$out" <<'PY'
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
PY
