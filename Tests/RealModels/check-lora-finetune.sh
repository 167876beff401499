#!/bin/sh
# The KJV LoRA of SmolLM2-135M-Instruct, measured on held-out KJV text (first 8 windows of 512
# tokens, as /work/shared/README.md: base 24.61, with the adapter 20.09; Qwen2.5-Coder-0.5B 41.41):
# (a) moved onto SmolLM2 itself with --normalize, which must keep ~20.09;
# (b) moved onto Qwen2.5-Coder-0.5B-Instruct alone (the time of the move itself);
# (c) moved, then `--finetune` on KJV text (STEPS steps of BATCH windows of CONTEXT tokens drawn
#     from SAMPLES windows; LR, linear decay, no warm-up);
# (d) `--fresh --finetune` with the same data, steps and learning rate: a fresh adapter of the same
#     rank, alpha and modules (A random, B zero), the baseline (c) has to beat.
# The training text is kjv_plain.txt without its last bytes, which are the held-out text.
# NEW names the new base (default Qwen2.5-Coder-0.5B-Instruct; any family the engine runs, e.g.
# families/gemma-3-270m/hf from Tests/RealModels/fetch-families.sh).
# LAYERS=data maps layers by activation CKA on TRAIN text (--data) instead of weight CKA.
# Prints each run's time and peak RSS, the load average, and a summary of the four perplexities.
# Not part of the test suite.
set -eu
MODELS=${MODELS:-$HOME/.cache/qtoolchain-models}
ADAPTER=${ADAPTER:-/work/shared/models/lora/smollm2-135m-instruct-kjv-lora-r8}
OUT=${OUT:-$(mktemp -d)}
STEPS=${STEPS:-20}
LR=${LR:-1e-3}
CONTEXT=${CONTEXT:-256}
BATCH=${BATCH:-1}
SAMPLES=${SAMPLES:-100}
SEED=${SEED:-0}
LAYERS=${LAYERS:-weights}
EXTRA=${EXTRA:-}
SKIP_IDENTITY=${SKIP_IDENTITY:-0}
EVAL_WINDOWS=${EVAL_WINDOWS:-8}
# PARALLEL=1 runs the two trainings side by side (on a loaded machine that gets them more CPU).
PARALLEL=${PARALLEL:-0}
swift build -c release --product lora-rebase >/dev/null
BIN=$(swift build -c release --show-bin-path)/lora-rebase
SMOL=$MODELS/smollm2-135m-instruct-hf
QWEN=${NEW:-$MODELS/qwen2.5-coder-0.5b-instruct-hf}
HELDOUT=$MODELS/corpus/kjv_heldout_tail2400.txt
PLAIN=$MODELS/corpus/kjv_plain.txt
TRAIN=$OUT/kjv_train.txt
EVAL="--eval $HELDOUT --eval-context 512 --eval-windows $EVAL_WINDOWS"
TRAINING="--finetune $TRAIN --steps $STEPS --lr $LR --context $CONTEXT --batch $BATCH --samples $SAMPLES --seed $SEED"

# kjv_plain.txt ends with the held-out text: train on what comes before it.
python3 - "$PLAIN" "$HELDOUT" "$TRAIN" <<'PY'
import sys
plain, heldout = (open(p, "rb").read() for p in sys.argv[1:3])
assert plain.endswith(heldout), "kjv_plain.txt does not end with the held-out text"
open(sys.argv[3], "wb").write(plain[: len(plain) - len(heldout)])
PY
MAPPING=""
# The activation CKA reads the first 200 KB of the training text (both tokenizers read all of it).
head -c 200000 "$TRAIN" >"$OUT/kjv_data.txt"
[ "$LAYERS" = data ] && MAPPING="--data $OUT/kjv_data.txt --data-windows 8"

timed() { # name, command...: runs with /usr/bin/time, stderr to $OUT/name.log
  name=$1; shift
  echo "== $name (load average $(cut -d' ' -f1-3 /proc/loadavg))"
  /usr/bin/time -f "time %es (user %Us), peak %MKB" "$@" >"$OUT/$name.out" 2>"$OUT/$name.log"
  grep -E "perplexity|fine-tuning:|^time" "$OUT/$name.log" | sed 's/^/  /'
}

if [ "$SKIP_IDENTITY" != 1 ]; then
  timed identity "$BIN" "$SMOL" "$SMOL" "$ADAPTER" -o "$OUT/identity" --normalize $EVAL
fi
# SKIP_MOVED=1 keeps moved.log and moved.out already in $OUT.
[ "${SKIP_MOVED:-0}" = 1 ] || timed moved "$BIN" "$SMOL" "$QWEN" "$ADAPTER" -o "$OUT/moved" $MAPPING $EXTRA --format json
grep -A3 '"layerSource"' "$OUT/moved.out" | head -1 | sed 's/^ */  layer map: /'
if [ "$PARALLEL" = 1 ]; then
  timed finetuned "$BIN" "$SMOL" "$QWEN" "$ADAPTER" -o "$OUT/finetuned" $MAPPING $EXTRA $TRAINING $EVAL &
  timed fresh "$BIN" "$SMOL" "$QWEN" "$ADAPTER" -o "$OUT/fresh" --fresh $TRAINING $EVAL
  wait
else
  timed finetuned "$BIN" "$SMOL" "$QWEN" "$ADAPTER" -o "$OUT/finetuned" $MAPPING $EXTRA $TRAINING $EVAL
  timed fresh "$BIN" "$SMOL" "$QWEN" "$ADAPTER" -o "$OUT/fresh" --fresh $TRAINING $EVAL
fi

value() { # log, label: the perplexity after label
  sed -n "s/^held-out perplexity, $2: \([0-9.]*\).*/\1/p" "$OUT/$1.log"
}
usage() { # log: "wall time (CPU time), peak RSS"
  sed -n 's/^time \([0-9.]*\)s (user \([0-9.]*\)s), peak \([0-9]*\)KB/\1 s wall (\2 s user), \3 KB/p' "$OUT/$1.log"
}
echo "== Summary: $QWEN, held-out KJV perplexity ($STEPS steps, lr $LR, batch $BATCH x $CONTEXT tokens from $SAMPLES windows, layers from $LAYERS)"
printf '  %-34s %10s   %s\n' "setup" "perplexity" "run: time, peak RSS"
printf '  %-34s %10s   %s\n' "new base alone" "$(value finetuned 'base alone')" "(inside the runs below)"
printf '  %-34s %10s   %s\n' "transferred adapter" "$(value finetuned 'adapter before fine-tuning')" "move only: $(usage moved)"
printf '  %-34s %10s   %s\n' "transferred + --finetune" "$(value finetuned 'adapter after fine-tuning')" "move, train, 3 evals: $(usage finetuned)"
printf '  %-34s %10s   %s\n' "fresh LoRA + same training" "$(value fresh 'adapter after fine-tuning')" "train, 3 evals: $(usage fresh)"
echo "  load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "outputs and logs in $OUT"
