"""A classification head on a language model: text -> hidden states -> one vector -> label scores.

A language model already turns each token into a vector that summarises everything before it
(its hidden state). To classify a whole text we need one vector per text, then a linear layer
from that vector to one score (logit) per label:

    hidden = lm.hidden_states(tokens)            (B, T, D)   the final-normed residual stream
    pooled = pool(hidden, lengths)               (B, D)      one vector per text
    logits = pooled @ W + b                      (B, L)      a score per label

Two ways to pool:

* ``last`` — the hidden state of the last real token. In a causal model it is the only position
  that has read the whole text, which is why GPT-style classifiers use it (Radford et al. 2018,
  "Improving Language Understanding by Generative Pre-Training").
* ``mean`` — the average over the real tokens: every position contributes, so it is less
  sensitive to how the text happens to end.

Texts in a batch have different lengths and are padded at the end. The padding must never count:
both poolings read only positions ``< length``, and because attention is causal, real tokens
never attend to the padding after them. So a text's logits do not depend on how much padding
follows it (a test checks exactly that).
"""

from __future__ import annotations

from typing import Literal

import jax
import jax.numpy as jnp
from flax import nnx

from tinyslm.adapt.lora import set_lora_dropout_key
from tinyslm.model import TransformerLM
from tinyslm.model.linear import Linear
from tinyslm.train.step import cross_entropy

POOLINGS = ("last", "mean")
Pooling = Literal["last", "mean"]


def pool(hidden: jax.Array, lengths: jax.Array, how: Pooling) -> jax.Array:
    """hidden (B, T, D), lengths (B,) -> (B, D): the last real token's state, or the mean of the real ones."""
    if how == "last":
        return jnp.take_along_axis(hidden, (lengths - 1)[:, None, None], axis=1)[:, 0]
    real = (jnp.arange(hidden.shape[1])[None, :] < lengths[:, None]).astype(hidden.dtype)  # (B, T)
    return jnp.einsum("btd,bt->bd", hidden, real) / jnp.maximum(lengths, 1)[:, None].astype(hidden.dtype)


class SequenceClassifier(nnx.Module):
    """A :class:`TransformerLM` (its output head unused) with a linear label head on a pooled hidden state."""

    def __init__(self, lm: TransformerLM, n_labels: int, pooling: Pooling = "last", *, rngs: nnx.Rngs):
        if pooling not in POOLINGS:
            raise ValueError(f"pooling must be one of {POOLINGS}, got {pooling!r}")
        self.lm = lm
        self.pooling = pooling
        # Named label_head, not head: a language model's own (untied) output layer is called head.
        self.label_head = Linear(lm.config.d_model, n_labels, bias=True, std=lm.config.init_std, rngs=rngs)

    def __call__(self, tokens: jax.Array, lengths: jax.Array, *, dropout_key: jax.Array | None = None) -> jax.Array:
        """tokens (B, T) padded at the end, lengths (B,) -> label logits (B, n_labels) float32."""
        hidden, _ = self.lm.hidden_states(tokens, dropout_key=dropout_key)
        return self.label_head(pool(hidden, lengths, self.pooling)).astype(jnp.float32)


def classification_loss(model: SequenceClassifier, batch: dict, dropout_key: jax.Array | None = None) -> jax.Array:
    """Mean cross-entropy of the true labels over the batch's real rows (``weight`` 1; filler rows are 0)."""
    set_lora_dropout_key(model, dropout_key)  # adapters, if any, take their dropout keys from it
    logits = model(batch["tokens"], batch["lengths"], dropout_key=dropout_key)
    return cross_entropy(logits, batch["labels"], batch["weight"])
