#!/usr/bin/env bash
# GPTQ into the runtime layouts against round to nearest on the same grid, on SmolLM2-135M (F16):
# MLX 3-bit g64 and GGUF q4_0, calibrated on the first 32 windows of 512 tokens of
# wiki_vital_en.train.txt; perplexity on the first 18,500 bytes of wiki_vital_en.test.txt
# (8 windows of 512 tokens) by `qinspect OUT --perplexity`, which reads MLX folders and GGUF files.
# The embedding (and GGUF's output head) keep round to nearest in both; GPTQ decides the linears.
#
# Usage: Tests/RealModels/check-export-gptq.sh [model-folder]
#   MODELS_DIR as the other checks; QCONVERT, QINSPECT: the binaries (default .build/release,
#   built when missing); ACT_ORDER=1 adds '--act-order'; CALIB_WINDOWS (32).
set -euo pipefail
cd "$(dirname "$0")/../.."
MODELS=${MODELS_DIR:-$HOME/.cache/qtoolchain-models}
MODEL=${1:-$MODELS/smollm2-135m-instruct-hf}
TRAIN=$MODELS/corpus/wiki_vital_en.train.txt
QCONVERT=${QCONVERT:-.build/release/qconvert}
QINSPECT=${QINSPECT:-.build/release/qinspect}
[ -x "$QCONVERT" ] && [ -x "$QINSPECT" ] || swift build -c release --product qconvert >&2
[ -x "$QINSPECT" ] || swift build -c release --product qinspect >&2
export OPENBLAS_NUM_THREADS=${OPENBLAS_NUM_THREADS:-1}
EXTRA=()
[ "${ACT_ORDER:-0}" = 1 ] && EXTRA+=(--act-order)
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
head -c 18500 "$MODELS/corpus/wiki_vital_en.test.txt" > "$WORK/test.txt"

# convert NAME OUTPUT ARGS...: runs qconvert, printing its wall time.
convert() {
  local name=$1 output=$2
  shift 2
  local start
  start=$(date +%s.%N)
  "$QCONVERT" "$MODEL" -o "$output" --quiet "$@"
  printf '  %-24s converted in %6.1f s' "$name" "$(echo "$(date +%s.%N) - $start" | bc)"
}

perplexity() {
  "$QINSPECT" "$1" --perplexity "$WORK/test.txt" --windows 8 --context 512 2>/dev/null \
    | sed -n 's/^perplexity \([0-9.e+]*\) .*/\1/p'
}

calib=(--method gptq --calib "$TRAIN" --calib-windows "${CALIB_WINDOWS:-32}" --calib-context 512 "${EXTRA[@]}")
echo "== $MODEL: perplexity on 8 windows of 512 tokens of the first 18,500 bytes of wiki_vital_en.test.txt"
for method in rtn gptq; do
  args=(--layout mlx --bits 3 --group-size 64)
  [ "$method" = gptq ] && args+=("${calib[@]}")
  convert "mlx 3-bit g64 $method" "$WORK/mlx-$method" "${args[@]}"
  echo ", perplexity $(perplexity "$WORK/mlx-$method")"
done
for method in rtn gptq; do
  args=(--layout gguf --gguf-type q4_0)
  [ "$method" = gptq ] && args+=("${calib[@]}")
  convert "gguf q4_0 $method" "$WORK/q4_0-$method.gguf" "${args[@]}"
  echo ", perplexity $(perplexity "$WORK/q4_0-$method.gguf")"
done
