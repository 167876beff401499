#!/bin/sh
# Moves the KJV LoRA of SmolLM2-135M-Instruct (1) onto the same model with --normalize, which must
# reproduce the adapter, and (2) onto Qwen2.5-Coder-0.5B-Instruct (vocabulary, width, depth, heads
# and KV heads all change), printing both reports. Not part of the test suite.
set -eu
MODELS=${MODELS:-$HOME/.cache/qtoolchain-models}
ADAPTER=${ADAPTER:-/work/shared/models/lora/smollm2-135m-instruct-kjv-lora-r8}
OUT=${OUT:-$(mktemp -d)}
swift build -c release --product lora-rebase >/dev/null
swift build -c release --product qdiff >/dev/null
BIN=$(swift build -c release --show-bin-path)/lora-rebase
QDIFF=$(swift build -c release --show-bin-path)/qdiff
SMOL=$MODELS/smollm2-135m-instruct-hf
QWEN=$MODELS/qwen2.5-coder-0.5b-instruct-hf

echo "== SmolLM2-135M-Instruct -> itself (--normalize)"
/usr/bin/time -f "time %es (user %Us), peak %MKB" "$BIN" "$SMOL" "$SMOL" "$ADAPTER" -o "$OUT/identity" --normalize
PYTHONPATH=$MODELS/py python3 - "$ADAPTER" "$OUT/identity" <<'PY'
import sys, numpy as np
from safetensors.numpy import load_file
a = load_file(sys.argv[1] + "/adapter_model.safetensors")
b = load_file(sys.argv[2] + "/adapter_model.safetensors")
assert sorted(a) == sorted(b), "key sets differ"
worst = 0.0
for k in a:
    if ".lora_A." in k:
        kb = k.replace(".lora_A.", ".lora_B.")
        d1 = a[kb].astype(np.float64) @ a[k]; d2 = b[kb].astype(np.float64) @ b[k]
        worst = max(worst, np.abs(d1 - d2).max() / np.abs(d1).max())
print(f"identity: {len(a)} tensors, max relative |dW| error {worst:.2e}")
sys.exit(0 if worst < 1e-4 else 1)
PY

echo "== SmolLM2-135M-Instruct -> Qwen2.5-Coder-0.5B-Instruct"
/usr/bin/time -f "time %es (user %Us), peak %MKB" "$BIN" "$SMOL" "$QWEN" "$ADAPTER" -o "$OUT/qwen" --plot "$OUT/qwen-cka.svg"
echo "== the same through 'qdiff --save-mapping' and 'lora-rebase --mapping' (must give the same adapter)"
"$QDIFF" "$SMOL" "$QWEN" --save-mapping "$OUT/map.json" >/dev/null || [ $? -eq 1 ]
"$BIN" "$SMOL" "$QWEN" "$ADAPTER" -o "$OUT/qwen-mapped" --mapping "$OUT/map.json" --format json >/dev/null
cmp "$OUT/qwen/adapter_model.safetensors" "$OUT/qwen-mapped/adapter_model.safetensors" && echo "mapping file: identical adapter"
python3 -c "import peft" 2>/dev/null && PYTHONPATH=$MODELS/py python3 - "$QWEN" "$OUT/qwen" <<'PY' || echo "(peft not installed: load check skipped)"
import sys, torch
from transformers import AutoModelForCausalLM
from peft import PeftModel
base = AutoModelForCausalLM.from_pretrained(sys.argv[1], torch_dtype=torch.float32)
model = PeftModel.from_pretrained(base, sys.argv[2])
print("PEFT loaded the moved adapter:", sum(p.numel() for n, p in model.named_parameters() if "lora_" in n), "LoRA parameters")
PY
echo "outputs in $OUT"
