"""Structured pruning: remove whole attention heads, MLP neurons and blocks, leaving a smaller dense model.

Unstructured zeros save nothing on dense hardware: the matrix keeps its shape and every zero is
still multiplied. Removing a *unit* — an attention head, an MLP neuron, a whole block — deletes
rows and columns, so the matrices really shrink, the model has a new, smaller :class:`ModelConfig`,
and every forward pass (and every decoded token) does less work. This is how Sheared-LLaMA (Xia
et al. 2023, arXiv:2310.06694) and Minitron (Muralidharan et al. 2024, "Compact Language Models
via Pruning and Knowledge Distillation", arXiv:2407.14679) make small models out of big ones.

Which units go is decided by an **activation-based** importance, measured on calibration data
(:mod:`tinyslm.compress.calibrate`), like Minitron's and unlike gradient-based scores (LLM-Pruner,
Ma et al. 2023): it needs one forward pass and no backward pass, and it measures what the unit
actually writes into the residual stream on real text. The score of a unit is the L2 norm of the
Wanda scores ``|W| * ||X||`` of the weights that carry its output:

* an **MLP neuron** j writes ``x_j * W_down[j, :]`` for every token; the norm of everything it
  writes over the calibration tokens is exactly ``||X_j||₂ * ||W_down[j, :]||₂``;
* an **attention head** writes through its ``head_dim`` rows of ``W_o``; its score is the L2 norm
  of those rows' neuron-style scores (the cross terms between its channels are left out);
* a **block** is scored by how much it changes the residual stream: ``1 - cos(x_in, x_out)``
  averaged over tokens, ShortGPT's "block influence" (Men et al. 2024, arXiv:2403.03853).

:class:`ModelConfig` has one ``n_heads`` and one ``d_ff`` for all blocks, so every block loses
the same *number* of heads and neurons; *which* ones is chosen per block by importance. Heads
respect grouped-query attention: with several query heads per K/V head, the same number of query
heads is removed from every group (each group keeps its shared K/V head); with plain multi-head
attention a head and its own K/V head go together. ``head_dim`` stays as it was.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
from flax import nnx

from tinyslm.compress.calibrate import Activations, collect_activations
from tinyslm.config import ModelConfig
from tinyslm.errors import ConfigError
from tinyslm.model import TransformerLM
from tinyslm.model.linear import Linear

# ------------------------------------------------------------------------------------- importance


def neuron_importance(model: TransformerLM, activations: Activations) -> np.ndarray:
    """(n_layers, d_ff): ||X_j||₂ * ||W_down[j, :]||₂, the size of what neuron j writes over the calibration tokens."""
    rows = []
    for i, block in enumerate(model.blocks):
        down = np.asarray(block.mlp.down.kernel[...])  # (d_ff, d_model)
        rows.append(activations.input_norms[f"blocks.{i}.mlp.down"] * np.linalg.norm(down, axis=1))
    return np.stack(rows)


def head_importance(model: TransformerLM, activations: Activations) -> np.ndarray:
    """(n_layers, n_heads): the L2 norm over a head's channels of ||X_c||₂ * ||W_o[c, :]||₂."""
    c = model.config
    rows = []
    for i, block in enumerate(model.blocks):
        o = np.asarray(block.attn.o.kernel[...])  # (n_heads * head_dim, d_model)
        per_channel = activations.input_norms[f"blocks.{i}.attn.o"] * np.linalg.norm(o, axis=1)
        rows.append(np.sqrt(np.square(per_channel).reshape(c.n_heads, c.head_dim).sum(-1)))
    return np.stack(rows)


def layer_importance(activations: Activations) -> np.ndarray:
    """(n_layers,): 1 - mean cos(stream in, stream out) of each block (ShortGPT's block influence)."""
    return 1.0 - activations.block_cosine


# ------------------------------------------------------------------------------------- the plan


@dataclass(frozen=True)
class StructuredPlan:
    """What survives: the new config and, per kept block, the original indices of its kept units.

    layers: kept blocks (original indices, in order); heads / kv_heads / neurons: one sorted index
    array per kept block.
    """

    config: ModelConfig
    layers: tuple[int, ...]
    heads: tuple[np.ndarray, ...]
    kv_heads: tuple[np.ndarray, ...]
    neurons: tuple[np.ndarray, ...]


def _how_many(fraction: float, n: int) -> int:
    """How many of ``n`` units ``fraction`` removes, rounded to the nearest whole unit, halves up
    (a quarter of a group of 2 query heads is 0.5: one head goes)."""
    return int(np.floor(fraction * n + 0.5))


def _top(scores: np.ndarray, keep: int) -> np.ndarray:
    """Indices of the ``keep`` highest scores, in ascending index order (the units keep their order)."""
    return np.sort(np.argsort(-scores, kind="stable")[:keep])


