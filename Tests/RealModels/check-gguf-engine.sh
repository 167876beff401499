#!/usr/bin/env bash
# Checks that the engine runs GGUF files directly, on SmolLM2-135M and Qwen2.5-Coder-0.5B (from
# ../shared/models/fetch.sh):
#  1. An F16 GGUF made from the HF folder by llama.cpp's convert_hf_to_gguf.py: `qdiff HF GGUF
#     --data` must find every tensor equal under Hugging Face names (q/k rows un-permuted) and
#     the next-token distributions identical (KL 0, top-1 agreement 1).
#  2. Perplexity on the wiki test windows, scored as llama-perplexity scores them
#     (`--scoring second-half`), beside llama-perplexity's own number on the same file: the F16
#     GGUF, the fetched Q4_1 SmolLM2 GGUF and the Q4_K_M Qwen2.5-Coder GGUF (qwen2, K-quants).
#  3. `qinspect --generate` on the Q4_1 GGUF with the tokenizer from its metadata.
# Needs: the llama.cpp tree (LLAMA_CPP, default the one under /work/peers) with llama-perplexity
# built, pip install gguf sentencepiece numpy torch transformers for its converter.
# Usage: Tests/RealModels/check-gguf-engine.sh [CONTEXT] [WINDOWS]   (default 512 and 8)
set -euo pipefail
cd "$(dirname "$0")/../.."
MODELS=${MODELS_DIR:-$HOME/.cache/qtoolchain-models}
LLAMA_CPP=${LLAMA_CPP:-/work/peers/llama_cpp_python-0.3.36/vendor/llama.cpp}
PERPLEXITY=${LLAMA_PERPLEXITY:-$LLAMA_CPP/build/bin/llama-perplexity}
CONTEXT=${1:-512}
WINDOWS=${2:-8}
TEXT=$MODELS/corpus/wiki_vital_en.test.txt
HF=$MODELS/smollm2-135m-instruct-hf
Q41=$MODELS/smollm2-135m-instruct-gguf/SmolLM2-135M-Instruct.Q4_1.gguf
QWEN=$MODELS/qwen2.5-coder-0.5b-instruct-gguf/qwen2.5-coder-0.5b-instruct-awq-q4_k_m.gguf
for tool in qinspect qdiff; do [ -x .build/release/$tool ] || swift build -c release --product $tool >&2; done
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

echo "== F16 GGUF from $HF by convert_hf_to_gguf.py"
PYTHONPATH="$LLAMA_CPP/gguf-py:${PYTHONPATH:-}" python3 "$LLAMA_CPP/convert_hf_to_gguf.py" "$HF" \
  --outtype f16 --outfile "$WORK/smollm2-f16.gguf" >"$WORK/convert.log" 2>&1 || { cat "$WORK/convert.log"; exit 1; }

echo "== qdiff HF F16-GGUF --data ($CONTEXT tokens x 2 windows)"
set +e
.build/release/qdiff "$HF" "$WORK/smollm2-f16.gguf" --data "$TEXT" --context "$CONTEXT" --windows 2 \
  --format json >"$WORK/diff.json"
status=$?
set -e
[ $status -le 1 ] || { echo "qdiff failed ($status)"; exit 1; }
python3 - "$WORK/diff.json" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
tensors = d["tensors"]
unequal = [t["name"] for t in tensors if t["status"] not in ("equal", "dtype-changed") or t["relative_l2"] != 0]
only = [t["name"] for t in tensors if t["status"] in ("added", "removed")]
data = d["data"]
print(f"tensors {len(tensors)}, unequal values {len(unequal)}, on one side only {len(only)}")
print(f"next-token mean KL {data['mean_kl']:.3g}, max KL {data['max_kl']:.3g}, top-1 agreement {data['top1_agreement']:.4f}, tokenization {data['tokenization']}")
ok = not unequal and not only and data["mean_kl"] == 0 and data["top1_agreement"] == 1 and data["tokenization"] == "shared"
print("F16 GGUF runs as its HF checkpoint:", "yes" if ok else "NO")
sys.exit(0 if ok else 1)
PY

echo "== perplexity, $WINDOWS windows of $CONTEXT, second half of each scored (as llama-perplexity)"
printf "%-46s %12s %18s\n" file ours llama-perplexity
for GGUF in "$WORK/smollm2-f16.gguf" "$Q41" "$QWEN"; do
  [ -f "$GGUF" ] || { echo "missing $GGUF (run fetch.sh)"; exit 1; }
  ours=$(.build/release/qinspect "$GGUF" --perplexity "$TEXT" --context "$CONTEXT" --windows "$WINDOWS" \
    --scoring second-half --progress none --format json | python3 -c 'import json,sys; print("%.4f" % json.load(sys.stdin)[0]["perplexity"]["perplexity"])')
  theirs=$("$PERPLEXITY" -m "$GGUF" -f "$TEXT" -c "$CONTEXT" --chunks "$WINDOWS" -t "$(nproc)" 2>&1 \
    | sed -n 's/.*Final estimate: PPL = \([0-9.]*\).*/\1/p')
  printf "%-46s %12s %18s\n" "$(basename "$GGUF")" "$ours" "${theirs:-?}"
done

echo "== qinspect --generate on $(basename "$Q41")"
.build/release/qinspect "$Q41" --generate "The capital of France is" --max-tokens 12
