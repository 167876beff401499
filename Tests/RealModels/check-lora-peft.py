#!/usr/bin/env python3
"""Loads an adapter written by `lora-rebase` with PEFT and compares it with this package's engine.

    python3 Tests/RealModels/check-lora-peft.py BASE ADAPTER [TEXT] [--tokens N] [--qinspect BIN]

1. `PeftModel.from_pretrained(BASE, ADAPTER)` must load every key (no missing or unexpected LoRA
   weights); its logits on the first N tokens of TEXT are compared with the base model's (the
   adapter must change them) and with `merge_and_unload()` (PEFT's own merge, a sanity check).
2. The adapter is merged into BASE's weights here with numpy (W + lora_alpha / r * B A), written
   as a model folder, and `qinspect MERGED --perplexity` (this package's engine) scores the same
   tokens; its perplexity must match PEFT's to 1e-3 relative, and the merged weights are compared
   with PEFT's merge.
Needs torch, transformers, peft. Not part of the test suite.
"""
import argparse
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile

import numpy as np
import torch
from safetensors.numpy import load_file, save_file
from transformers import AutoModelForCausalLM, AutoTokenizer
from peft import PeftModel

parser = argparse.ArgumentParser()
parser.add_argument("base")
parser.add_argument("adapter")
parser.add_argument("text", nargs="?", default=os.path.expanduser(
    "~/.cache/qtoolchain-models/corpus/kjv_heldout_tail2400.txt"))
parser.add_argument("--tokens", type=int, default=128)
parser.add_argument("--qinspect", default=None, help="qinspect binary (default: the release build)")
args = parser.parse_args()

torch.manual_seed(0)
tokenizer = AutoTokenizer.from_pretrained(args.base)
with open(args.text, encoding="utf-8") as f:
    raw = " ".join(f.read().split())  # one line: one document, no separators inserted
ids = tokenizer(raw[: 8 * args.tokens], add_special_tokens=False)["input_ids"][: args.tokens]
snippet = tokenizer.decode(ids)
# Retokenize the decoded snippet so that both engines read exactly these ids.
ids = tokenizer(snippet, add_special_tokens=False)["input_ids"]
input_ids = torch.tensor([ids])


def nll(logits):
    logp = torch.log_softmax(logits[0, :-1].double(), dim=-1)
    return -logp[torch.arange(len(ids) - 1), torch.tensor(ids[1:])].mean().item()


base = AutoModelForCausalLM.from_pretrained(args.base, dtype=torch.float32)
base.eval()
with torch.no_grad():
    base_logits = base(input_ids).logits
config = json.load(open(os.path.join(args.adapter, "adapter_config.json")))
peft_model = PeftModel.from_pretrained(base, args.adapter)
peft_model.eval()
adapter_keys = set(load_file(os.path.join(args.adapter, "adapter_model.safetensors")))
loaded = {k for k in peft_model.state_dict() if "lora_" in k}
print(f"PEFT {__import__('peft').__version__}, torch {torch.__version__}: {len(adapter_keys)} adapter tensors, "
      f"{len(loaded)} LoRA parameters in the model")
with torch.no_grad():
    peft_logits = peft_model(input_ids).logits
    merged_model = peft_model.merge_and_unload()
    merged_logits = merged_model(input_ids).logits
changed = (peft_logits - base_logits).abs().max().item()
print(f"max |logits(PEFT) - logits(base)| = {changed:.4g} (the adapter is applied: must be > 0)")
print(f"max |logits(PEFT) - logits(PEFT merge_and_unload)| = {(peft_logits - merged_logits).abs().max().item():.3g}")
peft_nll = nll(peft_logits)
print(f"PEFT: {len(ids)} tokens, mean NLL {peft_nll:.6f}, perplexity {math.exp(peft_nll):.4f}; "
      f"base alone {math.exp(nll(base_logits)):.4f}")

# Our merge, in numpy, into a copy of the base folder.
weights = load_file(os.path.join(args.base, "model.safetensors"))
adapter = load_file(os.path.join(args.adapter, "adapter_model.safetensors"))
scale = config["lora_alpha"] / (math.sqrt(config["r"]) if config.get("use_rslora") else config["r"])
merged_weights = dict(weights)
for key, a in adapter.items():
    if ".lora_A." not in key:
        continue
    b = adapter[key.replace(".lora_A.", ".lora_B.")]
    name = key.split("base_model.model.", 1)[1].replace(".lora_A.weight", ".weight")
    w = weights[name]
    merged_weights[name] = (w.astype(np.float64) + scale * (b.astype(np.float64) @ a.astype(np.float64))).astype(np.float32)
peft_state = merged_model.state_dict()
worst = max(
    np.abs(merged_weights[n] - peft_state[n].numpy()).max() / max(np.abs(peft_state[n].numpy()).max(), 1e-30)
    for n in merged_weights if n in peft_state and n != "lm_head.weight")
print(f"max relative |W(numpy merge) - W(PEFT merge)| = {worst:.3g}")

work = tempfile.mkdtemp(prefix="check-lora-peft-")
try:
    folder = os.path.join(work, "merged")
    os.makedirs(folder)
    for name in os.listdir(args.base):
        if name.endswith((".json", ".txt", ".model")):
            shutil.copy(os.path.join(args.base, name), folder)
    save_file({k: v.astype(np.float32) for k, v in merged_weights.items()},
              os.path.join(folder, "model.safetensors"), metadata={"format": "pt"})
    text_path = os.path.join(work, "snippet.txt")
    with open(text_path, "w", encoding="utf-8") as f:
        f.write(snippet)
    qinspect = args.qinspect or os.path.join(
        subprocess.check_output(["swift", "build", "-c", "release", "--show-bin-path"], text=True).strip(), "qinspect")
    run = subprocess.run(
        [qinspect, folder, "--perplexity", text_path, "--context", str(len(ids)), "--format", "json"],
        capture_output=True, text=True)
    if run.returncode != 0:
        sys.exit(f"qinspect failed: {run.stderr}")
    report = json.loads(run.stdout)
    found = (report[0] if isinstance(report, list) else report)["perplexity"]
    ours, scored = found["perplexity"], found["scored_tokens"]
    print(f"engine (merged weights, qinspect --perplexity): perplexity {ours:.4f}, scored tokens {scored}")
    relative = abs(ours - math.exp(peft_nll)) / math.exp(peft_nll)
    print(f"relative perplexity difference engine vs PEFT: {relative:.2e}")
    ok = changed > 0 and relative < 1e-3 and len(loaded) == len(adapter_keys) and scored == len(ids) - 1
    print("OK" if ok else "MISMATCH")
    sys.exit(0 if ok else 1)
finally:
    shutil.rmtree(work, ignore_errors=True)
