"""A quantized model that really is quantized: int8 / packed-int4 weights + scales, used as such.

:func:`quantize_model` swaps every :class:`~tinyslm.model.linear.Linear` of a model for a
:class:`QuantizedLinear` (and, by default, the token embedding for a :class:`QuantizedEmbedding`).
They hold only the stored integers and scales — no float copy of the weights — and multiply with
them directly, so memory, files on disk and memory traffic per token all shrink.

**How to multiply with int8 weights fast on a CPU** (:func:`quantized_matmul`). The obvious
``x @ dequantize(q, s)`` is correct but, for a single row ``x`` (decoding one token), XLA:CPU
first writes the whole float32 matrix to memory and then reads it back for the matmul: more
memory traffic than the float32 model, and measured ~10-20x slower than it. The fix is to say
what we mean element by element:

    y[o] = sum_i x[i] * q[i, o] * s[i // group, o]      ->      (x[:, :, None] * w_hat).sum(axis=1)

XLA fuses the dequantization, the multiply and the sum into one loop that reads each int8
weight once and never materialises a float matrix, so the bytes that stream from memory are
the int8 bytes. Reducing over the *leading* (input) axis keeps the inner loop running along
contiguous output columns, which vectorises; summing along the minor axis instead measured ~2x
slower. This form does ``rows x d_in x d_out`` multiplies without a matmul kernel's blocking, so
it only pays for a few rows: a prompt (prefill) or an evaluation batch has hundreds of rows and
uses ``x @ dequantize(q, s)``, where the one-off dequantization is amortised over all of them
and the fast matmul kernel does the rest. Both forms compute the same numbers (up to float
summation order). One more detail of the fused loop: float16 scales are converted to float32
once, behind an ``optimization_barrier``; left to itself XLA fuses the conversion into the loop
and redoes it for every weight, which measured up to ~1.5x slower. And one trap of decoding
*loops*: the decoder runs every token inside one compiled ``while`` loop, and XLA moves work that
does not change between iterations out of the loop ("loop-invariant code motion"). The weights do
not change, so XLA hoists "convert the integers to float32" out of the loop and every token then
reads a float32 copy: 4x the bytes, and measured ~3x slower than the same product outside a loop.
Passing the integers through an ``optimization_barrier`` *together with* the token's activations
ties them to the iteration, so the conversion stays fused into the per-token loop. Measurements:
``python benchmarks/quantize.py forms`` and ``benchmarks/README.md`` (quantization section).

**Asymmetric weights** (``w_hat = q * s + m``, see :mod:`tinyslm.compress.quantize`) need no
second kernel. The offset ``m`` is the same for every input ``i`` of a group ``g``, so it comes
out of the sum over that group:

    y[o] = sum_i x[i] * (q[i, o] * s[g, o] + m[g, o])
         = sum_i x[i] * q[i, o] * s[g, o]   +   sum_g (sum_{i in g} x[i]) * m[g, o]
         = (the symmetric product above)    +   group_sums(x) (N, G) @ m (G, d_out)

The first term is computed by exactly the code (and the same fast fused loop) as a symmetric
weight; the correction is a tiny matmul with G = d_in / group_size rows, a few per cent of the
work, that reads the offsets once. So both schemes share packing, storage and the product.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

from tinyslm.compress.quantize import Grid, dequantize, fake_quantize, integers, stored_form
from tinyslm.config import QuantizationConfig
from tinyslm.model.embedding import Embedding
from tinyslm.model.linear import Linear

MATVEC_ROWS = 4  # up to this many rows (decoding batches) use the fused multiply-and-sum form


class QuantizedWeight(nnx.Variable):
    """Stored integers, scales or offsets: saved and restored with the model, never trained."""


def quantized_matmul(x: jax.Array, stored: jax.Array, scale: jax.Array, bits: int,
                     offset: jax.Array | None = None) -> jax.Array:
    """x (N, d_in) @ the quantized matrix (d_in, d_out) -> (N, d_out) in x's dtype.

    ``stored`` is int8 / uint8 (d_in, d_out) or packed int4 bytes (d_in / 2, d_out); ``scale`` (G,
    d_out); ``offset`` (G, d_out) for asymmetric weights (unsigned codes), None for symmetric ones.
    The shape N is static under ``jit``, so the choice of form is made once, at compile time.
    """
    if x.shape[0] <= MATVEC_ROWS:  # decoding: fused multiply-and-sum, reads the integers once
        x, stored = jax.lax.optimization_barrier((x, stored))  # keep the integers in the loop: see the module doc
        scale = jax.lax.optimization_barrier(scale.astype(jnp.float32))  # convert the few scales once, not per weight
        w_hat = dequantize(integers(stored, bits, signed=offset is None), scale)  # fused into the sum, never stored
        y = (x.astype(jnp.float32)[:, :, None] * w_hat).sum(axis=1).astype(x.dtype)
    else:
        q = integers(stored, bits, signed=offset is None)
        y = x @ dequantize(q, scale).astype(x.dtype)  # prefill / evaluation: dequantize, matmul
    if offset is None:
        return y
    return y + _offset_term(x, offset).astype(x.dtype)


def _offset_term(x: jax.Array, offset: jax.Array) -> jax.Array:
    """What the offsets add to x @ (q * s): the sum of x over each group times that group's offset.

    x (N, d_in), offset (G, d_out) -> (N, d_out) float32 (or (N, 1) for one offset per tensor).
    """
    groups = offset.shape[0]
    group_sums = x.astype(jnp.float32).reshape(x.shape[0], groups, x.shape[1] // groups).sum(axis=-1)  # (N, G)
    return group_sums @ offset.astype(jnp.float32)


def _optional(variable: QuantizedWeight | None) -> jax.Array | None:
    """The offsets' array, or None for a symmetric layer (which has none)."""
    return None if variable is None else variable[...]


