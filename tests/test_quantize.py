"""Quantization: error bounds, int4 packing, sizes on disk, quantized runs, both matmul forms, QAT export,
for the symmetric (absmax) and the asymmetric (min-max + offset) scheme alike."""

import json
import math
import re
from dataclasses import replace

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from tinyslm.cli import main
from tinyslm.compress.qat import qat_loss, quantization_aware_training
from tinyslm.compress.quantize import (
    dequantize, fake_quantize, pack_int4, quantize, stored_form, unpack_int4,
)
from tinyslm.compress.quantized import (
    MATVEC_ROWS, QuantizedEmbedding, QuantizedLinear, bits_per_weight, fake_quantized_model, quantize_model,
    quantized_matmul, weight_bytes,
)
from tinyslm.compress.quantize_report import compare_quality, disk_bytes
from tinyslm.config import ModelConfig, QuantizationConfig, RunConfig, load_config, save_config
from tinyslm.decode import generate
from tinyslm.errors import ConfigError
from tinyslm.model import TransformerLM
from tinyslm.model.embedding import Embedding
from tinyslm.tokenizer import CharTokenizer
from tinyslm.train import load_run, save_run, train
from tinyslm.train.evaluate import evaluate_tokens

CONFIGS = [
    QuantizationConfig(bits=8, granularity="tensor"),
    QuantizationConfig(bits=8, granularity="channel"),
    QuantizationConfig(bits=8, granularity="group", group_size=32),
    QuantizationConfig(bits=4, granularity="channel", scale_dtype="float32"),
    QuantizationConfig(bits=4, granularity="group", group_size=32),
    QuantizationConfig(bits=4, granularity="group", group_size=64),
]
ASYMMETRIC = [replace(config, scheme="asymmetric") for config in CONFIGS]
SCHEMES = ["symmetric", "asymmetric"]
TINY = ["data.corpus_bytes=60000", "tokenizer.type=char", "model.d_model=64", "model.n_layers=2", "model.n_heads=2",
        "model.max_seq_len=32", "train.seq_len=32", "train.batch_size=8", "train.warmup_steps=5", "train.lr=3e-3",
        "train.eval_batches=2", "train.log_interval=5", "train.samples=0"]


def _weights(d_in=128, d_out=48, seed=0) -> np.ndarray:
    """Gaussian weights with a few large outliers, the shape of trained LLM weights' trouble."""
    rng = np.random.default_rng(seed)
    w = rng.standard_normal((d_in, d_out)).astype(np.float32) * 0.02
    w[rng.integers(0, d_in, 5), rng.integers(0, d_out, 5)] = 0.5
    w[:, 3] = 0.0  # an all-zero output channel: scale 0 must not produce NaNs
    return w


