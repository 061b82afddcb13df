"""Batches of random windows from a token array: what the model actually trains on.

A language model learns to predict token t+1 from tokens 0..t. One window of ``seq_len + 1``
consecutive ids holds ``seq_len`` such lessons at once:

    window  = [w0, w1, w2, ..., wT]      (seq_len + 1 ids)
    inputs  = window[:-1] = [w0 .. wT-1]
    targets = window[1:]  = [w1 .. wT]   (each input's next token)

Windows start at random positions, so there are no epochs: each step sees a fresh random mix of
the corpus.

The randomness is a pure function of ``(seed, step)``: batch 5000 is the same whether the run
went straight to step 5000 or was stopped at 3000 and resumed. Resuming therefore needs no saved
sampler state — only the step number, which the checkpoint has anyway.
"""

from __future__ import annotations

import numpy as np

from tinyslm.errors import DataError


def sample_batch(tokens: np.ndarray, *, seed: int, step: int, batch_size: int, seq_len: int) -> np.ndarray:
    """``batch_size`` random windows of ``seq_len + 1`` tokens for training step ``step``.

    Returns int32 ``(B, T+1)``; use ``batch[:, :-1]`` as inputs and ``batch[:, 1:]`` as targets.
    ``np.random.default_rng([seed, step])`` gives each step its own independent stream, derived
    from both numbers together, so no state carries from one step to the next.
    """
    rng = np.random.default_rng([seed, step])
    starts = rng.integers(0, _n_starts(tokens, seq_len), size=batch_size)  # (B,)
    return _windows(tokens, starts, seq_len)


def eval_batches(tokens: np.ndarray, *, seed: int, n_batches: int, batch_size: int, seq_len: int) -> np.ndarray:
    """A fixed set of ``n_batches`` batches, int32 ``(n_batches, B, T+1)``, for validation.

    The same windows at every evaluation, so a change in the validation curve is a change in the
    model, not noise from which windows happened to be drawn. Their stream (seeded by ``seed``
    alone) is separate from every training step's ``[seed, step]``.
    """
    rng = np.random.default_rng(seed)
    starts = rng.integers(0, _n_starts(tokens, seq_len), size=(n_batches, batch_size))  # (N, B)
    return _windows(tokens, starts, seq_len)


def _n_starts(tokens: np.ndarray, seq_len: int) -> int:
    """How many positions a window of ``seq_len + 1`` tokens can start at (at least 1)."""
    n_starts = len(tokens) - seq_len
    if n_starts < 1:
        raise DataError(f"this split has only {len(tokens)} tokens, but one training window needs "
                        f"seq_len + 1 = {seq_len + 1}; reduce train.seq_len to at most {len(tokens) - 1}, "
                        "or give the split more text (for val: a larger data.val_fraction)")
    return n_starts


def _windows(tokens: np.ndarray, starts: np.ndarray, seq_len: int) -> np.ndarray:
    """Gather ``tokens[s : s + seq_len + 1]`` for every start ``s`` in one indexing operation.

    ``starts[..., None] + arange(T+1)`` is a grid of positions, one row per window; indexing
    the (memory-mapped) array with it copies just those tokens, with no Python loop over rows.
    """
    positions = starts[..., None] + np.arange(seq_len + 1)  # (..., T+1)
    return np.asarray(tokens[positions], dtype=np.int32)
