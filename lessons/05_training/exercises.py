"""Lesson 05 exercises: the learning-rate schedule and the loss.

Implement each function below, then check your work from the repository root with

    tinyslm check 05            (or: pytest lessons/05_training)
"""

from __future__ import annotations

import numpy as np


def warmup_cosine_lr(step: int, lr: float, min_lr: float, warmup_steps: int, decay_steps: int) -> float:
    """The learning rate at ``step`` (0-based): linear warmup, cosine decay, then a floor.

    * step < warmup_steps: rise linearly from 0, lr * step / warmup_steps;
    * warmup_steps <= step < decay_steps: with progress = (step - warmup_steps) / (decay_steps -
      warmup_steps), follow half a cosine from lr down to min_lr:
      min_lr + (lr - min_lr) * 0.5 * (1 + cos(pi * progress));
    * step >= decay_steps: min_lr.

    You may assume decay_steps > warmup_steps >= 0. Return a Python float.
    """
    raise NotImplementedError


def cross_entropy(logits: np.ndarray, targets: np.ndarray, mask: np.ndarray | None = None) -> float:
    """Mean next-token cross-entropy: logits (B, T, V), targets (B, T) int -> a float.

    At each position the loss is -log softmax(logits)[target] = logsumexp(logits) - logits[target].
    Compute logsumexp stably (subtract the row maximum before exp). Average over all positions;
    with a ``mask`` (B, T) of 0/1, average only over the positions where mask is 1 (padding does
    not count), and return 0.0 when the mask is all zeros.
    """
    raise NotImplementedError
