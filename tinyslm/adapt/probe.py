"""A linear probe: read a frozen language model's hidden states, fit logistic regression on them.

Fine-tuning changes the model to fit a few hundred labelled texts, and with so few it learns the
training texts' wording more than the task. A *probe* changes nothing in the model (Alain & Bengio
2016, "Understanding intermediate layers using linear classifier probes"): it runs every text
through the frozen model once, reads a few hidden states as a feature vector, and fits the one
convex model there is, multinomial logistic regression. No backward pass through the model, no
learning rate, one unique optimum; on CPU it takes the time of one forward pass over the data.

What to read is the whole design. A *tap* is ``pooling@layer``:

* ``layer`` 0 is the embedded input, ``i`` the residual stream after block ``i`` (no final norm);
* ``mean`` averages the real tokens (what the text is about), ``last`` takes the last real token
  (in a causal model the only position that has read everything).

The last token is made to summarise the text by wrapping it in a prompt that asks for one word
(PromptEOL; Jiang et al. 2023, "Scaling Sentence Embeddings with Large Language Models"),
``'This patient's description: "{text}" means in one word: "'``: the state that would write that
word is a summary of the text. Middle and late layers carry meaning, early ones the words; the
default taps concatenate one of each. They were chosen on SmolLM2-135M by cross-validation on
training data split paraphrase-aware (``benchmarks/probe_layers.py``), never on the test split.

Features are standardised (each dimension to mean 0, variance 1 on the training texts; the residual
stream of a trained LM has a few huge dimensions) and the classifier minimises

    mean cross-entropy + l2 / 2 * ||W||^2       (the bias is not penalised)

with L-BFGS (Liu & Nocedal 1989). It is scikit-learn's ``LogisticRegression(C=1 / (l2 * N))``.
"""

from __future__ import annotations

import re
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

from tinyslm.adapt.data import map_length_buckets
from tinyslm.adapt.head import Pooling, pool
from tinyslm.errors import ConfigError
from tinyslm.model import TransformerLM
from tinyslm.model.linear import Linear

PROMPT_TEMPLATE = "This patient's description: \"{text}\" means in one word: \""
PROBE_L2 = 0.015  # sklearn C = 0.1 at the ~650 texts of a cross-validation fold (benchmarks/probe_layers.py)
Tap = tuple[Pooling, int]


def default_taps(n_layers: int) -> tuple[str, ...]:
    """The taps that won on SmolLM2's 30 blocks (``last@24``, ``mean@3``), at the same relative depths."""
    return (f"last@{round(0.8 * n_layers)}", f"mean@{round(0.1 * n_layers)}")


def parse_taps(taps: tuple[str, ...] | list[str], n_layers: int) -> tuple[Tap, ...]:
    """``("last@24", "mean@3")`` -> ``(("last", 24), ("mean", 3))``, checked against the model's depth."""
    parsed = []
    for tap in taps:
        match = re.fullmatch(r"(mean|last)@(\d+)", tap.strip())
        if match is None:
            raise ConfigError(f"a tap is POOLING@LAYER with POOLING mean or last, e.g. last@24; got {tap!r}")
        layer = int(match.group(2))
        if layer > n_layers:
            raise ConfigError(f"tap {tap!r}: the model has {n_layers} blocks, so layers run from 0 to {n_layers}")
        parsed.append((match.group(1), layer))
    if not parsed:
        raise ConfigError("a probe needs at least one tap, e.g. last@24")
    return tuple(parsed)


class FeatureStatistic(nnx.Variable):
    """A fixed statistic of the probe's training features (not trained by gradients)."""


