#!/usr/bin/env bash
# The model engine (qinspect --generate) against mlx_lm on the CPU, side by side in one run: prompt
# processing of a long prompt and greedy generation, in tokens/s, for the F16 model and for 4-bit
# and 2-bit packs (ours from qconvert, mlx_lm's from mlx_lm.convert -q, same bits and group size).
# Prints each rate, the ratios ours / mlx_lm, and the peak RSS of each process.
#
# Usage: Tests/Benchmarks/bench-engine.sh [MODEL_FOLDER]
#   default MODEL_FOLDER: SmolLM2-135M-Instruct F16 from ../shared/models/fetch.sh
#   PROMPT_TOKENS (512) and NEW_TOKENS (128) size the run; QINSPECT/QCONVERT=path run other builds.
#   MLX_BITS ("4 2") lists the packs mlx_lm also runs; MLX_BITS="" runs only its F16 model (MLX's
#   CPU build multiplies quantized matrices slowly: its 4-bit 512-token prompt takes over 10 min).
# Needs: a release build (swift build -c release), python3 with mlx and mlx-lm (pip install "mlx[cpu]" mlx-lm).
set -euo pipefail
cd "$(dirname "$0")/../.."
MODELS=${MODELS_DIR:-$HOME/.cache/qtoolchain-models}
MODEL=${1:-$MODELS/smollm2-135m-instruct-hf}
TEXT=${TEXT:-$MODELS/corpus/wiki_vital_en.valid.txt}
PROMPT_TOKENS=${PROMPT_TOKENS:-512}
NEW_TOKENS=${NEW_TOKENS:-128}
MLX_BITS=${MLX_BITS-4 2}
QINSPECT=${QINSPECT:-.build/release/qinspect}
QCONVERT=${QCONVERT:-.build/release/qconvert}
[ -x "$QINSPECT" ] || swift build -c release --product qinspect >&2
[ -x "$QCONVERT" ] || swift build -c release --product qconvert >&2
GROUP=64
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

# The prompt: the first PROMPT_TOKENS tokens of the text, decoded back to text for qinspect and
# kept as ids for mlx_lm, so both read the same tokens.
python3 - "$MODEL" "$TEXT" "$PROMPT_TOKENS" "$WORK" <<'EOF'
import json, sys
from tokenizers import Tokenizer
model, text, count, work = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
tokenizer = Tokenizer.from_file(f"{model}/tokenizer.json")
ids = tokenizer.encode(open(text, encoding="utf-8").read()[: count * 16], add_special_tokens=False).ids[:count]
prompt = tokenizer.decode(ids)
ids = tokenizer.encode(prompt, add_special_tokens=False).ids
open(f"{work}/prompt.txt", "w", encoding="utf-8").write(prompt)
json.dump(ids, open(f"{work}/prompt.json", "w"))
EOF

cat >"$WORK/mlx_run.py" <<'EOF'
import json, sys
import mlx.core as mx
mx.set_default_device(mx.cpu)
from mlx_lm import load, stream_generate
from mlx_lm.sample_utils import make_sampler
model_path, prompt_path, new_tokens = sys.argv[1], sys.argv[2], int(sys.argv[3])
model, tokenizer = load(model_path)
ids = json.load(open(prompt_path))
last = None
for response in stream_generate(
    model, tokenizer, ids, max_tokens=new_tokens, sampler=make_sampler(temp=0.0), stream=mx.cpu
):
    last = response
assert mx.default_device() == mx.cpu
print(json.dumps({"prompt_tokens": last.prompt_tokens, "prompt_tps": last.prompt_tps,
                  "tokens": last.generation_tokens, "generation_tps": last.generation_tps}))
EOF

cat >"$WORK/ours.py" <<'EOF'
import json, sys
g = json.load(open(sys.argv[1]))[0]["generation"]
print(json.dumps({"prompt_tokens": g["prompt_tokens"], "prompt_tps": g["prompt_tokens"] / g["prompt_seconds"],
                  "tokens": g["tokens"],
                  "generation_tps": (g["tokens"] - 1) / (g["seconds"] - g["prompt_seconds"]) if g["tokens"] > 1 else 0}))
