"""Lesson 10 exercises: a LoRA linear layer, its merge, and the pooling of a classification head.

Implement each function below with numpy, then check your work from the repository root with

    tinyslm check 10            (or: pytest lessons/10_finetuning_and_lora)
"""

from __future__ import annotations

import numpy as np


def lora_linear(x: np.ndarray, w: np.ndarray, a: np.ndarray, b: np.ndarray, alpha: float) -> np.ndarray:
    """A linear layer with a LoRA adapter (Hu et al. 2021): the frozen weight plus a low-rank correction.

    x (N, d_in), w (d_in, d_out), a (d_in, r), b (r, d_out) -> (N, d_out):

        y = x @ w + (alpha / r) * (x @ a) @ b

    where r, the rank, is the number of columns of ``a``. (No bias and no dropout here.)
    """
    raise NotImplementedError


def merge_lora(w: np.ndarray, a: np.ndarray, b: np.ndarray, alpha: float) -> np.ndarray:
    """Fold the adapter into the weight: the (d_in, d_out) matrix w' with x @ w' == lora_linear(x, w, a, b, alpha).

        w' = w + (alpha / r) * a @ b
    """
    raise NotImplementedError


def last_token_pool(hidden: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """The hidden state of each sequence's last real token, as a classification head reads it.

    hidden (B, T, D): the model's final hidden states of B sequences padded at the end to T
    tokens; lengths (B,) int: how many tokens of each row are real (at least 1). Returns (B, D):
    row b is hidden[b, lengths[b] - 1]. Padded positions must not matter.
    """
    raise NotImplementedError
