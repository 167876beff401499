#!/usr/bin/env python3
"""Reference values for the training losses and AdamW (Fixtures/training/expected.json).

Transcribes Hugging Face's LabelSmoother, the two KL directions, SPEED-Q's CAKLD (gamma from the
teacher's mean top-1 probability) and torch.optim.AdamW's update in numpy, in float64.
"""
import json
import os

import numpy as np

rng = np.random.default_rng(7)
rows, vocab = 6, 11
student = rng.normal(0, 2, (rows, vocab)).astype(np.float32)
teacher = rng.normal(0, 2, (rows, vocab)).astype(np.float32)
targets = np.array([3, -100, 0, 10, 5, 7])
mask = np.array([True, True, False, True, True, True])
epsilon = 0.1


def log_softmax(x):
    x = x.astype(np.float64)
    m = x.max(axis=-1, keepdims=True)
    return x - m - np.log(np.exp(x - m).sum(axis=-1, keepdims=True))


ls, lt = log_softmax(student), log_softmax(teacher)
ps, pt = np.exp(ls), np.exp(lt)

# LabelSmoother: nll of the target and the vocabulary-mean of -log p, over active rows.
active = targets >= 0
nll = -ls[active, targets[active]]
smoothed = -ls[active].sum(axis=-1)
ce = (1 - epsilon) * nll.mean() + epsilon * smoothed.sum() / (active.sum() * vocab)
ce_plain = nll.mean()

forward_rows = (pt * (lt - ls)).sum(axis=-1)  # KL(P_t || P_s)
reverse_rows = (ps * (ls - lt)).sum(axis=-1)  # KL(P_s || P_t)
gamma = pt.max(axis=-1).mean()
cakld_rows = gamma * reverse_rows + (1 - gamma) * forward_rows

# torch.optim.AdamW, two steps.
lr, b1, b2, eps, wd = 0.01, 0.9, 0.999, 1e-8, 0.1
p = rng.normal(0, 1, 5).astype(np.float32).astype(np.float64)
p0 = p.copy()
grads = [rng.normal(0, 1, 5).astype(np.float32).astype(np.float64) for _ in range(2)]
m = np.zeros(5)
v = np.zeros(5)
for t, g in enumerate(grads, start=1):
    p = p * (1 - lr * wd)
    m = b1 * m + (1 - b1) * g
    v = b2 * v + (1 - b2) * g * g
    mhat = m / (1 - b1**t)
    vhat = v / (1 - b2**t)
    p = p - lr * mhat / (np.sqrt(vhat) + eps)

out = {
    "vocab": vocab,
    "student": student.ravel().tolist(),
    "teacher": teacher.ravel().tolist(),
    "targets": targets.tolist(),
    "mask": mask.tolist(),
    "label_smoothing": epsilon,
    "cross_entropy_smoothed": ce,
    "cross_entropy": ce_plain,
    "forward_kl_mean_masked": forward_rows[mask].mean(),
    "reverse_kl_mean_masked": reverse_rows[mask].mean(),
    "forward_kl_sum": forward_rows.sum(),
    "reverse_kl_sum": reverse_rows.sum(),
    "gamma": gamma,
    "cakld_sum_masked": cakld_rows[mask].sum(),
    "adamw": {
        "lr": lr, "beta1": b1, "beta2": b2, "eps": eps, "weight_decay": wd,
        "initial": p0.astype(np.float32).tolist(),
        "gradients": [g.astype(np.float32).tolist() for g in grads],
        "final": p.tolist(),
    },
}
path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "training", "expected.json")
with open(path, "w") as f:
    json.dump(out, f, indent=1)
print(path)
