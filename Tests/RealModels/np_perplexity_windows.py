#!/usr/bin/env python3
"""Perplexity by the numpy reference (`np_llm.py` of ../shared/models/tools) on exactly the windows
`qinspect --perplexity` scores by default: disjoint windows of CONTEXT tokens of the whole file,
each window's first token replaced by BOS when the tokenizer adds one, every other target
scored. So the two numbers compare token for token, not only in kind.

Usage: PYTHONPATH=$MODELS/py python3 np_perplexity_windows.py MODEL TEXT [CONTEXT] [WINDOWS]
"""
import json
import math
import os
import sys

import numpy as np

sys.path.insert(0, os.environ.get("NP_LLM_DIR", os.path.join(os.path.dirname(__file__), "../../../shared/models/tools")))
from np_llm import Model, get_tok  # noqa: E402

model_dir, text_path = sys.argv[1], sys.argv[2]
context = int(sys.argv[3]) if len(sys.argv) > 3 else 512
max_windows = int(sys.argv[4]) if len(sys.argv) > 4 else 8

model = Model(model_dir, None)
tokenizer = get_tok(model_dir)
# BOS as the tokenizer adds it: tokenizer_config.json's add_bos_token when given, else the
# post-processor of tokenizer.json (Gemma 3's template adds <bos>).
config_path = os.path.join(model_dir, "tokenizer_config.json")
config = json.load(open(config_path)) if os.path.exists(config_path) else {}
with_special = tokenizer.encode("a", add_special_tokens=True).ids
adds_bos = config.get("add_bos_token", with_special[:1] == [model.cfg.get("bos_token_id")])
bos = model.cfg.get("bos_token_id") if adds_bos else None
ids = tokenizer.encode(open(text_path, encoding="utf-8").read(), add_special_tokens=False).ids

total, scored, windows, start = 0.0, 0, 0, 0
while start + 1 < len(ids) and windows < max_windows:
    window = list(ids[start:start + context])
    if bos is not None:
        window[0] = bos
    logits = model.forward(window[:-1]).astype(np.float64)
    logits -= logits.max(-1, keepdims=True)
    log_probs = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
    targets = np.array(window[1:])
    total -= log_probs[np.arange(len(targets)), targets].sum()
    scored += len(targets)
    windows += 1
    if start + context >= len(ids):
        break
    start += context
print(f"perplexity {math.exp(total / scored):.4f} scored {scored} windows {windows} context {context} bos {bos}")
