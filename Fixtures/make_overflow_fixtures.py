"""Small checkpoints whose finite weights overflow F16 scales, for qconvert's scale dtype rule.

Writes Fixtures/overflow/<case>/model.safetensors:
- large-f32: an F32 weight holding 7e4 and 1e6 (an F16 bias cannot hold them) beside an
  ordinary one; a pack must store the large one's scales in F32 and dequantize it finitely.
- f16-max: an F16 weight whose rows run up to 65504, where F16 rounding of a symmetric 4-bit
  scale (65504 / 7 -> 9360) overflows once multiplied by code 7 (65520 is F16 infinity).
- large-odd-rows: an F32 weight of 7e4 with rows of 40 elements, which GGUF stores as F16
  (llama-quantize's fallback for rows that are not whole blocks), with a tiny Llama config.json.
Run from the repository root: python3 Fixtures/make_overflow_fixtures.py
"""

import json
import os

import numpy as np

from fixture_safetensors import save_file

HERE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "overflow")


def main():
    rng = np.random.default_rng(11)

    large = rng.standard_normal((4, 64)).astype(np.float32)
    large[1, 3] = 7e4
    large[2, 40] = 1e6
    large[3, 0] = -1e6
    cases = {
        "large-f32": {
            "model.layers.0.mlp.up_proj.weight": large,
            "model.layers.0.mlp.gate_proj.weight": rng.standard_normal((4, 64)).astype(np.float32),
        },
    }

    ramp = np.tile(np.linspace(0, 65504, 64, dtype=np.float32), (4, 1))
    ramp[:, -1] = 65504
    cases["f16-max"] = {"model.layers.0.mlp.down_proj.weight": ramp.astype(np.float16)}

    odd = rng.standard_normal((8, 40)).astype(np.float32)
    odd[5, 7] = 7e4
    cases["large-odd-rows"] = {
        "model.embed_tokens.weight": rng.standard_normal((16, 8)).astype(np.float32),
        "model.layers.0.mlp.up_proj.weight": odd,
    }

    for name, tensors in cases.items():
        folder = os.path.join(HERE, name)
        os.makedirs(folder, exist_ok=True)
        save_file(tensors, os.path.join(folder, "model.safetensors"))

    config = {
        "architectures": ["LlamaForCausalLM"], "model_type": "llama", "vocab_size": 16,
        "hidden_size": 8, "intermediate_size": 40, "num_hidden_layers": 1,
        "num_attention_heads": 2, "num_key_value_heads": 2, "max_position_embeddings": 64,
        "rms_norm_eps": 1e-5, "rope_theta": 10000.0, "tie_word_embeddings": True,
    }
    with open(os.path.join(HERE, "large-odd-rows", "config.json"), "w") as out:
        json.dump(config, out, indent=2, sort_keys=True)
        out.write("\n")


if __name__ == "__main__":
    main()
