#!/usr/bin/env python3
"""Writes numpy/scipy reference results for the similarity tests (Tests/QComputeTests/Similarity*).

- Minibatch linear CKA with the unbiased HSIC estimator, written out from the formula of
  LoRASuite's notes (section 3), on random activations; all-pairs matrices from activations and
  from weights (hidden coordinates as examples, old weights moved by a transfer matrix).
- scipy.optimize.linear_sum_assignment (maximize=True) on random square and rectangular matrices.
- Head similarities built from explicit hidden x hidden QK and VO descriptors (GQA by
  repeat-interleave, a rectangular transfer), and their scipy assignment.

Output: Fixtures/similarity/arrays.f64 (every array as little-endian float64, row-major, back to
back) and Fixtures/similarity/manifest.json ({"arrays": {name: {"shape": [...], "offset": n}}}).
Run from anywhere: python3 Fixtures/make_similarity_fixtures.py (needs numpy and scipy).
"""
import json
import pathlib

import numpy as np
from scipy.optimize import linear_sum_assignment

OUT = pathlib.Path(__file__).resolve().parent / "similarity"
rng = np.random.default_rng(20250517)
arrays = {}


def put(name, value):
    value = np.asarray(value, dtype=np.float64)
    assert name not in arrays, name
    arrays[name] = value


def hsic1(k, l):
    n = k.shape[0]
    k = k.copy()
    l = l.copy()
    np.fill_diagonal(k, 0)
    np.fill_diagonal(l, 0)
    ones = np.ones(n)
    return (
        np.trace(k @ l)
        + (ones @ k @ ones) * (ones @ l @ ones) / ((n - 1) * (n - 2))
        - 2.0 / (n - 2) * (ones @ k @ l @ ones)
    ) / (n * (n - 3))


def minibatch_cka(x, y, batch):
    xy = xx = yy = 0.0
    for start in range(0, x.shape[0], batch):
        xb, yb = x[start : start + batch], y[start : start + batch]
        if xb.shape[0] < 4:
            continue
        k, l = xb @ xb.T, yb @ yb.T
        xy += hsic1(k, l)
        xx += hsic1(k, k)
        yy += hsic1(l, l)
    return xy / np.sqrt(xx * yy)


# Pairs of activations: y depends on x plus noise, so the CKA is neither 0 nor 1.
for name, (n, p, q, batch) in {
    "n4": (4, 3, 2, 4),
    "n20": (20, 7, 5, 20),
    "n20b8": (20, 7, 5, 8),
    "n65b64": (65, 9, 8, 64),
    "n64b7": (64, 8, 3, 7),
}.items():
    x = rng.standard_normal((n, p))
    y = x @ rng.standard_normal((p, q)) + 0.7 * rng.standard_normal((n, q))
    put(f"cka.{name}.x", x)
    put(f"cka.{name}.y", y)
    put(f"cka.{name}.batch", [batch])
    put(f"cka.{name}.value", [minibatch_cka(x, y, batch)])

# All pairs from activations: 3 old layers, 4 new layers, 30 examples in batches of 8 (8, 8, 8, 6).
old = [rng.standard_normal((30, w)) for w in (6, 5, 7)]
new = [old[0] @ rng.standard_normal((6, 4)), rng.standard_normal((30, 6)),
       old[2] + 0.3 * rng.standard_normal((30, 7)), old[1] @ rng.standard_normal((5, 3))]
for i, m in enumerate(old):
    put(f"matrix.act.old{i}", m)
for j, m in enumerate(new):
    put(f"matrix.act.new{j}", m)
put("matrix.act.expected", [[minibatch_cka(a, b, 8) for b in new] for a in old])

# All pairs from weights: old hidden 6 moved to new hidden 5 by a transfer; rows are examples.
transfer = rng.standard_normal((6, 5))
old_w = [rng.standard_normal((6, w)) for w in (4, 9)]
new_w = [rng.standard_normal((5, 3)), transfer.T @ old_w[1] + 0.2 * rng.standard_normal((5, 9)),
         rng.standard_normal((5, 8))]
