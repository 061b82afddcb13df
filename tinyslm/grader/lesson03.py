"""Lesson 03, attention: references and inputs to try."""

from __future__ import annotations

import numpy as np

from tinyslm.grader.core import Case, Exercise, Lesson

# --------------------------------------------------------------------------------------- lesson 03


def _ref_softmax(x):
    import jax

    return np.asarray(jax.nn.softmax(np.asarray(x), axis=-1))


def _ref_causal_mask(T: int):
    positions = np.arange(T)
    return positions[None, :] <= positions[:, None]  # key position <= query position


def _ref_attention(q, k, v):
    from tinyslm.model import causal_attention

    B, T = q.shape[:2]
    positions = np.broadcast_to(np.arange(T), (B, T))
    return np.asarray(causal_attention(np.asarray(q), np.asarray(k), np.asarray(v), positions, positions))


def _cases_softmax() -> list[Case]:
    rng = np.random.default_rng(5)
    return [
        Case("a vector", (np.array([1.0, 2.0, 3.0], np.float32),)),
        Case("a batch of rows", (rng.normal(size=(3, 6)).astype(np.float32),)),
        Case("huge logits (exp overflows unless you subtract the max)", (np.array([1000.0, 999.0, 990.0], np.float32),)),
        Case("-inf entries (masked positions)", (np.array([0.5, -np.inf, 2.0, -np.inf], np.float32),)),
        Case("3-D input, softmax over the last axis", (rng.normal(size=(2, 3, 4)).astype(np.float32),)),
    ]


def _cases_causal_mask() -> list[Case]:
    return [Case("T=1", (1,)), Case("T=4", (4,)), Case("T=9", (9,))]


def _qkv(rng, B, T, H, Hkv, D):
    q = rng.normal(size=(B, T, H, D)).astype(np.float32)
    k = rng.normal(size=(B, T, Hkv, D)).astype(np.float32)
    v = rng.normal(size=(B, T, Hkv, D)).astype(np.float32)
    return q, k, v


def _cases_causal_attention() -> list[Case]:
    rng = np.random.default_rng(6)
    return [
        Case("B=1, T=4, H=1, D=8", _qkv(rng, 1, 4, 1, 1, 8)),
        Case("B=2, T=6, H=4, D=16", _qkv(rng, 2, 6, 4, 4, 16)),
        Case("T=1 (a token attends only to itself)", _qkv(rng, 2, 1, 2, 2, 4)),
        Case("large scores (needs the 1/sqrt(D) scale)", tuple(10 * a for a in _qkv(rng, 1, 5, 2, 2, 32))),
    ]


def _cases_gqa() -> list[Case]:
    rng = np.random.default_rng(7)
    return [
        Case("H=4 query heads, 2 KV heads", _qkv(rng, 2, 5, 4, 2, 8)),
        Case("H=6, 3 KV heads", _qkv(rng, 1, 7, 6, 3, 4)),
        Case("multi-query: H=4, 1 KV head", _qkv(rng, 2, 4, 4, 1, 8)),
        Case("plain multi-head: H=3, 3 KV heads", _qkv(rng, 1, 3, 3, 3, 4)),
    ]


LESSON = Lesson("03", "attention", (
    Exercise("softmax", _ref_softmax, _cases_softmax, atol=1e-6),
    Exercise("causal_mask", _ref_causal_mask, _cases_causal_mask),
    Exercise("causal_attention", _ref_attention, _cases_causal_attention, atol=1e-4),
    Exercise("grouped_query_attention", _ref_attention, _cases_gqa, atol=1e-4),
))
