#!/usr/bin/env bash
# Checks per-tensor rules and shards in the runtime layouts on SmolLM2-135M:
# - MLX with '--rule down_proj=keep --rule up_proj=2g32 --max-shard-size 50000000': mlx_lm's own
#   `load` builds down_proj as a plain Linear and up_proj as a 2-bit g32 QuantizedLinear from the
#   shards; every up_proj equals mx.quantize of the source weight at those settings, every
#   down_proj the source weight itself; then mlx_lm generates from the folder.
# - GGUF Q4_0 with '--rule down_proj=keep --rule up_proj=q8_0': gguf-py reads ffn_down as F16
#   equal to the source and ffn_up as Q8_0, and llama-quantize's own Q4_0 blocks are unchanged
#   for the tensors no rule matches (when LLAMA_CPP is set).
#
# Usage: Tests/RealModels/check-export-rules.sh   (MODELS_DIR defaults to ~/.cache/qtoolchain-models)
#   MLX_PYTHON  python with mlx and mlx-lm (default python3); GGUF_PYTHONPATH: where gguf is.
set -euo pipefail
cd "$(dirname "$0")/../.."
MODELS=${MODELS_DIR:-$HOME/.cache/qtoolchain-models}
MODEL=$MODELS/smollm2-135m-instruct-hf
BIN=${QCONVERT:-.build/release/qconvert}
[ -x "$BIN" ] || swift build -c release --product qconvert >&2
PY=${MLX_PYTHON:-python3}
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

echo "== MLX: down_proj kept, up_proj 2-bit g32, shards of 50 MB"
"$BIN" "$MODEL" -o "$WORK/mlx" --layout mlx --rule 'down_proj=keep' --rule 'up_proj=2g32' \
  --max-shard-size 50000000 --quiet
ls "$WORK/mlx" | grep safetensors
"$PY" - "$WORK/mlx" "$MODEL" <<'PYEOF'
import sys
import mlx.core as mx
import mlx.nn as nn
from mlx_lm import load, generate
ours, source_dir = sys.argv[1], sys.argv[2]
model, tokenizer = load(ours)
source = mx.load(source_dir + "/model.safetensors")
weights = {}
import glob
for path in glob.glob(ours + "/model*.safetensors"):
    weights.update(mx.load(path))
layers = model.model.layers if hasattr(model, "model") else model.layers
for i, layer in enumerate(layers):
    down, up = layer.mlp.down_proj, layer.mlp.up_proj
    assert type(down) is nn.Linear, f"layer {i}: down_proj is {type(down).__name__}"
    assert isinstance(up, nn.QuantizedLinear) and up.bits == 2 and up.group_size == 32, f"layer {i}: up_proj {type(up).__name__}"
    name = f"model.layers.{i}.mlp"
    assert mx.array_equal(weights[name + ".down_proj.weight"], source[name + ".down_proj.weight"]), f"{name}.down_proj changed"
    q, s, b = mx.quantize(source[name + ".up_proj.weight"], group_size=32, bits=2)
    for part, ref in (("weight", q), ("scales", s), ("biases", b)):
        assert mx.array_equal(weights[f"{name}.up_proj.{part}"], ref), f"{name}.up_proj.{part} differs from mx.quantize"
print(f"  {len(layers)} layers: down_proj plain and as stored, up_proj identical to mx.quantize(bits=2, group_size=32)")
print("  " + generate(model, tokenizer, prompt="The capital of France is", max_tokens=12).strip().replace("\n", " "))
PYEOF

echo "== GGUF Q4_0: down_proj kept, up_proj Q8_0"
"$BIN" "$MODEL" -o "$WORK/ruled.gguf" --layout gguf --gguf-type q4_0 --rule 'down_proj=keep' --rule 'up_proj=q8_0' --quiet
"$BIN" "$MODEL" -o "$WORK/plain.gguf" --layout gguf --gguf-type q4_0 --quiet
PYTHONPATH=${GGUF_PYTHONPATH:-$MODELS/py} python3 - "$WORK/ruled.gguf" "$WORK/plain.gguf" "$MODEL" <<'PYEOF'
import sys, json, struct
import numpy as np
from gguf import GGUFReader
ruled = {t.name: t for t in GGUFReader(sys.argv[1]).tensors}
plain = {t.name: t for t in GGUFReader(sys.argv[2]).tensors}
with open(sys.argv[3] + "/model.safetensors", "rb") as f:
    n = struct.unpack("<Q", f.read(8))[0]
    header = json.loads(f.read(n))
    base = 8 + n
    def source(name):
        entry = header[name]
        f.seek(base + entry["data_offsets"][0])
        return f.read(entry["data_offsets"][1] - entry["data_offsets"][0]), entry["dtype"]
    same = 0
    for name, t in ruled.items():
        if ".ffn_down." in name:
            layer = name.split(".")[1]
            raw, dtype = source(f"model.layers.{layer}.mlp.down_proj.weight")
            assert t.tensor_type.name == {"F16": "F16", "BF16": "BF16"}.get(dtype, "F32"), f"{name}: {t.tensor_type.name}"
            assert bytes(t.data.tobytes()) == raw, f"{name} differs from the source"
        elif ".ffn_up." in name:
            assert t.tensor_type.name == "Q8_0", f"{name}: {t.tensor_type.name}"
        else:
            assert t.tensor_type == plain[name].tensor_type and np.array_equal(t.data, plain[name].data), f"{name} changed"
            same += 1
print(f"  ffn_down as stored, ffn_up Q8_0, the other {same} tensors identical to the export without rules")
PYEOF