class QuantizedLinear(nnx.Module):
    """y (..., d_out) = x (..., d_in) @ (q * s [+ m]) + bias, with q stored as int8 / uint8 or packed int4."""

    def __init__(self, linear: Linear, config: QuantizationConfig, on: Grid | None = None):
        self.bits = config.bits
        stored, scale, offset = stored_form(linear.kernel[...], config, on)  # on: a grid GPTQ chose
        self.weight = QuantizedWeight(stored)  # (d_in, d_out) int8 / uint8 or (d_in / 2, d_out) uint8
        self.scale = QuantizedWeight(scale)  # (G, d_out) or (1, 1)
        self.offset = None if offset is None else QuantizedWeight(offset)  # like scale; asymmetric only
        self.bias = linear.bias  # biases stay float: d_out numbers, nothing to save

    def __call__(self, x: jax.Array) -> jax.Array:
        lead = x.shape[:-1]
        y = quantized_matmul(x.reshape(-1, x.shape[-1]), self.weight[...], self.scale[...], self.bits,
                             _optional(self.offset))
        if self.bias is not None:
            y = y + self.bias[...].astype(y.dtype)
        return y.reshape(*lead, y.shape[-1])


class QuantizedEmbedding(nnx.Module):
    """A quantized token table that is also the tied output head.

    The table (V, D) is stored transposed, (D, V): exactly the head's kernel ``h @ table.T``, so
    the head is a :func:`quantized_matmul` and each token's scales are its own output channel's.
    A lookup takes columns and dequantizes only those.
    """

    def __init__(self, embedding: Embedding, config: QuantizationConfig):
        self.bits = config.bits
        stored, scale, offset = stored_form(embedding.weight[...].T, config)
        self.weight = QuantizedWeight(stored)  # (D, V) int8 / uint8 or (D / 2, V) uint8
        self.scale = QuantizedWeight(scale)  # (G, V) or (1, 1)
        self.offset = None if offset is None else QuantizedWeight(offset)  # like scale; asymmetric only

    def __call__(self, ids: jax.Array) -> jax.Array:
        """ids (...,) int -> vectors (..., D) float32."""
        flat = ids.reshape(-1)
        columns = jnp.take(self.weight[...], flat, axis=1)  # (D or D/2, N)

        def per_token(values: jax.Array | None) -> jax.Array | None:  # (G, V) -> (G, N); (1, 1) stays
            return values if values is None or values.shape[1] == 1 else jnp.take(values, flat, axis=1)

        offset = _optional(self.offset)
        q = integers(columns, self.bits, signed=offset is None)
        vectors = dequantize(q, per_token(self.scale[...]), per_token(offset)).T  # (N, D)
        return vectors.reshape(*ids.shape, vectors.shape[-1])

    def attend(self, h: jax.Array) -> jax.Array:
        """The tied head: h (N, D) -> logits (N, V)."""
        return quantized_matmul(h, self.weight[...], self.scale[...], self.bits, _optional(self.offset))


