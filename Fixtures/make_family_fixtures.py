#!/usr/bin/env python3
"""Writes Fixtures/families/: one tiny random checkpoint per decoder family, made with
transformers (torch CPU, F32, eager attention), and the logits transformers computes for it.

Each folder holds config.json (transformers' own, with `rope_parameters`) and model.safetensors
(every parameter drawn at random, so norms, biases and q/k norms all matter). Sliding windows are
4 positions (Qwen2's on its second layer only, from max_window_layers) and the token sequence 12, so windowed layers mask keys that full layers see.
Gemma 3 is also written with the legacy keys of released checkpoints (`rope_theta`,
`rope_local_base_freq`, `rope_scaling`, `sliding_window_pattern`) as gemma3-legacy.config.json,
which must give the same logits, and without rope scaling as gemma3-numpy.config.json, whose
logits come from the independent numpy reference np_llm.py (../shared/models/tools).
phi3/ stores q, k and v fused as `qkv_proj` and gate and up as `gate_up_proj`, with longrope
scaling; its trained context (original_max_position_embeddings) is 2, so the 12 tokens use the long
factors and the attention factor sqrt(1 + ln 32 / ln 2); phi3-short.config.json sets it to 16 so
they use the short factors.
gemma3/ is the same text model inside the `gemma3` multimodal wrapper, as released checkpoints
of 4B and more are saved.
expected/<case>.json holds, per case: the folder, the config file, the token ids and the logits
(7 significant digits, far below the tests' 1e-4 tolerance).
byte-tokenizer.json is a byte-level BPE without merges (ids 0-255, one per byte), so that tool
tests can put a tokenizer beside any of these checkpoints.
Run from the repository root: python3 Fixtures/make_family_fixtures.py
"""
import json
import os
import sys

import numpy as np
import torch
import transformers

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "families")
sys.path.insert(0, HERE)
from fixture_safetensors import save_file  # noqa: E402

SIZES = dict(vocab_size=256, hidden_size=32, intermediate_size=48, num_hidden_layers=2,
             num_attention_heads=4, num_key_value_heads=2, head_dim=8, max_position_embeddings=64,
             rms_norm_eps=1e-6)

# name: (config class, model class, config changes, norms stored as w in (1 + w))
FAMILIES = {
    "qwen3": ("Qwen3Config", "Qwen3ForCausalLM", dict(tie_word_embeddings=False), False),
    "gemma3_text": ("Gemma3TextConfig", "Gemma3ForCausalLM", dict(
        sliding_window=4, query_pre_attn_scalar=16,
        layer_types=["sliding_attention", "full_attention"],
        rope_parameters={"sliding_attention": {"rope_type": "default", "rope_theta": 10000.0},
                         "full_attention": {"rope_type": "linear", "factor": 8.0, "rope_theta": 1000000.0}}),
        True),
    "gemma2": ("Gemma2Config", "Gemma2ForCausalLM", dict(
        sliding_window=4, query_pre_attn_scalar=16, attn_logit_softcapping=3.0, final_logit_softcapping=4.0),
        True),
    "gemma": ("GemmaConfig", "GemmaForCausalLM", dict(), True),
    "mistral": ("MistralConfig", "MistralForCausalLM", dict(sliding_window=4, tie_word_embeddings=False), False),
    "llama3": ("LlamaConfig", "LlamaForCausalLM", dict(
        tie_word_embeddings=False,
        rope_parameters={"rope_type": "llama3", "rope_theta": 500000.0, "factor": 8.0, "low_freq_factor": 1.0,
                         "high_freq_factor": 4.0, "original_max_position_embeddings": 16}), False),
    "qwen2": ("Qwen2Config", "Qwen2ForCausalLM", dict(
        tie_word_embeddings=True, use_sliding_window=True, sliding_window=4, max_window_layers=1), False),
    "smollm3": ("SmolLM3Config", "SmolLM3ForCausalLM", dict(no_rope_layers=[1, 0], pad_token_id=0, bos_token_id=1, eos_token_id=2), False),
    "phi3": ("Phi3Config", "Phi3ForCausalLM", dict(
        pad_token_id=0, bos_token_id=1, eos_token_id=2, tie_word_embeddings=False, original_max_position_embeddings=2,
        rope_parameters={"rope_type": "longrope", "rope_theta": 10000.0, "short_factor": [1.0, 1.3, 2.1, 3.7],
                         "long_factor": [1.5, 2.5, 4.0, 9.0], "original_max_position_embeddings": 2}), False),
}


