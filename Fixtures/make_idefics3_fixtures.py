#!/usr/bin/env python3
"""A tiny random Idefics3 (SmolVLM's layout), made and run by transformers.

idefics3/tiny-idefics3/: `Idefics3ForConditionalGeneration` with a 2-block SigLIP-style tower
  (16x16 images, 4x4 patches), pixel shuffle by 2 and the connector's linear, a 2-layer Llama (width 16)
  whose vocabulary is the trimmed SmolLM2 tokenizer's (Fixtures/tokenizer/smollm2) plus
  Idefics3's added tokens (<fake_token_around_image>, <image>, <end_of_utterance>, <global-img>),
  and an untied lm_head at the top level; F16 weights, as transformers saves them.
idefics3/expected.safetensors: the preprocessed pixels of Fixtures/images/rgb.png (PIL bicubic
  to 16x16, mean and std 0.5), the tower's last_hidden_state ('vision'), the connector's output
  ('features') and per case the first 64 logits of every position ('<case>.logits_head') and all
  logits of the last ('<case>.logits_last'), all computed by transformers in float32 from the F16
  weights.
idefics3/expected.json: per case the prompt, its token ids after the processor's expansion of
  '<image>' for one image without splitting, 4 greedy tokens and their text.

usage: PYTHONPATH=~/.cache/qtoolchain-models/py python3 Fixtures/make_idefics3_fixtures.py
  (needs torch, transformers >= 5, numpy, pillow, tokenizers)
"""
import json
import os
import shutil
import sys

import numpy as np
import torch
from PIL import Image
from tokenizers import AddedToken, Tokenizer
from transformers import Idefics3Config, Idefics3ForConditionalGeneration

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from fixture_safetensors import save_file  # noqa: E402

OUT = os.path.join(HERE, "idefics3")
FOLDER = os.path.join(OUT, "tiny-idefics3")
ADDED = ["<fake_token_around_image>", "<image>", "<end_of_utterance>", "<global-img>"]


def tokenizer():
    source = os.path.join(HERE, "tokenizer", "smollm2")
    tok = Tokenizer.from_file(os.path.join(source, "tokenizer.json"))
    tok.add_special_tokens([AddedToken(t, normalized=False, special=True) for t in ADDED])
    os.makedirs(FOLDER, exist_ok=True)
    tok.save(os.path.join(FOLDER, "tokenizer.json"))
    shutil.copy(os.path.join(source, "tokenizer_config.json"), os.path.join(FOLDER, "tokenizer_config.json"))
    return tok


def build(tok):
    torch.manual_seed(2026)
    vocab = tok.get_vocab_size()
    config = Idefics3Config(
        image_token_id=tok.token_to_id("<image>"),
        tie_word_embeddings=False,
        scale_factor=2,
        vision_config=dict(
            hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2, image_size=16,
            patch_size=4, num_channels=3),
        text_config=dict(
            model_type="llama", hidden_size=16, intermediate_size=32, num_hidden_layers=2, num_attention_heads=2,
            num_key_value_heads=1, vocab_size=vocab, max_position_embeddings=256, rms_norm_eps=1e-5,
            rope_theta=10000.0, tie_word_embeddings=False, bos_token_id=1, eos_token_id=2, pad_token_id=0),
    )
    model = Idefics3ForConditionalGeneration(config).eval()
    with torch.no_grad():
        # The default init leaves biases and norms at 0 and 1; random ones test that they are read.
        for name, p in model.named_parameters():
            if name.endswith("bias") or "norm" in name:
                p.add_(torch.randn_like(p) * 0.1)
            else:
                p.normal_(0, 0.2)
        model.half()
    model.save_pretrained(FOLDER)
    # Keep only what a reader needs; drop the generation config transformers writes beside it.
    for name in os.listdir(FOLDER):
        if name not in ("config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json"):
            os.remove(os.path.join(FOLDER, name))
    return Idefics3ForConditionalGeneration.from_pretrained(FOLDER, dtype=torch.float32).eval(), config


def pixels(size):
    img = Image.open(os.path.join(HERE, "images", "rgb.png")).convert("RGB")
    a = np.array(img.resize((size, size), Image.BICUBIC, reducing_gap=None))
    a = (a.astype(np.float64) * (1 / 255)).astype(np.float32)
    return np.ascontiguousarray(((a - 0.5) / 0.5).transpose(2, 0, 1))


def expand(prompt, seq_len):
    """Idefics3Processor.replace_image_token for one image without splitting (rows = cols = 0)."""
    return prompt.replace("<image>", "<fake_token_around_image><global-img>" + "<image>" * seq_len
                          + "<fake_token_around_image>")


def main():
    tok = tokenizer()
    model, config = build(tok)
    vc = config.vision_config
    seq_len = (vc.image_size // vc.patch_size) ** 2 // config.scale_factor ** 2
    px = pixels(vc.image_size)
    pv = torch.from_numpy(px)[None, None]
    tensors = {"pixels": px}
    with torch.no_grad():
        vision = model.model.vision_model(pixel_values=pv[0]).last_hidden_state[0]
        features = model.model.connector(vision[None])[0]
        tensors["vision"] = vision.numpy()
        tensors["features"] = features.numpy()
        cases = []
        for name, prompt in (("image-first", "<image>Describe the picture."), ("image-inside", "A photo of<image> a cat")):
            ids = tok.encode(expand(prompt, seq_len), add_special_tokens=False).ids
            out = model(input_ids=torch.tensor([ids]), pixel_values=pv)
            logits = out.logits[0].numpy()
            tensors[f"{name}.logits_head"] = np.ascontiguousarray(logits[:, :64])
            tensors[f"{name}.logits_last"] = logits[-1]
            generated, current = [], list(ids)
            for _ in range(4):
                nxt = int(model(input_ids=torch.tensor([current]), pixel_values=pv).logits[0, -1].argmax())
                generated.append(nxt)
                current.append(nxt)
            cases.append({"name": name, "prompt": prompt, "tokens": ids, "generated": generated,
                          "completion": tok.decode(generated, skip_special_tokens=True)})
    save_file(tensors, os.path.join(OUT, "expected.safetensors"))
    with open(os.path.join(OUT, "expected.json"), "w") as f:
        json.dump({"image": "images/rgb.png", "image_token": config.image_token_id, "image_seq_len": seq_len,
                   "cases": cases}, f, indent=1)
        f.write("\n")


if __name__ == "__main__":
    main()