def plan_structured(model: TransformerLM, activations: Activations, *, heads: float = 0.0, neurons: float = 0.0,
                    layers: int = 0) -> StructuredPlan:
    """Choose the units to keep: remove a ``heads`` fraction of attention heads and a ``neurons``
    fraction of MLP neurons in every block (rounded to whole units), and the ``layers`` least
    influential blocks."""
    c = model.config
    for name, fraction in (("heads", heads), ("neurons", neurons)):
        if not 0.0 <= fraction < 1.0:
            raise ConfigError(f"{name}: the fraction to remove must be in [0, 1), got {fraction}")
    if not 0 <= layers < c.n_layers:
        raise ConfigError(f"layers: can remove 0 to {c.n_layers - 1} of the {c.n_layers} blocks, got {layers}")

    kept_layers = tuple(int(i) for i in _top(layer_importance(activations), c.n_layers - layers))
    group = c.n_heads // c.n_kv_heads  # query heads sharing one K/V head
    if group == 1:  # multi-head attention: a head goes with its own K/V head
        n_kv = c.n_kv_heads - _how_many(heads, c.n_kv_heads)
        new_group = 1
    else:  # grouped-query attention: the same number of query heads leaves every group
        n_kv, new_group = c.n_kv_heads, group - _how_many(heads, group)
    d_ff = c.d_ff - _how_many(neurons, c.d_ff)
    if n_kv < 1 or new_group < 1 or d_ff < 1:
        raise ConfigError(f"pruning {heads:.0%} of heads and {neurons:.0%} of neurons would leave none")

    head_scores, neuron_scores = head_importance(model, activations), neuron_importance(model, activations)
    kept_heads, kept_kv, kept_neurons = [], [], []
    for i in kept_layers:
        if group == 1:
            h = _top(head_scores[i], n_kv)
            kept_heads.append(h)
            kept_kv.append(h)
        else:
            by_group = head_scores[i].reshape(c.n_kv_heads, group)
            kept_heads.append(np.concatenate([g * group + _top(by_group[g], new_group) for g in range(c.n_kv_heads)]))
            kept_kv.append(np.arange(c.n_kv_heads))
        kept_neurons.append(_top(neuron_scores[i], d_ff))
    config = replace(c, n_layers=len(kept_layers), n_heads=n_kv * new_group, n_kv_heads=n_kv, head_dim=c.head_dim,
                     d_ff=d_ff)
    return StructuredPlan(config, kept_layers, tuple(kept_heads), tuple(kept_kv), tuple(kept_neurons))


# ------------------------------------------------------------------------------------- carrying it out


def _channels(heads: np.ndarray, head_dim: int) -> np.ndarray:
    """Head indices -> the indices of their channels in a (n_heads * head_dim) axis."""
    return (heads[:, None] * head_dim + np.arange(head_dim)).ravel()


def _copy_linear(src: Linear, dst: Linear, *, rows: np.ndarray | None = None, cols: np.ndarray | None = None) -> None:
    """dst = src restricted to input ``rows`` and output ``cols`` (None: all of them)."""
    kernel = np.asarray(src.kernel[...])
    kernel = kernel if rows is None else kernel[rows]
    dst.kernel[...] = kernel if cols is None else kernel[:, cols]
    if src.bias is not None:
        bias = np.asarray(src.bias[...])
        dst.bias[...] = bias if cols is None else bias[cols]


def apply_plan(model: TransformerLM, plan: StructuredPlan) -> TransformerLM:
    """Build the smaller dense model: a fresh :class:`TransformerLM` of ``plan.config`` holding the kept weights."""
    small = TransformerLM(plan.config, rngs=nnx.Rngs(0))
    for name in ("embed", "pos_embed", "final_norm", "head"):
        if getattr(model, name) is not None:
            nnx.update(getattr(small, name), nnx.state(getattr(model, name)))
    D = model.config.head_dim
    for new, i, heads, kv, neurons in zip(small.blocks, plan.layers, plan.heads, plan.kv_heads, plan.neurons):
        old = model.blocks[i]
        nnx.update(new.attn_norm, nnx.state(old.attn_norm))
        nnx.update(new.mlp_norm, nnx.state(old.mlp_norm))
        q_channels, kv_channels = _channels(heads, D), _channels(kv, D)
        _copy_linear(old.attn.q, new.attn.q, cols=q_channels)
        _copy_linear(old.attn.k, new.attn.k, cols=kv_channels)
        _copy_linear(old.attn.v, new.attn.v, cols=kv_channels)
        _copy_linear(old.attn.o, new.attn.o, rows=q_channels)
        for name in ("gate", "up"):
            if getattr(old.mlp, name) is not None:
                _copy_linear(getattr(old.mlp, name), getattr(new.mlp, name), cols=neurons)
        _copy_linear(old.mlp.down, new.mlp.down, rows=neurons)
    return small


def zero_pruned_units(model: TransformerLM, plan: StructuredPlan) -> TransformerLM:
    """A copy of ``model``, same shape, whose removed units write nothing into the residual stream.

    A head's output is zeroed through its rows of ``W_o``, a neuron's through its row of
    ``W_down``; a removed block has its ``W_o``, ``W_down`` (and their biases) zeroed, which makes
    it the identity. This model computes exactly what :func:`apply_plan`'s smaller one computes.
    """
    zeroed = nnx.clone(model)
    D = model.config.head_dim
    kept = dict(zip(plan.layers, zip(plan.heads, plan.neurons)))
    for i, block in enumerate(zeroed.blocks):
        o, down = block.attn.o, block.mlp.down
        if i not in kept:
            for linear in (o, down):
                linear.kernel[...] = 0 * linear.kernel[...]
                if linear.bias is not None:
                    linear.bias[...] = 0 * linear.bias[...]
            continue
        heads, neurons = kept[i]
        o_rows = np.zeros(o.kernel.shape[0], bool)
        o_rows[_channels(heads, D)] = True
        down_rows = np.zeros(down.kernel.shape[0], bool)
        down_rows[neurons] = True
        o.kernel[...] = o.kernel[...] * o_rows[:, None]
        down.kernel[...] = down.kernel[...] * down_rows[:, None]
    return zeroed


def prune_structured(model: TransformerLM, calibration: np.ndarray, *, heads: float = 0.25, neurons: float = 0.25,
                     layers: int = 0) -> tuple[TransformerLM, ModelConfig]:
    """Remove heads, neurons and blocks of ``model`` by activation importance on ``calibration`` windows (N, T).

    Returns the smaller dense model and its config (the original model is left untouched).
    """
    plan = plan_structured(model, collect_activations(model, calibration), heads=heads, neurons=neurons, layers=layers)
    return apply_plan(model, plan), plan.config