def _quantizable(model: nnx.Module, config: QuantizationConfig) -> list[tuple[tuple, nnx.Module]]:
    """(path, module) of every Linear, plus the token embedding and head if ``config.embeddings``."""
    found = []
    for path, node in nnx.iter_graph(model):
        if isinstance(node, Linear) and (config.embeddings or path[-1] != "head"):
            found.append((path, node))
        elif isinstance(node, Embedding) and config.embeddings and path[-1] == "embed":
            found.append((path, node))
    return found


def _replace(model: nnx.Module, path: tuple, new: nnx.Module) -> None:
    parent = model
    for key in path[:-1]:
        parent = parent[key] if isinstance(key, int) else getattr(parent, key)
    setattr(parent, path[-1], new)


def quantize_model(model: nnx.Module, config: QuantizationConfig,
                   grids: dict[str, Grid] | None = None) -> nnx.Module:
    """Round-to-nearest post-training quantization: a new model with quantized layers.

    Every linear layer (attention q/k/v/o, the MLP, an untied head) becomes a
    :class:`QuantizedLinear`; with ``config.embeddings`` the token embedding (and so a tied head)
    becomes a :class:`QuantizedEmbedding`. Norms, biases and learned positions stay float32:
    they are a tiny fraction of the bytes. ``model`` itself is left unchanged. ``grids`` (layer
    name, e.g. ``"blocks.0.attn.q"`` -> (scale, offset)) puts those layers on grids chosen
    beforehand (by :func:`~tinyslm.compress.gptq.gptq_model`) instead of their own RTN grids.
    """
    quantized = nnx.clone(model)
    for path, module in _quantizable(quantized, config):
        if isinstance(module, Embedding):
            layer = QuantizedEmbedding(module, config)
        else:
            layer = QuantizedLinear(module, config, (grids or {}).get(".".join(map(str, path))))
        _replace(quantized, path, layer)
    return quantized


def fake_quantized_model(model: nnx.Module, config: QuantizationConfig) -> nnx.Module:
    """A copy of ``model`` whose quantizable weights are replaced by :func:`fake_quantize` of them.

    Its forward pass computes with exactly the values :func:`quantize_model` would store, while
    gradients flow straight through to the float weights: the forward of quantization-aware training.
    """
    fake = nnx.clone(model)
    for _, module in _quantizable(fake, config):
        if isinstance(module, Embedding):  # quantized in the head's (D, V) layout, as QuantizedEmbedding does
            module.weight[...] = fake_quantize(module.weight[...].T, config).T
        else:
            module.kernel[...] = fake_quantize(module.kernel[...], config)
    return fake


def weight_bytes(model: nnx.Module) -> int:
    """Bytes of every array the model holds (what a weights-only checkpoint stores)."""
    return sum(x.nbytes for x in jax.tree.leaves(nnx.state(model)))


def bits_per_weight(model: nnx.Module) -> float:
    """Average bits per quantized weight: stored integers + scales (+ offsets) over the number of weights.

    int8 per-channel ~ 8 bits (+ 16 bits per output row); int4 g32 with float16 scales = 4.5, and
    5.0 asymmetric (a float16 offset per group too). Float layers (norms, biases, an unquantized
    embedding) are not counted here.
    """
    stored_bits, weights = 0, 0
    for _, node in nnx.iter_graph(model):
        if isinstance(node, (QuantizedLinear, QuantizedEmbedding)):
            arrays = [node.weight[...], node.scale[...], _optional(node.offset)]
            stored_bits += 8 * sum(a.nbytes for a in arrays if a is not None)
            weights += node.weight[...].size * (2 if node.bits == 4 else 1)
    return stored_bits / weights if weights else 32.0
