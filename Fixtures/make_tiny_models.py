#!/usr/bin/env python3
"""Writes the small model folders in Fixtures/ that the quick start and the tests run on.

Weights are random (fixed seed) and written with the reference `safetensors` package, so our
readers are tested against an independent writer. Shapes follow the real layouts:
- tiny-llama/: a Llama-family decoder in SmolLM2's naming (tied embeddings), F16.
- tiny-llava/: a LLaVA-layout vision-language model (CLIP-style vision tower, two-layer
  projector, Llama language model), F16.
"""
import json
import os

import numpy as np
from safetensors.numpy import save_file

HERE = os.path.dirname(os.path.abspath(__file__))


def llama_tensors(rng, prefix, hidden, layers, heads, kv_heads, inter, vocab, tied, dtype):
    head_dim = hidden // heads
    t = {}

    def w(*shape):
        return (rng.standard_normal(shape) * 0.05).astype(dtype)

    t[f"{prefix}model.embed_tokens.weight"] = w(vocab, hidden)
    for i in range(layers):
        p = f"{prefix}model.layers.{i}."
        t[p + "self_attn.q_proj.weight"] = w(heads * head_dim, hidden)
        t[p + "self_attn.k_proj.weight"] = w(kv_heads * head_dim, hidden)
        t[p + "self_attn.v_proj.weight"] = w(kv_heads * head_dim, hidden)
        t[p + "self_attn.o_proj.weight"] = w(hidden, heads * head_dim)
        t[p + "mlp.gate_proj.weight"] = w(inter, hidden)
        t[p + "mlp.up_proj.weight"] = w(inter, hidden)
        t[p + "mlp.down_proj.weight"] = w(hidden, inter)
        t[p + "input_layernorm.weight"] = (1 + w(hidden)).astype(dtype)
        t[p + "post_attention_layernorm.weight"] = (1 + w(hidden)).astype(dtype)
    t[f"{prefix}model.norm.weight"] = (1 + w(hidden)).astype(dtype)
    if not tied:
        t[f"{prefix}lm_head.weight"] = w(vocab, hidden)
    return t


def llama_config(hidden, layers, heads, kv_heads, inter, vocab, tied):
    return {
        "architectures": ["LlamaForCausalLM"],
        "model_type": "llama",
        "hidden_size": hidden,
        "intermediate_size": inter,
        "num_hidden_layers": layers,
        "num_attention_heads": heads,
        "num_key_value_heads": kv_heads,
        "head_dim": hidden // heads,
        "hidden_act": "silu",
        "rms_norm_eps": 1e-05,
        "rope_theta": 10000.0,
        "max_position_embeddings": 512,
        "vocab_size": vocab,
        "tie_word_embeddings": tied,
        "torch_dtype": "float16",
    }


def write_folder(name, tensors, config):
    folder = os.path.join(HERE, name)
    os.makedirs(folder, exist_ok=True)
    save_file(tensors, os.path.join(folder, "model.safetensors"), metadata={"format": "pt"})
    with open(os.path.join(folder, "config.json"), "w") as f:
        json.dump(config, f, indent=2)
        f.write("\n")


def tiny_llama():
    rng = np.random.default_rng(20261127)
    args = dict(hidden=64, layers=2, heads=4, kv_heads=2, inter=128, vocab=256, tied=True)
    write_folder("tiny-llama", llama_tensors(rng, "", dtype=np.float16, **args), llama_config(**args))


