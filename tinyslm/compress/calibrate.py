"""Calibration: run a trained model on a little training text and measure its activations.

Weights alone do not say what a layer does; the inputs it sees do. A weight that multiplies a
feature which is always near zero can go, however large it is. Pruning methods that look at
activations (Wanda, and every structured method here) need two statistics, gathered over a few
hundred calibration windows of training text (the run's own ``data/train.bin``, or the training
part of another dataset for an imported model that has no data of its own):

* for every linear layer inside the blocks, the squared L2 norm of each input feature over all
  calibration tokens, ``||X_j||² = Σ_tokens x_j²`` (the diagonal of ``XᵀX``);
* for every block, how much it turns the residual stream: the mean cosine similarity between the
  stream entering and leaving it (a block whose output points where its input did adds little);
* on request, every linear layer's whole ``XᵀX`` (d_in, d_in), which GPTQ quantization
  (:mod:`tinyslm.compress.gptq`) uses to steer its rounding.

The statistics are collected by *probes*: while a block runs, each of its linear layers (and the
block itself) is replaced by a small module that records what flows through it and then calls the
original. The model's own code is untouched, and the original layers are put back afterwards.

The model is run **block by block**: the residual stream of every calibration window is kept in
memory, block 0 is measured, then the stream is pushed through block 0, then block 1 is measured,
and so on. That costs one forward pass, and it lets a caller change block ``i`` — prune it —
after it was measured and *before* its output goes on to block ``i + 1`` (``after_block``; the
changed block is then run once more, to hand on what it now computes). Every
later block is then measured on what the already-pruned blocks produce, errors included: the
*sequential* calibration of Wanda's released code (Sun et al. 2023, arXiv:2306.11695) and of
SparseGPT (Frantar & Alistarh 2023, arXiv:2301.00774). Without ``after_block`` every block sees
the dense model's stream: one-shot calibration.
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable, Iterator

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from tinyslm.config import load_config
from tinyslm.data import encode_in_chunks, load_text, load_tokens, sample_batch, split_point, token_dtype
from tinyslm.model import TransformerLM
from tinyslm.model.linear import Linear
from tinyslm.tokenizer import load_tokenizer
from tinyslm.train.checkpoint import CONFIG_FILE, DATA_DIR, TOKENIZER_DIR

# The linear layers of a block, by attribute path: every matrix multiplication a block does.
BLOCK_LINEARS = ("attn.q", "attn.k", "attn.v", "attn.o", "mlp.gate", "mlp.up", "mlp.down")


def _linears_of(block: nnx.Module, i: int) -> Iterator[tuple[str, nnx.Module, str]]:
    """(full name, owning module, attribute) of every linear layer of block ``i`` (the GELU MLP has no gate)."""
    for path in BLOCK_LINEARS:
        part, name = path.split(".")
        owner = getattr(block, part)
        if getattr(owner, name) is not None:
            yield f"blocks.{i}.{path}", owner, name


def block_linears(model: TransformerLM, block: int | None = None) -> dict[str, Linear]:
    """Every linear layer inside the blocks by name, e.g. ``"blocks.0.attn.q"`` -> its :class:`Linear`.

    These are the layers pruning works on. The embedding (a lookup shared with the output head)
    and the norms stay dense, as in the Wanda and SparseGPT papers: they are a small part of the
    parameters and the model is very sensitive to them. With ``block``, only that block's layers.
    """
    blocks = enumerate(model.blocks) if block is None else [(block, model.blocks[block])]
    return {full: getattr(owner, name) for i, b in blocks for full, owner, name in _linears_of(b, i)}


def calibration_tokens(run_dir: str | Path, data: str | None = None) -> np.ndarray:
    """Training tokens to calibrate on: the run's own ``data/train.bin``, or dataset ``data``'s training part.

    Calibration uses training text, never validation text, so that the perplexity measured on the
    held-out split afterwards is still a held-out number. With ``data`` (e.g. ``"tinystories"``
    for an imported model that has no data of its own) the text is cut where
    :func:`~tinyslm.compress.quantize_report.held_out_tokens` starts its held-out slice (the run's
    ``data.val_fraction``) and the part before it is tokenized with the run's own tokenizer.
    """
    run_dir = Path(run_dir)
    if data is None:
        return load_tokens(run_dir / DATA_DIR, "train")
    data_config = replace(load_config(run_dir / CONFIG_FILE).data, name=data, path=None)
    text = load_text(data_config)
    tokenizer = load_tokenizer(run_dir / TOKENIZER_DIR)
    return encode_in_chunks(text[:split_point(text, data_config.val_fraction)], tokenizer,
                            token_dtype(tokenizer.vocab_size), desc=f"tokenizing {data} for calibration")


def calibration_windows(run_dir: str | Path, n_windows: int, seq_len: int, seed: int = 0,
                        data: str | None = None) -> np.ndarray:
    """``n_windows`` random windows (n_windows, seq_len) of token ids from :func:`calibration_tokens`."""
    tokens = calibration_tokens(run_dir, data)
    return sample_batch(tokens, seed=seed, step=0, batch_size=n_windows, seq_len=seq_len)[:, :-1]


class ActivationStat(nnx.Variable):
    """A statistic a probe accumulates during calibration (a variable, but not a parameter)."""


class _InputProbe(nnx.Module):
    """Stands in for a Linear: adds Σ x_j² of its inputs to ``moment`` (d_in,) — or, with ``gram``,
    the whole XᵀX (d_in, d_in) — then calls it."""

    def __init__(self, linear: Linear, gram: bool = False):
        self.linear = linear
        d_in = linear.kernel.shape[0]
        self.moment = ActivationStat(jnp.zeros((d_in, d_in) if gram else (d_in,), jnp.float32))

    def __call__(self, x: jax.Array) -> jax.Array:
        flat = x.reshape(-1, x.shape[-1]).astype(jnp.float32)  # (tokens, d_in)
        added = flat.T @ flat if self.moment.ndim == 2 else jnp.sum(flat * flat, axis=0)
        self.moment[...] = self.moment[...] + added
        return self.linear(x)

    def sum_sq(self) -> np.ndarray:
        """Σ x_j² (d_in,): the diagonal of XᵀX."""
        moment = np.asarray(self.moment[...])
        return np.diagonal(moment) if moment.ndim == 2 else moment


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
    input_grams: name -> XᵀX (d_in, d_in) of that layer's inputs (GPTQ's Hessian), when asked for;
        only the layers of the block measured last (d_in² floats per layer add up over a model).
    """

    input_norms: dict[str, np.ndarray]
    block_cosine: np.ndarray
    tokens: int
    input_grams: dict[str, np.ndarray] | None = None


