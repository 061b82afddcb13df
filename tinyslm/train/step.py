"""One training step, compiled once: forward, loss, gradients, optimizer update.

The model is split into a static *graph definition* (its structure) and pytrees of variables
(``nnx.split``): the *trainable* ones, which get gradients and optimizer state, and the *frozen*
rest (empty for pretraining; the base weights under LoRA, a teacher under distillation). The step
is a pure function of (trainable, optimizer state, batch, key, frozen) compiled with ``jax.jit``
and the graph definition closed over, so it compiles on the first call and never again;
``donate_argnums`` lets XLA update the trainable and optimizer buffers in place.

What is minimised is a *loss function* ``loss(model, batch, dropout_key) -> scalar`` of the merged
model: :func:`language_model_loss` by default; fine-tuning, distillation and quantization-aware
training pass their own.
"""

from __future__ import annotations

from typing import Any, Callable

import jax
import jax.numpy as jnp
import optax
from flax import nnx

LossFn = Callable[[nnx.Module, Any, "jax.Array | None"], jax.Array]


def cross_entropy(logits: jax.Array, targets: jax.Array, mask: jax.Array | None = None) -> jax.Array:
    """Mean next-token cross-entropy: logits (B, T, V), targets (B, T) -> scalar.

    Positions where ``mask`` is 0 (padding) count neither in the sum nor in the mean.
    """
    losses = optax.softmax_cross_entropy_with_integer_labels(logits.astype(jnp.float32), targets)
    if mask is None:
        return losses.mean()
    mask = mask.astype(jnp.float32)
    return (losses * mask).sum() / jnp.maximum(mask.sum(), 1.0)


def language_model_loss(model: nnx.Module, windows: jax.Array, dropout_key: jax.Array | None = None,
                        mask: jax.Array | None = None) -> jax.Array:
    """Language-modelling loss of a batch of windows (B, T+1): predict windows[:, 1:] from windows[:, :-1].

    ``mask`` (B, T), when given, marks which predictions count (0 for padding).
    """
    logits = model(windows[:, :-1], dropout_key=dropout_key)
    return cross_entropy(logits, windows[:, 1:], mask)


def lm_loss(graphdef: nnx.GraphDef, params, windows: jax.Array, dropout_key: jax.Array | None,
            mask: jax.Array | None = None) -> jax.Array:
    """:func:`language_model_loss` of the model ``nnx.merge(graphdef, params)``: the pure form jit needs."""
    return language_model_loss(nnx.merge(graphdef, params), windows, dropout_key, mask)


def make_train_step(graphdef: nnx.GraphDef, tx: optax.GradientTransformation, use_dropout: bool,
                    loss_fn: LossFn = language_model_loss,
                    constrain: Callable[[nnx.State], nnx.State] | None = None) -> Callable:
    """Build ``step(params, opt_state, batch, key, frozen=None) -> (params, opt_state, metrics)``.

    ``batch`` is a pytree whose leaves have a leading axis of ``A`` micro-batches (for language
    modelling: windows ``(A, B, T+1)``). Their gradients are accumulated with ``lax.scan`` and
    averaged before one optimizer update, which is the same update as one batch ``A`` times larger
    (gradient accumulation), at the memory cost of one micro-batch. ``constrain``, if given, maps
    the updated parameters back onto an allowed set (pruning keeps its zeros this way).
    """

    grad_fn = jax.value_and_grad(_merged_loss(graphdef, loss_fn))

    def step(params, opt_state, batch, key, frozen=None):
        n = jax.tree.leaves(batch)[0].shape[0]
        keys = jax.random.split(key, n)

        def accumulate(carry, xs):
            loss_sum, grad_sum = carry
            micro_batch, micro_key = xs
            loss, grads = grad_fn(params, micro_batch, micro_key if use_dropout else None, frozen)
            return (loss_sum + loss, jax.tree.map(jnp.add, grad_sum, grads)), None

        zeros = jax.tree.map(jnp.zeros_like, params)
        (loss_sum, grad_sum), _ = jax.lax.scan(accumulate, (jnp.zeros(()), zeros), (batch, keys))
        loss, grads = loss_sum / n, jax.tree.map(lambda g: g / n, grad_sum)
        updates, opt_state = tx.update(grads, opt_state, params)
        params = optax.apply_updates(params, updates)
        if constrain is not None:
            params = constrain(params)
        return params, opt_state, {"loss": loss, "grad_norm": optax.tree.norm(grads)}

    return jax.jit(step, donate_argnums=(0, 1))


def step_flops(train_step: Callable, params, opt_state, batch, key, frozen=None) -> float | None:
    """The FLOPs of one optimizer step of ``train_step`` (from :func:`make_train_step`), as XLA
    counts the traced program: the *model FLOPs* of MFU for whatever the task trains.

    Frozen weights get no weight gradient, a frozen bottom of the model gets no backward pass at
    all, a classifier never runs the vocabulary head, a distillation step also runs its teacher. For
    plain pretraining the count is the formula of :func:`tinyslm.train.metrics.flops_per_token` (6
    per parameter per token, plus attention) plus the elementwise work the formula leaves out. XLA
    counts a loop body once, so the count (one micro-batch's loss and gradient, plus the optimizer
    update) is multiplied by the micro-batches; the update's share is about 1% on a width-32 test
    model and less on real ones. Nothing is compiled: the step is traced and lowered, and ``jax.jit``
    keeps that lowering, so a first call with the same arguments does not trace again.
    None where the backend gives no count.
    """
    lowered = train_step.lower(params, opt_state, batch, key, frozen)
    flops = (lowered.cost_analysis() or {}).get("flops")
    micro_batches = jax.tree.leaves(batch)[0].shape[0]
    return float(flops) * micro_batches if flops and flops > 0 else None


def _merged_loss(graphdef: nnx.GraphDef, loss_fn: LossFn) -> Callable:
    """``loss_fn`` as a pure function of ``(params, batch, dropout_key, frozen)``: what jit and grad need."""

    def loss_of(params, batch, key, frozen):
        return loss_fn(nnx.merge(graphdef, params, *([] if frozen is None else [frozen])), batch, key)

    return loss_of


def make_eval_step(graphdef: nnx.GraphDef, loss_fn: LossFn = language_model_loss) -> Callable:
    """Build ``eval_step(params, batch, frozen=None) -> mean loss`` (no dropout), compiled once."""

    loss_of = _merged_loss(graphdef, loss_fn)

    def eval_step(params, batch, frozen=None):
        return loss_of(params, batch, None, frozen)

    return jax.jit(eval_step)
