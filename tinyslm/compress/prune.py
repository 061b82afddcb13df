"""Unstructured and N:M pruning: set the least important weights of every block's linear layers to zero.

A trained model holds many weights it barely uses. Pruning removes them. Two questions decide how:
*which* weights count as unimportant (the score), and *how the zeros may be arranged* (the pattern).

Scores (``kernel`` is (d_in, d_out): row j multiplies input feature j):

* **magnitude** — ``|W|``: small weights change the output little (Han et al. 2015, "Learning both
  Weights and Connections", arXiv:1506.02626). Blind to the inputs: a small weight on an input
  feature that is always huge matters more than a large weight on one that is always tiny.
* **Wanda** — ``|W_jk| * ||X_j||₂`` (Sun et al. 2023, "A Simple and Effective Pruning Approach for
  Large Language Models", arXiv:2306.11695): the weight's size times the L2 norm of its input
  feature over calibration tokens, i.e. how much that weight actually contributes. Language models
  have a few input features with very large activations; Wanda keeps the weights on them.

Patterns:

* **unstructured** at a sparsity s: any s of the weights may go. Wanda compares weights *per
  output* (the weights feeding one output feature compete with each other, the paper's key
  ablation); magnitude compares them within a layer, or across all layers at once (``global``).
* **N:M semi-structured**: in every group of M consecutive weights along the input axis, only N
  survive (2:4 keeps 2 of every 4). NVIDIA's sparse tensor cores (Ampere and later) skip the zeros
  of exactly this pattern and run about twice as fast (Mishra et al. 2021, arXiv:2104.08378). It
  is more constrained than unstructured sparsity, so at the same 50% it costs more quality.

Calibration order (Wanda only): *one-shot* measures every layer's input norms on the dense model
(:func:`compute_masks`); *sequential* (:func:`prune_sequentially`, the paper's released code)
prunes block by block and measures each block on what the already pruned blocks before it produce.

Neither pattern makes a dense matrix multiplication faster or the stored model smaller: the zeros
are still stored and multiplied. That needs sparse kernels (N:M on a GPU) or removing whole rows,
columns, heads and layers — structured pruning, in :mod:`tinyslm.compress.structured`.

A mask is a boolean array shaped like the kernel, True where the weight is *kept*. After pruning,
fine-tuning ("recovery") lets the surviving weights compensate, with :func:`mask_constraint`
putting the zeros back after every optimizer update so the mask stays fixed.
"""

from __future__ import annotations

from typing import Callable, Literal

import numpy as np
from flax import nnx

from tinyslm.compress.calibrate import Activations, block_linears, collect_activations
from tinyslm.errors import ConfigError
from tinyslm.model import TransformerLM

Score = Literal["magnitude", "wanda"]
Scope = Literal["output", "layer", "global"]
Masks = dict[str, np.ndarray]  # linear name ("blocks.0.attn.q") -> keep mask (d_in, d_out) bool


# ------------------------------------------------------------------------------------- scores


def magnitude_scores(kernel: np.ndarray) -> np.ndarray:
    """|W|: kernel (d_in, d_out) -> scores (d_in, d_out)."""
    return np.abs(np.asarray(kernel, np.float32))


def wanda_scores(kernel: np.ndarray, input_norms: np.ndarray) -> np.ndarray:
    """|W_jk| * ||X_j||₂: kernel (d_in, d_out), input_norms (d_in,) -> scores (d_in, d_out).

    ``input_norms[j]`` is the L2 norm of input feature j over all calibration tokens, so every
    weight in row j (all the weights reading feature j) is scaled by the same activation size.
    """
    return magnitude_scores(kernel) * np.asarray(input_norms, np.float32)[:, None]


# ------------------------------------------------------------------------------------- masks


def _check_sparsity(sparsity: float) -> None:
    if not 0.0 <= sparsity < 1.0:
        raise ConfigError(f"sparsity: must be in [0, 1), got {sparsity}")


