#!/bin/sh
# The KJV LoRA of SmolLM2-135M-Instruct, measured on held-out KJV text (first 8 windows of 512
# tokens, as /work/shared/README.md: base 24.61, with the adapter 20.09; Qwen2.5-Coder-0.5B 41.41):
# (a) moved onto SmolLM2 itself with --normalize, which must keep ~20.09;
# (b) moved onto Qwen2.5-Coder-0.5B-Instruct, then `--finetune` on KJV text (STEPS steps of BATCH
#     windows of CONTEXT tokens drawn from SAMPLES windows; LR, linear decay, no warm-up).
# Prints each run's perplexities, time and peak RSS. Not part of the test suite.
set -eu
MODELS=${MODELS:-$HOME/.cache/qtoolchain-models}
ADAPTER=${ADAPTER:-/work/shared/models/lora/smollm2-135m-instruct-kjv-lora-r8}
OUT=${OUT:-$(mktemp -d)}
STEPS=${STEPS:-20}
LR=${LR:-1e-3}
CONTEXT=${CONTEXT:-256}
BATCH=${BATCH:-1}
SAMPLES=${SAMPLES:-100}
swift build -c release --product lora-rebase >/dev/null
BIN=$(swift build -c release --show-bin-path)/lora-rebase
SMOL=$MODELS/smollm2-135m-instruct-hf
QWEN=$MODELS/qwen2.5-coder-0.5b-instruct-hf
HELDOUT=$MODELS/corpus/kjv_heldout_tail2400.txt
TRAIN=$MODELS/corpus/kjv_plain.txt

echo "== (a) SmolLM2-135M-Instruct -> itself (--normalize), held-out KJV perplexity"
/usr/bin/time -f "time %es, peak %MKB" "$BIN" "$SMOL" "$SMOL" "$ADAPTER" -o "$OUT/identity" --normalize \
  --eval "$HELDOUT" --eval-context 512 --eval-windows 8 >/dev/null

echo "== (b) SmolLM2-135M-Instruct -> Qwen2.5-Coder-0.5B-Instruct, --finetune $STEPS steps"
/usr/bin/time -f "time %es, peak %MKB" "$BIN" "$SMOL" "$QWEN" "$ADAPTER" -o "$OUT/qwen-finetuned" \
  --finetune "$TRAIN" --steps "$STEPS" --lr "$LR" --context "$CONTEXT" --batch "$BATCH" --samples "$SAMPLES" \
  --eval "$HELDOUT" --eval-context 512 --eval-windows 8 >/dev/null
echo "outputs in $OUT"
