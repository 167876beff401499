#!/usr/bin/env bash
# Checks --method clip and hqq on MLX's grid on SmolLM2-135M (3-bit g64 by default): mlx_lm loads
# the folders, and for every quantized module mlx.core.dequantize of our tensors is compared with
# the source weight; the summed squared error is printed against round to nearest's (ours with
# --method rtn, which is mlx.core.quantize's bit for bit).
#
# Usage: Tests/RealModels/check-export-methods.sh [BITS] [GROUP]
#   MLX_PYTHON  python with mlx and mlx-lm (default python3); MODELS_DIR as the other checks.
set -euo pipefail
cd "$(dirname "$0")/../.."
MODELS=${MODELS_DIR:-$HOME/.cache/qtoolchain-models}
MODEL=$MODELS/smollm2-135m-instruct-hf
BITS=${1:-3}
GROUP=${2:-64}
BIN=${QCONVERT:-.build/release/qconvert}
[ -x "$BIN" ] || swift build -c release --product qconvert >&2
PY=${MLX_PYTHON:-python3}
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
for METHOD in rtn clip hqq; do
  start=$(date +%s.%N)
  "$BIN" "$MODEL" -o "$WORK/$METHOD" --layout mlx --method "$METHOD" --bits "$BITS" --group-size "$GROUP" --quiet
  echo "$METHOD: $(python3 -c "print(f'{$(date +%s.%N) - $start:.1f}')") s"
done
"$PY" - "$WORK" "$MODEL" "$BITS" "$GROUP" <<'PYEOF'
import sys
import mlx.core as mx
from mlx_lm import load
work, source_dir, bits, group = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
source = mx.load(source_dir + "/model.safetensors")
errors = {}
for method in ("rtn", "clip", "hqq"):
    load(f"{work}/{method}")  # mlx_lm builds the model from the folder
    weights = mx.load(f"{work}/{method}/model.safetensors")
    total = 0.0
    for name in weights:
        if not name.endswith(".scales"):
            continue
        module = name[: -len(".scales")]
        w = mx.dequantize(weights[module + ".weight"], weights[name], weights[module + ".biases"],
                          group_size=group, bits=bits).astype(mx.float32)
        total += mx.sum((w - source[module + ".weight"].astype(mx.float32)) ** 2).item()
    errors[method] = total
    print(f"  {method}: summed squared weight error after mlx.core.dequantize {total:.6g}")
for method in ("clip", "hqq"):
    print(f"  {method} / rtn: {errors[method] / errors['rtn']:.3f}")
assert errors["clip"] <= errors["rtn"], "the clip search read back worse than round to nearest"
PYEOF
