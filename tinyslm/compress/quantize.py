"""Quantization: store each weight as a small integer times a shared float *scale*.

A float32 weight costs 4 bytes. Quantization keeps only an integer ``q`` per weight (1 byte for
int8, half a byte for int4) plus one float scale ``s`` for a whole tensor, row or group of
weights, and reconstructs ``w ≈ q * s``. Decoding a small language model is bound by how fast the
weights stream from memory, so fewer bytes per weight is both a smaller file and a faster model.

**Symmetric absmax quantization**, written out (``quantize`` below):

    qmax  = 2**(bits-1) - 1            127 for int8, 7 for int4
    s     = max|w| / qmax              the largest weight maps to the largest integer
    q     = round(w / s)               an integer in [-qmax, qmax]
    w_hat = q * s                      off by at most s/2 for every element

One scale for a whole tensor (*per-tensor*) is ruined by a single large weight: every other
weight gets a coarse grid. One scale per output channel (*per-channel*) or per ``group_size``
consecutive inputs of an output channel (*group-wise*, 32/64/128; llama.cpp's Q8_0 and Q4_0 use
32) follows the weights' local range, at the cost of storing more scales: a float16 scale per 32
int4 weights adds 16/32 = 0.5 bits, so "int4 g32" costs 4.5 bits per weight.

Layout: every quantized matrix is stored as ``(d_in, d_out)``, like :class:`~tinyslm.model.linear.Linear`'s
kernel, with groups running down the input axis; scales have shape ``(n_groups, d_out)`` (or
``(1, 1)`` per tensor), so *one* ``dequantize`` covers all three granularities. int4 values are
packed two to a byte: row ``i`` of the top half of the matrix shares its bytes with row
``i + d_in/2`` (low and high nibble), so unpacking is two shifts and a concatenation.

Round-to-nearest post-training quantization (PTQ) of a trained model is :func:`quantize_model`
in :mod:`tinyslm.compress.quantized`; quantization-aware training is in :mod:`tinyslm.compress.qat`.
References: Jacob et al. 2017, "Quantization and Training of Neural Networks for Efficient
Integer-Arithmetic-Only Inference", arXiv:1712.05877; Dettmers et al. 2022, "LLM.int8()",
arXiv:2208.07339; Nagel et al. 2021, "A White Paper on Neural Network Quantization", arXiv:2106.08295.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from tinyslm.config import QuantizationConfig
from tinyslm.errors import ConfigError

SCALE_DTYPES = {"float16": jnp.float16, "float32": jnp.float32}


def qmax(bits: int) -> int:
    """The largest integer of a symmetric ``bits``-bit grid: 127 for int8, 7 for int4 (-8 is unused)."""
    return 2 ** (bits - 1) - 1


def n_groups(d_in: int, config: QuantizationConfig) -> int:
    """How many scales each output channel gets along the input axis."""
    if config.granularity != "group":
        return 1
    if d_in % config.group_size:
        raise ConfigError(f"quantization.group_size: {config.group_size} does not divide a weight's input size "
                          f"{d_in}; choose a group size that does (32 divides every tinyslm width)")
    return d_in // config.group_size


def absmax_scale(w: jax.Array, config: QuantizationConfig) -> jax.Array:
    """Scales of ``w`` (d_in, d_out): max|w| / qmax over each tensor / channel / group.

    -> (1, 1) per tensor, (1, d_out) per channel, (d_in / group_size, d_out) per group, in the
    config's scale dtype. A float16 scale is rounded *up* if needed, so that max|w| / s never
    exceeds qmax (no clipping) and the s/2 error bound holds exactly.
    """
    d_in, d_out = w.shape
    groups = n_groups(d_in, config)
    absmax = jnp.abs(w.astype(jnp.float32)).reshape(groups, d_in // groups, d_out).max(axis=1)  # (G, d_out)
    if config.granularity == "tensor":
        absmax = absmax.max(keepdims=True)  # (1, 1)
    scale = absmax / qmax(config.bits)
    stored = scale.astype(SCALE_DTYPES[config.scale_dtype])
    return jnp.where(stored.astype(jnp.float32) < scale, jnp.nextafter(stored, jnp.inf), stored)


def dequantize(q: jax.Array, scale: jax.Array) -> jax.Array:
    """w_hat (d_in, d_out) float32 = q (d_in, d_out) integers times their group's scale.

    ``scale`` (G, d_out or 1) is broadcast over the ``d_in / G`` rows of each group. The reshape
    only regroups the rows, so inside a compiled function XLA fuses this into whatever consumes it.
    """
    d_in, d_out = q.shape
    groups = scale.shape[0]
    w = q.reshape(groups, d_in // groups, d_out).astype(jnp.float32) * scale.astype(jnp.float32)[:, None, :]
    return w.reshape(d_in, d_out)


def quantize(w: jax.Array, config: QuantizationConfig) -> tuple[jax.Array, jax.Array]:
    """Round-to-nearest absmax quantization of w (d_in, d_out) -> (q int8 (d_in, d_out), scale).

    ``q`` holds the integers unpacked (int4 values are in [-7, 7]); :func:`pack_int4` makes the
    stored form. Where a whole group is zero the scale is 0 and q is 0.
    """
    scale = absmax_scale(w, config)
    d_in, d_out = w.shape
    s = jnp.broadcast_to(scale.astype(jnp.float32)[:, None, :], (scale.shape[0], d_in // scale.shape[0], d_out))
    s = s.reshape(d_in, d_out)
    q = jnp.round(w.astype(jnp.float32) / jnp.where(s == 0, 1.0, s))
    q = jnp.clip(q, -qmax(config.bits), qmax(config.bits))  # a no-op (see absmax_scale); kept as a guard
    return q.astype(jnp.int8), scale


def pack_int4(q: jax.Array) -> jax.Array:
    """Pack int4 values q (d_in, d_out) int8 in [-8, 7] into bytes (d_in / 2, d_out) uint8.

    Row i of the top half goes into the low nibble and row i + d_in/2 into the high nibble, each as
    4-bit two's complement (-3 -> 0b1101).
    """
    half = q.shape[0] // 2
    low = q[:half].astype(jnp.uint8) & 0x0F
    high = q[half:].astype(jnp.uint8) << 4
    return low | high


def unpack_int4(packed: jax.Array) -> jax.Array:
    """The inverse of :func:`pack_int4`: bytes (d_in / 2, d_out) uint8 -> q (d_in, d_out) int8.

    Reinterpret each byte as a signed int8; an arithmetic right shift by 4 then yields the high
    nibble with its sign, and shifting left by 4 first does the same for the low nibble.
    """
    signed = jax.lax.bitcast_convert_type(packed, jnp.int8)
    low = jnp.left_shift(signed, 4) >> 4
    high = signed >> 4
    return jnp.concatenate([low, high], axis=0)


def stored_form(w: jax.Array, config: QuantizationConfig) -> tuple[jax.Array, jax.Array]:
    """What a quantized model keeps in memory and on disk: (int8 q, or packed int4 bytes; scale)."""
    if config.bits == 4 and w.shape[0] % 2:
        raise ConfigError(f"4-bit weights are packed two rows per byte: input size {w.shape[0]} must be even")
    q, scale = quantize(w, config)
    return (pack_int4(q) if config.bits == 4 else q), scale


def integers(stored: jax.Array, bits: int) -> jax.Array:
    """The integer matrix (d_in, d_out) of a stored weight (unpacking int4 bytes)."""
    return unpack_int4(stored) if bits == 4 else stored


def fake_quantize(w: jax.Array, config: QuantizationConfig) -> jax.Array:
    """w -> dequantize(quantize(w)) in the forward pass, with a straight-through gradient.

    Rounding has zero gradient almost everywhere, so quantization-aware training uses the
    *straight-through estimator* (Bengio et al. 2013, arXiv:1308.3432): the backward pass treats
    the rounding as the identity, ``d w_hat / d w = 1``. Written as ``w + stop_gradient(w_hat - w)``:
    the value is w_hat, the gradient is that of w.
    """
    w_hat = dequantize(*quantize(jax.lax.stop_gradient(w), config))
    return w + jax.lax.stop_gradient(w_hat - w)
