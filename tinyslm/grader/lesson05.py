"""Lesson 05, training (learning-rate schedule, loss): references and inputs to try."""

from __future__ import annotations

import numpy as np

from tinyslm.grader.core import Case, Exercise, Lesson

# --------------------------------------------------------------------------------------- lesson 05


def _ref_warmup_cosine_lr(step, lr, min_lr, warmup_steps, decay_steps):
    from tinyslm.config import TrainConfig
    from tinyslm.train import learning_rate_schedule

    cfg = TrainConfig(lr=lr, min_lr=min_lr, warmup_steps=warmup_steps, decay_steps=decay_steps, max_steps=decay_steps)
    return float(learning_rate_schedule(cfg)(step))


def _ref_cross_entropy(logits, targets, mask=None):
    from tinyslm.train import cross_entropy

    return float(cross_entropy(np.asarray(logits), np.asarray(targets), None if mask is None else np.asarray(mask)))


def _cases_warmup_cosine_lr() -> list[Case]:
    base = (1e-3, 1e-4, 100, 1000)
    return [
        Case("step 0 (start of warmup)", (0, *base)),
        Case("middle of warmup", (50, *base)),
        Case("end of warmup (the peak)", (100, *base)),
        Case("a quarter into the decay", (325, *base)),
        Case("halfway through the decay", (550, *base)),
        Case("last decay step", (999, *base)),
        Case("at decay_steps (the floor)", (1000, *base)),
        Case("after decay_steps (stays at the floor)", (5000, *base)),
        Case("no warmup", (0, 3e-4, 0.0, 0, 200)),
        Case("min_lr = 0", (150, 6e-4, 0.0, 20, 200)),
    ]


def _cases_cross_entropy() -> list[Case]:
    rng = np.random.default_rng(11)
    B, T, V = 2, 5, 7
    logits = rng.normal(size=(B, T, V)).astype(np.float32)
    targets = rng.integers(0, V, (B, T))
    mask = (rng.random((B, T)) > 0.4).astype(np.float32)
    mask[0, 0] = 1.0
    uniform = np.zeros((1, 3, 10), np.float32)
    return [
        Case("uniform logits: loss = ln(V)", (uniform, np.array([[0, 5, 9]]))),
        Case("random (B=2, T=5, V=7)", (logits, targets)),
        Case("huge logits (exp overflows unless you use log-sum-exp)", (100 * logits, targets)),
        Case("with a padding mask", (logits, targets, mask)),
        Case("an all-zero mask (nothing to average: 0)", (logits, targets, np.zeros((B, T), np.float32))),
    ]


LESSON = Lesson("05", "training", (
    Exercise("warmup_cosine_lr", _ref_warmup_cosine_lr, _cases_warmup_cosine_lr, atol=1e-9, rtol=1e-4),
    Exercise("cross_entropy", _ref_cross_entropy, _cases_cross_entropy, atol=1e-4, rtol=1e-4),
))
