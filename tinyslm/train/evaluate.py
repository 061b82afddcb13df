"""Evaluate a language model on every token of a text: mean loss and perplexity.

Training curves use a fixed sample of random windows (cheap, comparable across evals). A final
number should instead cover each token exactly once: the token stream is cut into consecutive
windows of ``seq_len`` predictions, the last window padded, and the padding masked out of the mean.

Perplexity = exp(mean loss): the model is as uncertain as a uniform choice among that many tokens.
"""

from __future__ import annotations

import math

import jax
import numpy as np
from flax import nnx

from tinyslm.errors import DataError
from tinyslm.train.step import lm_loss


def evaluate_tokens(model: nnx.Module, tokens: np.ndarray, seq_len: int, batch_size: int = 16) -> dict:
    """Mean next-token loss over all of ``tokens`` -> {"val_loss", "perplexity", "tokens"}."""
    windows, mask = _consecutive_windows(np.asarray(tokens), seq_len)
    pad_rows = -len(windows) % batch_size
    windows = np.concatenate([windows, np.zeros((pad_rows, seq_len + 1), windows.dtype)])
    mask = np.concatenate([mask, np.zeros((pad_rows, seq_len), mask.dtype)])
    graphdef, params = nnx.split(model)
    total, count = 0.0, 0.0
    for i in range(0, len(windows), batch_size):
        batch_mask = mask[i : i + batch_size]
        loss = _masked_loss(graphdef, params, windows[i : i + batch_size], batch_mask)
        total += float(loss) * float(batch_mask.sum())
        count += float(batch_mask.sum())
    mean = total / count
    return {"val_loss": mean, "perplexity": math.exp(min(mean, 50.0)), "tokens": int(count)}


_masked_loss = jax.jit(lambda graphdef, params, windows, mask: lm_loss(graphdef, params, windows, None, mask),
                       static_argnums=0)


def _consecutive_windows(tokens: np.ndarray, seq_len: int) -> tuple[np.ndarray, np.ndarray]:
    """Cut tokens into rows of seq_len + 1 that overlap by one, so each token is predicted once.

    -> windows (N, seq_len + 1) int32, mask (N, seq_len) float32 (0 where a row is padding).
    """
    n_targets = len(tokens) - 1
    if n_targets < 1:
        raise DataError(f"need at least 2 tokens to evaluate, got {len(tokens)}")
    n_rows = -(-n_targets // seq_len)
    padded = np.zeros(n_rows * seq_len + 1, np.int32)
    padded[: len(tokens)] = tokens
    starts = np.arange(n_rows) * seq_len
    windows = padded[starts[:, None] + np.arange(seq_len + 1)]
    mask = (starts[:, None] + np.arange(seq_len) < n_targets).astype(np.float32)
    return windows, mask