def unstructured_mask(scores: np.ndarray, sparsity: float, *, per_output: bool = False) -> np.ndarray:
    """Keep mask that zeroes the ``sparsity`` fraction of weights with the lowest scores.

    scores (d_in, d_out) (or any shape with ``per_output=False``) -> bool mask, True = kept.
    Exactly ``round(sparsity * size)`` weights are pruned (ties broken by position). With
    ``per_output`` the weights of each output column compete only with each other: every column
    loses the same number of weights, and the remainder of the rounding is spread one weight per
    column over the first columns, so the total is still exact.
    """
    _check_sparsity(sparsity)
    scores = np.asarray(scores)
    n_prune = int(round(sparsity * scores.size))
    if not per_output:
        order = np.argsort(scores, axis=None, kind="stable")
        mask = np.ones(scores.size, bool)
        mask[order[:n_prune]] = False
        return mask.reshape(scores.shape)
    d_in, d_out = scores.shape
    per_column = np.full(d_out, n_prune // d_out)
    per_column[: n_prune % d_out] += 1
    ranks = np.argsort(np.argsort(scores, axis=0, kind="stable"), axis=0, kind="stable")  # 0 = lowest in its column
    return ranks >= per_column[None, :]


def nm_mask(scores: np.ndarray, n: int, m: int) -> np.ndarray:
    """N:M keep mask: in every group of ``m`` consecutive inputs of each output column, keep the ``n`` best.

    scores (d_in, d_out) with d_in divisible by m -> bool mask (d_in, d_out). The groups run along
    the input axis, the axis a matrix multiplication sums over, as sparse tensor cores need.
    """
    if not 0 < n < m:
        raise ConfigError(f"N:M pattern: need 0 < N < M, got {n}:{m}")
    d_in, d_out = scores.shape
    if d_in % m:
        raise ConfigError(f"N:M pattern {n}:{m}: a layer has {d_in} inputs, which is not divisible by {m}")
    groups = np.asarray(scores).reshape(d_in // m, m, d_out)
    ranks = np.argsort(np.argsort(-groups, axis=1, kind="stable"), axis=1, kind="stable")  # 0 = best in its group
    return (ranks < n).reshape(d_in, d_out)


def layer_scores(model: TransformerLM, score: Score, activations: Activations | None = None,
                 block: int | None = None) -> dict[str, np.ndarray]:
    """The score of every weight of every block linear layer (or only block ``block``'s), by layer name."""
    if score == "wanda" and activations is None:
        raise ConfigError("Wanda needs calibration activations (collect_activations on the run's training data)")
    if score not in ("magnitude", "wanda"):
        raise ConfigError(f"score: unknown pruning score {score!r}; choose 'magnitude' or 'wanda'")
    scores = {}
    for name, linear in block_linears(model, block).items():
        kernel = np.asarray(linear.kernel[...])
        scores[name] = (magnitude_scores(kernel) if score == "magnitude"
                        else wanda_scores(kernel, activations.input_norms[name]))
    return scores


def compute_masks(model: TransformerLM, score: Score, *, sparsity: float | None = None,
                  nm: tuple[int, int] | None = None, scope: Scope | None = None,
                  activations: Activations | None = None, block: int | None = None) -> Masks:
    """Keep masks for every block linear layer: unstructured at ``sparsity``, or the N:M pattern ``nm``.

    ``scope`` (unstructured only) says which weights compete: ``"output"`` (per output column;
    Wanda's default), ``"layer"`` (within each layer; magnitude's default) or ``"global"``
    (across all layers at once: a layer whose weights are small overall loses more of them).
    With ``block``, only the masks of that block's layers.
    """
    scores = layer_scores(model, score, activations, block)
    if nm is not None:
        return {name: nm_mask(s, *nm) for name, s in scores.items()}
    if sparsity is None:
        raise ConfigError("give a sparsity (unstructured) or an N:M pattern")
    scope = scope or ("output" if score == "wanda" else "layer")
    if scope == "global":
        names = list(scores)
        flat = unstructured_mask(np.concatenate([scores[n].ravel() for n in names]), sparsity)
        bounds = np.cumsum([0] + [scores[n].size for n in names])
        return {n: flat[bounds[i]:bounds[i + 1]].reshape(scores[n].shape) for i, n in enumerate(names)}
    if scope not in ("output", "layer"):
        raise ConfigError(f"scope: unknown {scope!r}; choose 'output', 'layer' or 'global'")
    return {name: unstructured_mask(s, sparsity, per_output=scope == "output") for name, s in scores.items()}


def prune_sequentially(model: TransformerLM, windows: np.ndarray, *, sparsity: float | None = None,
                       nm: tuple[int, int] | None = None, scope: Scope | None = None) -> Masks:
    """Wanda block by block, as the paper's released code does it: prune ``model`` in place, return its masks.

    One-shot calibration measures every layer's inputs on the dense model. Here block ``i`` is
    measured on the calibration ``windows`` (N, T) *after* blocks 0..i-1 have been pruned, so its
    scores see the inputs it will really get — the earlier blocks' pruning errors included — and
    then it is pruned itself before block ``i + 1`` is measured (:func:`collect_activations` with
    ``after_block``). Block 0 gets the same masks either way. A ``"global"`` scope cannot work like
    this: it ranks all layers against each other, so every layer must be measured before any is pruned.
    """
    if scope == "global":
        raise ConfigError("scope 'global' compares every layer at once, so it cannot prune block by block; "
                          "use 'output' or 'layer' with sequential calibration")
    masks: Masks = {}

    def prune_block(i: int, activations: Activations) -> None:
        block_masks = compute_masks(model, "wanda", sparsity=sparsity, nm=nm, scope=scope, activations=activations,
                                    block=i)
        apply_masks(model, block_masks)
        masks.update(block_masks)

    collect_activations(model, windows, after_block=prune_block)
    return masks


# ------------------------------------------------------------------------------------- applying masks


def apply_masks(model: TransformerLM, masks: Masks) -> TransformerLM:
    """Zero the pruned weights of ``model`` in place (and return it)."""
    linears = block_linears(model)
    for name, mask in masks.items():
        kernel = linears[name].kernel
        kernel[...] = kernel[...] * mask.astype(kernel[...].dtype)
    return model


def _state_path(name: str) -> tuple:
    """"blocks.0.attn.q" -> ("blocks", 0, "attn", "q", "kernel"): the kernel's path in ``nnx.state``."""
    return tuple(int(p) if p.isdigit() else p for p in name.split(".")) + ("kernel",)


def mask_constraint(masks: Masks) -> Callable[[nnx.State], nnx.State]:
    """A training constraint (``TrainingTask.constrain``) that multiplies every pruned kernel by its mask.

    The optimizer moves pruned weights away from zero (Adam's momentum and weight decay do not know
    about masks); applying the mask after each update keeps the sparsity pattern fixed, so the
    recovered model is exactly as sparse as the pruned one.
    """
    paths = {_state_path(name): mask for name, mask in masks.items()}

    def constrain(params: nnx.State) -> nnx.State:
        for path, mask in paths.items():
            kernel = params
            for key in path:
                kernel = kernel[key]
            kernel[...] = kernel[...] * mask.astype(kernel[...].dtype)
        return params

    return constrain


def masks_from_zeros(model: TransformerLM) -> Masks:
    """Read the masks back from a pruned model's weights (a weight is pruned iff it is exactly zero)."""
    return {name: np.asarray(linear.kernel[...]) != 0 for name, linear in block_linears(model).items()}


def sparsity(masks: Masks) -> float:
    """The fraction of pruned weights over all masked layers."""
    total = sum(m.size for m in masks.values())
    return 1.0 - sum(int(m.sum()) for m in masks.values()) / total
