"""Lesson 02 exercises: token embeddings and rotary position embeddings (RoPE).

Implement each function below with numpy or jax.numpy, then check your work from the repository
root with

    tinyslm check 02            (or: pytest lessons/02_embeddings_and_positions)
"""

from __future__ import annotations

import numpy as np


def embedding_lookup(weight: np.ndarray, ids: np.ndarray) -> np.ndarray:
    """Look up the vector of every id: weight (V, D), ids (...) int -> (..., D).

    Row ``i`` of ``weight`` is the embedding of token ``i``. The result has the shape of ``ids``
    with one more axis, of size D, at the end. (One line: this is what an embedding layer is.)
    """
    raise NotImplementedError


def rope_frequencies(head_dim: int, theta: float) -> np.ndarray:
    """RoPE's rotation speeds: inv_freq (head_dim / 2,) with inv_freq[i] = theta ** (-2i / head_dim).

    Feature pair i of a query or key at position p is rotated by the angle p * inv_freq[i]
    (Su et al. 2021, eq. 15). Pair 0 turns by one radian per position; the last pair turns about
    ``theta`` times more slowly. Return float32.
    """
    raise NotImplementedError


def apply_rope(x: np.ndarray, positions: np.ndarray, inv_freq: np.ndarray) -> np.ndarray:
    """Rotate queries or keys by their positions: x (B, T, H, D), positions (B, T) int -> (B, T, H, D).

    Use the "rotate half" layout of Llama checkpoints: split the last axis into halves
    a = x[..., :D/2] and b = x[..., D/2:], so feature i is paired with feature i + D/2. With
    angle = positions[b, t] * inv_freq[i] (the same angle for every head):

        a' = a * cos(angle) - b * sin(angle)
        b' = b * cos(angle) + a * sin(angle)

    and return concatenate([a', b'], axis=-1). Hint: build angles of shape (B, T, 1, D/2) so they
    broadcast over the heads.
    """
    raise NotImplementedError
