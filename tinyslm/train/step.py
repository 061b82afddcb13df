"""One training step, compiled once: forward, loss, gradients, optimizer update.

The model is split into a static *graph definition* (its structure) and a pytree of parameters
(``nnx.split``). The step is a pure function of (params, optimizer state, batch) compiled with
``jax.jit`` and the graph definition closed over, so it compiles on the first call and never
again; ``donate_argnums`` lets XLA update the parameter and optimizer buffers in place.
"""

from __future__ import annotations

from typing import Callable

import jax
import jax.numpy as jnp
import optax
from flax import nnx


def cross_entropy(logits: jax.Array, targets: jax.Array, mask: jax.Array | None = None) -> jax.Array:
    """Mean next-token cross-entropy: logits (B, T, V), targets (B, T) -> scalar.

    Positions where ``mask`` is 0 (padding) count neither in the sum nor in the mean.
    """
    losses = optax.softmax_cross_entropy_with_integer_labels(logits.astype(jnp.float32), targets)
    if mask is None:
        return losses.mean()
    mask = mask.astype(jnp.float32)
    return (losses * mask).sum() / jnp.maximum(mask.sum(), 1.0)


def lm_loss(graphdef: nnx.GraphDef, params, windows: jax.Array, dropout_key: jax.Array | None,
            mask: jax.Array | None = None) -> jax.Array:
    """Language-modelling loss of a batch of windows (B, T+1): predict windows[:, 1:] from windows[:, :-1].

    ``mask`` (B, T), when given, marks which predictions count (0 for padding).
    """
    model = nnx.merge(graphdef, params)
    logits = model(windows[:, :-1], dropout_key=dropout_key)
    return cross_entropy(logits, windows[:, 1:], mask)


def make_train_step(graphdef: nnx.GraphDef, tx: optax.GradientTransformation, use_dropout: bool) -> Callable:
    """Build ``step(params, opt_state, windows (A, B, T+1), key) -> (params, opt_state, metrics)``.

    ``A`` micro-batches are accumulated with ``lax.scan``: their gradients are averaged before one
    optimizer update, which is the same update as one batch ``A`` times larger (gradient
    accumulation), at the memory cost of one micro-batch.
    """
    grad_fn = jax.value_and_grad(lambda p, w, k: lm_loss(graphdef, p, w, k if use_dropout else None))

    def step(params, opt_state, windows, key):
        keys = jax.random.split(key, windows.shape[0])

        def accumulate(carry, xs):
            loss_sum, grad_sum = carry
            loss, grads = grad_fn(params, *xs)
            return (loss_sum + loss, jax.tree.map(jnp.add, grad_sum, grads)), None

        zeros = jax.tree.map(jnp.zeros_like, params)
        (loss_sum, grad_sum), _ = jax.lax.scan(accumulate, (jnp.zeros(()), zeros), (windows, keys))
        n = windows.shape[0]
        loss, grads = loss_sum / n, jax.tree.map(lambda g: g / n, grad_sum)
        updates, opt_state = tx.update(grads, opt_state, params)
        params = optax.apply_updates(params, updates)
        return params, opt_state, {"loss": loss, "grad_norm": optax.tree.norm(grads)}

    return jax.jit(step, donate_argnums=(0, 1))


def make_eval_step(graphdef: nnx.GraphDef) -> Callable:
    """Build ``eval_step(params, windows (B, T+1)) -> mean loss`` (no dropout), compiled once."""
    return jax.jit(lambda params, windows: lm_loss(graphdef, params, windows, None))
