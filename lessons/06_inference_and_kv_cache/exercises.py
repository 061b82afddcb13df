"""Lesson 06 exercises: shaping the next-token distribution before sampling.

Implement each function below with numpy or jax.numpy, then check your work from the repository
root with

    tinyslm check 06            (or: pytest lessons/06_inference_and_kv_cache)
"""

from __future__ import annotations

import numpy as np


def temperature_softmax(logits: np.ndarray, temperature: float) -> np.ndarray:
    """The sampling distribution at a temperature: softmax(logits / temperature) over the last axis.

    logits (B, V) -> probabilities (B, V). A temperature below 1 sharpens the distribution
    (towards greedy), above 1 flattens it (towards uniform). Keep it numerically stable.
    """
    raise NotImplementedError


def top_p_filter(logits: np.ndarray, p: float) -> np.ndarray:
    """Nucleus (top-p) filtering (Holtzman et al. 2020): logits (B, V) -> logits (B, V).

    Keep the smallest set of most likely tokens whose probabilities add up to at least ``p``; set
    every other logit to -inf (kept logits are returned unchanged). Equivalently: sort the
    tokens by probability, most likely first; a token is kept when the total probability of the
    tokens ranked above it is less than p. The most likely token is therefore always kept.
    """
    raise NotImplementedError
