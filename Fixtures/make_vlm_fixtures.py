#!/usr/bin/env python3
"""Fixtures for the vision-language model: a tiny LLaVA that reads real text.

vlm/tiny-llava-chat/: the CLIP vision tower of Fixtures/tiny-llava (copied), a new random
  projector and a tiny Llama whose vocabulary is the trimmed SmolLM2 tokenizer's
  (Fixtures/tokenizer/smollm2), F16; config.json has `image_token_index: null` like the toy VLM,
  config-image-token.json names an image token instead.
vlm/expected.safetensors: the preprocessed pixels of Fixtures/images/rgb.png (PIL bicubic to
  32x32, CLIP mean/std), the image features, and per case the first 64 logits of every position
  ('<case>.logits_head') and all logits of the last ('<case>.logits_last'), from a float64 numpy
  forward pass (vision tower -> projector -> splice -> decoder).
vlm/expected.json: per case the prompt, its token ids (from the `tokenizers` package), where the
  image rows go, and 6 greedy tokens.

usage: PYTHONPATH=~/.cache/qtoolchain-models/py python3 Fixtures/make_vlm_fixtures.py
  (needs numpy, safetensors, pillow, tokenizers)
"""
import json
import os
import shutil
import sys

import numpy as np
from PIL import Image
from safetensors.numpy import load_file, save_file

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from make_tiny_models import llama_config, llama_tensors  # noqa: E402
from make_vision_fixtures import CLIP_MEAN, CLIP_STD, clip_forward, gelu  # noqa: E402

OUT = os.path.join(HERE, "vlm")
FOLDER = os.path.join(OUT, "tiny-llava-chat")
IMAGE_TOKEN = 3  # an id the prompts below never produce, standing for '<image>'


def build():
    os.makedirs(FOLDER, exist_ok=True)
    source = os.path.join(HERE, "tokenizer", "smollm2")
    vocab = len(json.load(open(os.path.join(source, "tokenizer.json")))["model"]["vocab"])
    rng = np.random.default_rng(4242)
    text = dict(hidden=32, layers=2, heads=4, kv_heads=2, inter=64, vocab=vocab, tied=True)
    t = llama_tensors(rng, "language_model.", dtype=np.float16, **text)
    llava = load_file(os.path.join(HERE, "tiny-llava", "model.safetensors"))
    for name, value in llava.items():
        if name.startswith("vision_tower."):
            t[name] = value
    old = json.load(open(os.path.join(HERE, "tiny-llava", "config.json")))
    vh = old["vision_config"]["hidden_size"]

    def w(*shape, s=0.2):
        return (rng.standard_normal(shape) * s).astype(np.float16)

    t["multi_modal_projector.linear_1.weight"] = w(text["hidden"], vh)
    t["multi_modal_projector.linear_1.bias"] = w(text["hidden"])
    t["multi_modal_projector.linear_2.weight"] = w(text["hidden"], text["hidden"])
    t["multi_modal_projector.linear_2.bias"] = w(text["hidden"])
    text_config = llama_config(**text)
    text_config.update({"bos_token_id": 1, "eos_token_id": 2})
    config = dict(old)
    config.update({"image_token_index": None, "text_config": text_config})
    save_file(t, os.path.join(FOLDER, "model.safetensors"), metadata={"format": "pt"})
    for name, cfg in (("config.json", config), ("config-image-token.json", dict(config, image_token_index=IMAGE_TOKEN))):
        with open(os.path.join(FOLDER, name), "w") as f:
            json.dump(cfg, f, indent=2)
            f.write("\n")
    for name in ("tokenizer.json", "tokenizer_config.json"):
        shutil.copy(os.path.join(source, name), os.path.join(FOLDER, name))
    return config


def rms_norm(x, w, eps):
    return x / np.sqrt((x * x).mean(-1, keepdims=True) + eps) * w