@contextmanager
def _probed(block: nnx.Module, i: int, grams: bool):
    """Swap input probes in for block ``i``'s linears; yield them and a probe wrapping the block.

    The original layers are always put back, so whatever is done to the block afterwards (pruning
    it) is done to the model's own layers."""
    probes = {}
    try:
        for full, owner, name in _linears_of(block, i):
            probes[full] = probe = _InputProbe(getattr(owner, name), grams)
            setattr(owner, name, probe)
        yield probes, _BlockProbe(block)
    finally:
        for full, owner, name in _linears_of(block, i):
            if isinstance(getattr(owner, name), _InputProbe):
                setattr(owner, name, getattr(owner, name).linear)


def _stream_into_first_block(model: TransformerLM, tokens: np.ndarray) -> tuple:
    """(x, positions, inv_freq): what the model's own code hands block 0 for ``tokens`` (B, T)."""
    tokens = jnp.asarray(tokens)
    positions = jnp.broadcast_to(jnp.arange(tokens.shape[1]), tokens.shape)
    x, inv_freq = model.block_inputs(tokens, positions)
    return x, positions, inv_freq


@nnx.jit
def _run_block(block: nnx.Module, x: jax.Array, positions: jax.Array, inv_freq: jax.Array | None) -> jax.Array:
    return block(x, positions, inv_freq)[0]  # probes inside update their statistics as it runs


def collect_activations(model: TransformerLM, windows: np.ndarray, batch_size: int = 16,
                        after_block: Callable[[int, Activations], None] | None = None,
                        grams: bool = False) -> Activations:
    """Run ``windows`` (N, T) through ``model`` block by block and return the :class:`Activations` it produced.

    ``after_block(i, activations)``, if given, is called once block ``i`` has been measured
    (``activations`` then holds blocks 0..i) and before the stream is pushed through it: whatever it
    changes in block ``i`` in place (e.g. pruning its weights) is what every later block's inputs
    are computed with. Without it, every block is measured on the dense model's stream. ``grams``
    also measures every layer's whole XᵀX and hands ``after_block`` those of block ``i``
    (``input_grams``; only one block's are kept at a time).
    """
    windows = np.asarray(windows, np.int32)
    starts = range(0, len(windows), batch_size)
    streams = [_stream_into_first_block(model, windows[s:s + batch_size]) for s in starts]  # [(x, pos, inv_freq)]
    norms, cosine, gram = {}, [], {} if grams else None

    def so_far() -> Activations:
        return Activations(input_norms=dict(norms), block_cosine=np.array(cosine), tokens=int(windows.size),
                           input_grams=gram)

    for i, block in enumerate(model.blocks):
        with _probed(block, i, grams) as (linear_probes, block_probe):
            outputs = [_run_block(block_probe, *stream) for stream in streams]
            norms.update({name: np.sqrt(p.sum_sq()) for name, p in linear_probes.items()})
            if grams:
                gram = {name: np.asarray(p.moment[...]) for name, p in linear_probes.items()}
            cosine.append(float(block_probe.cos_sum[...]) / windows.size)
        if after_block is not None:
            after_block(i, so_far())
            outputs = [_run_block(block, *stream) for stream in streams]  # what the changed block now produces
        streams = [(out, *stream[1:]) for out, stream in zip(outputs, streams)]
    return so_far()
