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

**Asymmetric (min-max, or "zero-point") quantization** adds a float *offset* ``m`` per scale and
spends every one of the 2**bits integer levels on the range the weights actually occupy:

    levels = 2**bits - 1               255 for int8, 15 for int4
    m      = min(w)                    the group's smallest weight: q = 0
    s      = (max(w) - min(w)) / levels
    q      = round((w - m) / s)        an unsigned integer in [0, levels]
    w_hat  = q * s + m                 again off by at most s/2

A symmetric grid is centred on zero, so when a group's weights are skewed (all positive, say)
half of its levels are never used and the step is up to twice as coarse; the asymmetric grid
always fits [min, max]. The price is a second float per group: with float16 scales and offsets,
int4 g32 costs 4 + 16/32 + 16/32 = 5.0 bits per weight instead of 4.5. This is the affine
quantization of Jacob et al. (whose zero point is an integer chosen so that 0.0 is exactly
representable, for padded activations; for weights nothing needs an exact zero, so the offset here
is simply the float minimum) and exactly the grid of llama.cpp's Q4_1 format: blocks of 32
weights, each stored as 4-bit unsigned codes with a float16 step ``d`` and a float16 minimum ``m``.

One scale for a whole tensor (*per-tensor*) is ruined by a single large weight: every other
weight gets a coarse grid. One scale per output channel (*per-channel*) or per ``group_size``
consecutive inputs of an output channel (*group-wise*, 32/64/128; llama.cpp's Q8_0 and Q4_0 use
32) follows the weights' local range, at the cost of storing more scales: a float16 scale per 32
int4 weights adds 16/32 = 0.5 bits, so symmetric "int4 g32" costs 4.5 bits per weight.

Layout: every quantized matrix is stored as ``(d_in, d_out)``, like :class:`~tinyslm.model.linear.Linear`'s
kernel, with groups running down the input axis; scales (and offsets) have shape ``(n_groups,
d_out)`` (or ``(1, 1)`` per tensor), so *one* ``dequantize`` covers all granularities and both
schemes. Symmetric codes are signed (int8), asymmetric codes unsigned (uint8). int4 values are
packed two to a byte: row ``i`` of the top half of the matrix shares its bytes with row
``i + d_in/2`` (low and high nibble), so unpacking is two shifts and a concatenation.

