#!/usr/bin/env bash
# Compares BPETokenizer ids with the `tokenizers` Python package on whole corpus files, for the
# SmolLM2 and Qwen2.5 tokenizers, and prints token counts, mismatches and throughput of both.
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
models_dir="${QTOOLCHAIN_MODELS:-$HOME/.cache/qtoolchain-models}"
corpus="${models_dir}/corpus"
models="${models_dir}/smollm2-135m-instruct-hf:${models_dir}/qwen2.5-coder-0.5b-instruct-hf"
files=$(ls "$corpus"/*.txt "$corpus"/*.jsonl 2>/dev/null | tr '\n' ':' | sed 's/:$//')
out="$(mktemp -d)"
trap 'rm -rf "$out"' EXIT

cd "$root"
QENGINE_TOKENIZER_MODELS="$models" QENGINE_TOKENIZER_CORPUS="$files" QENGINE_TOKENIZER_OUT="$out" \
  swift test -c release --filter TokenizerCorpus 2>&1 | grep -E "error|failed|passed|issue" | tail -5

PYTHONPATH="${models_dir}/py" python3 "$root/Tests/RealModels/compare_tokenizer_ids.py" "$models" "$files" "$out"
