"""Lesson 04 exercises: normalisation, the SwiGLU MLP, and counting parameters.

Implement each function below with numpy or jax.numpy, then check your work from the repository
root with

    tinyslm check 04            (or: pytest lessons/04_the_transformer)
"""

from __future__ import annotations

import numpy as np


def rms_norm(x: np.ndarray, scale: np.ndarray, eps: float = 1e-5) -> np.ndarray:
    """RMSNorm (Zhang & Sennrich 2019): x (..., D), scale (D,) -> (..., D).

        y = x / sqrt(mean(x**2 over the last axis) + eps) * scale

    No mean is subtracted and there is no bias. ``eps`` goes inside the square root.
    """
    raise NotImplementedError


def layer_norm(x: np.ndarray, scale: np.ndarray, bias: np.ndarray | None, eps: float = 1e-5) -> np.ndarray:
    """LayerNorm (Ba, Kiros & Hinton 2016): x (..., D), scale (D,), bias (D,) or None -> (..., D).

        y = (x - mean) / sqrt(var + eps) * scale (+ bias)

    with the mean and the (biased, divide-by-D) variance taken over the last axis.
    """
    raise NotImplementedError


def swiglu_mlp(x: np.ndarray, w_gate: np.ndarray, w_up: np.ndarray, w_down: np.ndarray) -> np.ndarray:
    """The Llama feed-forward network: x (..., d_model) -> (..., d_model).

        y = (silu(x @ w_gate) * (x @ w_up)) @ w_down,    silu(z) = z * sigmoid(z)

    w_gate and w_up are (d_model, d_ff), w_down is (d_ff, d_model). No biases (Shazeer 2020).
    """
    raise NotImplementedError


def llama_param_count(vocab_size: int, d_model: int, n_layers: int, n_heads: int, n_kv_heads: int, d_ff: int,
                      tie_embeddings: bool = True) -> int:
    """The number of parameters of a Llama-style model, from its shape alone.

    The model has: a token embedding (vocab_size x d_model); per layer two RMSNorm scales
    (d_model each), attention projections q and o (d_model x d_model each) and k and v
    (d_model x n_kv_heads * head_dim each, head_dim = d_model // n_heads), and a SwiGLU MLP
    (three d_model x d_ff matrices); a final RMSNorm; and, unless tie_embeddings, an output head
    (d_model x vocab_size). No biases. Return a Python int.
    """
    raise NotImplementedError
