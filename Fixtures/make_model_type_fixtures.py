"""config.json files naming model types the engine does or does not run, for the tiny-chat weights.

Writes Fixtures/model-types/<case>.config.json and Fixtures/model-types/expected.tsv (case, and
the message after '<config path>: ', empty for a config the engine runs). Each config is
Fixtures/tiny-chat/config.json with its model_type (and the keys that family adds) changed, so
the tiny-chat weights, whose names are Llama's, load under it: the engine must refuse on
model_type alone. Tests copy tiny-chat beside one of these configs.
Run from the repository root: python3 Fixtures/make_model_type_fixtures.py
"""

import json
import os

ROOT = os.path.dirname(os.path.abspath(__file__))
HERE = os.path.join(ROOT, "model-types")
SUPPORTED = ("; the engine runs model_type 'llama', 'mistral', 'qwen2', 'qwen3', 'gemma', 'gemma2', "
             "'gemma3_text', 'smollm3', 'phi3'")

# case: (config changes, message after the path; empty when the engine runs it)
CASES = {
    "gemma": ({"architectures": ["GemmaForCausalLM"], "model_type": "gemma",
               "hidden_act": "gelu_pytorch_tanh", "hidden_activation": "gelu_pytorch_tanh"},
              ""),
    "gemma3_text": ({"architectures": ["Gemma3ForCausalLM"], "model_type": "gemma3_text",
                     "hidden_activation": "gelu_pytorch_tanh", "sliding_window": 512,
                     "query_pre_attn_scalar": 16, "rope_local_base_freq": 10000.0},
                    ""),
    "phi": ({"architectures": ["PhiForCausalLM"], "model_type": "phi"},
            "model_type 'phi' is not supported" + SUPPORTED),
    "invented": ({"architectures": ["InventedForCausalLM"], "model_type": "invented_lm"},
                 "model_type 'invented_lm' is not supported" + SUPPORTED),
    "no-model-type": ({"model_type": None}, "config has no 'model_type'" + SUPPORTED),
    "mistral-windowed": ({"architectures": ["MistralForCausalLM"], "model_type": "mistral",
                          "sliding_window": 128},
                         ""),
    "qwen2-sliding": ({"architectures": ["Qwen2ForCausalLM"], "model_type": "qwen2",
                       "use_sliding_window": True, "sliding_window": 128},
                      ""),
    "mistral": ({"architectures": ["MistralForCausalLM"], "model_type": "mistral",
                 "sliding_window": None}, ""),
}


def main():
    with open(os.path.join(ROOT, "tiny-chat", "config.json")) as f:
        base = json.load(f)
    os.makedirs(HERE, exist_ok=True)
    lines = ["case\tmessage"]
    for name, (changes, message) in CASES.items():
        config = dict(base, **changes)
        if config["model_type"] is None:
            del config["model_type"]
        with open(os.path.join(HERE, f"{name}.config.json"), "w") as out:
            json.dump(config, out, indent=2)
            out.write("\n")
        lines.append(f"{name}\t{message}")
    with open(os.path.join(HERE, "expected.tsv"), "w") as out:
        out.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
