"""Lesson 03 exercises: softmax, the causal mask, attention and grouped-query attention.

Implement each function below with numpy or jax.numpy, then check your work from the repository
root with

    tinyslm check 03            (or: pytest lessons/03_attention)

Shapes follow tinyslm's convention: B batch, T time (tokens), H query heads, Hkv key/value
heads, D head dimension.
"""

from __future__ import annotations

import numpy as np


def softmax(x: np.ndarray) -> np.ndarray:
    """Softmax over the last axis: exp(x) / sum(exp(x)), for any number of leading axes.

    Make it numerically safe: exp(1000) overflows to inf, so subtract each row's maximum first
    (softmax does not change when a constant is subtracted from a whole row). Entries equal to
    -inf (masked out) must come out as exactly 0.
    """
    raise NotImplementedError


def causal_mask(T: int) -> np.ndarray:
    """A (T, T) boolean matrix, True where query t may look at key s, i.e. where s <= t.

    Row t is the query, column s the key: the lower triangle and the diagonal are True.
    """
    raise NotImplementedError


def causal_attention(q: np.ndarray, k: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Multi-head causal self-attention: q, k, v (B, T, H, D) -> (B, T, H, D).

    For every batch row and head:  softmax(q k^T / sqrt(D) with future keys set to -inf) v.
    The positions are 0..T-1, so the mask is causal_mask(T). Use np.einsum (or matmul with
    transposes) to keep the head axis separate: scores have shape (B, H, T, T).
    """
    raise NotImplementedError


def grouped_query_attention(q: np.ndarray, k: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Grouped-query causal attention: q (B, T, H, D), k, v (B, T, Hkv, D) -> (B, T, H, D).

    H is a multiple of Hkv; G = H // Hkv query heads share each key/value head (Ainslie et al.
    2023). Query head h uses key/value head h // G: heads 0..G-1 share KV head 0, and so on.
    Hkv == H is ordinary multi-head attention, Hkv == 1 multi-query attention. The simplest
    correct answer repeats each KV head G times (np.repeat along the head axis) and calls
    causal_attention; can you do it without copying k and v?
    """
    raise NotImplementedError
