#!/usr/bin/env bash
# qconvert --imatrix against llama-quantize --imatrix on SmolLM2-135M-Instruct, one run side by side:
# 1. an F16 GGUF from our export; llama-imatrix on CALIB_CHUNKS chunks of 512 tokens of the
#    training split;
# 2. Q4_0 (or TYPE) by llama-quantize with that matrix, and by qconvert with the same file;
#    the tensors and blocks identical in both files are counted (gguf package);
#    then Q4_0 by qconvert with the matrix it measures itself on the same text (--calib);
# 3. llama-perplexity on the standard windows (the first 8 of 512 tokens of wiki test) for the
#    F16 file, both weighted files and the unweighted Q4_0.
#
# Needs llama.cpp's llama-imatrix, llama-quantize and llama-perplexity (LLAMA_CPP_BIN) and the
# gguf package. Usage: LLAMA_CPP_BIN=llama.cpp/build/bin Tests/RealModels/check-gguf-imatrix.sh
#   On a CPU that reports AMX, a llama.cpp built with GGML_NATIVE=ON can die of SIGILL in
#   libggml-cpu; build it with -DGGML_NATIVE=OFF -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON
#   -DGGML_AVX512=ON (and GGML_AVX512_VBMI/_VNNI/_BF16 as the CPU has them), the GGML_AMX_* off.
#   env: MODELS_DIR, TYPE (q4_0 or q5_0), CALIB_CHUNKS (32), OUT (a temporary folder), GPTQ=1 (adds
#        qconvert's GPTQ with act-order on the same text, twice: its block grids weighted by the
#        input energies of its own calibration, and by llama-imatrix's matrix),
#        QCONVERT (.build/release/qconvert)
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
MODELS=${MODELS_DIR:-$HOME/.cache/qtoolchain-models}
MODEL=$MODELS/smollm2-135m-instruct-hf
TRAIN=$MODELS/corpus/wiki_vital_en.train.txt
TEST=$MODELS/corpus/wiki_vital_en.test.txt
BIN=${LLAMA_CPP_BIN:?set LLAMA_CPP_BIN to llama.cpp\'s build/bin}
TYPE=${TYPE:-q4_0}
UPPER=$(echo "$TYPE" | tr a-z A-Z)
OUT=${OUT:-$(mktemp -d)}
mkdir -p "$OUT"
cd "$ROOT"
QCONVERT=${QCONVERT:-.build/release/qconvert}
[ -x "$QCONVERT" ] || swift build -c release --product qconvert >&2
timed() { /usr/bin/time -f "  %e s wall, %M KB peak" "$@"; }

echo "== F16 GGUF (ours) and llama-imatrix on ${CALIB_CHUNKS:-32} chunks of the training split"
[ -f "$OUT/f16.gguf" ] || "$QCONVERT" "$MODEL" -o "$OUT/f16.gguf" --layout gguf --rule '.*=f16' --quiet
[ -f "$OUT/imatrix.gguf" ] || timed "$BIN/llama-imatrix" -m "$OUT/f16.gguf" -f "$TRAIN" -c 512 \
  --chunks "${CALIB_CHUNKS:-32}" -t 2 -o "$OUT/imatrix.gguf" >"$OUT/imatrix.log" 2>&1

echo "== $UPPER with the matrix: llama-quantize, then qconvert"
timed "$BIN/llama-quantize" --imatrix "$OUT/imatrix.gguf" "$OUT/f16.gguf" "$OUT/ref.gguf" "$UPPER" 2 >"$OUT/quantize.log" 2>&1
timed "$QCONVERT" "$MODEL" -o "$OUT/ours.gguf" --layout gguf --gguf-type "$TYPE" --imatrix "$OUT/imatrix.gguf" --quiet --force
[ -f "$OUT/plain.gguf" ] || "$QCONVERT" "$MODEL" -o "$OUT/plain.gguf" --layout gguf --gguf-type "$TYPE" --quiet

python3 - "$OUT/ref.gguf" "$OUT/ours.gguf" "$OUT/plain.gguf" <<'PY'
import sys
import numpy as np
import gguf
ref, ours, plain = (gguf.GGUFReader(p) for p in sys.argv[1:4])
tensors = {t.name: t for t in ours.tensors}
plain_tensors = {t.name: t for t in plain.tensors}
same_tensors = weighted = 0
same_blocks = blocks = 0
other_type = []
for t in ref.tensors:
    o = tensors[t.name]
    a, b = np.asarray(t.data).view(np.uint8), np.asarray(o.data).view(np.uint8)
    if t.tensor_type != o.tensor_type:
        other_type.append(f"{t.name} {t.tensor_type.name} (ours {o.tensor_type.name})")
        continue
    if a.shape == b.shape and np.array_equal(a, b):
        same_tensors += 1
    if not np.array_equal(np.asarray(plain_tensors[t.name].data).view(np.uint8), b):
        weighted += 1
        size = gguf.GGML_QUANT_SIZES[t.tensor_type][1]
        x, y = a.reshape(-1, size), b.reshape(-1, size)
        blocks += len(x)
        same_blocks += int((x == y).all(axis=1).sum())
print(f"  tensors identical to llama-quantize's: {same_tensors}/{len(ref.tensors)}; "
      f"weighted by the matrix (same type in both): {weighted}, their blocks identical: {same_blocks}/{blocks}")
if other_type:
    print(f"  stored in another type by llama-quantize ({len(other_type)}): " + ", ".join(other_type))
PY

# The matrix measured by qconvert itself on the same windows (--calib), then the same rounding.
timed "$QCONVERT" "$MODEL" -o "$OUT/measured.gguf" --layout gguf --gguf-type "$TYPE" --calib "$TRAIN" \
  --calib-windows "${CALIB_CHUNKS:-32}" --quiet --force
names="f16 plain ref ours measured"
if [ -n "${GPTQ:-}" ]; then
  # GPTQ with act-order on the same blocks, calibrated on as many windows of the same text; the
  # block grids weighted by its own calibration, then by llama-imatrix's matrix.
  echo "== $UPPER by GPTQ with act-order: grids weighted by its calibration, then by the matrix"
  [ -f "$OUT/gptq.gguf" ] || timed "$QCONVERT" "$MODEL" -o "$OUT/gptq.gguf" --layout gguf --gguf-type "$TYPE" \
    --method gptq --act-order --calib "$TRAIN" --calib-windows "${CALIB_CHUNKS:-32}" --quiet
  [ -f "$OUT/gptq-imatrix.gguf" ] || timed "$QCONVERT" "$MODEL" -o "$OUT/gptq-imatrix.gguf" --layout gguf \
    --gguf-type "$TYPE" --method gptq --act-order --calib "$TRAIN" --calib-windows "${CALIB_CHUNKS:-32}" \
    --imatrix "$OUT/imatrix.gguf" --quiet
  names="$names gptq gptq-imatrix"
fi
echo "== llama-perplexity, the first 8 windows of 512 tokens of wiki test"
for name in $names; do
  ppl=$("$BIN/llama-perplexity" -m "$OUT/$name.gguf" -f "$TEST" -c 512 --chunks 8 -t 2 2>&1 \
    | sed -n 's/.*Final estimate: PPL = \([0-9.]*\).*/\1/p')
  size=$(stat -c %s "$OUT/$name.gguf")
  printf "  %-12s %10s   %d bytes\n" "$name" "$ppl" "$size"
done
echo "(f16: our F16 export; plain: qconvert $TYPE without a matrix; ref: llama-quantize --imatrix; ours: qconvert --imatrix;"
echo " measured: qconvert --calib, its own matrix from the same text; gptq: qconvert --method gptq --act-order,"
echo " its grids weighted by its own calibration; gptq-imatrix: the same, its grids weighted by the matrix)"
echo "outputs in $OUT"
