#!/usr/bin/env bash
# Weight-space error of qconvert's packs on SmolLM2-135M F16 against mlx.core.quantize on the
# same grid, and bits per weight from --dry-run, qinspect and the real file.
#
# For every method (rtn affine, clip, hqq; bilevel at 2 and 4 bits) at 2, 3 and 4 bits and group
# sizes 32, 64 and 128, converts the model, dequantizes it back with `--to f32`, and computes in
# numpy the relative Frobenius error over all quantized tensors (sqrt(sum |W - Q(W)|^2 / sum
# |W|^2)), then the same with mlx.core.quantize/dequantize (affine, same bits and group; for
# bilevel, MLX affine at its first-level group, for information). RTN must equal MLX (within F16
# rounding of the dequantized values); clip and hqq must be at most MLX's error.
# This copy of SmolLM2 was dequantized from a 4-bit g32 file, so 4-bit g32 is nearly lossless
# for every method: the telling rows are 2 and 3 bits and the other group sizes.
#
# Usage: Tests/RealModels/check-qconvert.sh [MODEL_FOLDER]   (METHODS, BITS, GROUP_SIZES override the grid)
# Needs: a release build, python3 with numpy, safetensors and mlx (pip install "mlx[cpu]").
set -euo pipefail
cd "$(dirname "$0")/../.."
MODELS=${MODELS_DIR:-$HOME/.cache/qtoolchain-models}
MODEL=${1:-$MODELS/smollm2-135m-instruct-hf}
QC=.build/release/qconvert
QI=.build/release/qinspect
[ -x "$QC" ] || swift build -c release --product qconvert >&2
[ -x "$QI" ] || swift build -c release --product qinspect >&2
PY=${PYTHON:-python3}
METHODS=${METHODS:-"rtn clip hqq bilevel"}
BITS=${BITS:-"2 3 4"}
GROUP_SIZES=${GROUP_SIZES:-"32 64 128"}
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

cat >"$WORK/error.py" <<'PYEOF'
import json, struct, sys
import numpy as np
from safetensors.numpy import load_file
import mlx.core as mx

model, restored, pack, bits, group, method, cache = sys.argv[1:8]
bits, group = int(bits), int(group)
with open(pack, "rb") as f:
    n = struct.unpack("<Q", f.read(8))[0]
    meta = json.loads(f.read(n))["__metadata__"]
names = sorted(k[len("qpack.tensor."):] for k in meta if k.startswith("qpack.tensor."))
orig = load_file(model)
ours = load_file(restored)
try:
    mlx_cache = json.load(open(cache))
except FileNotFoundError:
    mlx_cache = {}
err = norm = mlx_err = 0.0
for name in names:
    w = orig[name].astype(np.float32)
    d = json.loads(meta["qpack.tensor." + name])
    err += float(np.sum((ours[name].astype(np.float64) - w) ** 2))
    norm += float(np.sum(w.astype(np.float64) ** 2))
    # MLX takes groups of 32, 64 and 128 only: bilevel's w2g16 is compared with MLX at 32.
    mgroup = max(d["group_size"], 32)
    key = f"{name}|{d['bits']}|{mgroup}"
    if key not in mlx_cache:
        # In the checkpoint's own dtype, so MLX's scales and biases are F16 like ours.
        mw = mx.array(orig[name].reshape(w.shape[0], -1))
        q, s, b = mx.quantize(mw, group_size=mgroup, bits=d["bits"])
        back = np.array(mx.dequantize(q, s, b, group_size=mgroup, bits=d["bits"]).astype(mx.float32)).astype(np.float64)
        mlx_cache[key] = float(np.sum((back - w.reshape(back.shape)) ** 2))
    mlx_err += mlx_cache[key]
json.dump(mlx_cache, open(cache, "w"))
print(f"{np.sqrt(err / norm):.6f} {np.sqrt(mlx_err / norm):.6f} {len(names)}")
PYEOF

cat >"$WORK/bpw.py" <<'PYEOF'
import json, os, struct, sys
folder, inspect_json, dry = sys.argv[1:4]
size = header = 0
for name in sorted(os.listdir(folder)):
    if name.endswith(".safetensors"):
        path = os.path.join(folder, name)
        size += os.path.getsize(path)
        with open(path, "rb") as f:
            header += 8 + struct.unpack("<Q", f.read(8))[0]
report = json.load(open(inspect_json))
report = report[0] if isinstance(report, list) else report
params = report["totals"]["parameters"]
real = 8 * (size - header) / params
dry_text = open(dry).read().strip().splitlines()[-1]
dry_bpw = float(dry_text.split(" bits per weight")[0].split()[-1])
dry_size = int(dry_text.split("output file ")[1].split()[0])
print(f"{dry_bpw:.4f} {report['totals']['bits_per_weight']:.4f} {real:.4f} {'yes' if dry_size == size else 'NO'}")
PYEOF

echo "model: $MODEL"
printf "%-8s %4s %5s %10s %10s %8s %6s | %8s %8s %8s %9s\n" method bits group "ours relF" "mlx relF" "ours/mlx" ok "bpw dry" "qinspect" "file" "size=dry"
for METHOD in $METHODS; do
  for B in $BITS; do
    for G in $GROUP_SIZES; do
      if [ "$METHOD" = bilevel ]; then
        # SPEED-Q's fixed grids: w2g16g16 and w4g32g128.
        case $B in 2) [ "$G" = "${GROUP_SIZES%% *}" ] || continue; G=16 ;; 4) [ "$G" = "${GROUP_SIZES%% *}" ] || continue; G=32 ;; *) continue ;; esac
      fi
      OUT="$WORK/$METHOD-$B-$G"
      "$QC" "$MODEL" -o "$OUT" --bits "$B" --group-size "$G" --method "$METHOD" --dry-run >"$WORK/dry.txt"
      "$QC" "$MODEL" -o "$OUT" --bits "$B" --group-size "$G" --method "$METHOD" --quiet
      "$QC" "$OUT" -o "$OUT-f32" --to f32 --quiet
      "$QI" --format json "$OUT" >"$WORK/inspect.json"
      read -r OURS MLX COUNT < <("$PY" "$WORK/error.py" "$MODEL/model.safetensors" "$OUT-f32/model.safetensors" \
        "$OUT/model.safetensors" "$B" "$G" "$METHOD" "$WORK/mlx-cache.json")
      read -r DRY INSPECT FILE SIZEOK < <("$PY" "$WORK/bpw.py" "$OUT" "$WORK/inspect.json" "$WORK/dry.txt")
      OK=$("$PY" -c "
o, m = $OURS, $MLX
method = '$METHOD'
if method == 'rtn': print('yes' if abs(o - m) <= 1e-3 * m else 'NO')
elif method == 'bilevel': print('-')
else: print('yes' if o <= m else 'NO')")
      RATIO=$("$PY" -c "print(f'{$OURS / $MLX:.4f}')")
      printf "%-8s %4s %5s %10s %10s %8s %6s | %8s %8s %8s %9s\n" "$METHOD" "$B" "$G" "$OURS" "$MLX" "$RATIO" "$OK" "$DRY" "$INSPECT" "$FILE" "$SIZEOK"
      rm -rf "$OUT" "$OUT-f32"
    done
  done
done
echo "ok: rtn equals MLX (to 1e-3 relative: MLX dequantizes in F16, we in F32); clip and hqq at most MLX's error."
echo "bilevel (4-bit second-level scales, SPEED-Q's symmetric g32 embeddings) is shown beside MLX affine at its first-level group (32 for w2g16: MLX has no group 16), for information."
