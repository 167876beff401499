#!/usr/bin/env bash
# A 2-bit model at 3 bits per weight for the whole file, from an FP16/BF16 decoder checkpoint:
# GPTQ on SPEED-Q's bilevel w2g16g16 grid (2.625 bpw) for every decoder linear, then SPEED-Q's
# stage-3 training (distillation from the FP model) of those linears from GPTQ's codes, and of the
# tied embedding and head on the bilevel w4g32g128 grid (4.26 bpw), both looked up and multiplied
# on their grids while they train.
#
# Calibration and training read CORPUS_DIR/wiki_vital_en.train.txt and nothing else. Progress
# (Gram matrices, training steps with their rate and ETA) goes to stderr. Training state is
# saved to OUT.qat every 50 steps: rerunning the same command after an interruption resumes.
# At the end the script prints the pack's whole-file bits per weight, wall time and peak RSS.
#
# Usage: Tests/RealModels/two-bit-recipe.sh MODEL OUT CORPUS_DIR
#   BITS     2 (default) or 4: the linears' bilevel grid, w2g16g16 or w4g32g128 (4.26 bpw)
#   STEPS    optimizer steps (default 400), one window of CONTEXT tokens each
#   CONTEXT  tokens per training window (default 256)
#   LR       peak learning rate of the cosine schedule (default 1e-4)
#   INIT     where training starts: gptq (default) or clip (the clip search, SPEED-Q's own)
#   EMBEDDING  the embedding's rule spec (default bilevel4: trained on its grid; e.g. 4g64:sym
#            rounds it once and keeps it frozen)
#   EVAL_TEXT  if set, the pack is then judged by an independent evaluator: `qconvert --to f16`
#            and ../shared/models/tools/np_llm.py's perplexity on the first 8 windows of 512
#            tokens of this file (NP_LLM points at np_llm.py), beside our own `qinspect --perplexity`
#   BIN      folder of the built tools (default .build/release, built if missing)
set -euo pipefail
[ $# -eq 3 ] || { echo "usage: $0 MODEL OUT CORPUS_DIR" >&2; exit 64; }
MODEL=$1 OUT=$2 CORPUS=$3/wiki_vital_en.train.txt
[ -f "$CORPUS" ] || { echo "$0: $CORPUS: no such file" >&2; exit 66; }
cd "$(dirname "$0")/../.." && ROOT=$PWD && cd - >/dev/null
BIN=${BIN:-$ROOT/.build/release}
[ -x "$BIN/qconvert" ] || (cd "$ROOT" && swift build -c release >&2)
BITS=${BITS:-2} STEPS=${STEPS:-400} CONTEXT=${CONTEXT:-256} LR=${LR:-1e-4} INIT=${INIT:-gptq} EMBEDDING=${EMBEDDING:-bilevel4}

TIME=$(mktemp)
trap 'rm -f "$TIME"' EXIT
/usr/bin/time -f '%e %M' -o "$TIME" "$BIN/qconvert" "$MODEL" -o "$OUT" --force --method speedq --bits "$BITS" \
  --rule "(embed_tokens|lm_head)\.weight\$=$EMBEDDING" \
  --calib "$CORPUS" --calib-windows "$STEPS" --calib-context "$CONTEXT" \
  --qat-steps "$STEPS" --qat-lr "$LR" --qat-init "$INIT" --qat-checkpoint "$OUT.qat" --progress "${PROGRESS:-auto}" >/dev/null
read -r wall rss <"$TIME"
bpw=$("$BIN/qinspect" "$OUT" --format json | python3 -c 'import json,sys; print("%.3f" % json.load(sys.stdin)[0]["totals"]["bits_per_weight"])')
echo "two-bit recipe: $OUT: $bpw bits per weight, linears on $BITS bits, $STEPS steps of $CONTEXT tokens, wall $(printf '%.0f' "$wall") s, peak RSS $((rss / 1024)) MB"
rm -f "$OUT.qat"

if [ -n "${EVAL_TEXT:-}" ]; then
  NP_LLM=${NP_LLM:-$ROOT/../shared/models/tools/np_llm.py}
  echo "ours: $("$BIN/qinspect" "$OUT" --perplexity "$EVAL_TEXT" --windows 8 --context 512 2>&1 | tail -1)"
  F16=$(mktemp -d)
  trap 'rm -f "$TIME"; rm -rf "$F16"' EXIT
  "$BIN/qconvert" "$OUT" --to f16 -o "$F16/model" --force --quiet
  echo "numpy reference on --to f16: $(python3 "$NP_LLM" "$F16/model" --ppl "$EVAL_TEXT" --ctx 512 --windows 8 2>&1 | tail -1)"
fi
