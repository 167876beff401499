#!/usr/bin/env bash
# Checks MLX-quantized input to qconvert on SmolLM2-135M (from ../shared/models/fetch.sh): the
# model is written in MLX's 4-bit g64 layout (`qconvert --layout mlx`, which matches
# `mlx.core.quantize`), read back with `qconvert --to f16`, and every tensor compared with
# `mlx.core.dequantize` of the stored codes, scales and biases: all present, none of the
# companions left, values bit-identical, and config.json without a quantization block.
#
# Needs: pip install "mlx[cpu]" numpy
# Usage: Tests/RealModels/check-mlx-input.sh [MODEL]   (MODEL defaults to the HF SmolLM2 folder;
#        QCONVERT picks the binary, default .build/release/qconvert, built if missing)
set -euo pipefail
cd "$(dirname "$0")/../.."
MODELS=${MODELS_DIR:-$HOME/.cache/qtoolchain-models}
MODEL=${1:-$MODELS/smollm2-135m-instruct-hf}
BIN=${QCONVERT:-.build/release/qconvert}
[ -x "$BIN" ] || swift build -c release --product qconvert >&2
PY=${PYTHON:-python3}
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

"$BIN" "$MODEL" -o "$WORK/mlx" --layout mlx --bits 4 --group-size 64 --quiet
"$BIN" "$WORK/mlx" -o "$WORK/back" --to f16 --quiet
"$PY" - "$WORK/mlx" "$WORK/back" <<'PYEOF'
import json, os, sys
import mlx.core as mx
import numpy as np
mlx_dir, back_dir = sys.argv[1:]
stored = mx.load(os.path.join(mlx_dir, "model.safetensors"))
back = mx.load(os.path.join(back_dir, "model.safetensors"))
q = json.load(open(os.path.join(mlx_dir, "config.json")))["quantization"]
expected = {}
for name, value in stored.items():
    if name.endswith((".scales", ".biases")):
        continue
    module = name[: -len(".weight")] if name.endswith(".weight") else None
    if module and module + ".scales" in stored:
        s = q.get(module, q)
        value = mx.dequantize(value, stored[module + ".scales"], stored[module + ".biases"],
                              group_size=s["group_size"], bits=s["bits"])
    expected[name] = value.astype(mx.float16)
bad = [n for n in expected if n not in back or back[n].shape != expected[n].shape
       or not np.array_equal(np.array(back[n].view(mx.uint16)), np.array(expected[n].view(mx.uint16)))]
extra = sorted(set(back) - set(expected))
config = json.load(open(os.path.join(back_dir, "config.json"))) if os.path.exists(os.path.join(back_dir, "config.json")) else {}
packed = sum(1 for n in stored if n.endswith(".scales"))
print(f"{len(stored)} stored tensors ({packed} quantized linears), {len(back)} read back, "
      f"{len(expected) - len(bad)} of {len(expected)} bit-identical to mx.dequantize; "
      f"config quantization: {config.get('quantization')}, quantization_config: {config.get('quantization_config')}")
for n in bad + extra:
    print("  MISMATCH", n)
sys.exit(1 if bad or extra or "quantization" in config or "quantization_config" in config else 0)
PYEOF
