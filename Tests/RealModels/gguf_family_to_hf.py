#!/usr/bin/env python3
"""Turns a family GGUF into a Hugging Face folder (config.json, model.safetensors, tokenizer.json).

The weights and config.json come from the shared gguf_to_hf.py, which dequantizes and undoes
llama.cpp's conversion tweaks for the architectures it knows (llama: q/k rotary permutation;
gemma3: the +1 folded into every norm; qwen2: none). Its tokenizer rebuild covers only byte-level
BPE, so the tokenizer here is rebuilt by transformers' own GGUF tokenizer converter instead, which
also handles SentencePiece vocabularies (Gemma, Llama 2, Mistral).

    PYTHONPATH=$MODELS_DIR/py python3 gguf_family_to_hf.py IN.gguf OUT_DIR [--dtype f16|bf16|f32]
"""
import argparse
import os
import subprocess
import sys
import tempfile

SUPPORTED = ("llama", "qwen2", "gemma3")


def shared_converter():
    here = os.path.dirname(os.path.abspath(__file__))
    for root in (os.path.join(here, "..", "..", "..", "shared"), "/work/shared"):
        path = os.path.normpath(os.path.join(root, "models", "tools", "gguf_to_hf.py"))
        if os.path.isfile(path):
            return path
    sys.exit("gguf_family_to_hf: shared/models/tools/gguf_to_hf.py not found beside the repository")


def architecture(path):
    from gguf import GGUFReader
    field = GGUFReader(path).fields.get("general.architecture")
    if field is None:
        sys.exit(f"gguf_family_to_hf: {path}: no general.architecture key")
    return field.contents()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("gguf")
    ap.add_argument("out")
    ap.add_argument("--dtype", default="f32", choices=["f16", "bf16", "f32"])
    a = ap.parse_args()
    arch = architecture(a.gguf)
    if arch not in SUPPORTED:
        sys.exit(f"gguf_family_to_hf: {a.gguf}: architecture '{arch}' is not supported "
                 f"(supported: {', '.join(SUPPORTED)})")
    with tempfile.TemporaryDirectory() as no_tokenizer:
        # An empty --tokenizer-from folder makes gguf_to_hf.py skip its BPE-only tokenizer rebuild.
        subprocess.run([sys.executable, shared_converter(), a.gguf, a.out, "--dtype", a.dtype,
                        "--tokenizer-from", no_tokenizer], check=True)
    from transformers import AutoTokenizer
    tok = AutoTokenizer.from_pretrained(os.path.dirname(os.path.abspath(a.gguf)),
                                        gguf_file=os.path.basename(a.gguf))
    tok.save_pretrained(a.out)
    print(f"tokenizer: {type(tok).__name__}, {len(tok)} entries, bos={tok.bos_token} eos={tok.eos_token}")


if __name__ == "__main__":
    main()