def tiny_llava():
    rng = np.random.default_rng(7)
    dtype = np.float16
    text = dict(hidden=64, layers=2, heads=4, kv_heads=4, inter=128, vocab=256, tied=False)
    t = llama_tensors(rng, "language_model.", dtype=dtype, **text)
    vh, vlayers, vinter, patch, image = 32, 2, 64, 8, 32

    def w(*shape):
        return (rng.standard_normal(shape) * 0.05).astype(dtype)

    v = "vision_tower.vision_model."
    t[v + "embeddings.patch_embedding.weight"] = w(vh, 3, patch, patch)
    t[v + "embeddings.class_embedding"] = w(vh)
    t[v + "embeddings.position_embedding.weight"] = w((image // patch) ** 2 + 1, vh)
    t[v + "pre_layrnorm.weight"] = w(vh)
    t[v + "pre_layrnorm.bias"] = w(vh)
    for i in range(vlayers):
        p = f"{v}encoder.layers.{i}."
        for proj in ("q_proj", "k_proj", "v_proj", "out_proj"):
            t[p + f"self_attn.{proj}.weight"] = w(vh, vh)
            t[p + f"self_attn.{proj}.bias"] = w(vh)
        t[p + "layer_norm1.weight"] = w(vh)
        t[p + "layer_norm1.bias"] = w(vh)
        t[p + "mlp.fc1.weight"] = w(vinter, vh)
        t[p + "mlp.fc1.bias"] = w(vinter)
        t[p + "mlp.fc2.weight"] = w(vh, vinter)
        t[p + "mlp.fc2.bias"] = w(vh)
        t[p + "layer_norm2.weight"] = w(vh)
        t[p + "layer_norm2.bias"] = w(vh)
    t[v + "post_layernorm.weight"] = w(vh)
    t[v + "post_layernorm.bias"] = w(vh)
    t["multi_modal_projector.linear_1.weight"] = w(text["hidden"], vh)
    t["multi_modal_projector.linear_1.bias"] = w(text["hidden"])
    t["multi_modal_projector.linear_2.weight"] = w(text["hidden"], text["hidden"])
    t["multi_modal_projector.linear_2.bias"] = w(text["hidden"])
    config = {
        "architectures": ["LlavaForConditionalGeneration"],
        "model_type": "llava",
        "image_token_index": 255,
        "projector_hidden_act": "gelu",
        "vision_feature_layer": -2,
        "vision_feature_select_strategy": "default",
        "text_config": llama_config(**text),
        "vision_config": {
            "model_type": "clip_vision_model",
            "hidden_size": vh,
            "intermediate_size": vinter,
            "num_hidden_layers": vlayers,
            "num_attention_heads": 4,
            "image_size": image,
            "patch_size": patch,
        },
        "torch_dtype": "float16",
    }
    write_folder("tiny-llava", t, config)


if __name__ == "__main__":
    tiny_llama()
    tiny_llava()


def write_expected(name):
    """Numpy's view of a fixture, for the end-to-end tests of qinspect."""
    from safetensors import safe_open

    folder = os.path.join(HERE, name)
    tensors = []
    with safe_open(os.path.join(folder, "model.safetensors"), "np") as f:
        for key in f.keys():
            a = f.get_tensor(key)
            x = a.astype(np.float64).ravel()
            tensors.append({
                "name": key, "dtype": {"float16": "F16", "float32": "F32"}[str(a.dtype)],
                "shape": list(a.shape), "min": x.min(), "max": x.max(), "mean": x.mean(),
                "std": x.std(), "absmax": np.abs(x).max(), "zero_fraction": (x == 0).mean(),
            })
    with open(os.path.join(HERE, f"{name}.expected.json"), "w") as out:
        json.dump({"tensors": tensors}, out, indent=1)
        out.write("\n")


if __name__ == "__main__":
    write_expected("tiny-llama")
    write_expected("tiny-llava")


def tiny_chat():
    """A tiny Llama whose vocabulary is the trimmed SmolLM2 tokenizer's, so text runs end to end.

    Expected perplexity and greedy tokens come from the numpy reference `np_llm.py` in
    ../shared/models/tools (it needs the `tokenizers` package).
    """
    import shutil
    import sys

    source = os.path.join(HERE, "tokenizer", "smollm2")
    vocab = len(json.load(open(os.path.join(source, "tokenizer.json")))["model"]["vocab"])
    rng = np.random.default_rng(99)
    args = dict(hidden=64, layers=2, heads=4, kv_heads=2, inter=128, vocab=vocab, tied=True)
    config = llama_config(**args)
    config.update({"bos_token_id": 1, "eos_token_id": 2})
    write_folder("tiny-chat", llama_tensors(rng, "", dtype=np.float16, **args), config)
    folder = os.path.join(HERE, "tiny-chat")
    for name in ("tokenizer.json", "tokenizer_config.json"):
        shutil.copy(os.path.join(source, name), os.path.join(folder, name))
    text = ("The quick brown fox jumps over the lazy dog. In 1969, people walked on the Moon; "
            "they brought back 382 kilograms of rock.\nNumbers like 3.14159 and words like "
            "don't, we'll and it's are split in their own ways. ") * 3
    with open(os.path.join(HERE, "tiny-chat.sample.txt"), "w") as f:
        f.write(text)

    sys.path.insert(0, os.path.join(HERE, "..", "..", "shared", "models", "tools"))
    import np_llm

    model = np_llm.Model(folder, None)
    tok = np_llm.get_tok(folder)
    ids = tok.encode(text, add_special_tokens=False).ids
    ctx, windows = 32, 3
    nll, count = 0.0, 0
    for w in range(windows):
        chunk = ids[w * ctx:(w + 1) * ctx]
        lg = model.forward(chunk[:-1]).astype(np.float64)
        lg -= lg.max(-1, keepdims=True)
        lp = lg - np.log(np.exp(lg).sum(-1, keepdims=True))
        nll -= lp[np.arange(len(chunk) - 1), np.array(chunk[1:])].sum()
        count += len(chunk) - 1
    prompt = tok.encode("The quick brown fox", add_special_tokens=False).ids
    generated = list(prompt)
    for _ in range(8):
        generated.append(int(np.argmax(model.forward(generated)[-1])))
    expected = {"context": ctx, "windows": windows, "scored_tokens": count,
                "perplexity": float(np.exp(nll / count)), "text_tokens": len(ids),
                "prompt": "The quick brown fox", "generated_ids": generated[len(prompt):],
                "completion": tok.decode(generated[len(prompt):])}
    with open(os.path.join(HERE, "tiny-chat.expected.json"), "w") as f:
        json.dump(expected, f, indent=1)
        f.write("\n")


if __name__ == "__main__":
    tiny_chat()