Round-to-nearest post-training quantization (PTQ) of a trained model is :func:`quantize_model`
in :mod:`tinyslm.compress.quantized`; quantization-aware training is in :mod:`tinyslm.compress.qat`.
References: Jacob et al. 2017, "Quantization and Training of Neural Networks for Efficient
Integer-Arithmetic-Only Inference", arXiv:1712.05877; Dettmers et al. 2022, "LLM.int8()",
arXiv:2208.07339; Nagel et al. 2021, "A White Paper on Neural Network Quantization", arXiv:2106.08295;
the Q4_0 / Q4_1 / Q8_0 block formats of llama.cpp / GGML (Gerganov et al., github.com/ggml-org/ggml).
"""

from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp

from tinyslm.config import QuantizationConfig
from tinyslm.errors import ConfigError

SCALE_DTYPES = {"float16": jnp.float16, "float32": jnp.float32}


def qmax(bits: int) -> int:
    """The largest integer of a symmetric ``bits``-bit grid: 127 for int8, 7 for int4 (-8 is unused)."""
    return 2 ** (bits - 1) - 1


def levels(bits: int) -> int:
    """The largest code of an asymmetric (unsigned) ``bits``-bit grid: 255 for int8, 15 for int4."""
    return 2**bits - 1


def code_range(config: QuantizationConfig) -> tuple[int, int]:
    """(smallest, largest) integer code: (-qmax, qmax) symmetric, (0, levels) asymmetric."""
    if config.scheme == "asymmetric":
        return 0, levels(config.bits)
    return -qmax(config.bits), qmax(config.bits)


def n_groups(d_in: int, config: QuantizationConfig) -> int:
    """How many scales each output channel gets along the input axis."""
    if config.granularity != "group":
        return 1
    if d_in % config.group_size:
        raise ConfigError(f"quantization.group_size: {config.group_size} does not divide a weight's input size "
                          f"{d_in}; choose a group size that does (32 divides every tinyslm width)")
    return d_in // config.group_size


def _blocks(w: jax.Array, groups: int) -> jax.Array:
    """(d_in, d_out) -> (groups, d_in / groups, d_out): each scale's weights along axis 1."""
    d_in, d_out = w.shape
    return w.reshape(groups, d_in // groups, d_out)


def _group_reduce(w: jax.Array, config: QuantizationConfig, reduce) -> jax.Array:
    """``reduce`` (e.g. jnp.max) of w (d_in, d_out) over each tensor / channel / group.

    -> (1, 1) per tensor, (1, d_out) per channel, (d_in / group_size, d_out) per group.
    """
    out = reduce(_blocks(w.astype(jnp.float32), n_groups(w.shape[0], config)), axis=1)  # (G, d_out)
    return reduce(out, keepdims=True) if config.granularity == "tensor" else out


def _store(value: jax.Array, config: QuantizationConfig, round_up: bool) -> jax.Array:
    """``value`` in the config's scale dtype, rounded up (or down) where the dtype cannot hold it exactly.

    Rounding a float16 scale *up* (and an offset *down*) keeps every weight inside the grid, so no
    weight is clipped and the s/2 error bound holds exactly.
    """
    stored = value.astype(SCALE_DTYPES[config.scale_dtype])
    as_f32 = stored.astype(jnp.float32)
    wrong_side = as_f32 < value if round_up else as_f32 > value
    toward = jnp.asarray(jnp.inf if round_up else -jnp.inf, stored.dtype)
    return jnp.where(wrong_side, jnp.nextafter(stored, toward), stored)


def _nearest_scale(value: jax.Array, config: QuantizationConfig, steps: int) -> jax.Array:
    """A scale in the config's dtype, rounded to the nearest value it can hold — unless that leaves
    the extreme weight (``steps`` scales from the grid's origin) more than half a stored step past
    the grid's end; then one float16 step up.

    Why not simply round up, as :func:`absmax_scale` does? Rounding up stretches the grid by up to
    one float16 step, so a grid that is already float16-exact gets re-rounded. Rounding to nearest
    keeps it: a llama.cpp Q4_1 block, whose step ``d`` and minimum ``m`` are float16, gets back
    ``d`` itself and every code is found again. The guard keeps the s/2 bound: the extreme weight
    overshoots the grid by ``steps * (value - stored)``; float16 is exact to 1 part in 2**11, so
    for normal numbers that is at most 255 / 2**11 = 0.125 of a step (int8), and only tiny,
    subnormal float16 scales ever need the bump.
    """
    stored = value.astype(SCALE_DTYPES[config.scale_dtype])
    as_f32 = stored.astype(jnp.float32)
    too_coarse = (value - as_f32) * steps > as_f32 / 2
    return jnp.where(too_coarse, jnp.nextafter(stored, jnp.asarray(jnp.inf, stored.dtype)), stored)


def absmax_scale(w: jax.Array, config: QuantizationConfig) -> jax.Array:
    """Symmetric scales of ``w`` (d_in, d_out): max|w| / qmax over each tensor / channel / group.

    -> (1, 1) per tensor, (1, d_out) per channel, (d_in / group_size, d_out) per group, in the
    config's scale dtype (rounded up, see :func:`_store`).
    """
    return _store(_group_reduce(jnp.abs(w), config, jnp.max) / qmax(config.bits), config, round_up=True)


def minmax_scale(w: jax.Array, config: QuantizationConfig) -> tuple[jax.Array, jax.Array]:
    """Asymmetric (scale, offset) of ``w``: offset = min(w), scale = (max(w) - offset) / levels.

    Same shapes as :func:`absmax_scale`. The offset is stored first, rounded down (an offset above
    the minimum could put it many steps below the grid when |min| >> the step), and the scale is
    measured from the *stored* offset and rounded to nearest (:func:`_nearest_scale`).
    """
    offset = _store(_group_reduce(w, config, jnp.min), config, round_up=False)
    spread = _group_reduce(w, config, jnp.max) - offset.astype(jnp.float32)
    return _nearest_scale(spread / levels(config.bits), config, levels(config.bits)), offset


def dequantize(q: jax.Array, scale: jax.Array, offset: jax.Array | None = None) -> jax.Array:
    """w_hat (d_in, d_out) float32 = q (d_in, d_out) integers times their group's scale (+ its offset).

    ``scale`` and ``offset`` (G, d_out or 1) are broadcast over the ``d_in / G`` rows of each group;
    ``offset`` is None for the symmetric scheme. The reshape only regroups the rows, so inside a
    compiled function XLA fuses this into whatever consumes it.
    """
    w = _blocks(q, scale.shape[0]).astype(jnp.float32) * scale.astype(jnp.float32)[:, None, :]
    if offset is not None:
        w = w + offset.astype(jnp.float32)[:, None, :]
    return w.reshape(q.shape)


Grid = tuple[jax.Array, jax.Array | None]  # (scale, offset or None): where a matrix's integers sit


def grid(w: jax.Array, config: QuantizationConfig) -> Grid:
    """The (scale, offset) round-to-nearest puts ``w`` on: absmax scales (offset None) or min-max ones."""
    if config.scheme == "asymmetric":
        return minmax_scale(w, config)
    return absmax_scale(w, config), None


@partial(jax.jit, static_argnames="config")
def quantize(w: jax.Array, config: QuantizationConfig,
             on: Grid | None = None) -> tuple[jax.Array, jax.Array, jax.Array | None]:
    """Round-to-nearest quantization of w (d_in, d_out) -> (q (d_in, d_out), scale, offset).

    Compiled once per shape and config: a model's layers share a few shapes, and one compiled
    program costs less than compiling its twenty-odd operations one by one (quantizing a 2 x 64
    model to int4 g32 and to int8 in a fresh process: 2.1-2.5 s instead of 8.0-9.4).

    Symmetric: q int8 in [-qmax, qmax], offset None. Asymmetric: q uint8 in [0, levels] and the
    offsets. ``q`` is unpacked; :func:`pack_int4` makes int4's stored form. Where a whole group is
    constant the scale is 0 and every q is 0 (w_hat is the offset, or 0). ``on`` rounds onto a
    grid chosen elsewhere (GPTQ fixes its grid before it changes the weights) instead of ``grid(w)``.
    """
    scale, offset = grid(w, config) if on is None else on
    blocks = _blocks(w.astype(jnp.float32), scale.shape[0])  # (G, d_in / G, d_out)
    q = codes(blocks, scale[:, None, :], None if offset is None else offset[:, None, :], config)
    dtype = jnp.uint8 if config.scheme == "asymmetric" else jnp.int8
    return q.reshape(w.shape).astype(dtype), scale, offset


def codes(w: jax.Array, scale: jax.Array, offset: jax.Array | None, config: QuantizationConfig) -> jax.Array:
    """The nearest integer code (as float32) of every weight of ``w`` on the grid (scale, offset).

    ``scale`` and ``offset`` broadcast against ``w``; ``q * scale (+ offset)`` is the rounded weight.
    """
    # scales broadcast to every weight *before* dividing: a division by a broadcast lets XLA swap in a
    # multiplication by the reciprocal, which rounds a few exact halves the other way
    s = jnp.broadcast_to(scale.astype(jnp.float32), w.shape)
    m = 0.0 if offset is None else offset.astype(jnp.float32)
    q = jnp.round((w.astype(jnp.float32) - m) / jnp.where(s == 0, 1.0, s))
    return jnp.clip(q, *code_range(config))  # moves a weight at most half a step (see _nearest_scale)


def pack_int4(q: jax.Array) -> jax.Array:
    """Pack int4 values q (d_in, d_out) into bytes (d_in / 2, d_out) uint8.

    Row i of the top half goes into the low nibble and row i + d_in/2 into the high nibble. Signed
    values (int8 in [-8, 7]) are kept as 4-bit two's complement (-3 -> 0b1101); unsigned codes
    (uint8 in [0, 15]) as themselves; the same four bits either way.
    """
    half = q.shape[0] // 2
    low = q[:half].astype(jnp.uint8) & 0x0F
    high = q[half:].astype(jnp.uint8) << 4
    return low | high


def unpack_int4(packed: jax.Array, signed: bool = True) -> jax.Array:
    """The inverse of :func:`pack_int4`: bytes (d_in / 2, d_out) uint8 -> q (d_in, d_out).

    Signed (int8 out): reinterpret each byte as a signed int8; an arithmetic right shift by 4 then
    yields the high nibble with its sign, and shifting left by 4 first does the same for the low
    nibble. Unsigned (uint8 out): the low nibble is ``byte & 0x0F``, the high one ``byte >> 4``.
    """
    if not signed:
        return jnp.concatenate([packed & 0x0F, packed >> 4], axis=0)
    signed_bytes = jax.lax.bitcast_convert_type(packed, jnp.int8)
    low = jnp.left_shift(signed_bytes, 4) >> 4
    high = signed_bytes >> 4
    return jnp.concatenate([low, high], axis=0)


def stored_form(w: jax.Array, config: QuantizationConfig,
                on: Grid | None = None) -> tuple[jax.Array, jax.Array, jax.Array | None]:
    """What a quantized model keeps in memory and on disk: (int8 q, or packed int4 bytes; scale; offset)."""
    if config.bits == 4 and w.shape[0] % 2:
        raise ConfigError(f"4-bit weights are packed two rows per byte: input size {w.shape[0]} must be even")
    q, scale, offset = quantize(w, config, on)
    return (pack_int4(q) if config.bits == 4 else q), scale, offset


def integers(stored: jax.Array, bits: int, signed: bool = True) -> jax.Array:
    """The integer matrix (d_in, d_out) of a stored weight (unpacking int4 bytes; asymmetric codes are unsigned)."""
    return unpack_int4(stored, signed) if bits == 4 else stored


def fake_quantize(w: jax.Array, config: QuantizationConfig) -> jax.Array:
    """w -> dequantize(quantize(w)) in the forward pass, with a straight-through gradient.

    Rounding has zero gradient almost everywhere, so quantization-aware training uses the
    *straight-through estimator* (Bengio et al. 2013, arXiv:1308.3432): the backward pass treats
    the rounding as the identity, ``d w_hat / d w = 1``. Written as ``w + stop_gradient(w_hat - w)``:
    the value is w_hat, the gradient is that of w. The same line serves both schemes (the
    asymmetric scale and offset are, like the symmetric scale, treated as constants).
    """
    w_hat = dequantize(*quantize(jax.lax.stop_gradient(w), config))
    return w + jax.lax.stop_gradient(w_hat - w)