def _expanded_scale(scale: jax.Array, shape: tuple[int, int]) -> np.ndarray:
    """The scale of every element (d_in, d_out), computed the naive way."""
    s = np.asarray(scale, np.float32)
    return np.broadcast_to(np.repeat(s, shape[0] // s.shape[0], axis=0), shape)


def _config_id(c: QuantizationConfig) -> str:
    return f"int{c.bits}-{c.granularity}{c.group_size}-{c.scale_dtype}-{c.scheme}"


@pytest.mark.parametrize("config", CONFIGS + ASYMMETRIC, ids=_config_id)
def test_every_element_is_within_half_a_scale_and_integers_stay_on_the_grid(config):
    w = _weights()
    w[:, 5] = np.abs(w[:, 5]) + 0.3  # an all-positive channel: its asymmetric offset is far from 0
    q, scale, offset = quantize(jnp.asarray(w), config)
    assert scale.dtype == jnp.dtype(config.scale_dtype)
    s = _expanded_scale(scale, w.shape)
    if config.scheme == "symmetric":
        low, high = -(2 ** (config.bits - 1) - 1), 2 ** (config.bits - 1) - 1
        assert q.dtype == jnp.int8 and offset is None
        w_hat = np.asarray(dequantize(q, scale))
    else:
        low, high = 0, 2**config.bits - 1
        assert q.dtype == jnp.uint8 and offset.dtype == scale.dtype and offset.shape == scale.shape
        w_hat = np.asarray(dequantize(q, scale, offset))
        by_hand = np.asarray(q, np.float64) * s + _expanded_scale(offset, w.shape)  # q * s + m
        np.testing.assert_allclose(w_hat, by_hand, rtol=1e-6, atol=1e-6 * np.abs(w).max())
    assert low <= int(q.min()) and int(q.max()) <= high
    # half a step, plus float32 rounding of q * s + m (which matters only where |m| >> s)
    assert np.all(np.abs(w_hat - w) <= s / 2 * (1 + 1e-6) + 1e-6 * np.abs(w) + 1e-12)
    if config.scheme == "symmetric" or config.granularity != "tensor":
        assert np.all(w_hat[:, 3] == 0)  # an all-zero channel is exact (not NaN): scale 0, and offset 0
    # (one min-max grid for the whole tensor need not contain 0.0: no zero point is forced onto it)
    # the extreme weights of the blocks land on the grid's ends (symmetric: only the larger of |min|, |max|)
    assert int(jnp.abs(q.astype(jnp.int32)).max()) == high
    if config.scheme == "asymmetric":
        assert int(q.min()) == 0


def _naive_min_max_positions(w: np.ndarray, config: QuantizationConfig) -> np.ndarray:
    """Asymmetric grid positions by hand, block by block: (w - min) / ((max - min) / levels), unrounded."""
    d_in, d_out = w.shape
    if config.granularity == "tensor":
        blocks = [(slice(None), slice(None))]
    else:
        size = d_in if config.granularity == "channel" else config.group_size
        blocks = [(slice(i, i + size), o) for i in range(0, d_in, size) for o in range(d_out)]
    positions = np.empty(w.shape, np.float32)
    for rows, cols in blocks:
        block = w[rows, cols]
        low = block.min()
        step = (block.max() - low) / np.float32(2**config.bits - 1)
        positions[rows, cols] = (block - low) / (step if step else np.float32(1))
    return positions


@pytest.mark.parametrize("config", [replace(c, scale_dtype="float32") for c in ASYMMETRIC], ids=_config_id)
def test_asymmetric_codes_equal_a_naive_numpy_min_max_quantizer(config):
    w = _weights(seed=4)
    w[:, 7] += 1.0  # a channel far from zero
    positions = _naive_min_max_positions(w, config)
    q = np.asarray(quantize(jnp.asarray(w), config)[0], np.int64)
    # round to nearest: equal codes, except where a position is a tie (x.5) that one float32 ulp of the
    # step decides (XLA divides by the constant 2**bits - 1 as a multiplication by its reciprocal)
    tie = np.abs(positions - np.floor(positions) - 0.5) < 1e-3
    np.testing.assert_array_equal(q[~tie], np.round(positions[~tie]))
    assert np.all(np.abs(q - np.round(positions)) <= 1) and tie.mean() < 0.01


def test_unsigned_int4_codes_pack_and_unpack_to_themselves():
    values = np.arange(16, dtype=np.uint8)
    top, bottom = np.meshgrid(values, values, indexing="ij")
    q = jnp.asarray(np.concatenate([top, bottom]))  # (32, 16): every (low, high) pair of nibbles once
    packed = pack_int4(q)
    np.testing.assert_array_equal(packed, top | (bottom << 4))  # by hand: low nibble | high nibble << 4
    unpacked = unpack_int4(packed, signed=False)
    assert unpacked.dtype == jnp.uint8
    np.testing.assert_array_equal(unpacked, q)


def test_int4_pack_unpack_round_trips_every_value_and_packs_two_per_byte():
    values = np.arange(-8, 8, dtype=np.int8)
    top, bottom = np.meshgrid(values, values, indexing="ij")  # every (low, high) pair of nibbles once
    q = jnp.asarray(np.concatenate([top, bottom]))  # (32, 16)
    packed = pack_int4(q)
    assert packed.shape == (16, 16) and packed.dtype == jnp.uint8
    assert len(np.unique(np.asarray(packed))) == 256
    np.testing.assert_array_equal(unpack_int4(packed), q)
    # by hand: low nibble from the top half, high nibble from the bottom half, two's complement
    assert int(pack_int4(jnp.asarray([[-3], [5]], jnp.int8))[0, 0]) == 0b0101_1101


@pytest.mark.parametrize("scheme", SCHEMES)
def test_straight_through_estimator_passes_the_gradient_unchanged(scheme):
    w = jnp.asarray(_weights())
    c = jnp.asarray(np.random.default_rng(1).standard_normal(w.shape).astype(np.float32))
    config = QuantizationConfig(bits=4, scheme=scheme)
    grad = jax.grad(lambda w: (fake_quantize(w, config) * c).sum())(w)
    np.testing.assert_array_equal(grad, c)
    np.testing.assert_allclose(fake_quantize(w, config), dequantize(*quantize(w, config)), rtol=1e-6, atol=1e-9)


MATMUL_CONFIGS = [
    QuantizationConfig(bits=8, granularity="group"),
    QuantizationConfig(bits=4, granularity="group"),
    QuantizationConfig(bits=8, granularity="tensor", scheme="asymmetric"),
    QuantizationConfig(bits=8, granularity="channel", scheme="asymmetric"),
    QuantizationConfig(bits=4, granularity="group", scheme="asymmetric"),
]


@pytest.mark.parametrize("config", MATMUL_CONFIGS, ids=_config_id)
@pytest.mark.parametrize("rows", [1, MATVEC_ROWS + 5])
def test_both_matmul_forms_equal_a_numpy_reference(config, rows):
    w = _weights(d_in=96)
    w[:, :10] += 0.05  # skewed channels: asymmetric offsets well away from zero
    stored, scale, offset = stored_form(jnp.asarray(w), config)
    x = np.random.default_rng(2).standard_normal((rows, 96)).astype(np.float32)
    q = np.asarray(quantize(jnp.asarray(w), config)[0], np.float64)
    w_hat = q * _expanded_scale(scale, w.shape) + (0 if offset is None else _expanded_scale(offset, w.shape))
    got = np.asarray(quantized_matmul(jnp.asarray(x), stored, scale, config.bits, offset))
    np.testing.assert_allclose(got, x.astype(np.float64) @ w_hat, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("scheme", SCHEMES)
def test_quantized_embedding_looks_up_and_projects_with_the_same_table(scheme):
    embedding = Embedding(40, 64, std=0.02, rngs=nnx.Rngs(0))
    embedding.weight[...] = jnp.asarray(_weights(d_in=40, d_out=64))  # (V=40, D=64), with outliers
    table = embedding.weight
    config = QuantizationConfig(bits=4, granularity="group", group_size=32, scheme=scheme)
    quantized = QuantizedEmbedding(embedding, config)
    reference = np.asarray(fake_quantize(table[...].T, config).T)  # (V, D)
    ids = jnp.asarray([[0, 7, 39], [3, 3, 1]])
    np.testing.assert_allclose(quantized(ids), reference[np.asarray(ids)], rtol=1e-6)
    h = np.random.default_rng(3).standard_normal((2, 64)).astype(np.float32)
    np.testing.assert_allclose(quantized.attend(jnp.asarray(h)), h @ reference.T, rtol=1e-5, atol=1e-5)


def _smollm2_kernels(path, name: str, layers: range) -> list[np.ndarray]:
    import gguf

    reader = gguf.GGUFReader(path)
    tensors = {t.name: t for t in reader.tensors}
    kernels = []
    for i in layers:
        t = tensors[f"blk.{i}.{name}.weight"]
        kernels.append(np.asarray(gguf.quants.dequantize(t.data, t.tensor_type), np.float32).T)  # (d_in, d_out)
    return kernels


def test_error_shrinks_from_per_channel_to_g128_g64_g32_on_real_weights(smollm2_gguf):
    """SmolLM2-135M's MLP down projections (d_in 1536): smaller groups follow the weights more closely."""
    for w in _smollm2_kernels(smollm2_gguf, "ffn_down", range(0, 30, 10)):
        errors = []
        for config in [QuantizationConfig(bits=4)] + [QuantizationConfig(bits=4, granularity="group", group_size=g)
                                                      for g in (128, 64, 32)]:
            errors.append(float(jnp.mean((dequantize(*quantize(jnp.asarray(w), config)) - w) ** 2)))
        assert errors[0] > errors[1] > errors[2] > errors[3], errors


def _q4_1_grid(d_in: int, d_out: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """A weight matrix ON llama.cpp's Q4_1 grid, computed as its dequantizer does: w = d * q + m (float32).

    Per block of 32 inputs of each output channel: a float16 step d > 0 and a float16 minimum m,
    codes q in 0..15 with both 0 and 15 present. -> (w, q, d, m); d and m (d_in / 32, d_out).
    """
    rng = np.random.default_rng(seed)
    blocks = d_in // 32
    d = rng.uniform(0.002, 0.02, (blocks, d_out)).astype(np.float16)
    m = -rng.uniform(0.0, 0.15, (blocks, d_out)).astype(np.float16)  # skewed: the minimum is not -max
    q = rng.integers(0, 16, (blocks, 32, d_out))
    q[:, 0, :], q[:, 1, :] = 0, 15  # each block spans the whole grid, as Q4_1's min-max quantizer makes it
    w = d.astype(np.float32)[:, None, :] * q.astype(np.float32) + m.astype(np.float32)[:, None, :]
    return w.reshape(d_in, d_out), q.reshape(d_in, d_out), d, m


def test_asymmetric_int4_g32_reproduces_a_q4_1_grid_and_symmetric_does_not():
    w, q, d, m = _q4_1_grid(128, 40, seed=5)
    asym = QuantizationConfig(bits=4, granularity="group", group_size=32, scheme="asymmetric")
    codes, scale, offset = quantize(jnp.asarray(w), asym)
    np.testing.assert_array_equal(codes, q)  # the very same integers
    np.testing.assert_array_equal(offset, m)  # the very same float16 minima
    np.testing.assert_array_equal(scale, d)  # and the very same float16 steps (rounded to nearest, not up)
    error = np.abs(np.asarray(dequantize(codes, scale, offset)) - w)
    assert error.max() <= 1e-6 * np.abs(w).max()  # nothing left but float32 rounding
    sym = np.abs(np.asarray(dequantize(*quantize(jnp.asarray(w), replace(asym, scheme="symmetric")))) - w)
    d_per_weight = _expanded_scale(d, w.shape)
    assert np.mean(sym / d_per_weight) > 0.2  # symmetric re-rounds onto its own 15-level grid: errors of ~d/4
    assert sym.mean() > 30 * error.mean()


def test_asymmetric_int4_g32_reproduces_smollm2s_real_q4_1_weights(smollm2_gguf):
    """SmolLM2-135M's weights ARE Q4_1 (blocks of 32 inputs): the asymmetric g32 grid finds it again."""
    asym = QuantizationConfig(bits=4, granularity="group", group_size=32, scheme="asymmetric")
    for w in _smollm2_kernels(smollm2_gguf, "ffn_down", range(0, 30, 15)):
        error = np.abs(np.asarray(dequantize(*quantize(jnp.asarray(w), asym))) - w)
        sym = np.abs(np.asarray(dequantize(*quantize(jnp.asarray(w), replace(asym, scheme="symmetric")))) - w)
        assert error.max() <= 1e-6 * np.abs(w).max()  # every weight found again, up to float32 rounding
        assert sym.mean() > 0.01 * np.abs(w).mean()  # the symmetric grid moves them by a few per cent


@pytest.mark.parametrize("config", [QuantizationConfig(bits=8), QuantizationConfig(bits=4),
                                    QuantizationConfig(bits=4, granularity="group", group_size=32)], ids=_config_id)
def test_asymmetric_beats_symmetric_on_skewed_weights(config):
    """All-positive weights (like post-ReLU statistics): a symmetric grid wastes its negative half."""
    w = jnp.asarray(np.abs(np.random.default_rng(6).standard_normal((128, 32))).astype(np.float32) * 0.02)
    errors = {scheme: float(jnp.mean((dequantize(*quantize(w, replace(config, scheme=scheme))) - w) ** 2))
              for scheme in SCHEMES}
    # half the step -> a quarter of the squared error, up to the min > 0 and rounding noise
    assert errors["asymmetric"] < 0.35 * errors["symmetric"], errors


def _model(preset="llama", **overrides) -> TransformerLM:
    config = ModelConfig(preset=preset, vocab_size=96, d_model=64, n_layers=2, n_heads=4, max_seq_len=32, **overrides)
    return TransformerLM(config, rngs=nnx.Rngs(0))


def test_sizes_match_the_arithmetic_in_memory_and_on_disk(tmp_path):
    model = _model(tie_embeddings=False)  # q/k/v/o 64x64, MLP 3 x 64x192 (swiglu), head 64x96; embed 96x64
    layers = [(64, 64)] * 4 + [(64, 192), (64, 192), (192, 64)]
    shapes = layers * 2 + [(64, 96), (64, 96)]  # the embedding is quantized in the head's (D, V) layout
    float_bytes = weight_bytes(model) - 4 * sum(a * b for a, b in shapes)  # norms stay float32
    int8 = quantize_model(model, QuantizationConfig(bits=8))
    assert weight_bytes(int8) == float_bytes + sum(a * b + 2 * b for a, b in shapes)  # int8 + a float16 per row
    int4 = quantize_model(model, QuantizationConfig(bits=4, granularity="group", group_size=32))
    assert weight_bytes(int4) == float_bytes + sum(a * b // 2 + 2 * (a // 32) * b for a, b in shapes)
    assert bits_per_weight(int4) == 4.5
    assert 8 < bits_per_weight(int8) < 8 + 16 / 64 + 1e-9
    # asymmetric: a float16 offset next to every float16 scale; codes take the same bytes
    int8_asym = quantize_model(model, QuantizationConfig(bits=8, scheme="asymmetric"))
    assert weight_bytes(int8_asym) == float_bytes + sum(a * b + 2 * 2 * b for a, b in shapes)
    int4_asym = quantize_model(model, QuantizationConfig(bits=4, granularity="group", scheme="asymmetric"))
    assert weight_bytes(int4_asym) == float_bytes + sum(a * b // 2 + 2 * 2 * (a // 32) * b for a, b in shapes)
    assert bits_per_weight(int4_asym) == 5.0  # 4 + 16/32 + 16/32
    weights = sum(a * b for a, b in shapes)
    assert bits_per_weight(int8_asym) == pytest.approx(8 + 32 * sum(b for _, b in shapes) / weights)
    config = load_config(None, ["model.max_seq_len=32", "train.seq_len=32"])
    config = replace(config, model=model.config, quantization=QuantizationConfig(bits=4, granularity="group"))
    save_run(tmp_path / "q4", config, int4, CharTokenizer("".join(chr(40 + i) for i in range(96))))
    # orbax's metadata adds tens of KB; its compression saves a little on the arrays
    assert 0.8 * weight_bytes(int4) < disk_bytes(tmp_path / "q4") < weight_bytes(int4) + 60_000


def test_quantized_config_section_round_trips_and_default_runs_have_none(tmp_path):
    config = load_config(None, ["quantization.bits=4", "quantization.granularity=group", "quantization.group_size=64"])
    save_config(config, tmp_path / "c.yaml")
    assert load_config(tmp_path / "c.yaml") == config
    assert config.quantization.scheme == "symmetric"  # the default: sections written before schemes load unchanged
    asym = load_config(None, ["quantization.bits=4", "quantization.scheme=asymmetric"])
    save_config(asym, tmp_path / "a.yaml")
    assert load_config(tmp_path / "a.yaml").quantization.scheme == "asymmetric"
    with pytest.raises(ConfigError, match="quantization.scheme"):
        load_config(None, ["quantization.scheme=affine"])
    with pytest.raises(ConfigError, match="quantization.scheme"):
        QuantizationConfig(scheme="zero-point")
    save_config(RunConfig(), tmp_path / "d.yaml")
    assert "quantization" not in (tmp_path / "d.yaml").read_text()


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A tiny char model trained for 60 steps on the built-in corpus (its run directory)."""
    out = tmp_path_factory.mktemp("quantize") / "base"
    train(load_config(None, [*TINY, "train.max_steps=60", "train.eval_interval=60"]), out, progress=False)
    return out


@pytest.mark.parametrize("scheme", SCHEMES)
def test_quantized_run_directory_loads_evaluates_and_generates(trained, tmp_path, capsys, scheme):
    asymmetric = scheme == "asymmetric"
    decode_tokens = "0" if asymmetric else "8"  # the timing code does not depend on the scheme: time it once
    code = main(["quantize", "--run", str(trained), "--bits", "4", "--group-size", "32", "--out", str(tmp_path / "q4"),
                 "--decode-tokens", decode_tokens, "--json", *(["--asymmetric"] if asymmetric else [])])
    assert code == 0
    report = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    fp32, int4 = report["variants"]
    assert fp32["variant"] == "fp32" and int4["variant"] == ("int4 g32 asym" if asymmetric else "int4 g32")
    assert int4["bits_per_weight"] == (5.0 if asymmetric else 4.5)
    # 4.5 or 5 bits of 32, plus float32 norms and tens of KB of orbax metadata on this tiny model
    assert int4["bytes_on_disk"] < fp32["weight_bytes"] / (2.5 if asymmetric else 3)
    assert f"scheme: {scheme}" in (tmp_path / "q4" / "config.yaml").read_text()

    run, base = load_run(tmp_path / "q4"), load_run(trained)
    assert run.config.quantization == QuantizationConfig(bits=4, granularity="group", group_size=32, scheme=scheme)
    up = run.model.blocks[0].mlp.up
    assert isinstance(up, QuantizedLinear) and up.weight[...].dtype == jnp.uint8
    assert (up.offset is not None) == asymmetric
    tokens = np.fromfile(trained / "data/val.bin", dtype=np.uint16)[:2000]
    ours = evaluate_tokens(run.model, tokens, seq_len=32)
    expected = evaluate_tokens(quantize_model(base.model, run.config.quantization), tokens, seq_len=32)
    assert ours["val_loss"] == pytest.approx(expected["val_loss"], rel=1e-6)
    assert ours["val_loss"] == pytest.approx(compare_quality(base.model, {"q": run.model}, tokens, 32)["q"]["val_loss"],
                                             rel=1e-5)
    # greedy generation through the KV-cached decoder (one-row matvec form) matches the fake-quantized float model
    fake = fake_quantized_model(base.model, run.config.quantization)
    assert generate(run.model, run.tokenizer, "the ", max_new_tokens=12).texts == \
        generate(fake, run.tokenizer, "the ", max_new_tokens=12).texts


@pytest.mark.parametrize("scheme", SCHEMES)
def test_qat_export_equals_the_fake_quantized_forward_and_lowers_the_quantized_loss(trained, tmp_path, scheme):
    base = load_run(trained)
    config = QuantizationConfig(bits=4, granularity="group", group_size=32, scheme=scheme)
    latent = quantization_aware_training(base, config, tmp_path / "qat", steps=20, lr=3e-3, progress=False)
    exported = quantize_model(latent, config)
    tokens = jnp.asarray(np.fromfile(trained / "data/val.bin", dtype=np.uint16)[:64].reshape(2, 32).astype(np.int32))
    np.testing.assert_allclose(exported(tokens), fake_quantized_model(latent, config)(tokens), rtol=1e-5, atol=1e-5)
    windows = jnp.asarray(np.fromfile(trained / "data/val.bin", dtype=np.uint16)[:33 * 8].reshape(8, 33).astype(np.int32))
    before, after = qat_loss(config)(base.model, windows), qat_loss(config)(latent, windows)
    assert float(after) < float(before)  # it trained the quantized model, not only the float one
    assert (tmp_path / "qat" / "metrics.jsonl").is_file()


def test_gptq_command_saves_a_model_closer_to_fp32_than_round_to_nearest(trained, tmp_path, capsys):
    out = tmp_path / "gptq"
    assert main(["quantize", "--run", str(trained), "--bits", "4", "--gptq", "--calibration", "32", "--no-embeddings",
                 "--decode-tokens", "0", "--out", str(out), "--json"]) == 0  # (GPTQ leaves the embedding to RTN)
    fp32, rtn, ours = json.loads(capsys.readouterr().out.strip().splitlines()[-1])["variants"]
    assert (rtn["variant"], ours["variant"]) == ("int4 channel", "int4 channel GPTQ")
    assert ours["bits_per_weight"] == rtn["bits_per_weight"]  # the same format: only the integers differ
    assert ours["mean_kl"] < 0.5 * rtn["mean_kl"]
    tokens = np.fromfile(trained / "data/val.bin", dtype=np.uint16)
    assert evaluate_tokens(load_run(out).model, tokens, seq_len=32)["val_loss"] == \
        pytest.approx(ours["val_loss"], rel=1e-5)  # what was saved is the GPTQ model
    assert main(["quantize", "--run", str(trained), "--bits", "4", "--gptq", "--qat-steps", "5",
                 "--out", str(tmp_path / "both")]) == 2


def test_quantize_command_refuses_a_quantized_run_and_a_taken_output(trained, tmp_path, capsys):
    assert main(["quantize", "--run", str(trained), "--bits", "8", "--decode-tokens", "0",
                 "--out", str(tmp_path / "q8")]) == 0
    assert main(["quantize", "--run", str(tmp_path / "q8"), "--bits", "4", "--out", str(tmp_path / "x")]) == 2
    assert main(["quantize", "--run", str(trained), "--bits", "8", "--out", str(tmp_path / "q8")]) == 2
    err = capsys.readouterr().err
    assert "already quantized" in err and "already holds a run" in err


@pytest.mark.parametrize("bits", [8, 4])
def test_a_decoding_loop_carries_the_integers_not_a_hoisted_float_copy(bits):
    # Decoding runs every token in one compiled while loop. Left alone, XLA hoists the loop-invariant
    # "integers -> float32" conversion out of it and each token reads a float32 copy of the weights.
    d = 64
    layer = quantized_linear_for_test(d, bits)

    def decode(h, stored, scale):  # the weights are arguments, as the model's state is in the decoder
        return jax.lax.fori_loop(0, 3, lambda i, h: jnp.tanh(quantized_matmul(h, stored, scale, bits)), h)

    hlo = jax.jit(decode).lower(jnp.ones((1, d)), *layer).compile().as_text()
    carried = [line.split(" while(")[0] for line in hlo.splitlines() if " while(" in line]  # the loop's state
    float_sizes = [math.prod(int(n) for n in dims.split(",") if n)
                   for line in carried for dims in re.findall(r"f32\[([\d,]*)\]", line)]
    assert carried and max(float_sizes) < d * d, carried  # the hidden state only, no float weight matrix
    h = jnp.ones((1, d))
    for _ in range(3):  # and the loop computes what the unrolled calls do
        h = jnp.tanh(quantized_matmul(h, *layer, bits))
    np.testing.assert_allclose(decode(jnp.ones((1, d)), *layer), h, rtol=1e-5, atol=1e-6)


def quantized_linear_for_test(d: int, bits: int) -> tuple:
    """(stored, scale) of a random d x d matrix quantized per channel."""
    w = jax.random.normal(jax.random.key(0), (d, d)) / d**0.5
    stored, scale, _ = stored_form(w, QuantizationConfig(bits=bits))
    return stored, scale