for i, m in enumerate(old_w):
    put(f"matrix.w.old{i}", m)
for j, m in enumerate(new_w):
    put(f"matrix.w.new{j}", m)
put("matrix.w.transfer", transfer)
put("matrix.w.expected",
    [[minibatch_cka(transfer.T @ a, b, 5) for b in new_w] for a in old_w])

# Assignments: scipy's maximising assignment, row -> column or -1.
for rows, cols in [(1, 1), (1, 4), (4, 1), (3, 5), (5, 3), (6, 6), (8, 8), (10, 7), (7, 10), (16, 16)]:
    s = rng.standard_normal((rows, cols))
    r, c = linear_sum_assignment(s, maximize=True)
    assignment = -np.ones(rows)
    assignment[r] = c
    put(f"hungarian.{rows}x{cols}.scores", s)
    put(f"hungarian.{rows}x{cols}.assignment", assignment)
    put(f"hungarian.{rows}x{cols}.total", [s[r, c].sum()])


def descriptors(q, k, v, o, heads, kv_heads, transfer):
    """Per head concat(vec QK, vec VO) with explicit d x d matrices, K/V repeat-interleaved."""
    d_h = q.shape[0] // heads
    rep = heads // kv_heads
    k = np.repeat(k.reshape(kv_heads, d_h, -1), rep, axis=0).reshape(heads * d_h, -1)
    v = np.repeat(v.reshape(kv_heads, d_h, -1), rep, axis=0).reshape(heads * d_h, -1)
    out = []
    for h in range(heads):
        rows = slice(h * d_h, (h + 1) * d_h)
        qk = q[rows].T @ k[rows]
        vo = v[rows].T @ o[:, rows].T
        if transfer is not None:
            qk = transfer.T @ qk @ transfer
            vo = transfer.T @ vo @ transfer
        out.append(np.concatenate([qk.ravel(), vo.ravel()]))
    return np.array(out)


def attention(heads, kv_heads, d_h, hidden):
    return (rng.standard_normal((heads * d_h, hidden)), rng.standard_normal((kv_heads * d_h, hidden)),
            rng.standard_normal((kv_heads * d_h, hidden)), rng.standard_normal((hidden, heads * d_h)))


# Old: 4 heads, 2 KV heads, head dim 3, hidden 6. New: 6 heads, 3 KV heads, head dim 2, hidden 5.
for name, (old_shape, new_shape) in {
    "gqa": ((4, 2, 3, 6), (6, 3, 2, 5)),
    "shrink": ((6, 6, 2, 5), (4, 1, 3, 4)),
}.items():
    old_w = attention(*old_shape)
    new_w = attention(*new_shape)
    transfer = rng.standard_normal((old_shape[3], new_shape[3]))
    a = descriptors(*old_w, old_shape[0], old_shape[1], transfer)
    b = descriptors(*new_w, new_shape[0], new_shape[1], None)
    sim = (a @ b.T) / np.outer(np.linalg.norm(a, axis=1), np.linalg.norm(b, axis=1))
    r, c = linear_sum_assignment(sim, maximize=True)
    assignment = -np.ones(sim.shape[0])
    assignment[r] = c
    for label, w in zip("qkvo", old_w):
        put(f"heads.{name}.old.{label}", w)
    for label, w in zip("qkvo", new_w):
        put(f"heads.{name}.new.{label}", w)
    put(f"heads.{name}.shape", list(old_shape) + list(new_shape))
    put(f"heads.{name}.transfer", transfer)
    put(f"heads.{name}.similarity", sim)
    put(f"heads.{name}.assignment", assignment)

OUT.mkdir(exist_ok=True)
manifest = {}
offset = 0
with open(OUT / "arrays.f64", "wb") as f:
    for name, value in arrays.items():
        manifest[name] = {"shape": list(value.shape), "offset": offset}
        f.write(value.astype("<f8").tobytes())
        offset += value.size
(OUT / "manifest.json").write_text(json.dumps({"arrays": manifest}, indent=1, sort_keys=True) + "\n")
print(f"{len(arrays)} arrays, {offset * 8} bytes")
