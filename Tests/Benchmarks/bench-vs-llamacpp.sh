#!/usr/bin/env bash
# The model engine against llama.cpp on the CPU, side by side in one run, on the same model:
#   - prompt processing and generation: llama-bench (pp512, tg64) against qinspect --generate on a
#     prompt of the same length with 64 new tokens (greedy), in tokens/s;
#   - perplexity: llama-perplexity against qinspect --perplexity, both over WINDOWS windows of
#     CONTEXT tokens of the same text, as wall time of the whole process (load included);
#   - the peak RSS of every process (/usr/bin/time -v).
# Two weight kinds: the F16 checkpoint (ours reads the HF folder, llama.cpp its F16 GGUF) and
# 4.5 bits per weight (our 4-bit group-64 pack from qconvert against Q4_0 from llama-quantize
# --pure, which keeps the embedding at Q4_0 too). Ratios are ours / llama.cpp: > 1 means we are
# faster (for RSS, < 1 means we use less).
#
# Usage: LLAMA_CPP_BIN=DIR [LLAMA_CPP_SRC=DIR] Tests/Benchmarks/bench-vs-llamacpp.sh [MODEL_FOLDER]
#   LLAMA_CPP_BIN: the folder holding llama-bench, llama-perplexity and llama-quantize.
#   LLAMA_CPP_SRC: llama.cpp's source tree, for convert_hf_to_gguf.py (default: LLAMA_CPP_BIN/../..);
#     F16_GGUF=FILE uses a ready F16 GGUF instead of converting.
#   default MODEL_FOLDER: SmolLM2-135M-Instruct F16 from ~/.cache/qtoolchain-models.
#   THREADS (2), CONTEXT (512), WINDOWS (8), PROMPT_TOKENS (512), NEW_TOKENS (64), REPETITIONS (3).
#   QINSPECT/QCONVERT=path run other builds. PYTHONPATH must reach gguf-py's needs (numpy, and
#   sentencepiece for its vocabulary probe).
# Needs: a release build (swift build -c release); python3 with tokenizers.
set -euo pipefail
cd "$(dirname "$0")/../.."
: "${LLAMA_CPP_BIN:?set LLAMA_CPP_BIN to the folder holding llama-bench, llama-perplexity and llama-quantize}"
LLAMA_CPP_SRC=${LLAMA_CPP_SRC:-$LLAMA_CPP_BIN/../..}
MODELS=${MODELS_DIR:-$HOME/.cache/qtoolchain-models}
MODEL=${1:-$MODELS/smollm2-135m-instruct-hf}
TEXT=${TEXT:-$MODELS/corpus/wiki_vital_en.test.txt}
THREADS=${THREADS:-2}
CONTEXT=${CONTEXT:-512}
WINDOWS=${WINDOWS:-8}
PROMPT_TOKENS=${PROMPT_TOKENS:-512}
NEW_TOKENS=${NEW_TOKENS:-64}
REPETITIONS=${REPETITIONS:-3}
QINSPECT=${QINSPECT:-.build/release/qinspect}
QCONVERT=${QCONVERT:-.build/release/qconvert}
[ -x "$QINSPECT" ] || swift build -c release --product qinspect >&2
[ -x "$QCONVERT" ] || swift build -c release --product qconvert >&2
for tool in llama-bench llama-perplexity llama-quantize; do
  [ -x "$LLAMA_CPP_BIN/$tool" ] || { echo "bench-vs-llamacpp: $LLAMA_CPP_BIN/$tool: not an executable" >&2; exit 1; }
done
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
export OPENBLAS_NUM_THREADS=$THREADS

# The models: F16 GGUF, Q4_0 GGUF and our 4-bit group-64 pack, all from MODEL.
if [ -n "${F16_GGUF:-}" ]; then
  cp "$F16_GGUF" "$WORK/f16.gguf"
else
  python3 "$LLAMA_CPP_SRC/convert_hf_to_gguf.py" "$MODEL" --outtype f16 --outfile "$WORK/f16.gguf" \
    >"$WORK/convert.log" 2>&1 || { tail -20 "$WORK/convert.log" >&2; exit 1; }
fi
"$LLAMA_CPP_BIN/llama-quantize" --pure "$WORK/f16.gguf" "$WORK/q4.gguf" Q4_0 "$THREADS" >"$WORK/quantize.log" 2>&1 \
  || { tail -20 "$WORK/quantize.log" >&2; exit 1; }
"$QCONVERT" "$MODEL" -o "$WORK/q4" --bits 4 --group-size 64 --method rtn --quiet

# The prompt: the first PROMPT_TOKENS tokens of the text, decoded back to text for qinspect.
python3 - "$MODEL" "$TEXT" "$PROMPT_TOKENS" "$WORK" <<'EOF'
import sys
from tokenizers import Tokenizer
model, text, count, work = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
tokenizer = Tokenizer.from_file(f"{model}/tokenizer.json")
ids = tokenizer.encode(open(text, encoding="utf-8").read()[: count * 16], add_special_tokens=False).ids[:count]
open(f"{work}/prompt.txt", "w", encoding="utf-8").write(tokenizer.decode(ids))
EOF

