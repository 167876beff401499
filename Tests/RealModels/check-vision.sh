#!/usr/bin/env bash
# Checks the vision engine on real models against independent references:
#  - the DINOv2-small ViT (vit-s-focus-hf) against onnxruntime running the original ONNX file,
#    on our preprocessed pixels (last hidden state: cosine and max error per image);
#  - our 224x224 bicubic preprocessing against PIL + numpy;
#  - the toy VLM's image features (hidden_states[-1], full strategy, projector) against numpy.
# usage: Tests/RealModels/check-vision.sh [MODELS_DIR]
set -euo pipefail
MODELS=${1:-${MODELS_DIR:-$HOME/.cache/qtoolchain-models}}
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
OUT=$(mktemp -d)
trap 'rm -rf "$OUT"' EXIT
IMAGES=$MODELS/images/astronaut.png,$MODELS/images/chelsea.png,$MODELS/images/rocket.jpg,$MODELS/images/coffee.png

cd "$ROOT"
QENGINE_VISION_OUT=$OUT QENGINE_VIT=$MODELS/vit-s-focus-hf QENGINE_VLM=$MODELS/toy-vlm-dinov2s-smollm2 \
  QENGINE_VISION_IMAGES=$IMAGES swift test -c release --filter VisionRealModel 2>&1 | grep -E "ms|passed|failed|error"

PYTHONPATH=$MODELS/py python3 - "$MODELS" "$OUT" "$IMAGES" <<'PY'
import json, os, sys
from math import erf
import numpy as np
import onnx, onnxruntime as ort
from safetensors.numpy import load_file

models, out, images = sys.argv[1], sys.argv[2], sys.argv[3].split(",")
m = onnx.load(os.path.join(models, "vit-s-focus-onnx/vit_s_focus.onnx"))
m.graph.output.append(onnx.helper.make_tensor_value_info("/backbone/layernorm/Add_1_output_0", onnx.TensorProto.FLOAT, None))
sess = ort.InferenceSession(m.SerializeToString(), providers=["CPUExecutionProvider"])

def cosine(a, b): return float((a * b).sum() / np.sqrt((a * a).sum() * (b * b).sum()))

try:
    from PIL import Image
except ImportError:
    Image = None

vlm_dir = os.path.join(models, "toy-vlm-dinov2s-smollm2")
W = {k: v.astype(np.float64) for k, v in load_file(os.path.join(vlm_dir, "model.safetensors")).items()
     if not k.startswith("language_model.")}
cfg = json.load(open(os.path.join(vlm_dir, "config.json")))
vc = cfg["vision_config"]

def ln(x, w, b, eps=1e-6):
    mu = x.mean(-1, keepdims=True); var = ((x - mu) ** 2).mean(-1, keepdims=True)
    return (x - mu) / np.sqrt(var + eps) * w + b

verf = np.vectorize(erf)
def gelu(x): return 0.5 * x * (1 + verf(x / np.sqrt(2)))

def torch_bicubic(grid, oh, ow, A=-0.75):
    def c1(x): return ((A + 2) * x - (A + 3)) * x * x + 1
    def c2(x): return ((A * x - 5 * A) * x + 8 * A) * x - 4 * A
    def axis(n, o):
        mat = np.zeros((o, n)); s = n / o
        for i in range(o):
            src = s * (i + 0.5) - 0.5; i0 = int(np.floor(src)); t = src - i0
            for j, w in enumerate([c2(t + 1), c1(t), c1(1 - t), c2(2 - t)]):
                mat[i, min(max(i0 - 1 + j, 0), n - 1)] += w
        return mat
    return np.einsum("oh,chw,pw->cop", axis(grid.shape[1], oh), grid, axis(grid.shape[2], ow))