class ProbeClassifier(nnx.Module):
    """A frozen :class:`TransformerLM`, pooled hidden states at its taps, standardised, a linear label head."""

    def __init__(self, lm: TransformerLM, n_labels: int, taps: tuple[str, ...], *, rngs: nnx.Rngs):
        self.lm = lm
        self.taps = parse_taps(taps, lm.config.n_layers)
        width = len(self.taps) * lm.config.d_model
        self.feature_mean = FeatureStatistic(jnp.zeros(width))
        self.feature_scale = FeatureStatistic(jnp.ones(width))
        self.label_head = Linear(width, n_labels, bias=True, std=lm.config.init_std, rngs=rngs)

    def features(self, tokens: jax.Array, lengths: jax.Array) -> jax.Array:
        """tokens (B, T) padded at the end, lengths (B,) -> the taps' pooled states, concatenated (B, taps * D)."""
        stream = self.lm.residual_stream(tokens, max(layer for _, layer in self.taps))
        return jnp.concatenate([pool(stream[layer], lengths, how) for how, layer in self.taps], -1).astype(jnp.float32)

    def __call__(self, tokens: jax.Array, lengths: jax.Array, *, dropout_key: jax.Array | None = None) -> jax.Array:
        """tokens (B, T), lengths (B,) -> label logits (B, n_labels) float32."""
        standard = (self.features(tokens, lengths) - self.feature_mean[...]) / self.feature_scale[...]
        return self.label_head(standard).astype(jnp.float32)


def fit_probe(model: ProbeClassifier, tokens: np.ndarray, lengths: np.ndarray, labels: np.ndarray,
              l2: float = PROBE_L2, batch_size: int = 16, progress=None) -> dict:
    """Fit ``model``'s standardisation and label head to labelled texts; returns the fit's figures.

    ``tokens`` (N, T) and ``lengths`` (N,) as :func:`tinyslm.adapt.data.pad_sequences` makes them,
    ``labels`` (N,) label ids. ``progress`` (a tqdm-like callable over an iterable) wraps the batches.
    """
    features = extract_features(model, tokens, lengths, batch_size, progress)
    mean, scale = features.mean(0), features.std(0) + 1e-6
    weights, bias, loss, iterations = fit_logistic_regression((features - mean) / scale, labels,
                                                              model.label_head.bias.shape[0], l2)
    model.feature_mean[...], model.feature_scale[...] = jnp.asarray(mean), jnp.asarray(scale)
    model.label_head.kernel[...], model.label_head.bias[...] = weights, bias
    return {"train_loss": float(loss), "iterations": int(iterations), "features": int(features.shape[1])}


def extract_features(model: ProbeClassifier, tokens: np.ndarray, lengths: np.ndarray, batch_size: int = 16,
                     progress=None) -> np.ndarray:
    """(N, T) tokens, (N,) lengths -> (N, taps * D) float32 features, in batches of similar length (one compile each)."""
    graphdef, state = nnx.split(model)
    return map_length_buckets(partial(_features, graphdef, state), tokens, lengths, batch_size, progress)


@partial(jax.jit, static_argnums=0)
def _features(graphdef, state, tokens, lengths):
    return nnx.merge(graphdef, state).features(tokens, lengths)


@partial(jax.jit, static_argnames=("n_labels", "max_iterations"))
def fit_logistic_regression(x: jax.Array, labels: jax.Array, n_labels: int, l2: float, max_iterations: int = 1000,
                            tolerance: float = 1e-6) -> tuple[jax.Array, jax.Array, jax.Array, jax.Array]:
    """Multinomial logistic regression on (N, F) features: minimise mean cross-entropy + l2/2 ||W||^2.

    Returns W (F, n_labels), b (n_labels,), the final objective and the L-BFGS iterations taken
    (it stops when the gradient's norm falls under ``tolerance``).
    """
    x = jnp.asarray(x, jnp.float32)
    one_hot = jax.nn.one_hot(labels, n_labels)

    def objective(params):
        weights, bias = params
        log_probs = jax.nn.log_softmax(x @ weights + bias)
        return -jnp.mean(jnp.sum(one_hot * log_probs, -1)) + 0.5 * l2 * jnp.sum(weights**2)

    solver = optax.lbfgs()
    value_and_grad = optax.value_and_grad_from_state(objective)

    def step(carry):
        params, state, _, i = carry
        value, grad = value_and_grad(params, state=state)
        updates, state = solver.update(grad, state, params, value=value, grad=grad, value_fn=objective)
        return optax.apply_updates(params, updates), state, optax.tree.norm(grad), i + 1

    def unfinished(carry):
        _, _, grad_norm, i = carry
        return (grad_norm > tolerance) & (i < max_iterations)

    params = (jnp.zeros((x.shape[1], n_labels)), jnp.zeros(n_labels))
    params, _, _, iterations = jax.lax.while_loop(unfinished, step, (params, solver.init(params), jnp.inf, 0))
    return params[0], params[1], objective(params), iterations
