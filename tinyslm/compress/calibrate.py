"""Calibration: run a trained model on a little of its own training data and measure its activations.

Weights alone do not say what a layer does; the inputs it sees do. A weight that multiplies a
feature which is always near zero can go, however large it is. Pruning methods that look at
activations (Wanda, and every structured method here) need two statistics, gathered in one pass
over a few hundred calibration windows of the run's own ``data/train.bin``:

* for every linear layer inside the blocks, the squared L2 norm of each input feature over all
  calibration tokens, ``||X_j||² = Σ_tokens x_j²`` (the diagonal of ``XᵀX``);
* for every block, how much it turns the residual stream: the mean cosine similarity between the
  stream entering and leaving it (a block whose output points where its input did adds little).

The statistics are collected by *probes*: for the duration of the pass, each linear layer (and
each block) is replaced by a small module that records what flows through it and then calls the
original. The model's own code is untouched, and the original layers are put back afterwards.
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from tinyslm.data import load_tokens, sample_batch
from tinyslm.model import TransformerLM
from tinyslm.model.linear import Linear
from tinyslm.train.checkpoint import DATA_DIR

# The linear layers of a block, by attribute path: every matrix multiplication a block does.
BLOCK_LINEARS = ("attn.q", "attn.k", "attn.v", "attn.o", "mlp.gate", "mlp.up", "mlp.down")


def block_linears(model: TransformerLM) -> dict[str, Linear]:
    """Every linear layer inside the blocks by name, e.g. ``"blocks.0.attn.q"`` -> its :class:`Linear`.

    These are the layers pruning works on. The embedding (a lookup shared with the output head)
    and the norms stay dense, as in the Wanda and SparseGPT papers: they are a small part of the
    parameters and the model is very sensitive to them.
    """
    linears = {}
    for i, block in enumerate(model.blocks):
        for path in BLOCK_LINEARS:
            part, name = path.split(".")
            linear = getattr(getattr(block, part), name)
            if linear is not None:  # the GELU MLP has no gate
                linears[f"blocks.{i}.{path}"] = linear
    return linears


def calibration_windows(run_dir: str | Path, n_windows: int, seq_len: int, seed: int = 0) -> np.ndarray:
    """``n_windows`` random windows (n_windows, seq_len) of token ids from the run's ``data/train.bin``.

    Calibration uses training data, never validation data, so that the perplexity measured on the
    validation split afterwards is still a held-out number.
    """
    tokens = load_tokens(Path(run_dir) / DATA_DIR, "train")
    return sample_batch(tokens, seed=seed, step=0, batch_size=n_windows, seq_len=seq_len)[:, :-1]


class ActivationStat(nnx.Variable):
    """A statistic a probe accumulates during calibration (a variable, but not a parameter)."""


class _InputProbe(nnx.Module):
    """Stands in for a Linear: adds Σ x_j² of its inputs to ``sum_sq`` (d_in,), then calls it."""

    def __init__(self, linear: Linear):
        self.linear = linear
        self.sum_sq = ActivationStat(jnp.zeros((linear.kernel.shape[0],), jnp.float32))

    def __call__(self, x: jax.Array) -> jax.Array:
        flat = x.reshape(-1, x.shape[-1]).astype(jnp.float32)  # (tokens, d_in)
        self.sum_sq[...] = self.sum_sq[...] + jnp.sum(flat * flat, axis=0)
        return self.linear(x)


class _BlockProbe(nnx.Module):
    """Stands in for a Block: adds the cosine similarity of each token's stream in and out to ``cos_sum``."""

    def __init__(self, block: nnx.Module):
        self.block = block
        self.cos_sum = ActivationStat(jnp.zeros((), jnp.float32))

    def __call__(self, x: jax.Array, *args):
        y, cache = self.block(x, *args)
        x32, y32 = x.astype(jnp.float32), y.astype(jnp.float32)
        cos = jnp.sum(x32 * y32, -1) / (jnp.linalg.norm(x32, axis=-1) * jnp.linalg.norm(y32, axis=-1) + 1e-12)
        self.cos_sum[...] = self.cos_sum[...] + jnp.sum(cos)
        return y, cache


@dataclass(frozen=True)
class Activations:
    """What calibration measured.

    input_norms: name -> ||X_j||₂ (d_in,), the L2 norm of each input feature of that linear layer
        over all calibration tokens (Wanda's activation term).
    block_cosine: (n_layers,) mean cosine similarity between each block's input and output stream.
    tokens: how many calibration tokens went through the model.
    """

    input_norms: dict[str, np.ndarray]
    block_cosine: np.ndarray
    tokens: int


@contextmanager
def _probed(model: TransformerLM):
    """Swap probes in for every block linear and block; always put the originals back."""
    originals = list(model.blocks)
    linear_probes, block_probes = {}, []
    try:
        for i, block in enumerate(originals):
            for path in BLOCK_LINEARS:
                part, name = path.split(".")
                owner = getattr(block, part)
                if getattr(owner, name) is not None:
                    linear_probes[f"blocks.{i}.{path}"] = probe = _InputProbe(getattr(owner, name))
                    setattr(owner, name, probe)
            block_probes.append(_BlockProbe(block))
            model.blocks[i] = block_probes[-1]
        yield linear_probes, block_probes
    finally:
        for i, block in enumerate(originals):
            model.blocks[i] = block
            for path in BLOCK_LINEARS:
                part, name = path.split(".")
                owner = getattr(block, part)
                if isinstance(getattr(owner, name), _InputProbe):
                    setattr(owner, name, getattr(owner, name).linear)


@nnx.jit
def _calibration_forward(model: TransformerLM, tokens: jax.Array) -> None:
    model(tokens)  # the probes update their statistics; the logits are not needed


def collect_activations(model: TransformerLM, windows: np.ndarray, batch_size: int = 16) -> Activations:
    """Run ``windows`` (N, T) through ``model`` and return the :class:`Activations` it produced."""
    windows = np.asarray(windows, np.int32)
    with _probed(model) as (linear_probes, block_probes):
        for start in range(0, len(windows), batch_size):
            _calibration_forward(model, jnp.asarray(windows[start:start + batch_size]))
        n_tokens = windows.size
        norms = {name: np.sqrt(np.asarray(probe.sum_sq[...])) for name, probe in linear_probes.items()}
        cosine = np.array([float(probe.cos_sum[...]) / n_tokens for probe in block_probes])
    return Activations(input_norms=norms, block_cosine=cosine, tokens=int(n_tokens))
