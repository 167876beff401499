#!/usr/bin/env python3
"""Make the GPTQ fixtures under Fixtures/calibrated/.

The reference is a numpy transcription of GPTQ as AutoGPTQ's `gptq.py` (`fasterquant`) writes it:
dead columns, optional act-order with static groups, damping, the upper Cholesky factor of the
inverse Hessian, in-block updates and one lazy update of the remaining columns per block of 128.
Two deliberate choices, both documented in Sources/QCompute/Calibrated/GPTQ.swift:
- without act-order a group's parameters are fixed from the weights as updated so far (AutoGPTQ
  reads its block-start copy `W` there, which makes them depend on the block size);
- the grids are this project's pack grids (MLX affine, signed symmetric, SPEED-Q bilevel),
  evaluated in float32 on the current weights rounded to float32; the propagation runs in float64.

Every case is a slice of one little-endian blob, described by calibrated.json: each array is
`[byte offset, element count]` into calibrated.bin.

Run from the repository root: python3 Fixtures/make_calibrated_fixtures.py
"""
import json
import os

import numpy as np

HERE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "calibrated")
f32 = np.float32


class Blob:
    def __init__(self):
        self.parts = []
        self.size = 0

    def add(self, array):
        raw = np.ascontiguousarray(array).tobytes()
        offset = self.size
        self.parts.append(raw)
        self.size += len(raw)
        return [offset, int(np.asarray(array).size)]

    def write(self, path):
        with open(path, "wb") as f:
            for part in self.parts:
                f.write(part)


# Grids, in float32 on [rows, length] groups. Each returns per-row (scale, offset) plus extras.

def affine_params(group, bits):
    """MLX's affine quantizer (mlx/backend/cpu/quantized.cpp), per row."""
    levels = f32(2**bits - 1)
    low = group.min(axis=1)
    high = group.max(axis=1)
    scales = np.empty(len(group), f32)
    biases = np.empty(len(group), f32)
    for r in range(len(group)):
        lo, hi = f32(low[r]), f32(high[r])
        minimum_is_edge = abs(lo) > abs(hi)
        scale = max(f32((hi - lo) / levels), f32(1e-7))
        scale = scale if minimum_is_edge else -scale
        edge = lo if minimum_is_edge else hi
        edge_code = np.round(f32(edge / scale))
        bias = f32(0)
        if edge_code != 0:
            scale = f32(edge / edge_code)
            bias = edge
        scales[r], biases[r] = scale, bias
    return scales, biases


def symmetric_params(group, bits):
    half = f32(2 ** (bits - 1))
    scales = (np.abs(group).max(axis=1) / (half - f32(1))).astype(f32)
    return scales, np.full(len(group), half, f32)


def bilevel_params(group, bits, chunk, scale_bits=4):
    """SPEED-Q's bilevel grid (SpQR quant_groups) for one group index over all rows."""
    levels = f32(2**bits - 1)
    low = group.min(axis=1).astype(f32)
    high = group.max(axis=1).astype(f32)
    same = low == high
    low[same], high[same] = f32(-1), f32(1)
    first = np.maximum((high - low) / levels, f32(1e-5)).astype(f32)
    zeros = np.clip(np.round(-low / first), 0, levels).astype(f32)
    scale_levels = f32(2**scale_bits - 1)
    quantized = np.empty_like(first)
    codes = np.empty(len(first), np.uint8)
    steps, chunk_zeros = [], []
    for start in range(0, len(first), chunk):
        part = first[start:start + chunk]
        lo, hi = f32(part.min()), f32(part.max())
        if lo == hi:
            lo, hi = f32(-1), f32(1)
        step = max(f32((hi - lo) / scale_levels), f32(1e-5))
        zero = f32(-lo / step)
        q = np.clip(np.round(part / step + zero), 0, scale_levels).astype(f32)
        codes[start:start + chunk] = q.astype(np.uint8)
        quantized[start:start + chunk] = step * (q - zero)
        steps.append(step)
        chunk_zeros.append(zero)
    extra = dict(first=first, codes=codes, steps=np.array(steps, f32), zeros=np.array(chunk_zeros, f32))
    return quantized, zeros, extra


