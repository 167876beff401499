#!/usr/bin/env bash
# Checks the decoder engine on real models against the numpy reference (np_llm.py):
# logits on reference_logits.npz, perplexity on the first 8 windows of 512 tokens of
# wiki_vital_en.test.txt, and tokens/s of both for prompt processing.
# Needs the models of ../shared/models/fetch.sh (MODELS_DIR, default ~/.cache/qtoolchain-models).
# Usage: Tests/RealModels/check-llm.sh [model-folder-name ...]
#   A name may be a path under MODELS_DIR, e.g. families/gemma-3-270m/hf from fetch-families.sh.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
MODELS="${MODELS_DIR:-$HOME/.cache/qtoolchain-models}"
TOOLS="${TOOLS_DIR:-$ROOT/../shared/models/tools}"
[ -d "$TOOLS" ] || TOOLS=/work/shared/models/tools
TEXT="$MODELS/corpus/wiki_vital_en.test.txt"
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
export PYTHONPATH="$MODELS/py${PYTHONPATH:+:$PYTHONPATH}"

declare -A REFERENCE=([smollm2-135m-instruct-hf]=12.17 [qwen2.5-coder-0.5b-instruct-hf]=17.27)
MODEL_NAMES=("$@")
[ ${#MODEL_NAMES[@]} -gt 0 ] || MODEL_NAMES=(smollm2-135m-instruct-hf qwen2.5-coder-0.5b-instruct-hf)

# Build once (swift test builds with testable imports, which swift build -c release does not).
(cd "$ROOT" && swift test -c release --filter LLMRealModelTests >/dev/null 2>&1) || true

for name in "${MODEL_NAMES[@]}"; do
  dir="$MODELS/$name"
  mkdir -p "$(dirname "$WORK/$name")"
  echo "== $name"
  python3 - "$dir" "$TEXT" "$WORK/$name" "$TOOLS" "${REFERENCE[$name]:-0}" <<'PY'
import json, sys, time
import numpy as np
model_dir, text, out, tools, table = sys.argv[1:6]
sys.path.insert(0, tools)
import np_llm
ref = dict(np.load(f"{model_dir}/reference_logits.npz"))
# fetch-families.sh names the token ids input_ids (transformers' name); fetch.sh names them ids.
ref.setdefault("ids", ref.get("input_ids"))
ref["logits"].astype("<f4").tofile(out + ".logits.f32")
tok = np_llm.get_tok(model_dir)
ids = tok.encode(open(text).read(), add_special_tokens=False).ids[:8 * 512]
m = np_llm.Model(model_dir)
t0 = time.time()
lg = m.forward(ref["ids"].tolist())
print(f"numpy reference: logits of reference_logits.npz recomputed, max diff {np.abs(lg - ref['logits']).max():.2e}")
nll, cnt, t0 = 0.0, 0, time.time()
for w in range(8):
    chunk = ids[w * 512:(w + 1) * 512]
    x = m.forward(chunk[:-1]).astype(np.float64)
    x -= x.max(-1, keepdims=True)
    lp = x - np.log(np.exp(x).sum(-1, keepdims=True))
    nll -= lp[np.arange(len(chunk) - 1), chunk[1:]].sum(); cnt += len(chunk) - 1
elapsed = time.time() - t0
ppl = float(np.exp(nll / cnt))
print(f"numpy reference: perplexity {ppl:.4f} (table {table}), {cnt} tokens, {elapsed:.2f} s, {cnt / elapsed:.1f} tokens/s")
json.dump({"model": model_dir, "reference_tokens": ref["ids"].tolist(), "reference_logits": out + ".logits.f32",
           "perplexity_tokens": ids, "context": 512, "windows": 8, "reference_perplexity": ppl,
           "generate_tokens": 32}, open(out + ".json", "w"))
PY
  (cd "$ROOT" && QENGINE_LLM_CHECK="$WORK/$name.json" swift test -c release \
    --filter LLMRealModelTests 2>&1 | grep -E "^(model|logits|perplexity|generation):|✘|recorded an issue|passed after|failed after" \
    | grep -v "Suite\|run with")
done
