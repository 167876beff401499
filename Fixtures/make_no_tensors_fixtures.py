"""Well-formed inputs that hold no tensors, for qconvert's refusal to write an empty output.

Writes, beside the malformed corpus:
- Fixtures/no-tensors/plain/model.safetensors: a header `{"__metadata__": {"format": "pt"}}`
  and no data, with a tiny Llama config.json,
- Fixtures/no-tensors/pack/model.safetensors: the same with `qpack.version` 1 (an empty pack).
Run from the repository root: python3 Fixtures/make_no_tensors_fixtures.py
"""

import json
import os
import struct

HERE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "no-tensors")


def write_header_only(path, metadata):
    text = json.dumps({"__metadata__": metadata}, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as out:
        out.write(struct.pack("<Q", len(text)) + text)


def main():
    write_header_only(os.path.join(HERE, "plain", "model.safetensors"), {"format": "pt"})
    write_header_only(os.path.join(HERE, "pack", "model.safetensors"), {"format": "pt", "qpack.version": "1"})
    config = {"architectures": ["LlamaForCausalLM"], "model_type": "llama", "vocab_size": 16,
              "hidden_size": 8, "intermediate_size": 16, "num_hidden_layers": 1,
              "num_attention_heads": 2, "num_key_value_heads": 2}
    with open(os.path.join(HERE, "plain", "config.json"), "w") as out:
        json.dump(config, out, indent=2, sort_keys=True)
        out.write("\n")


if __name__ == "__main__":
    main()
