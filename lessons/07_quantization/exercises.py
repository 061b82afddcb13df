"""Lesson 07 exercises: int8 per-channel quantization and int4 packing, by hand.

Weights are matrices ``w`` of shape (d_in, d_out), as tinyslm's ``Linear`` stores them: column
``o`` holds every weight feeding output channel ``o``. Implement each function with numpy, then
check your work from the repository root with

    tinyslm check 07            (or: pytest lessons/07_quantization)
"""

from __future__ import annotations

import numpy as np


def absmax_scales(w: np.ndarray) -> np.ndarray:
    """Per-output-channel int8 scales: w (d_in, d_out) float32 -> scale (1, d_out) float32.

    Symmetric absmax: each column's largest absolute weight maps to 127, so
    scale[0, o] = max_i |w[i, o]| / 127. Keep the leading axis of size 1, so that ``q * scale``
    broadcasts over the rows.
    """
    raise NotImplementedError


def quantize_int8(w: np.ndarray) -> np.ndarray:
    """Round-to-nearest int8 quantization with :func:`absmax_scales`: w (d_in, d_out) -> q int8.

    q = round(w / scale), each column with its own scale (use ``np.round``, which rounds halves to
    even, as the reference does). A column of zeros has scale 0: its integers must be 0, not NaN.
    """
    raise NotImplementedError


def dequantize(q: np.ndarray, scale: np.ndarray) -> np.ndarray:
    """The reconstruction: q (d_in, d_out) int8, scale (1, d_out) -> w_hat (d_in, d_out) float32 = q * scale."""
    raise NotImplementedError


def pack_int4(q: np.ndarray) -> np.ndarray:
    """Pack int4 values q (d_in, d_out) int8 in [-8, 7] two per byte -> (d_in / 2, d_out) uint8.

    Row i of the top half goes into the low 4 bits of byte row i, and row i + d_in/2 into the high
    4 bits, each as 4-bit two's complement (-3 is 0b1101, 5 is 0b0101, so the pair packs into
    0b0101_1101 = 93). Hint: ``q.astype(np.uint8) & 0x0F`` keeps the low 4 bits of a value's
    two's complement byte.
    """
    raise NotImplementedError


def unpack_int4(packed: np.ndarray) -> np.ndarray:
    """The inverse of :func:`pack_int4`: (d_in / 2, d_out) uint8 -> (d_in, d_out) int8 in [-8, 7].

    A nibble n (0..15) stands for n - 16 when n >= 8 (its sign bit is set). Hint: viewing the bytes
    as int8 (``packed.view(np.int8)``) and shifting right by 4 gives the high nibble with its sign.
    """
    raise NotImplementedError
