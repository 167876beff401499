"""Small checkpoints holding NaN or infinity, for qconvert's refusal and --allow-nonfinite.

Writes Fixtures/nonfinite/<case>/model.safetensors and Fixtures/nonfinite/expected.json with,
for each case, the first non-finite element as numpy finds it: the tensor, its coordinates,
its flat (row-major) index and the value as Swift prints a Float ("nan", "inf", "-inf").
Run from the repository root: python3 Fixtures/make_nonfinite_fixtures.py
"""

import json
import os

import numpy as np
from safetensors.numpy import save_file

HERE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "nonfinite")


def spelled(value):
    if np.isnan(value):
        return "nan"
    return "inf" if value > 0 else "-inf"


def first_non_finite(array):
    flat = int(np.flatnonzero(~np.isfinite(array))[0])
    index = [int(i) for i in np.unravel_index(flat, array.shape)]
    return index, flat, spelled(array.reshape(-1)[flat])


def main():
    rng = np.random.default_rng(8)
    cases = {}

    def weight(shape, dtype):
        return rng.standard_normal(shape).astype(dtype)

    # A quantized weight (f32) with NaN in its third row.
    up = weight((4, 64), np.float32)
    up[2, 5] = np.nan
    up[3, 1] = np.inf  # a later one, which must not be the one reported
    cases["nan-weight"] = ({"model.layers.0.mlp.up_proj.weight": up,
                            "model.layers.0.mlp.gate_proj.weight": weight((4, 64), np.float32)},
                           "model.layers.0.mlp.up_proj.weight")

    # A quantized f16 weight with -inf in its last element.
    down = weight((4, 64), np.float16)
    down[3, 63] = -np.inf
    cases["inf-weight"] = ({"model.layers.0.mlp.down_proj.weight": down}, "model.layers.0.mlp.down_proj.weight")

    # A tensor kept as stored (a norm) holding +inf: the pack would contain it too.
    norm = np.ones(64, dtype=np.float16)
    norm[7] = np.inf
    cases["inf-norm"] = ({"model.norm.weight": norm,
                          "model.layers.0.mlp.up_proj.weight": weight((4, 64), np.float16)},
                         "model.norm.weight")

    expected = {}
    for name, (tensors, bad) in cases.items():
        folder = os.path.join(HERE, name)
        os.makedirs(folder, exist_ok=True)
        save_file(tensors, os.path.join(folder, "model.safetensors"))
        index, flat, value = first_non_finite(tensors[bad])
        expected[name] = {"tensor": bad, "index": index, "flat_index": flat, "value": value,
                          "dtype": str(tensors[bad].dtype)}
    with open(os.path.join(HERE, "expected.json"), "w") as out:
        json.dump(expected, out, indent=2, sort_keys=True)
        out.write("\n")


if __name__ == "__main__":
    main()
