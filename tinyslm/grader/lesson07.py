"""Lesson 07, quantization (int8 per-channel, int4 packing): references and inputs to try."""

from __future__ import annotations

import numpy as np

from tinyslm.grader.core import Case, Exercise, Lesson

# --------------------------------------------------------------------------------------- lesson 07

INT8_PER_CHANNEL = dict(bits=8, granularity="channel", scale_dtype="float32")


def _config():
    from tinyslm.config import QuantizationConfig

    return QuantizationConfig(**INT8_PER_CHANNEL)


def _ref_absmax_scales(w):
    from tinyslm.compress.quantize import absmax_scale

    return np.asarray(absmax_scale(np.asarray(w, np.float32), _config()))


def _ref_quantize_int8(w):
    from tinyslm.compress.quantize import quantize

    return np.asarray(quantize(np.asarray(w, np.float32), _config())[0])


def _ref_dequantize(q, scale):
    from tinyslm.compress.quantize import dequantize

    return np.asarray(dequantize(np.asarray(q), np.asarray(scale, np.float32)))


def _ref_pack_int4(q):
    from tinyslm.compress.quantize import pack_int4

    return np.asarray(pack_int4(np.asarray(q, np.int8)))


def _ref_unpack_int4(packed):
    from tinyslm.compress.quantize import unpack_int4

    return np.asarray(unpack_int4(np.asarray(packed, np.uint8)))


def _weights() -> list[tuple[str, np.ndarray]]:
    rng = np.random.default_rng(70)
    outlier = rng.normal(0, 0.02, (16, 4)).astype(np.float32)
    outlier[5, 2] = 1.5
    with_zero = rng.normal(0, 1, (8, 3)).astype(np.float32)
    with_zero[:, 1] = 0.0
    return [
        ("a 4x3 matrix of small weights", rng.normal(0, 0.02, (4, 3)).astype(np.float32)),
        ("one outlier in column 2 (only its scale grows)", outlier),
        ("an all-zero column (its scale is 0 and its integers must be 0, not NaN)", with_zero),
        ("negative extremes: max|w| may be a negative weight", -np.abs(rng.normal(0, 1, (6, 5))).astype(np.float32)),
    ]


def _cases_absmax_scales() -> list[Case]:
    return [Case(name, (w,)) for name, w in _weights()]


def _cases_quantize_int8() -> list[Case]:
    return [Case(name, (w,)) for name, w in _weights()]


def _cases_dequantize() -> list[Case]:
    rng = np.random.default_rng(71)
    return [
        Case("int8 codes times a row of scales", (rng.integers(-127, 128, (5, 3)).astype(np.int8),
                                                  np.array([[0.01, 0.5, 2.0]], np.float32))),
        Case("a zero scale gives zeros", (rng.integers(-127, 128, (4, 2)).astype(np.int8), np.array([[0.0, 1.0]], np.float32))),
    ]


def _int4_values(rows: int, cols: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(-8, 8, (rows, cols)).astype(np.int8)


def _cases_pack_int4() -> list[Case]:
    return [
        Case("two rows: [[-3], [5]] -> one byte 0b0101_1101 (93)", (np.array([[-3], [5]], np.int8),)),
        Case("every value -8..7 in both nibbles", (np.concatenate(np.meshgrid(np.arange(-8, 8), np.arange(-8, 8),
                                                                             indexing="ij")).astype(np.int8),)),
        Case("random 8x5", (_int4_values(8, 5, 72),)),
    ]


def _cases_unpack_int4() -> list[Case]:
    rng = np.random.default_rng(73)
    return [
        Case("one byte 93 = 0b0101_1101 -> [[-3], [5]]", (np.array([[93]], np.uint8),)),
        Case("every byte 0..255", (np.arange(256, dtype=np.uint8).reshape(16, 16),)),
        Case("random 4x6 bytes", (rng.integers(0, 256, (4, 6)).astype(np.uint8),)),
    ]


LESSON = Lesson("07", "quantization", (
    Exercise("absmax_scales", _ref_absmax_scales, _cases_absmax_scales, atol=0, rtol=1e-6),
    Exercise("quantize_int8", _ref_quantize_int8, _cases_quantize_int8, atol=0, rtol=0),
    Exercise("dequantize", _ref_dequantize, _cases_dequantize, atol=1e-7, rtol=1e-6),
    Exercise("pack_int4", _ref_pack_int4, _cases_pack_int4, atol=0, rtol=0),
    Exercise("unpack_int4", _ref_unpack_int4, _cases_unpack_int4, atol=0, rtol=0),
))
