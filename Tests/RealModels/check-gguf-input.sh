#!/usr/bin/env bash
# Checks GGUF input to qconvert on the quantized GGUF releases from ../shared/models/fetch.sh
# (SmolLM2-135M Q4_1 with one Q8_0 tensor; Qwen2.5-Coder-0.5B Q4_K_M with Q4_K, Q5_0, Q6_K, Q8_0):
# `qconvert GGUF -o OUT --to f32` and `--to f16` must carry every tensor of the file, with the
# GGUF's names and row-major shapes, and values bit-identical to `gguf.quants.dequantize`
# (rounded to nearest even for f16).
#
# Needs: pip install gguf numpy
# Usage: Tests/RealModels/check-gguf-input.sh   (MODELS_DIR defaults to ~/.cache/qtoolchain-models;
#        QCONVERT picks the binary, default .build/release/qconvert, built if missing)
set -euo pipefail
cd "$(dirname "$0")/../.."
MODELS=${MODELS_DIR:-$HOME/.cache/qtoolchain-models}
BIN=${QCONVERT:-.build/release/qconvert}
[ -x "$BIN" ] || swift build -c release --product qconvert >&2
PY=${PYTHON:-python3}
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

for GGUF in "$MODELS/smollm2-135m-instruct-gguf/SmolLM2-135M-Instruct.Q4_1.gguf" \
  "$MODELS/qwen2.5-coder-0.5b-instruct-gguf/qwen2.5-coder-0.5b-instruct-awq-q4_k_m.gguf"; do
  [ -f "$GGUF" ] || { echo "missing $GGUF (run fetch.sh)"; exit 1; }
  for DTYPE in f32 f16; do
    echo "== $(basename "$GGUF") --to $DTYPE"
    "$BIN" "$GGUF" -o "$WORK/out-$DTYPE" --to "$DTYPE" --quiet --force
    "$PY" - "$GGUF" "$WORK/out-$DTYPE/model.safetensors" "$DTYPE" <<'PYEOF'
import collections, json, struct, sys
import numpy as np
from gguf import GGUFReader, GGMLQuantizationType as QT, quants

gguf_path, st_path, dtype = sys.argv[1:]
with open(st_path, "rb") as f:
    n = struct.unpack("<Q", f.read(8))[0]
    header = json.loads(f.read(n))
    base = 8 + n
data = np.memmap(st_path, dtype=np.uint8, mode="r")
header.pop("__metadata__", None)
np_dtype = {"F32": np.float32, "F16": np.float16}

reader = GGUFReader(gguf_path)
types = collections.Counter(t.tensor_type.name for t in reader.tensors)
mismatched = []
for t in reader.tensors:
    shape = [int(s) for s in reversed(t.shape)]
    if t.tensor_type == QT.F32:
        ref = np.array(t.data, dtype=np.float32)
    elif t.tensor_type == QT.F16:
        ref = np.array(t.data, dtype=np.float16).astype(np.float32)
    else:
        ref = quants.dequantize(t.data, t.tensor_type).astype(np.float32)
    ref = ref.reshape(shape).astype(np.float16 if dtype == "f16" else np.float32)
    entry = header.get(t.name)
    if entry is None:
        mismatched.append(f"{t.name}: missing")
        continue
    start, end = entry["data_offsets"]
    ours = np.frombuffer(data[base + start:base + end], dtype=np_dtype[entry["dtype"]])
    if entry["shape"] != shape or ours.dtype != ref.dtype:
        mismatched.append(f"{t.name}: {entry['dtype']} {entry['shape']}, expected {ref.dtype} {shape}")
    elif not np.array_equal(ours.view(np.uint8), ref.reshape(-1).view(np.uint8)):
        diff = np.abs(ours.astype(np.float32) - ref.reshape(-1).astype(np.float32))
        mismatched.append(f"{t.name} ({t.tensor_type.name}): {int((diff != 0).sum())} values differ, max {diff.max()}")
extra = set(header) - {t.name for t in reader.tensors}
print(f"{len(reader.tensors)} tensors in the GGUF {dict(types)}, {len(header)} written, "
      f"{len(reader.tensors) - len(mismatched)} bit-identical to gguf-py")
for line in mismatched + [f"{name}: not in the GGUF" for name in sorted(extra)]:
    print("  MISMATCH", line)
sys.exit(1 if mismatched or extra else 0)
PYEOF
  done
done