EOF

run() { # NAME JSON_OUT COMMAND...: runs under /usr/bin/time, leaves peak RSS (KB) in $WORK/NAME.rss
  local name=$1 out=$2
  shift 2
  /usr/bin/time -f "%M" -o "$WORK/$name.rss" "$@" >"$out" 2>"$WORK/$name.err" || { cat "$WORK/$name.err" >&2; exit 1; }
}

echo "model: $MODEL, prompt $(python3 -c "import json; print(len(json.load(open('$WORK/prompt.json'))))") tokens, $NEW_TOKENS new tokens (greedy), group size $GROUP, $(nproc) cores"
echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg) (the cores are shared: rates fall when other jobs run)"
for BITS in 4 2; do
  "$QCONVERT" "$MODEL" -o "$WORK/q$BITS" --bits "$BITS" --group-size $GROUP --method rtn --quiet
done
for BITS in $MLX_BITS; do
  mlx_lm.convert --hf-path "$MODEL" --mlx-path "$WORK/m$BITS" -q --q-bits "$BITS" --q-group-size $GROUP >/dev/null 2>&1
done

printf "%-6s %-8s %14s %16s %10s %10s\n" weights engine "prompt tok/s" "generate tok/s" tokens "peak RSS"
for KIND in f16 4 2; do
  if [ "$KIND" = f16 ]; then OURS=$MODEL MLX=$MODEL; else OURS=$WORK/q$KIND MLX=$WORK/m$KIND; fi
  cat "$MODEL"/*.safetensors >/dev/null
  run "ours$KIND" "$WORK/ours$KIND.json" "$QINSPECT" "$OURS" --generate "$(cat "$WORK/prompt.txt")" \
    --max-tokens "$NEW_TOKENS" --format json
  python3 "$WORK/ours.py" "$WORK/ours$KIND.json" >"$WORK/ours$KIND.rates"
  if [ "$KIND" = f16 ] || [[ " $MLX_BITS " == *" $KIND "* ]]; then
    run "mlx$KIND" "$WORK/mlx$KIND.rates" python3 "$WORK/mlx_run.py" "$MLX" "$WORK/prompt.json" "$NEW_TOKENS"
  fi
  python3 - "$KIND" "$WORK" <<'EOF'
import json, os, sys
kind, work = sys.argv[1], sys.argv[2]
label = "F16" if kind == "f16" else f"{kind}-bit"
rates = {}
for engine, name in (("ours", "qinspect"), ("mlx", "mlx_lm")):
    if not os.path.exists(f"{work}/{engine}{kind}.rates"):
        continue
    r = json.load(open(f"{work}/{engine}{kind}.rates"))
    rss = int(open(f"{work}/{engine}{kind}.rss").read().split()[-1]) // 1024
    rates[engine] = r
    print(f"{label:<6} {name:<8} {r['prompt_tps']:14.1f} {r['generation_tps']:16.1f} {r['tokens']:10d} {rss:7d} MB")
if "mlx" not in rates:
    sys.exit(0)
o, m = rates["ours"], rates["mlx"]
print(f"{label:<6} ratio    {o['prompt_tps'] / m['prompt_tps']:13.2f}x {o['generation_tps'] / m['generation_tps']:15.2f}x"
      "   (ours / mlx_lm; > 1 is faster)")
EOF
done
python3 - "$WORK" <<'EOF'
import json, sys
work = sys.argv[1]
f16 = json.load(open(f"{work}/oursf16.rates"))["generation_tps"]
for bits in (4, 2):
    r = json.load(open(f"{work}/ours{bits}.rates"))["generation_tps"]
    print(f"ours {bits}-bit generation is {r / f16:.2f}x ours F16" + (" (goal >= 1.5)" if bits == 2 else ""))
EOF
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
