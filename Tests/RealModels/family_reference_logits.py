#!/usr/bin/env python3
"""Writes transformers' last-layer logits for a text, as the reference our engine's logits are
compared with on real family checkpoints.

The model runs in float32 with eager attention on CPU, from the folder's own config.json and
tokenizer (BOS as its tokenizer_config.json asks). The output .npz holds:
  input_ids  int64 [n]          the tokens fed, so a check feeds exactly the same ones
  logits     float32 [n, vocab] the logits of the first n tokens
  model_type str                config.json's model_type

    python3 family_reference_logits.py HF_DIR "TEXT" OUT.npz [--tokens N]
"""
import argparse
import sys

import numpy as np
import torch
from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("model_dir")
    ap.add_argument("text")
    ap.add_argument("out")
    ap.add_argument("--tokens", type=int, default=16, help="keep the first N tokens of the text (default 16)")
    a = ap.parse_args()
    if a.tokens < 1:
        sys.exit(f"family_reference_logits: --tokens must be at least 1, got {a.tokens}")
    config = AutoConfig.from_pretrained(a.model_dir)
    tok = AutoTokenizer.from_pretrained(a.model_dir)
    ids = tok(a.text, return_tensors="pt").input_ids[:, : a.tokens]
    if ids.shape[1] == 0:
        sys.exit(f"family_reference_logits: {a.model_dir}: the text tokenizes to nothing")
    model = AutoModelForCausalLM.from_pretrained(a.model_dir, dtype=torch.float32, attn_implementation="eager")
    model.eval()
    with torch.no_grad():
        logits = model(input_ids=ids).logits[0].float().numpy()
    if not np.isfinite(logits).all():
        sys.exit(f"family_reference_logits: {a.model_dir}: non-finite logits")
    np.savez(a.out, input_ids=ids[0].numpy().astype(np.int64), logits=logits.astype(np.float32),
             model_type=np.array(config.model_type))
    top = logits[-1].argsort()[::-1][:5]
    print(f"{config.model_type}: {ids.shape[1]} tokens {ids[0].tolist()}, logits {logits.shape}, "
          f"next-token top-5 {[tok.decode([int(t)]) for t in top]}")


if __name__ == "__main__":
    main()
