#!/usr/bin/env python3
"""Fixtures for the image loaders, the preprocessor and the vision encoders.

images/: two PNG and two JPEG files of a few KB, a truncated and a garbled JPEG, and
  images/expected.safetensors with PIL's decoded pixels ('<name>.rgb', [H, W, 3]) and the
  pixel tensors of two Hugging Face-style preprocessing recipes ('<name>.clip', '<name>.dino').
vision/: a tiny random DINOv2 and a tiny random CLIP vision tower (safetensors + config.json),
  and vision/expected.safetensors with a pixel tensor per model and every hidden state of a
  float64 numpy forward pass; vision/tiny-llava-expected.safetensors with the image features of
  Fixtures/tiny-llava for a random pixel tensor.

usage: python3 Fixtures/make_vision_fixtures.py   (needs numpy, safetensors, pillow)
"""
import io
import json
import os
from math import erf

import numpy as np
from PIL import Image
from safetensors.numpy import load_file, save_file

HERE = os.path.dirname(os.path.abspath(__file__))
IMAGES = os.path.join(HERE, "images")
VISION = os.path.join(HERE, "vision")

CLIP_MEAN, CLIP_STD = [0.48145466, 0.4578275, 0.40821073], [0.26862954, 0.26130258, 0.27577711]
DINO_MEAN, DINO_STD = [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]


# ---------------------------------------------------------------- images

def picture(rng, h, w, mode):
    """A smooth gradient with noise, so resampling and JPEG have something to do."""
    y, x = np.mgrid[0:h, 0:w]
    base = np.stack([x * 255 / w, y * 255 / h, (x + y) * 127 / (h + w) + 60], -1)
    img = np.clip(base + rng.normal(0, 25, base.shape), 0, 255).astype(np.uint8)
    if mode == "RGBA":
        alpha = rng.integers(0, 256, (h, w, 1), dtype=np.uint8)
        return Image.fromarray(np.concatenate([img, alpha], -1), "RGBA")
    if mode == "L":
        return Image.fromarray(img[..., 0], "L")
    return Image.fromarray(img, "RGB")


def hf_preprocess(img, shortest_edge, crop, resample, mean, std):
    """What CLIPImageProcessor/BitImageProcessor do: PIL resize, crop, rescale, normalise."""
    w, h = img.size
    short, long = (w, h) if w <= h else (h, w)
    new_long = int(shortest_edge * long / short)
    new_h, new_w = (new_long, shortest_edge) if w <= h else (shortest_edge, new_long)
    a = np.array(img.resize((new_w, new_h), resample=resample, reducing_gap=None))
    top, left = (new_h - crop) // 2, (new_w - crop) // 2
    a = a[top:top + crop, left:left + crop]
    a = (a.astype(np.float64) * (1 / 255)).astype(np.float32)
    a = (a - np.array(mean, np.float32)) / np.array(std, np.float32)
    return np.ascontiguousarray(a.transpose(2, 0, 1))


