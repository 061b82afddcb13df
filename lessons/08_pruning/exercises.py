"""Lesson 08 exercises: the two masks every pruning method is built from.

Implement each function below with numpy, then check your work from the repository root with

    tinyslm check 08            (or: pytest lessons/08_pruning)

A mask has the shape of the weight matrix and is True where a weight is *kept*. Kernels are
stored (d_in, d_out), as in tinyslm: row j holds the weights that read input feature j, column k
the weights that feed output feature k.
"""

from __future__ import annotations

import numpy as np


def magnitude_mask(weights: np.ndarray, sparsity: float) -> np.ndarray:
    """Unstructured magnitude pruning of one layer (Han et al. 2015): weights (d_in, d_out) -> bool mask.

    Prune (set False) exactly ``round(sparsity * weights.size)`` weights: those with the smallest
    absolute values across the whole matrix; keep (True) the rest. When several weights have the
    same absolute value, prune the one that comes first in row-major order (``weights.ravel()``)
    first — a stable sort does exactly that.
    """
    raise NotImplementedError


def two_four_mask(scores: np.ndarray) -> np.ndarray:
    """2:4 semi-structured pruning: scores (d_in, d_out), d_in divisible by 4 -> bool mask.

    Cut every column into groups of 4 consecutive rows (rows 0-3, 4-7, ...) and keep the 2 weights
    with the highest scores in each group; prune the other 2. On ties, keep the one with the
    lower row index. (This is the pattern NVIDIA's sparse tensor cores run twice as fast.)
    """
    raise NotImplementedError
