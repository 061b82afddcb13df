"""Lesson 10, fine-tuning and LoRA (a LoRA layer, its merge, last-token pooling): references and inputs."""

from __future__ import annotations

import numpy as np

from tinyslm.grader.core import Case, Exercise, Lesson

# --------------------------------------------------------------------------------------- lesson 10


def _lora_layer(w, a, b, alpha):
    """tinyslm's own LoRALinear holding the given matrices."""
    import jax.numpy as jnp
    from flax import nnx

    from tinyslm.adapt.lora import LoRALinear
    from tinyslm.model.linear import Linear

    base = Linear(*w.shape, bias=False, std=1.0, rngs=nnx.Rngs(0))
    base.kernel[...] = jnp.asarray(w, jnp.float32)
    layer = LoRALinear(base, a.shape[1], alpha, 0.0, rngs=nnx.Rngs(0))
    layer.lora_a[...], layer.lora_b[...] = jnp.asarray(a, jnp.float32), jnp.asarray(b, jnp.float32)
    return layer


def _ref_lora_linear(x, w, a, b, alpha):
    return np.asarray(_lora_layer(w, a, b, alpha)(np.asarray(x, np.float32)))


def _ref_merge_lora(w, a, b, alpha):
    from tinyslm.adapt.lora import merge

    layer = _lora_layer(w, a, b, alpha)
    merge(layer)
    return np.asarray(layer.base.kernel[...])


def _ref_last_token_pool(hidden, lengths):
    from tinyslm.adapt.head import pool

    return np.asarray(pool(np.asarray(hidden, np.float32), np.asarray(lengths), "last"))


def _matrices(rng, d_in, d_out, r):
    return (rng.normal(size=(d_in, d_out)).astype(np.float32), rng.normal(size=(d_in, r)).astype(np.float32),
            rng.normal(size=(r, d_out)).astype(np.float32))


def _cases_lora_linear() -> list[Case]:
    rng = np.random.default_rng(10)
    w, a, b = _matrices(rng, 6, 4, 2)
    x = rng.normal(size=(3, 6)).astype(np.float32)
    w2, a2, b2 = _matrices(rng, 8, 5, 1)
    return [
        Case("rank 2, alpha 4 (scale 2)", (x, w, a, b, 4.0)),
        Case("B = 0: exactly the base layer", (x, w, a, np.zeros_like(b), 16.0)),
        Case("rank 1, alpha 1", (rng.normal(size=(2, 8)).astype(np.float32), w2, a2, b2, 1.0)),
        Case("alpha = r: scale 1", (x, w, a, b, 2.0)),
    ]


def _cases_merge_lora() -> list[Case]:
    rng = np.random.default_rng(11)
    w, a, b = _matrices(rng, 5, 7, 3)
    return [
        Case("rank 3, alpha 6", (w, a, b, 6.0)),
        Case("B = 0: the weight is unchanged", (w, a, np.zeros_like(b), 6.0)),
        Case("rank 1, alpha 0.5", (*_matrices(rng, 4, 4, 1), 0.5)),
    ]


def _cases_last_token_pool() -> list[Case]:
    rng = np.random.default_rng(12)
    hidden = rng.normal(size=(3, 5, 4)).astype(np.float32)
    return [
        Case("lengths 5, 1, 3", (hidden, np.array([5, 1, 3]))),
        Case("every row full", (hidden, np.array([5, 5, 5]))),
        Case("one row of one token", (rng.normal(size=(1, 4, 2)).astype(np.float32), np.array([1]))),
    ]


LESSON = Lesson("10", "finetuning_and_lora", (
    Exercise("lora_linear", _ref_lora_linear, _cases_lora_linear, atol=1e-4, rtol=1e-5),
    Exercise("merge_lora", _ref_merge_lora, _cases_merge_lora, atol=1e-4, rtol=1e-5),
    Exercise("last_token_pool", _ref_last_token_pool, _cases_last_token_pool, atol=1e-6),
))
