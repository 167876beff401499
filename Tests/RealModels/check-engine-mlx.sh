#!/usr/bin/env bash
# Checks the decoder engine against mlx_lm (CPU) on SmolLM2-135M, and runs the toy VLM on an image.
#  1. F16 checkpoint: our logits vs mlx_lm's (computed in float32 and in the stored float16) on the
#     same token ids: max abs difference, relative to the largest logit, and top-1 agreement.
#  2. 4-bit, group 64: our native pack (qconvert) run from its codes vs mlx_lm on its own 4-bit
#     conversion (mlx_lm.convert), and vs mlx_lm on our '--layout mlx' export; plus whether our
#     export's codes, scales and biases equal mlx_lm's conversion.
#  3. The toy VLM (random projector: the text means nothing) generating from an image, timed.
# Needs mlx_lm (pip install "mlx[cpu]" mlx-lm, outside the repository) and the models of
# ../shared/models/fetch.sh (MODELS_DIR, default ~/.cache/qtoolchain-models).
# usage: Tests/RealModels/check-engine-mlx.sh [image]
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
MODELS="${MODELS_DIR:-$HOME/.cache/qtoolchain-models}"
MODEL="$MODELS/smollm2-135m-instruct-hf"
IMAGE="${1:-$MODELS/images/astronaut.png}"
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
cd "$ROOT"
python3 -c "import mlx_lm" 2>/dev/null || { echo "mlx_lm is not installed: pip install 'mlx[cpu]' mlx-lm" >&2; exit 2; }

# One release build with testing for both the test entry points and qconvert (a plain
# 'swift build -c release' would rebuild everything without testing, and back again).
swift test -c release --filter EngineMLX >/dev/null 2>&1
.build/release/qconvert "$MODEL" -o "$WORK/native-q4" --bits 4 --group-size 64 --quiet
.build/release/qconvert "$MODEL" -o "$WORK/ours-mlx-q4" --layout mlx --bits 4 --group-size 64 --quiet
python3 -c "from mlx_lm import convert; convert('$MODEL', '$WORK/mlx-q4', quantize=True, q_bits=4, q_group_size=64)" >/dev/null

# Token ids of a paragraph of the evaluation text, from the model's own tokenizer.
TOKENS=$(PYTHONPATH="$MODELS/py" python3 -c '
import sys
from tokenizers import Tokenizer
ids = Tokenizer.from_file(sys.argv[1] + "/tokenizer.json").encode(open(sys.argv[2]).read()[:4000]).ids[:256]
print(",".join(map(str, ids)))' "$MODEL" "$MODELS/corpus/wiki_vital_en.test.txt")

run_engine() {  # model-path output
  QENGINE_MLX_MODEL="$1" QENGINE_MLX_TOKENS="$TOKENS" QENGINE_MLX_OUT="$2" \
    swift test -c release --filter EngineMLX 2>&1 | grep -E "^engine:|error|failed" || true
}
echo "== our engine"
run_engine "$MODEL" "$WORK/ours-f16.bin"
run_engine "$WORK/native-q4" "$WORK/ours-native-q4.bin"

python3 - "$WORK" "$MODEL" "$TOKENS" <<'PY'
import sys, time
import numpy as np
import mlx.core as mx
from mlx.utils import tree_map
from mlx_lm import load

work, model_path, tokens = sys.argv[1], sys.argv[2], [int(t) for t in sys.argv[3].split(",")]
ids = mx.array([tokens])

def mlx_logits(path, float32=False):
    model, _ = load(path)
    if float32:
        model.update(tree_map(lambda p: p.astype(mx.float32) if p.dtype in (mx.float16, mx.bfloat16) else p, model.parameters()))
    start = time.time()
    out = model(ids)[0].astype(mx.float32)
    mx.eval(out)
    return np.array(out), time.time() - start

def ours(name):
    return np.fromfile(f"{work}/{name}.bin", np.float32).reshape(len(tokens), -1)

def compare(label, a, b):
    diff = np.abs(a - b).max()
    top = (a.argmax(-1) == b.argmax(-1)).mean()
    print(f"{label}: max abs diff {diff:.3e}, relative to max |logit| {diff / np.abs(b).max():.3e}, top-1 agreement {top * 100:.1f}% ({len(tokens)} positions)")

print(f"== mlx_lm on {len(tokens)} tokens")
f32, t1 = mlx_logits(model_path, float32=True)
f16, t2 = mlx_logits(model_path)
print(f"mlx_lm forward: float32 {t1:.2f} s, float16 {t2:.2f} s")
compare("F16 checkpoint, ours vs mlx_lm float32", ours("ours-f16"), f32)
compare("F16 checkpoint, ours vs mlx_lm float16", ours("ours-f16"), f16)
compare("F16 checkpoint, mlx_lm float16 vs mlx_lm float32 (mlx's own rounding)", f16, f32)
q_mlx, _ = mlx_logits(f"{work}/mlx-q4")
q_ours_export, _ = mlx_logits(f"{work}/ours-mlx-q4")
compare("4-bit g64, our native pack vs mlx_lm on its own conversion", ours("ours-native-q4"), q_mlx)
compare("4-bit g64, mlx_lm on our MLX export vs mlx_lm on its own conversion", q_ours_export, q_mlx)
compare("4-bit g64, our native pack vs mlx_lm on our MLX export", ours("ours-native-q4"), q_ours_export)

import glob
def weights(folder):
    out = {}
    for f in sorted(glob.glob(folder + "/*.safetensors")):
        out.update(mx.load(f))
    return out
a, b = weights(f"{work}/ours-mlx-q4"), weights(f"{work}/mlx-q4")
same = [k for k in b if k in a and a[k].shape == b[k].shape and a[k].dtype == b[k].dtype and bool(mx.array_equal(a[k], b[k]))]
print(f"our MLX export vs mlx_lm.convert: {len(same)} of {len(b)} tensors bit-identical; only in ours: {sorted(set(a) - set(b))[:5]}, only in mlx_lm's: {sorted(set(b) - set(a))[:5]}")
differ = [k for k in b if k in a and k not in same][:5]
for k in differ:
    print(f"  differs: {k} {a[k].dtype}{a[k].shape} vs {b[k].dtype}{b[k].shape}")
PY

echo "== toy VLM on $(basename "$IMAGE")"
QENGINE_MLX_VLM="$MODELS/toy-vlm-dinov2s-smollm2" QENGINE_MLX_IMAGE="$IMAGE" \
  swift test -c release --filter EngineMLX 2>&1 | grep -E "^toy VLM|error|failed" || true
