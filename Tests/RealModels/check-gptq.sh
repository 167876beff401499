#!/usr/bin/env bash
# Sequential GPTQ against round-to-nearest on SmolLM2-135M (F16): calibration on the first 32
# windows of 512 tokens of wiki_vital_en.train.txt, perplexity on the first 8 windows of
# wiki_vital_en.test.txt, at 3-bit and 2-bit affine g64 (MLX's grid), with time and peak RSS.
# Needs the models of ../shared/models/fetch.sh (MODELS_DIR, default ~/.cache/qtoolchain-models).
# Environment: QCALIB_BITS (3,2), QCALIB_GROUP (64), QCALIB_WINDOWS (32), QCALIB_METHODS
# (rtn,gptq; also clip), QCALIB_TRUE_SEQUENTIAL (1), QCALIB_ACT_ORDER (0).
# Usage: Tests/RealModels/check-gptq.sh [model-folder-name]
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
MODELS="${MODELS_DIR:-$HOME/.cache/qtoolchain-models}"
NAME="${1:-smollm2-135m-instruct-hf}"
export QCALIB_MODEL="$MODELS/$NAME"
export QCALIB_TRAIN="$MODELS/corpus/wiki_vital_en.train.txt"
export QCALIB_TEST="$MODELS/corpus/wiki_vital_en.test.txt"
echo "== $NAME (references: FP16 12.17; mlx-lm 3-bit g64 RTN 106.9, 2-bit g64 1.4e7; llama.cpp Q3_K_M 13.88 at 5.46 bpw)"
cd "$ROOT"
swift test -c release --filter CalibrateRealModelTests 2>&1 \
  | grep --line-buffered -E "^gptq-check:|✘|recorded an issue|passed after|failed after" | grep --line-buffered -v "Suite\|run with"