def rope(x, theta):
    T, hd = x.shape[1], x.shape[2]
    inv = 1.0 / theta ** (np.arange(0, hd, 2) / hd)
    ang = np.arange(T)[:, None] * inv[None]
    cos, sin = np.cos(ang), np.sin(ang)
    a, b = x[..., : hd // 2], x[..., hd // 2:]
    return np.concatenate([a * cos - b * sin, b * cos + a * sin], -1)


def decoder_logits(W, c, x):
    """Llama forward from input embeddings x [T, hidden], float64."""
    T = x.shape[0]
    nh, nkv = c["num_attention_heads"], c["num_key_value_heads"]
    hd, eps, p = c["head_dim"], c["rms_norm_eps"], "language_model.model."
    mask = np.triu(np.full((T, T), -np.inf), 1)
    for i in range(c["num_hidden_layers"]):
        q_ = f"{p}layers.{i}."
        h = rms_norm(x, W[q_ + "input_layernorm.weight"], eps)
        q = (h @ W[q_ + "self_attn.q_proj.weight"].T).reshape(T, nh, hd).transpose(1, 0, 2)
        k = (h @ W[q_ + "self_attn.k_proj.weight"].T).reshape(T, nkv, hd).transpose(1, 0, 2)
        v = (h @ W[q_ + "self_attn.v_proj.weight"].T).reshape(T, nkv, hd).transpose(1, 0, 2)
        q, k = rope(q, c["rope_theta"]), rope(k, c["rope_theta"])
        k, v = np.repeat(k, nh // nkv, 0), np.repeat(v, nh // nkv, 0)
        s = q @ k.transpose(0, 2, 1) / np.sqrt(hd) + mask
        s -= s.max(-1, keepdims=True)
        a = np.exp(s)
        a /= a.sum(-1, keepdims=True)
        x = x + (a @ v).transpose(1, 0, 2).reshape(T, nh * hd) @ W[q_ + "self_attn.o_proj.weight"].T
        h = rms_norm(x, W[q_ + "post_attention_layernorm.weight"], eps)
        g = h @ W[q_ + "mlp.gate_proj.weight"].T
        x = x + (g / (1 + np.exp(-g)) * (h @ W[q_ + "mlp.up_proj.weight"].T)) @ W[q_ + "mlp.down_proj.weight"].T
    return rms_norm(x, W[p + "norm.weight"], eps) @ W[p + "embed_tokens.weight"].T


def reference(config):
    from tokenizers import Tokenizer

    W = {k: v.astype(np.float64) for k, v in load_file(os.path.join(FOLDER, "model.safetensors")).items()}
    vc = config["vision_config"]
    size = vc["image_size"]
    img = Image.open(os.path.join(HERE, "images", "rgb.png")).convert("RGB")
    a = np.array(img.resize((size, size), Image.BICUBIC, reducing_gap=None))
    a = (a.astype(np.float64) * (1 / 255)).astype(np.float32)
    pixels = np.ascontiguousarray(((a - np.array(CLIP_MEAN, np.float32)) / np.array(CLIP_STD, np.float32)).transpose(2, 0, 1))
    tower = {k[len("vision_tower."):]: v for k, v in W.items() if k.startswith("vision_tower.")}
    hidden, _ = clip_forward(tower, vc, pixels.astype(np.float64))
    selected = hidden[config["vision_feature_layer"]][1:]  # strategy "default": no class token
    h = gelu(selected @ W["multi_modal_projector.linear_1.weight"].T + W["multi_modal_projector.linear_1.bias"])
    features = h @ W["multi_modal_projector.linear_2.weight"].T + W["multi_modal_projector.linear_2.bias"]
    n = features.shape[0]

    tok = Tokenizer.from_file(os.path.join(FOLDER, "tokenizer.json"))
    emb = W["language_model.model.embed_tokens.weight"]
    tc = config["text_config"]
    cases, tensors = [], {"pixels": pixels, "features": features.astype(np.float32)}
    # (name, prompt, ids with the image marked by IMAGE_TOKEN or prepended)
    specs = [
        ("prepended", "Describe the picture.", None),
        ("image-token", "A photo of", 1),
    ]
    for name, prompt, image_at in specs:
        ids = tok.encode(prompt, add_special_tokens=False).ids
        assert IMAGE_TOKEN not in ids
        if image_at is None:
            prompt_ids, start = ids, 0
        else:
            prompt_ids, start = ids[:image_at] + [IMAGE_TOKEN] + ids[image_at:], image_at
        text_rows = emb[[i for i in prompt_ids if i != IMAGE_TOKEN]]
        x = np.concatenate([text_rows[:start], features, text_rows[start:]])
        logits = decoder_logits(W, tc, x)
        generated = []
        for _ in range(6):
            nxt = int(np.argmax(decoder_logits(W, tc, x)[-1]))
            generated.append(nxt)
            x = np.concatenate([x, emb[nxt][None]])
        # Every position's first 64 logits, and the last position's in full, to stay small.
        tensors[f"{name}.logits_head"] = np.ascontiguousarray(logits[:, :64]).astype(np.float32)
        tensors[f"{name}.logits_last"] = logits[-1].astype(np.float32)
        cases.append({"name": name, "prompt": prompt, "tokens": prompt_ids, "image_start": start,
                      "positions": int(logits.shape[0]), "generated": generated,
                      "completion": tok.decode(generated)})
    save_file(tensors, os.path.join(OUT, "expected.safetensors"))
    with open(os.path.join(OUT, "expected.json"), "w") as f:
        json.dump({"image": "images/rgb.png", "image_token": IMAGE_TOKEN, "feature_rows": n, "cases": cases}, f, indent=1)
        f.write("\n")


if __name__ == "__main__":
    reference(build())