class Grid:
    def __init__(self, kind, bits, group, chunk=None):
        self.kind, self.bits, self.group, self.chunk = kind, bits, group, chunk
        self.levels = f32(2**bits - 1)

    def params(self, group):
        group = group.astype(f32)
        if self.kind == "affine":
            return affine_params(group, self.bits) + (None,)
        if self.kind == "symmetric":
            return symmetric_params(group, self.bits) + (None,)
        return bilevel_params(group, self.bits, self.chunk)

    def code(self, w, scale, offset):
        w = w.astype(f32)
        if self.kind == "affine":
            return np.clip(np.round((w - offset) / scale), 0, self.levels).astype(np.uint8)
        if self.kind == "symmetric":
            half = offset
            with np.errstate(divide="ignore", invalid="ignore"):
                q = np.where(scale == 0, f32(0), np.round(w / np.where(scale == 0, f32(1), scale)))
            return (np.clip(q, -half, half - 1) + half).astype(np.uint8)
        return np.clip(np.round(w / scale + offset), 0, self.levels).astype(np.uint8)

    def restore(self, code, scale, offset):
        c = code.astype(f32)
        if self.kind == "affine":
            return (scale * c + offset).astype(f32)
        return (scale * (c - offset)).astype(f32)


def gptq(W, H, grid, actorder, percdamp=0.01, blocksize=128):
    W = W.astype(np.float64).copy()
    H = H.astype(np.float64).copy()
    rows, cols = W.shape
    length = grid.group or cols
    groups = cols // length
    scales = np.zeros((rows, groups), f32)
    offsets = np.zeros((rows, groups), f32)
    bilevel = dict(first=np.zeros((rows, groups), f32), codes=np.zeros((groups, rows), np.uint8),
                   steps=np.zeros((groups, rows // (grid.chunk or 1)), f32),
                   zeros=np.zeros((groups, rows // (grid.chunk or 1)), f32))

    def store(g, params):
        s, o, extra = params
        scales[:, g], offsets[:, g] = s, o
        if extra is not None:
            bilevel["first"][:, g] = extra["first"]
            bilevel["codes"][g] = extra["codes"]
            bilevel["steps"][g] = extra["steps"]
            bilevel["zeros"][g] = extra["zeros"]

    dead = np.diag(H) == 0
    H[dead, dead] = 1
    W[:, dead] = 0

    static = []
    if actorder:
        for g in range(groups):
            params = grid.params(W[:, g * length:(g + 1) * length])
            store(g, params)
            static.append(params)
        perm = np.argsort(-np.diag(H), kind="stable")
        W = W[:, perm]
        H = H[perm][:, perm]
    else:
        perm = np.arange(cols)

    damp = percdamp * np.mean(np.diag(H))
    H[np.arange(cols), np.arange(cols)] += damp
    Hinv = np.linalg.cholesky(np.linalg.inv(H)).T  # upper factor: H^-1 = U^T U

    codes = np.zeros((rows, cols), np.uint8)
    losses = np.zeros(rows)
    params = None
    for i1 in range(0, cols, blocksize):
        i2 = min(i1 + blocksize, cols)
        count = i2 - i1
        W1 = W[:, i1:i2].copy()
        Err1 = np.zeros((rows, count))
        Hinv1 = Hinv[i1:i2, i1:i2]
        for i in range(count):
            c = perm[i1 + i]
            if actorder:
                params = static[c // length]
            elif c % length == 0:
                assert i == 0 or i + length <= count
                current = np.concatenate([W1, W[:, i2:]], axis=1)
                params = grid.params(current[:, i:i + length])
                store(c // length, params)
            scale, offset = params[0], params[1]
            w = W1[:, i]
            d = Hinv1[i, i]
            code = grid.code(w, scale, offset)
            codes[:, c] = code
            q = grid.restore(code, scale, offset).astype(np.float64)
            losses += (w - q) ** 2 / d**2 / 2
            err1 = (w - q) / d
            W1[:, i:] -= np.outer(err1, Hinv1[i, i:])
            Err1[:, i] = err1
        W[:, i2:] -= Err1 @ Hinv[i1:i2, i2:]
    return codes, scales, offsets, losses, bilevel


def activations(rng, tokens, cols, dead=()):
    """Correlated activations with uneven column scales, as linear-layer inputs look."""
    mixing = rng.standard_normal((cols, cols)) / np.sqrt(cols) + np.eye(cols)
    X = rng.standard_normal((tokens, cols)) @ mixing
    X *= np.exp(rng.standard_normal(cols) * 0.7)
    X[:, list(dead)] = 0
    return X


def main():
    os.makedirs(HERE, exist_ok=True)
    rng = np.random.default_rng(20240611)
    blob = Blob()
    hessians = {}

    def hessian(name, cols, dead=()):
        X = activations(rng, 3 * cols, cols, dead)
        H = (X.T @ X).astype(f32)  # stored in float32; both sides widen it exactly
        hessians[name] = dict(columns=cols, values=blob.add(H))
        return H.astype(np.float64)

    H64 = hessian("h64", 64)
    H64dead = hessian("h64dead", 64, dead=(3, 40, 41))
    H130 = hessian("h130", 130)
    H144 = hessian("h144", 144)

    specs = [
        ("affine w4 g32", 16, 64, "h64", H64, Grid("affine", 4, 32), False),
        ("affine w4 g32 act-order", 16, 64, "h64", H64, Grid("affine", 4, 32), True),
        ("symmetric w4 g32", 16, 64, "h64", H64, Grid("symmetric", 4, 32), False),
        ("symmetric w3 g32 act-order", 16, 64, "h64", H64, Grid("symmetric", 3, 32), True),
        ("affine w2 g32 dead act-order", 16, 64, "h64dead", H64dead, Grid("affine", 2, 32), True),
        ("affine w2 g32 dead", 16, 64, "h64dead", H64dead, Grid("affine", 2, 32), False),
        ("affine w3 per-channel", 8, 130, "h130", H130, Grid("affine", 3, None), False),
        ("affine w3 per-channel act-order", 8, 130, "h130", H130, Grid("affine", 3, None), True),
        ("symmetric w4 per-channel", 8, 130, "h130", H130, Grid("symmetric", 4, None), False),
        ("affine w2 g16 two blocks", 8, 144, "h144", H144, Grid("affine", 2, 16), False),
        ("symmetric w2 g16 two blocks act-order", 8, 144, "h144", H144, Grid("symmetric", 2, 16), True),
        ("bilevel w2g16g16", 32, 144, "h144", H144, Grid("bilevel", 2, 16, 16), False),
        ("bilevel w2g16g16 act-order", 32, 144, "h144", H144, Grid("bilevel", 2, 16, 16), True),
        ("bilevel w4g32g8", 16, 64, "h64", H64, Grid("bilevel", 4, 32, 8), False),
    ]
    cases = []
    for name, rows, cols, hname, H, grid, actorder in specs:
        W = (rng.standard_normal((rows, cols)) * 0.05).astype(f32)
        W[0, :5] *= 8  # an outlier row head, so groups differ in range
        codes, scales, offsets, losses, bilevel = gptq(W, H, grid, actorder)
        case = dict(
            name=name, rows=rows, columns=cols, hessian=hname, grid=grid.kind, bits=grid.bits,
            group_size=grid.group or 0, scale_group_size=grid.chunk or 0, act_order=actorder,
            weights=blob.add(W), codes=blob.add(codes), scales=blob.add(scales),
            offsets=blob.add(offsets), row_losses=blob.add(losses.astype(np.float64)))
        if grid.kind == "bilevel":
            case.update(
                first_scales=blob.add(bilevel["first"]), scale_codes=blob.add(bilevel["codes"]),
                chunk_scales=blob.add(bilevel["steps"]), chunk_zeros=blob.add(bilevel["zeros"]))
        cases.append(case)

    blob.write(os.path.join(HERE, "gptq.bin"))
    with open(os.path.join(HERE, "gptq.json"), "w") as f:
        json.dump(dict(hessians=hessians, cases=cases), f, indent=1)
        f.write("\n")
    print(f"{len(cases)} cases, {blob.size} bytes")


if __name__ == "__main__":
    main()
