#!/usr/bin/env bash
# Runs the quantizers on one model of any family the engine knows and prints one row per pack:
# bits per weight of the whole file, perplexity by our evaluator (qinspect --perplexity, 8
# windows of 512 tokens of TEXT), and the convert time and peak memory. Rows: the model as it
# is, RTN 4-bit g64, GPTQ 4-bit g64, RTN on SPEED-Q's bilevel 2-bit grid, and a short SPEED-Q
# run on that grid. Calibration and training read TRAIN only.
#
# Usage: Tests/RealModels/check-family-methods.sh MODEL TEXT TRAIN [OUT]
#   env: BIN (.build/release), GPTQ_WINDOWS (16), SPEEDQ_WINDOWS (16), SPEEDQ_CONTEXT (256), SPEEDQ_STEPS (40), SPEEDQ_LR (1e-4)
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
MODEL=$1
TEXT=$2
TRAIN=$3
OUT=${4:-$(mktemp -d)}
mkdir -p "$OUT"
cd "$ROOT"
BIN=${BIN:-.build/release}  # a copy of the tools lets a rebuild go on beside a long run
[ -x "$BIN/qconvert" ] || swift build -c release >&2

row() {  # name, pack: bpw and perplexity of the pack, time and memory from $OUT/name.time
  local name=$1 pack=$2
  local bpw ppl seconds rss
  bpw=$("$BIN/qinspect" "$pack" --format json 2>/dev/null | python3 -c 'import json,sys; t=json.load(sys.stdin)[0]["totals"]; print("%.3f" % t["bits_per_weight"]) if "bits_per_weight" in t else print("16")')
  ppl=$("$BIN/qinspect" "$pack" --perplexity "$TEXT" --windows 8 --format json 2>/dev/null | python3 -c 'import json,sys; print("%.3f" % json.load(sys.stdin)[0]["perplexity"]["perplexity"])')
  if [ -f "$OUT/$name.time" ]; then
    seconds=$(grep "Elapsed (wall" "$OUT/$name.time" | awk '{print $NF}')
    rss=$(awk '/Maximum resident/ {printf "%.0f MB", $NF/1024}' "$OUT/$name.time")
  else
    seconds=""; rss=""
  fi
  printf "| %s | %s | %s | %s | %s |\n" "$name" "$bpw" "$ppl" "$seconds" "$rss"
}

convert() {  # name, then qconvert options
  local name=$1; shift
  [ -e "$OUT/$name" ] || /usr/bin/time -v -o "$OUT/$name.time" "$BIN/qconvert" "$MODEL" -o "$OUT/$name" --quiet "$@"
}

convert rtn-4g64 --bits 4 --group-size 64
convert gptq-4g64 --bits 4 --group-size 64 --method gptq --calib "$TRAIN" --calib-windows "${GPTQ_WINDOWS:-16}"
convert rtn-bilevel2 --method bilevel --bits 2
convert speedq-2 --method speedq --bits 2 --calib "$TRAIN" --calib-windows "${SPEEDQ_WINDOWS:-16}" \
  --calib-context "${SPEEDQ_CONTEXT:-256}" --qat-steps "${SPEEDQ_STEPS:-40}" --qat-lr "${SPEEDQ_LR:-1e-4}"

echo "model: $MODEL; perplexity: 8 windows of 512 tokens of $TEXT"
echo "| pack | bpw | perplexity | convert wall | convert peak RSS |"
echo "|---|---|---|---|---|"
row "as-is" "$MODEL"
for name in rtn-4g64 gptq-4g64 rtn-bilevel2 speedq-2; do row "$name" "$OUT/$name"; done