def randomize(model, offset_norms, generator):
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            noise = torch.randn(parameter.shape, generator=generator) * 0.3
            if name.endswith("norm.weight") and not offset_norms:
                noise += 1
            parameter.copy_(noise)


def build(name, seed):
    config_class, model_class, changes, offset_norms = FAMILIES[name]
    config = getattr(transformers, config_class)(**SIZES, **changes)
    config.architectures = [model_class]
    config.dtype = "float32"
    model = getattr(transformers, model_class)._from_config(config, attn_implementation="eager")
    model.eval()
    randomize(model, offset_norms, torch.Generator().manual_seed(seed))
    folder = os.path.join(OUT, name)
    os.makedirs(folder, exist_ok=True)
    tensors = {k: v.detach().numpy().astype(np.float32) for k, v in model.state_dict().items()}
    if config.tie_word_embeddings:
        tensors.pop("lm_head.weight", None)
    save_file(tensors, os.path.join(folder, "model.safetensors"))
    with open(os.path.join(folder, "config.json"), "w") as f:
        f.write(config.to_json_string(use_diff=False))
    return model, folder


def build_gemma3_wrapper(seed):
    """Gemma 3 as its multimodal wrapper saves it: the text model under `model.language_model.`
    beside a tiny SigLIP tower, the config's text_config without a dtype of its own."""
    _, _, changes, _ = FAMILIES["gemma3_text"]
    text = transformers.Gemma3TextConfig(**SIZES, **changes)
    vision = transformers.SiglipVisionConfig(
        hidden_size=16, intermediate_size=32, num_hidden_layers=1, num_attention_heads=2, image_size=28,
        patch_size=14)
    config = transformers.Gemma3Config(
        text_config=text.to_dict(), vision_config=vision.to_dict(), mm_tokens_per_image=4, image_token_index=255,
        boi_token_index=253, eoi_token_index=254)
    config.architectures = ["Gemma3ForConditionalGeneration"]
    config.dtype = "float32"
    model = transformers.Gemma3ForConditionalGeneration._from_config(config, attn_implementation="eager")
    model.eval()
    randomize(model, True, torch.Generator().manual_seed(seed))
    folder = os.path.join(OUT, "gemma3")
    os.makedirs(folder, exist_ok=True)
    tensors = {k: v.detach().numpy().astype(np.float32) for k, v in model.state_dict().items()}
    tensors.pop("lm_head.weight", None)
    save_file(tensors, os.path.join(folder, "model.safetensors"))
    with open(os.path.join(folder, "config.json"), "w") as f:
        f.write(config.to_json_string(use_diff=False))
    return model, folder


def logits(model, ids):
    with torch.no_grad():
        return model(torch.tensor([ids])).logits[0].numpy().astype(np.float32)


def case(name, folder, config, model, rng):
    ids = [int(i) for i in rng.integers(0, SIZES["vocab_size"], size=12)]
    return {"name": name, "folder": os.path.relpath(folder, OUT), "config": config,
            "tokens": ids, "logits": rounded(logits(model, ids))}


def rounded(values):
    return [float(f"{v:.7g}") for v in np.asarray(values, dtype=np.float32).reshape(-1)]


def legacy_gemma3(folder):
    """Gemma 3's config as released checkpoints spell it, before `rope_parameters`."""
    config = json.load(open(os.path.join(folder, "config.json")))
    del config["rope_parameters"], config["layer_types"]
    config.update(rope_theta=1000000.0, rope_local_base_freq=10000.0, sliding_window_pattern=2,
                  rope_scaling={"rope_type": "linear", "factor": 8.0})
    path = os.path.join(OUT, "gemma3-legacy.config.json")
    json.dump(config, open(path, "w"), indent=2)
    return os.path.relpath(path, OUT)