run() { # NAME COMMAND...: stdout to $WORK/NAME.out, `time -v` report to $WORK/NAME.time
  local name=$1
  shift
  /usr/bin/time -v -o "$WORK/$name.time" "$@" >"$WORK/$name.out" 2>"$WORK/$name.err" \
    || { tail -20 "$WORK/$name.err" >&2; exit 1; }
}

echo "model: $MODEL, $THREADS threads, $(nproc) cores; prompt $PROMPT_TOKENS tokens, $NEW_TOKENS new;" \
  "perplexity $WINDOWS windows of $CONTEXT tokens of $(basename "$TEXT")"
echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg) (the cores are shared: rates fall when other jobs run)"
for KIND in f16 q4; do
  if [ "$KIND" = f16 ]; then OURS=$MODEL; else OURS=$WORK/q4; fi
  cat "$WORK/$KIND.gguf" "$OURS"/*.safetensors >/dev/null
  run "llama-bench-$KIND" "$LLAMA_CPP_BIN/llama-bench" -m "$WORK/$KIND.gguf" -p "$PROMPT_TOKENS" \
    -n "$NEW_TOKENS" -t "$THREADS" -r "$REPETITIONS" -o json
  run "llama-ppl-$KIND" "$LLAMA_CPP_BIN/llama-perplexity" -m "$WORK/$KIND.gguf" -f "$TEXT" -c "$CONTEXT" \
    --chunks "$WINDOWS" -t "$THREADS" -b "$CONTEXT"
  for repetition in $(seq "$REPETITIONS"); do
    run "ours-gen-$KIND-$repetition" "$QINSPECT" "$OURS" --generate "$(cat "$WORK/prompt.txt")" \
      --max-tokens "$NEW_TOKENS" --format json
  done
  run "ours-ppl-$KIND" "$QINSPECT" "$OURS" --perplexity "$TEXT" --context "$CONTEXT" --windows "$WINDOWS" \
    --format json
done

python3 - "$WORK" "$REPETITIONS" <<'EOF'
import json, re, statistics, sys
work, repetitions = sys.argv[1], int(sys.argv[2])

def timed(name):
    """Wall seconds and peak RSS (MB) from a `time -v` report."""
    text = open(f"{work}/{name}.time").read()
    clock = re.search(r"Elapsed \(wall clock\) time \(h:mm:ss or m:ss\): (\S+)", text).group(1)
    seconds = 0.0
    for part in clock.split(":"):
        seconds = seconds * 60 + float(part)
    rss = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", text).group(1)) / 1024
    return seconds, rss

def ours_rates(kind):
    prompt, generate = [], []
    for repetition in range(1, repetitions + 1):
        g = json.load(open(f"{work}/ours-gen-{kind}-{repetition}.out"))[0]["generation"]
        prompt.append(g["prompt_tokens"] / g["prompt_seconds"])
        generate.append((g["tokens"] - 1) / (g["seconds"] - g["prompt_seconds"]))
    return statistics.median(prompt), statistics.median(generate), timed(f"ours-gen-{kind}-1")[1]

def llama_rates(kind):
    results = json.load(open(f"{work}/llama-bench-{kind}.out"))
    prompt = next(r["avg_ts"] for r in results if r["n_prompt"] > 0 and r["n_gen"] == 0)
    generate = next(r["avg_ts"] for r in results if r["n_gen"] > 0 and r["n_prompt"] == 0)
    return prompt, generate, timed(f"llama-bench-{kind}")[1]

def llama_perplexity(kind):
    text = open(f"{work}/llama-ppl-{kind}.err").read() + open(f"{work}/llama-ppl-{kind}.out").read()
    match = re.search(r"Final estimate: PPL = ([0-9.]+)", text)
    return float(match.group(1)) if match else float("nan")

def ours_perplexity(kind):
    report = json.load(open(f"{work}/ours-ppl-{kind}.out"))[0]["perplexity"]
    return report["perplexity"]

print(f"{'weights':<8} {'engine':<10} {'prompt tok/s':>12} {'gen tok/s':>10} {'RSS MB':>7}"
      f" {'ppl s':>7} {'ppl RSS':>8} {'ppl':>8}")
for kind, label in (("f16", "F16"), ("q4", "4.5 bpw")):
    o, l = ours_rates(kind), llama_rates(kind)
    (os_, orss), (ls_, lrss) = timed(f"ours-ppl-{kind}"), timed(f"llama-ppl-{kind}")
    print(f"{label:<8} {'qinspect':<10} {o[0]:12.1f} {o[1]:10.1f} {o[2]:7.0f} {os_:7.2f} {orss:8.0f} {ours_perplexity(kind):8.3f}")
    print(f"{label:<8} {'llama.cpp':<10} {l[0]:12.1f} {l[1]:10.1f} {l[2]:7.0f} {ls_:7.2f} {lrss:8.0f} {llama_perplexity(kind):8.3f}")
    print(f"{label:<8} {'ratio':<10} {o[0] / l[0]:11.2f}x {o[1] / l[1]:9.2f}x {o[2] / l[2]:6.2f}x"
          f" {ls_ / os_:6.2f}x {orss / lrss:7.2f}x")
print("ratios: speed ours / llama.cpp (> 1 is faster; ppl s as llama.cpp's time / ours), RSS ours / llama.cpp (< 1 is smaller)")
print("(perplexities differ by design: llama-perplexity scores the second half of each window only)")
EOF
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
