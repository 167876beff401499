"""Writes projector_refit.json: a tiny LLaVA projector (linear_1 -> exact GELU -> linear_2), FP and
perturbed ("quantized") vision features, and numpy's least-squares refit of linear_2 and its bias
so the projector on the perturbed features matches the FP projector on the FP features."""
import json
import math

import numpy as np

rng = np.random.default_rng(7)
tokens, width, hidden, outputs = 40, 8, 12, 6
x_fp = rng.standard_normal((tokens, width))
x_q = x_fp + 0.1 * rng.standard_normal((tokens, width))
w1 = rng.standard_normal((hidden, width)) / math.sqrt(width)
b1 = 0.1 * rng.standard_normal(hidden)
w2 = rng.standard_normal((outputs, hidden)) / math.sqrt(hidden)
b2 = 0.1 * rng.standard_normal(outputs)
# Round to float32 first: the Swift side receives float32 inputs.
x_fp, x_q, w1, b1, w2, b2 = (a.astype(np.float32).astype(np.float64) for a in (x_fp, x_q, w1, b1, w2, b2))
erf = np.vectorize(math.erf)
gelu = lambda v: 0.5 * v * (1 + erf(v / math.sqrt(2)))
target = gelu(x_fp @ w1.T + b1) @ w2.T + b2
design = np.hstack([gelu(x_q @ w1.T + b1), np.ones((tokens, 1))])
theta, *_ = np.linalg.lstsq(design, target, rcond=None)
json.dump(
    {
        "shape": [tokens, width, hidden, outputs],
        "fp_features": x_fp.ravel().tolist(),
        "quantized_features": x_q.ravel().tolist(),
        "linear1_weight": w1.ravel().tolist(),
        "linear1_bias": b1.tolist(),
        "linear2_weight": w2.ravel().tolist(),
        "linear2_bias": b2.tolist(),
        "expected_weight": theta[:hidden].T.ravel().tolist(),
        "expected_bias": theta[hidden].tolist(),
    },
    open("projector_refit.json", "w"),
)
