"""Lesson 02, embeddings and positions (RoPE): references and inputs to try."""

from __future__ import annotations

import numpy as np

from tinyslm.grader.core import Case, Exercise, Lesson

# --------------------------------------------------------------------------------------- lesson 02


def _ref_embedding_lookup(weight, ids):
    from flax import nnx

    from tinyslm.model.embedding import Embedding

    table = Embedding(1, 1, std=1.0, rngs=nnx.Rngs(0))
    table.weight = nnx.Param(np.asarray(weight))
    return np.asarray(table(np.asarray(ids)))


def _ref_rope_frequencies(head_dim: int, theta: float):
    from tinyslm.model import rope_frequencies

    return np.asarray(rope_frequencies(head_dim, theta))


def _ref_apply_rope(x, positions, inv_freq):
    from tinyslm.model import apply_rope

    return np.asarray(apply_rope(np.asarray(x), np.asarray(positions), np.asarray(inv_freq)))


def _cases_embedding_lookup() -> list[Case]:
    rng = np.random.default_rng(3)
    w = rng.normal(size=(10, 4)).astype(np.float32)
    return [
        Case("1-D ids", (w, np.array([3, 0, 9, 3]))),
        Case("2-D ids (batch, time)", (w, rng.integers(0, 10, (2, 5)))),
        Case("a single id", (w, np.array([7]))),
    ]


def _cases_rope_frequencies() -> list[Case]:
    return [
        Case("head_dim=8, theta=10000", (8, 10000.0)),
        Case("head_dim=64, theta=10000", (64, 10000.0)),
        Case("head_dim=2 (one pair)", (2, 10000.0)),
        Case("head_dim=16, theta=500000 (Llama 3)", (16, 500000.0)),
    ]


def _cases_apply_rope() -> list[Case]:
    rng = np.random.default_rng(4)

    def case(label, B, T, H, D, start=0, theta=10000.0):
        x = rng.normal(size=(B, T, H, D)).astype(np.float32)
        positions = np.broadcast_to(np.arange(start, start + T), (B, T)).copy()
        return Case(label, (x, positions, _ref_rope_frequencies(D, theta)))

    ragged = case("rows at different positions", 2, 3, 1, 4)
    ragged.args[1][1] = [10, 11, 12]
    return [
        case("B=1, T=4, H=1, D=4", 1, 4, 1, 4),
        case("B=2, T=5, H=3, D=8", 2, 5, 3, 8),
        case("positions starting at 100 (decoding)", 1, 3, 2, 8, start=100),
        case("D=2 (a single pair)", 1, 6, 1, 2),
        ragged,
    ]


LESSON = Lesson("02", "embeddings_and_positions", (
    Exercise("embedding_lookup", _ref_embedding_lookup, _cases_embedding_lookup),
    Exercise("rope_frequencies", _ref_rope_frequencies, _cases_rope_frequencies, rtol=1e-5, atol=1e-7),
    Exercise("apply_rope", _ref_apply_rope, _cases_apply_rope, atol=1e-4),
))
