"""Tiny models whose config.json the engine would reject, beside the malformed corpus.

Writes Fixtures/malformed-configs/<case>/{config.json,model.safetensors} and
Fixtures/malformed-configs/expected.tsv (case, the key, the message after the key). Each model
is a two-layer Llama of hidden size 8 (or a LLaVA whose language model is one); the config
breaks one rule `ModelConfig.validate` checks. `valid` breaks none.
Run from the repository root: python3 Fixtures/make_malformed_config_fixtures.py
"""

import json
import os

import numpy as np

from fixture_safetensors import save_file

HERE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "malformed-configs")

LLAMA = {"architectures": ["LlamaForCausalLM"], "model_type": "llama", "vocab_size": 16,
         "hidden_size": 8, "intermediate_size": 16, "num_hidden_layers": 2,
         "num_attention_heads": 2, "num_key_value_heads": 2, "rms_norm_eps": 1e-5}

# case: (config changes, key, message after the key, llava?)
CASES = {
    "valid": ({}, "", "", False),
    "negative-layers": ({"num_hidden_layers": -2}, "num_hidden_layers", "is -2, not positive", False),
    "zero-kv-heads": ({"num_key_value_heads": 0}, "num_key_value_heads", "is 0, not positive", False),
    "zero-vocab": ({"vocab_size": 0}, "vocab_size", "is 0, not positive", False),
    "heads-not-dividing-hidden": ({"num_attention_heads": 3, "num_key_value_heads": 1}, "num_attention_heads",
                                  "is 3, which does not divide hidden_size 8", False),
    "kv-not-dividing-heads": ({"num_attention_heads": 4, "num_key_value_heads": 3}, "num_key_value_heads",
                              "is 3, which does not divide num_attention_heads 4", False),
    "layers-not-in-weights": ({"num_hidden_layers": 3}, "num_hidden_layers",
                              "is 3, but the weights hold 2 layers", False),
    "text-config-zero-hidden": ({"hidden_size": 0}, "text_config.hidden_size", "is 0, not positive", True),
}


def llama_tensors(rng, prefix=""):
    tensors = {prefix + "model.embed_tokens.weight": rng.standard_normal((16, 8)),
               prefix + "model.norm.weight": np.ones(8)}
    for layer in range(2):
        p = f"{prefix}model.layers.{layer}."
        tensors[p + "self_attn.q_proj.weight"] = rng.standard_normal((8, 8))
        tensors[p + "mlp.up_proj.weight"] = rng.standard_normal((16, 8))
        tensors[p + "input_layernorm.weight"] = np.ones(8)
    return tensors


def main():
    rng = np.random.default_rng(3)
    lines = ["case\tkey\tmessage"]
    for name, (changes, key, message, llava) in CASES.items():
        folder = os.path.join(HERE, name)
        os.makedirs(folder, exist_ok=True)
        text = dict(LLAMA, **changes)
        if llava:
            config = {"architectures": ["LlavaForConditionalGeneration"], "model_type": "llava",
                      "text_config": text,
                      "vision_config": {"model_type": "clip_vision_model", "hidden_size": 8,
                                        "num_hidden_layers": 1, "num_attention_heads": 2}}
            tensors = llama_tensors(rng, "language_model.")
            tensors["vision_tower.vision_model.encoder.layers.0.mlp.fc1.weight"] = rng.standard_normal((16, 8))
        else:
            config = text
            tensors = llama_tensors(rng)
        with open(os.path.join(folder, "config.json"), "w") as out:
            json.dump(config, out, indent=2, sort_keys=True)
            out.write("\n")
        save_file(tensors, os.path.join(folder, "model.safetensors"), dtype="<f4")
        lines.append(f"{name}\t{key}\t{message}")
    with open(os.path.join(HERE, "expected.tsv"), "w") as out:
        out.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
