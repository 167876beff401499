#!/usr/bin/env python3
"""Writes Fixtures/mlx-engine/: ../tiny-chat quantized by mlx_lm.convert (4 bits, groups of 32,
affine: U32 codes with F16 scales and biases, the `quantization` block in config.json), with
tiny-chat's tokenizer files, for the tests that run an MLX-quantized folder in the engine.

tiny-chat-q4.expected.json holds what mlx_lm itself computes on the folder (CPU, float32
log-softmax): the perplexity of 3 disjoint windows of 32 tokens of ../tiny-chat.sample.txt
(every target but each window's first).
Run: pip install "mlx[cpu]" mlx-lm; python3 Fixtures/make_mlx_engine_fixtures.py
"""
import json
import math
import os
import shutil
import tempfile

import mlx.core as mx
from mlx_lm import convert, load

HERE = os.path.dirname(os.path.abspath(__file__))
SOURCE = os.path.join(HERE, "tiny-chat")
OUT = os.path.join(HERE, "mlx-engine", "tiny-chat-q4")


def main():
    mx.set_default_device(mx.cpu)
    work = tempfile.mkdtemp()
    try:
        converted = os.path.join(work, "q4")
        convert(SOURCE, converted, quantize=True, q_bits=4, q_group_size=32)
        os.makedirs(OUT, exist_ok=True)
        for name in os.listdir(OUT):
            os.remove(os.path.join(OUT, name))
        shutil.copy(os.path.join(converted, "model.safetensors"), OUT)
        shutil.copy(os.path.join(converted, "config.json"), OUT)
    finally:
        shutil.rmtree(work)
    for name in ("tokenizer.json", "tokenizer_config.json"):
        shutil.copy(os.path.join(SOURCE, name), OUT)

    model, tokenizer = load(OUT)
    text = open(os.path.join(HERE, "tiny-chat.sample.txt")).read()
    ids = tokenizer.encode(text, add_special_tokens=False)
    context, windows = 32, 3
    nll, count = 0.0, 0
    for w in range(windows):
        chunk = ids[w * context:(w + 1) * context]
        logits = model(mx.array(chunk[:-1])[None])[0].astype(mx.float32)
        logp = logits - mx.logsumexp(logits, axis=-1, keepdims=True)
        nll -= float(mx.sum(mx.take_along_axis(logp, mx.array(chunk[1:])[:, None], axis=-1)))
        count += len(chunk) - 1
    expected = {"context": context, "windows": windows, "scored_tokens": count,
                "perplexity": math.exp(nll / count)}
    with open(os.path.join(HERE, "mlx-engine", "tiny-chat-q4.expected.json"), "w") as f:
        json.dump(expected, f, indent=1)
        f.write("\n")


if __name__ == "__main__":
    main()