def make_images():
    os.makedirs(IMAGES, exist_ok=True)
    rng = np.random.default_rng(11)
    files = {
        "rgb.png": (picture(rng, 29, 37, "RGB"), "PNG", {}),
        "alpha.png": (picture(rng, 24, 20, "RGBA"), "PNG", {}),
        "colour.jpg": (picture(rng, 29, 37, "RGB"), "JPEG", {"quality": 90}),
        "grey.jpg": (picture(rng, 20, 16, "L"), "JPEG", {"quality": 85}),
    }
    expected = {}
    for name, (img, fmt, opts) in files.items():
        path = os.path.join(IMAGES, name)
        img.save(path, fmt, **opts)
        decoded = Image.open(path).convert("RGB")
        key = name.split(".")[0]
        expected[f"{key}.rgb"] = np.array(decoded).astype(np.float32)
        expected[f"{key}.clip"] = hf_preprocess(decoded, 24, 20, Image.BICUBIC, CLIP_MEAN, CLIP_STD)
        expected[f"{key}.dino"] = hf_preprocess(decoded, 18, 16, Image.BILINEAR, DINO_MEAN, DINO_STD)
    data = open(os.path.join(IMAGES, "colour.jpg"), "rb").read()
    open(os.path.join(IMAGES, "truncated.jpg"), "wb").write(data[: len(data) // 2])
    # A valid start, then a frame header that declares 0 components: libjpeg's fatal error path.
    open(os.path.join(IMAGES, "garbled.jpg"), "wb").write(
        bytes([0xFF, 0xD8, 0xFF, 0xC0, 0x00, 0x08, 0x08, 0x00, 0x10, 0x00, 0x10, 0x00, 0xFF, 0xD9]))
    save_file(expected, os.path.join(IMAGES, "expected.safetensors"))


# ---------------------------------------------------------------- encoders (float64 numpy)

def layer_norm(x, w, b, eps):
    mu = x.mean(-1, keepdims=True)
    var = ((x - mu) ** 2).mean(-1, keepdims=True)
    return (x - mu) / np.sqrt(var + eps) * w + b


def gelu(x):
    return 0.5 * x * (1 + np.vectorize(erf)(x / np.sqrt(2)))


def quick_gelu(x):
    return x / (1 + np.exp(-1.702 * x))


def attention(x, W, p, names, heads):
    q_name, k_name, v_name, o_name = names
    T, D = x.shape
    hd = D // heads
    q, k, v = [(x @ W[p + n + ".weight"].T + W[p + n + ".bias"]).reshape(T, heads, hd).transpose(1, 0, 2)
               for n in (q_name, k_name, v_name)]
    s = q @ k.transpose(0, 2, 1) / np.sqrt(hd)
    s -= s.max(-1, keepdims=True)
    a = np.exp(s)
    a /= a.sum(-1, keepdims=True)
    o = (a @ v).transpose(1, 0, 2).reshape(T, D)
    return o @ W[p + o_name + ".weight"].T + W[p + o_name + ".bias"]


def patchify(pixels, weight, bias):
    C, H, W_ = pixels.shape
    D, _, P, _ = weight.shape
    gh, gw = H // P, W_ // P
    patches = pixels[:, : gh * P, : gw * P].reshape(C, gh, P, gw, P).transpose(1, 3, 0, 2, 4).reshape(gh * gw, -1)
    out = patches @ weight.reshape(D, -1).T
    return (out + bias if bias is not None else out), gh, gw


def torch_bicubic(grid, out_h, out_w):
    """torch.nn.functional.interpolate(mode='bicubic', align_corners=False) on [C, H, W]."""
    A = -0.75

    def weights(t):
        def c1(x): return ((A + 2) * x - (A + 3)) * x * x + 1
        def c2(x): return ((A * x - 5 * A) * x + 8 * A) * x - 4 * A
        return [c2(t + 1), c1(t), c1(1 - t), c2(2 - t)]

    def axis(n_in, n_out):
        m = np.zeros((n_out, n_in))
        scale = n_in / n_out
        for o in range(n_out):
            src = scale * (o + 0.5) - 0.5
            i0 = int(np.floor(src))
            for j, w in enumerate(weights(src - i0)):
                m[o, min(max(i0 - 1 + j, 0), n_in - 1)] += w
        return m

    mh, mw = axis(grid.shape[1], out_h), axis(grid.shape[2], out_w)
    return np.einsum("oh,chw,pw->cop", mh, grid, mw)


def dinov2_forward(W, cfg, pixels):
    D, P, heads, eps = cfg["hidden_size"], cfg["patch_size"], cfg["num_attention_heads"], cfg["layer_norm_eps"]
    x, gh, gw = patchify(pixels, W["embeddings.patch_embeddings.projection.weight"],
                         W["embeddings.patch_embeddings.projection.bias"])
    pos = W["embeddings.position_embeddings"][0]
    n = int(round((pos.shape[0] - 1) ** 0.5))
    patch_pos = pos[1:]
    if (gh, gw) != (n, n):
        grid = patch_pos.reshape(n, n, D).transpose(2, 0, 1)
        patch_pos = torch_bicubic(grid, gh, gw).transpose(1, 2, 0).reshape(gh * gw, D)
    x = np.concatenate([W["embeddings.cls_token"][0], x], 0) + np.concatenate([pos[:1], patch_pos], 0)
    hidden = [x]
    for i in range(cfg["num_hidden_layers"]):
        p = f"encoder.layer.{i}."
        h = layer_norm(x, W[p + "norm1.weight"], W[p + "norm1.bias"], eps)
        h = attention(h, W, p, ("attention.attention.query", "attention.attention.key",
                                "attention.attention.value", "attention.output.dense"), heads)
        x = x + h * W[p + "layer_scale1.lambda1"]
        h = layer_norm(x, W[p + "norm2.weight"], W[p + "norm2.bias"], eps)
        h = gelu(h @ W[p + "mlp.fc1.weight"].T + W[p + "mlp.fc1.bias"]) @ W[p + "mlp.fc2.weight"].T + W[p + "mlp.fc2.bias"]
        x = x + h * W[p + "layer_scale2.lambda1"]
        hidden.append(x)
    return np.stack(hidden), layer_norm(x, W["layernorm.weight"], W["layernorm.bias"], eps)


def clip_forward(W, cfg, pixels, v="vision_model."):
    heads, eps = cfg["num_attention_heads"], cfg.get("layer_norm_eps", 1e-5)
    act = {"quick_gelu": quick_gelu, "gelu": gelu}[cfg.get("hidden_act", "quick_gelu")]
    x, _, _ = patchify(pixels, W[v + "embeddings.patch_embedding.weight"], None)
    x = np.concatenate([W[v + "embeddings.class_embedding"][None], x], 0) + W[v + "embeddings.position_embedding.weight"]
    x = layer_norm(x, W[v + "pre_layrnorm.weight"], W[v + "pre_layrnorm.bias"], eps)
    hidden = [x]
    for i in range(cfg["num_hidden_layers"]):
        p = f"{v}encoder.layers.{i}."
        h = layer_norm(x, W[p + "layer_norm1.weight"], W[p + "layer_norm1.bias"], eps)
        x = x + attention(h, W, p, ("self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.out_proj"), heads)
        h = layer_norm(x, W[p + "layer_norm2.weight"], W[p + "layer_norm2.bias"], eps)
        x = x + act(h @ W[p + "mlp.fc1.weight"].T + W[p + "mlp.fc1.bias"]) @ W[p + "mlp.fc2.weight"].T + W[p + "mlp.fc2.bias"]
        hidden.append(x)
    return np.stack(hidden), x


def tiny_dinov2(rng):
    D, L, inter, P, size = 32, 2, 64, 4, 16
    cfg = {"architectures": ["Dinov2Model"], "model_type": "dinov2", "hidden_size": D, "num_hidden_layers": L,
           "num_attention_heads": 4, "mlp_ratio": inter // D, "patch_size": P, "image_size": size,
           "num_channels": 3, "hidden_act": "gelu", "layer_norm_eps": 1e-6, "layerscale_value": 1.0,
           "qkv_bias": True, "use_swiglu_ffn": False}
    def w(*shape, s=0.2): return (rng.standard_normal(shape) * s).astype(np.float32)
    W = {"embeddings.cls_token": w(1, 1, D), "embeddings.mask_token": w(1, D),
         "embeddings.position_embeddings": w(1, (size // P) ** 2 + 1, D),
         "embeddings.patch_embeddings.projection.weight": w(D, 3, P, P),
         "embeddings.patch_embeddings.projection.bias": w(D),
         "layernorm.weight": 1 + w(D), "layernorm.bias": w(D)}
    for i in range(L):
        p = f"encoder.layer.{i}."
        for n in ("query", "key", "value"):
            W[p + f"attention.attention.{n}.weight"], W[p + f"attention.attention.{n}.bias"] = w(D, D), w(D)
        W[p + "attention.output.dense.weight"], W[p + "attention.output.dense.bias"] = w(D, D), w(D)
        for n in ("norm1", "norm2"):
            W[p + n + ".weight"], W[p + n + ".bias"] = 1 + w(D), w(D)
        W[p + "layer_scale1.lambda1"], W[p + "layer_scale2.lambda1"] = 1 + w(D), 1 + w(D)
        W[p + "mlp.fc1.weight"], W[p + "mlp.fc1.bias"] = w(inter, D), w(inter)
        W[p + "mlp.fc2.weight"], W[p + "mlp.fc2.bias"] = w(D, inter), w(D)
    return W, cfg


def tiny_clip(rng):
    D, L, inter, P, size = 32, 2, 64, 4, 16
    cfg = {"architectures": ["CLIPVisionModel"], "model_type": "clip_vision_model", "hidden_size": D,
           "intermediate_size": inter, "num_hidden_layers": L, "num_attention_heads": 4, "image_size": size,
           "patch_size": P, "hidden_act": "quick_gelu", "layer_norm_eps": 1e-5}
    def w(*shape, s=0.2): return (rng.standard_normal(shape) * s).astype(np.float32)
    v = "vision_model."
    W = {v + "embeddings.class_embedding": w(D), v + "embeddings.patch_embedding.weight": w(D, 3, P, P),
         v + "embeddings.position_embedding.weight": w((size // P) ** 2 + 1, D),
         v + "pre_layrnorm.weight": 1 + w(D), v + "pre_layrnorm.bias": w(D),
         v + "post_layernorm.weight": 1 + w(D), v + "post_layernorm.bias": w(D)}
    for i in range(L):
        p = f"{v}encoder.layers.{i}."
        for n in ("q_proj", "k_proj", "v_proj", "out_proj"):
            W[p + f"self_attn.{n}.weight"], W[p + f"self_attn.{n}.bias"] = w(D, D), w(D)
        for n in ("layer_norm1", "layer_norm2"):
            W[p + n + ".weight"], W[p + n + ".bias"] = 1 + w(D), w(D)
        W[p + "mlp.fc1.weight"], W[p + "mlp.fc1.bias"] = w(inter, D), w(inter)
        W[p + "mlp.fc2.weight"], W[p + "mlp.fc2.bias"] = w(D, inter), w(D)
    return W, cfg


def write_model(name, W, cfg):
    folder = os.path.join(VISION, name)
    os.makedirs(folder, exist_ok=True)
    save_file(W, os.path.join(folder, "model.safetensors"))
    with open(os.path.join(folder, "config.json"), "w") as f:
        json.dump(cfg, f, indent=2)
        f.write("\n")


def make_models():
    rng = np.random.default_rng(5)
    f64 = lambda W: {k: v.astype(np.float64) for k, v in W.items()}
    expected = {}
    W, cfg = tiny_dinov2(rng)
    write_model("tiny-dinov2", W, cfg)
    for key, (h, w) in {"dinov2": (16, 16), "dinov2.interpolated": (20, 24)}.items():
        pixels = rng.standard_normal((3, h, w)).astype(np.float32)
        hidden, last = dinov2_forward(f64(W), cfg, pixels.astype(np.float64))
        expected[key + ".pixels"], expected[key + ".hidden"], expected[key + ".last"] = pixels, hidden, last
    W, cfg = tiny_clip(rng)
    write_model("tiny-clip", W, cfg)
    pixels = rng.standard_normal((3, 16, 16)).astype(np.float32)
    hidden, last = clip_forward(f64(W), cfg, pixels.astype(np.float64))
    expected["clip.pixels"], expected["clip.hidden"], expected["clip.last"] = pixels, hidden, last
    save_file({k: np.ascontiguousarray(v.astype(np.float32)) for k, v in expected.items()},
              os.path.join(VISION, "expected.safetensors"))

    # tiny-llava: CLIP tower, hidden state vision_feature_layer, drop CLS, projector.
    folder = os.path.join(HERE, "tiny-llava")
    cfg = json.load(open(os.path.join(folder, "config.json")))
    W = f64(load_file(os.path.join(folder, "model.safetensors")))
    vc = dict(cfg["vision_config"], hidden_act="quick_gelu", layer_norm_eps=1e-5)
    pixels = rng.standard_normal((3, vc["image_size"], vc["image_size"])).astype(np.float32)
    hidden, _ = clip_forward(W, vc, pixels.astype(np.float64), v="vision_tower.vision_model.")
    selected = hidden[cfg["vision_feature_layer"]][1:]
    h = gelu(selected @ W["multi_modal_projector.linear_1.weight"].T + W["multi_modal_projector.linear_1.bias"])
    features = h @ W["multi_modal_projector.linear_2.weight"].T + W["multi_modal_projector.linear_2.bias"]
    save_file({"pixels": pixels, "features": features.astype(np.float32)},
              os.path.join(VISION, "tiny-llava-expected.safetensors"))


if __name__ == "__main__":
    make_images()
    make_models()
