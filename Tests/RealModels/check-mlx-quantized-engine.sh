#!/usr/bin/env bash
# Checks that the engine runs MLX-quantized folders: SmolLM2-135M converted by mlx_lm.convert
# (BITS-bit, group GROUP), `qinspect --perplexity` on the folder against mlx_lm (CPU) scoring the
# same windows of the same token ids (every target but each window's first, windows disjoint).
# Needs: pip install "mlx[cpu]" mlx-lm
# Usage: Tests/RealModels/check-mlx-quantized-engine.sh [BITS] [GROUP] [WINDOWS]   (4 64 4)
#   MLX_FOLDER=DIR scores that MLX folder (one of qconvert's exports, say) instead of converting;
#   TEXT=FILE another text than wiki_vital_en.test.txt.
set -euo pipefail
cd "$(dirname "$0")/../.."
MODELS=${MODELS_DIR:-$HOME/.cache/qtoolchain-models}
HF=$MODELS/smollm2-135m-instruct-hf
TEXT=${TEXT:-$MODELS/corpus/wiki_vital_en.test.txt}
BITS=${1:-4}
GROUP=${2:-64}
WINDOWS=${3:-4}
CONTEXT=512
python3 -c "import mlx_lm" 2>/dev/null || { echo "mlx_lm is not installed: pip install 'mlx[cpu]' mlx-lm" >&2; exit 2; }
[ -x .build/release/qinspect ] || swift build -c release --product qinspect >&2
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

FOLDER=${MLX_FOLDER:-$WORK/mlx}
[ -n "${MLX_FOLDER:-}" ] ||
  python3 -c "from mlx_lm import convert; convert('$HF', '$WORK/mlx', quantize=True, q_bits=$BITS, q_group_size=$GROUP)" >/dev/null
ours=$(.build/release/qinspect "$FOLDER" --perplexity "$TEXT" --context $CONTEXT --windows "$WINDOWS" \
  --progress none --format json | python3 -c 'import json,sys; p=json.load(sys.stdin)[0]["perplexity"]; print(p["perplexity"], p["scored_tokens"])')
python3 - "$FOLDER" "$TEXT" $CONTEXT "$WINDOWS" $ours <<'PY'
import math, sys
import mlx.core as mx
import numpy as np
from mlx_lm import load
folder, text, context, windows, ours, our_count = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), float(sys.argv[5]), int(sys.argv[6])
mx.set_default_device(mx.cpu)
model, tokenizer = load(folder)
ids = tokenizer.encode(open(text).read(), add_special_tokens=False)
nll, count = 0.0, 0
for w in range(windows):
    chunk = ids[w * context:(w + 1) * context]
    logits = model(mx.array(chunk[:-1])[None])[0].astype(mx.float32)
    logp = logits - mx.logsumexp(logits, axis=-1, keepdims=True)
    picked = mx.take_along_axis(logp, mx.array(chunk[1:])[:, None], axis=-1)
    nll -= float(mx.sum(picked))
    count += len(chunk) - 1
theirs = math.exp(nll / count)
print(f"{windows} windows of {context}: ours {ours:.4f} ({our_count} tokens), mlx_lm {theirs:.4f} ({count} tokens), ratio {ours / theirs:.5f}")
sys.exit(0 if count == our_count and abs(ours / theirs - 1) < 0.01 else 1)
PY
