#!/usr/bin/env bash
# Compares our SentencePiece-style tokenizers (BPE with byte fallback, Unigram) with the
# `tokenizers` Python package on whole corpus files, and prints token counts, mismatches and the
# throughput of both. Tokenizers compared: the trained fixtures in Fixtures/tokenizer/{sp-*,unigram}
# and Mistral 7B v0.1's SentencePiece model (Llama 2 form, 32000 pieces) as the mistral-common
# wheel ships it, converted to tokenizer.json by sentencepiece_to_tokenizer_json.py.
# Needs the corpus (/work/shared/models/fetch.sh) and `tokenizers`; fetches sentencepiece and
# mistral-common from PyPI into the models folder once. Runs the release-only TokenizerCorpus test.
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
models_dir="${QTOOLCHAIN_MODELS:-$HOME/.cache/qtoolchain-models}"
corpus="${models_dir}/corpus"
models=""
for name in sp-llama2 sp-metaspace sp-gemma sp-gemma3 unigram; do
  models="${models:+$models:}${root}/Fixtures/tokenizer/${name}"
done

real="${models_dir}/mistral-7b-v0.1-sentencepiece"
if [ ! -f "$real/tokenizer.json" ]; then
  py_sp="${models_dir}/py-sentencepiece"
  if [ ! -d "$py_sp/mistral_common" ]; then
    pip install --quiet --no-deps --target "$py_sp" sentencepiece mistral-common >/dev/null 2>&1 || true
  fi
  spm_model="$py_sp/mistral_common/data/tokenizer.model.v1"
  if [ -f "$spm_model" ]; then
    PYTHONPATH="$py_sp" python3 "$root/Tests/RealModels/sentencepiece_to_tokenizer_json.py" "$spm_model" "$real"
  fi
fi
if [ -f "$real/tokenizer.json" ]; then
  models="$models:$real"
else
  echo "no real SentencePiece tokenizer: the mistral-common wheel or sentencepiece could not be installed" >&2
fi

# Gemma 3's own tokenizer.json (262,144 pieces; Split on a space its normalizer has replaced),
# when Tests/RealModels/fetch-families.sh has brought it.
gemma3="${models_dir}/families/gemma-3-270m/hf"
if [ -f "$gemma3/tokenizer.json" ]; then models="$models:$gemma3"; fi

files=$(ls "$corpus"/*.txt 2>/dev/null | tr '\n' ':' | sed 's/:$//')
if [ -z "$files" ]; then
  echo "no corpus in $corpus: run /work/shared/models/fetch.sh" >&2
  exit 2
fi
out="$(mktemp -d)"
trap 'rm -rf "$out"' EXIT

cd "$root"
QENGINE_TOKENIZER_MODELS="$models" QENGINE_TOKENIZER_CORPUS="$files" QENGINE_TOKENIZER_OUT="$out" \
  swift test -c release --filter TokenizerCorpus >"$out/swift-test.log" 2>&1 || true
# The test also checks decode(encode(file)) == file; a decoder without ByteFallback (the Unigram
# fixture) gives `<0xNN>` back for bytes, as `tokenizers` does, so those round trips are counted,
# not failed on.
echo "round trips that differ from the file (ours): $(grep -c 'round trip of' "$out/swift-test.log" || true)"
grep -E "^error|Test run" "$out/swift-test.log" | cut -c1-200 | tail -3

PYTHONPATH="${models_dir}/py" python3 "$root/Tests/RealModels/compare_tokenizer_ids.py" "$models" "$files" "$out"
