#!/usr/bin/env bash
# SPEED-Q stage 3 on SmolLM2-135M: perplexity on the first 8 windows of 512 tokens of
# wiki_vital_en.test.txt for FP, RTN on the bilevel grid, clip initialisation and after QAT
# (calibration/training on the first N windows of 512 tokens of wiki_vital_en.train.txt).
# Needs the models of ../shared/models/fetch.sh (MODELS_DIR, default ~/.cache/qtoolchain-models).
# Usage: Tests/RealModels/check-speedq.sh [model-folder-name]
#   env: SPEEDQ_WINDOWS (32), SPEEDQ_MINUTES (15) or SPEEDQ_STEPS, SPEEDQ_LR (5e-5), SPEEDQ_GRID (w2g16g16)
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
MODELS="${MODELS_DIR:-$HOME/.cache/qtoolchain-models}"
NAME="${1:-smollm2-135m-instruct-hf}"
export SPEEDQ_MODEL="$MODELS/$NAME"
export SPEEDQ_TRAIN_TEXT="$MODELS/corpus/wiki_vital_en.train.txt"
export SPEEDQ_TEST_TEXT="$MODELS/corpus/wiki_vital_en.test.txt"
echo "== $NAME (reference points: FP16 12.17; llama.cpp IQ2_XS 19.5 at 4.92 bpw; mlx 2-bit g64 1.4e7)"
cd "$ROOT"
/usr/bin/time -v swift test -c release --filter SpeedQRealModelTests 2>&1 \
  | grep -E "speedq:|passed|failed|error|Maximum resident|Elapsed" || true