def vlm_features(pixels):
    p = "vision_tower."; D, P, nh = vc["hidden_size"], vc["patch_size"], vc["num_attention_heads"]
    C, H, Wd = pixels.shape; gh, gw = H // P, Wd // P
    patches = pixels.reshape(C, gh, P, gw, P).transpose(1, 3, 0, 2, 4).reshape(gh * gw, -1)
    x = patches @ W[p + "embeddings.patch_embeddings.projection.weight"].reshape(D, -1).T + W[p + "embeddings.patch_embeddings.projection.bias"]
    pos = W[p + "embeddings.position_embeddings"][0]; n = int(round((pos.shape[0] - 1) ** 0.5))
    pp = torch_bicubic(pos[1:].reshape(n, n, D).transpose(2, 0, 1), gh, gw).transpose(1, 2, 0).reshape(-1, D)
    x = np.concatenate([W[p + "embeddings.cls_token"][0], x]) + np.concatenate([pos[:1], pp])
    hidden = [x]; T = x.shape[0]; hd = D // nh
    for i in range(vc["num_hidden_layers"]):
        q = f"{p}encoder.layer.{i}."
        h = ln(x, W[q + "norm1.weight"], W[q + "norm1.bias"])
        qkv = [(h @ W[q + f"attention.attention.{n}.weight"].T + W[q + f"attention.attention.{n}.bias"]).reshape(T, nh, hd).transpose(1, 0, 2) for n in ("query", "key", "value")]
        s = qkv[0] @ qkv[1].transpose(0, 2, 1) / np.sqrt(hd); s -= s.max(-1, keepdims=True); a = np.exp(s); a /= a.sum(-1, keepdims=True)
        o = (a @ qkv[2]).transpose(1, 0, 2).reshape(T, D) @ W[q + "attention.output.dense.weight"].T + W[q + "attention.output.dense.bias"]
        x = x + o * W[q + "layer_scale1.lambda1"]
        h = ln(x, W[q + "norm2.weight"], W[q + "norm2.bias"])
        h = gelu(h @ W[q + "mlp.fc1.weight"].T + W[q + "mlp.fc1.bias"]) @ W[q + "mlp.fc2.weight"].T + W[q + "mlp.fc2.bias"]
        x = x + h * W[q + "layer_scale2.lambda1"]
        hidden.append(x)
    sel = hidden[cfg["vision_feature_layer"]]
    if cfg["vision_feature_select_strategy"] == "default": sel = sel[1:]
    h = gelu(sel @ W["multi_modal_projector.linear_1.weight"].T + W["multi_modal_projector.linear_1.bias"])
    return h @ W["multi_modal_projector.linear_2.weight"].T + W["multi_modal_projector.linear_2.bias"]

mean, std = np.array([0.485, 0.456, 0.406], np.float32), np.array([0.229, 0.224, 0.225], np.float32)
for path in images:
    name = os.path.splitext(os.path.basename(path))[0]
    pixels = np.fromfile(f"{out}/{name}.pixels.f32", np.float32).reshape(3, 224, 224)
    ours = np.fromfile(f"{out}/{name}.vit.f32", np.float32).reshape(-1, 384)
    ref = sess.run(["/backbone/layernorm/Add_1_output_0"], {"input_image": pixels[None]})[0][0]
    rel = np.abs(ours - ref).max() / np.abs(ref).max()
    line = f"{name}: ViT vs onnxruntime cosine {cosine(ours, ref):.7f} max abs err {np.abs(ours - ref).max():.2e} max rel err {rel:.2e}"
    if Image is not None:
        img = Image.open(path).convert("RGB").resize((224, 224), Image.BICUBIC, reducing_gap=None)
        pil = ((np.array(img).astype(np.float64) / 255).astype(np.float32) - mean) / std
        line += f"; pixels vs PIL max abs err {np.abs(pil.transpose(2, 0, 1) - pixels).max():.2e}"
    feats = np.fromfile(f"{out}/{name}.vlm.f32", np.float32).reshape(-1, 576)
    fref = vlm_features(pixels.astype(np.float64))
    line += f"; VLM features {feats.shape} vs numpy cosine {cosine(feats, fref):.7f} max rel err {np.abs(feats - fref).max() / np.abs(fref).max():.2e}"
    print(line)
PY