def numpy_gemma3(folder, tokens):
    """The Gemma 3 checkpoint under a config np_llm.py reads (legacy keys, no rope scaling)."""
    sys.path.insert(0, os.path.join(HERE, "..", "..", "shared", "models", "tools"))
    sys.path.insert(0, "/work/shared/models/tools")
    import np_llm
    config = json.load(open(os.path.join(folder, "config.json")))
    del config["rope_parameters"]
    config.update(rope_theta=1000000.0, rope_local_base_freq=10000.0)
    path = os.path.join(OUT, "gemma3-numpy.config.json")
    json.dump(config, open(path, "w"), indent=2)
    model = np_llm.Model(folder)
    model.cfg = config
    values = model.forward(tokens).astype(np.float32)
    return os.path.relpath(path, OUT), rounded(values)


def byte_tokenizer():
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    bytes_in_order = [chr(b) for b in range(33, 127)] + [chr(b) for b in range(161, 173)] + \
        [chr(b) for b in range(174, 256)]
    others = [b for b in range(256) if chr(b) not in bytes_in_order]
    alphabet = bytes_in_order + [chr(256 + n) for n in range(len(others))]
    assert sorted(alphabet) == sorted(pre_tokenizers.ByteLevel.alphabet())
    tokenizer = Tokenizer(models.BPE(vocab={c: i for i, c in enumerate(alphabet)}, merges=[]))
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    tokenizer.save(os.path.join(OUT, "byte-tokenizer.json"))


def exact_gelu_gemma(model, folder):
    """The Gemma checkpoint under `hidden_act: gelu`, as released Gemma configs say (transformers runs it as GELU-tanh)."""
    config = json.load(open(os.path.join(folder, "config.json")))
    config["hidden_act"] = "gelu"
    path = os.path.join(OUT, "gemma-gelu.config.json")
    json.dump(config, open(path, "w"), indent=2)
    variant = transformers.GemmaForCausalLM._from_config(
        transformers.GemmaConfig(**{k: v for k, v in config.items() if k != "transformers_version"}),
        attn_implementation="eager")
    variant.load_state_dict(model.state_dict())
    variant.eval()
    return os.path.relpath(path, OUT), variant


def short_phi3(folder, tokens):
    """phi3/ with a trained context of 16, so that 12 tokens rotate with the short factors."""
    with open(os.path.join(folder, "config.json")) as f:
        raw = json.load(f)
    raw["original_max_position_embeddings"] = 16
    raw["rope_parameters"]["original_max_position_embeddings"] = 16
    name = "phi3-short.config.json"
    with open(os.path.join(OUT, name), "w") as f:
        json.dump(raw, f, indent=2, sort_keys=True)
    config = transformers.Phi3Config.from_dict(raw)
    model = transformers.Phi3ForCausalLM._from_config(config, attn_implementation="eager")
    model.eval()
    model.load_state_dict(transformers.Phi3ForCausalLM.from_pretrained(folder).state_dict())
    return name, rounded(logits(model, tokens))


def main():
    torch.manual_seed(0)
    rng = np.random.default_rng(20)
    cases = []
    for index, name in enumerate(FAMILIES):
        if name == "phi3":
            continue
        model, folder = build(name, seed=100 + index)
        entry = case(name, folder, os.path.join(name, "config.json"), model, rng)
        cases.append(entry)
        if name == "gemma3_text":
            cases.append(dict(entry, name="gemma3-legacy", config=legacy_gemma3(folder)))
            config, values = numpy_gemma3(folder, entry["tokens"])
            cases.append(dict(entry, name="gemma3-numpy", config=config, logits=values))
        if name == "gemma":
            config, variant = exact_gelu_gemma(model, folder)
            values = logits(variant, entry["tokens"])
            cases.append(dict(entry, name="gemma-gelu", config=config, logits=rounded(values)))
    model, folder = build_gemma3_wrapper(seed=200)
    cases.append(case("gemma3", folder, os.path.join("gemma3", "config.json"), model, rng))
    model, folder = build("phi3", seed=300)
    entry = case("phi3", folder, os.path.join("phi3", "config.json"), model, rng)
    cases.append(entry)
    config, values = short_phi3(folder, entry["tokens"])
    cases.append(dict(entry, name="phi3-short", config=config, logits=values))
    byte_tokenizer()
    folder = os.path.join(OUT, "expected")
    os.makedirs(folder, exist_ok=True)
    for entry in cases:
        with open(os.path.join(folder, entry["name"] + ".json"), "w") as f:
            json.dump(entry, f)
    print("wrote", OUT)


if __name__ == "__main__":
    main()
