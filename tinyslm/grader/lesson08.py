"""Lesson 08, pruning (a magnitude mask, a 2:4 mask): references and inputs to try."""

from __future__ import annotations

import numpy as np

from tinyslm.grader.core import Case, Exercise, Lesson

# --------------------------------------------------------------------------------------- lesson 08


def _ref_magnitude_mask(weights, sparsity):
    from tinyslm.compress.prune import magnitude_scores, unstructured_mask

    return unstructured_mask(magnitude_scores(weights), sparsity)


def _ref_two_four_mask(scores):
    from tinyslm.compress.prune import nm_mask

    return nm_mask(np.asarray(scores), 2, 4)


def _cases_magnitude_mask() -> list[Case]:
    rng = np.random.default_rng(81)
    by_hand = np.array([[0.5, -0.1], [2.0, 0.05], [-0.3, 1.0]], np.float32)
    ties = np.array([[1.0, -1.0, 0.5], [0.5, -0.5, 1.0]], np.float32)
    return [
        Case("3x2 by hand, sparsity 0.5 (prune -0.1, 0.05, -0.3)", (by_hand, 0.5)),
        Case("negative weights count by their size", (-np.abs(by_hand), 1 / 3)),
        Case("ties: the first in row-major order goes first", (ties, 0.5)),
        Case("sparsity 0 keeps everything", (rng.normal(size=(4, 4)).astype(np.float32), 0.0)),
        Case("random 16x8 at 70%", (rng.normal(size=(16, 8)).astype(np.float32), 0.7)),
        Case("random 10x3 at 25% (7.5 rounds to 8)", (rng.normal(size=(10, 3)).astype(np.float32), 0.25)),
    ]


def _cases_two_four_mask() -> list[Case]:
    rng = np.random.default_rng(82)
    one_column = np.array([[0.9], [0.1], [0.5], [0.3], [0.2], [0.8], [0.7], [0.6]], np.float32)
    return [
        Case("one column, two groups, by hand", (one_column,)),
        Case("ties keep the lower row", (np.ones((4, 3), np.float32),)),
        Case("random 8x5", (rng.random((8, 5)).astype(np.float32),)),
        Case("random 32x16", (rng.random((32, 16)).astype(np.float32),)),
    ]


LESSON = Lesson("08", "pruning", (
    Exercise("magnitude_mask", _ref_magnitude_mask, _cases_magnitude_mask),
    Exercise("two_four_mask", _ref_two_four_mask, _cases_two_four_mask),
))
