"""Quantization: error bounds, int4 packing, sizes on disk, quantized runs, both matmul forms, QAT export."""

import json
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


@pytest.mark.parametrize("config", CONFIGS, ids=lambda c: f"int{c.bits}-{c.granularity}{c.group_size}-{c.scale_dtype}")
def test_every_element_is_within_half_a_scale_and_integers_stay_on_the_grid(config):
    w = _weights()
    q, scale = quantize(jnp.asarray(w), config)
    limit = 2 ** (config.bits - 1) - 1
    assert q.dtype == jnp.int8 and int(jnp.abs(q).max()) <= limit
    assert scale.dtype == jnp.dtype(config.scale_dtype)
    s = _expanded_scale(scale, w.shape)
    error = np.abs(np.asarray(dequantize(q, scale)) - w)
    assert np.all(error <= s / 2 * (1 + 1e-6) + 1e-12)
    assert np.all(np.asarray(dequantize(q, scale))[:, 3] == 0)
    # the largest weight of each scale's block lands on the grid's end (the scale is max|w| / qmax)
    assert int(jnp.abs(q).max()) == limit


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


def test_straight_through_estimator_passes_the_gradient_unchanged():
    w = jnp.asarray(_weights())
    c = jnp.asarray(np.random.default_rng(1).standard_normal(w.shape).astype(np.float32))
    grad = jax.grad(lambda w: (fake_quantize(w, QuantizationConfig(bits=4)) * c).sum())(w)
    np.testing.assert_array_equal(grad, c)


@pytest.mark.parametrize("bits", [8, 4])
@pytest.mark.parametrize("rows", [1, MATVEC_ROWS + 5])
def test_both_matmul_forms_equal_a_numpy_reference(bits, rows):
    config = QuantizationConfig(bits=bits, granularity="group", group_size=32)
    w = _weights(d_in=96)
    stored, scale = stored_form(jnp.asarray(w), config)
    x = np.random.default_rng(2).standard_normal((rows, 96)).astype(np.float32)
    q = np.asarray(quantize(jnp.asarray(w), config)[0], np.float64)
    expected = x.astype(np.float64) @ (q * _expanded_scale(scale, w.shape))
    got = np.asarray(quantized_matmul(jnp.asarray(x), stored, scale, bits))
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)


def test_quantized_embedding_looks_up_and_projects_with_the_same_table():
    embedding = Embedding(40, 64, std=0.02, rngs=nnx.Rngs(0))
    embedding.weight[...] = jnp.asarray(_weights(d_in=40, d_out=64))  # (V=40, D=64), with outliers
    table = embedding.weight
    quantized = QuantizedEmbedding(embedding, QuantizationConfig(bits=4, granularity="group", group_size=32))
    reference = np.asarray(fake_quantize(table[...].T, QuantizationConfig(bits=4, granularity="group")).T)  # (V, D)
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
    config = load_config(None, ["model.max_seq_len=32", "train.seq_len=32"])
    config = replace(config, model=model.config, quantization=QuantizationConfig(bits=4, granularity="group"))
    save_run(tmp_path / "q4", config, int4, CharTokenizer("".join(chr(40 + i) for i in range(96))))
    # orbax's metadata adds tens of KB; its compression saves a little on the arrays
    assert 0.8 * weight_bytes(int4) < disk_bytes(tmp_path / "q4") < weight_bytes(int4) + 60_000


def test_quantized_config_section_round_trips_and_default_runs_have_none(tmp_path):
    config = load_config(None, ["quantization.bits=4", "quantization.granularity=group", "quantization.group_size=64"])
    save_config(config, tmp_path / "c.yaml")
    assert load_config(tmp_path / "c.yaml") == config
    save_config(RunConfig(), tmp_path / "d.yaml")
    assert "quantization" not in (tmp_path / "d.yaml").read_text()


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A tiny char model trained for 60 steps on the built-in corpus (its run directory)."""
    out = tmp_path_factory.mktemp("quantize") / "base"
    train(load_config(None, [*TINY, "train.max_steps=60", "train.eval_interval=60"]), out, progress=False)
    return out


def test_quantized_run_directory_loads_evaluates_and_generates(trained, tmp_path, capsys):
    code = main(["quantize", "--run", str(trained), "--bits", "4", "--group-size", "32", "--decode-tokens", "8",
                 "--out", str(tmp_path / "q4"), "--json"])
    assert code == 0
    report = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    fp32, int4 = report["variants"]
    assert fp32["variant"] == "fp32" and int4["variant"] == "int4 g32" and int4["bits_per_weight"] == 4.5
    assert int4["bytes_on_disk"] < fp32["weight_bytes"] / 3

    run, base = load_run(tmp_path / "q4"), load_run(trained)
    assert run.config.quantization == QuantizationConfig(bits=4, granularity="group", group_size=32)
    assert isinstance(run.model.blocks[0].mlp.up, QuantizedLinear)
    assert run.model.blocks[0].mlp.up.weight[...].dtype == jnp.uint8
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


def test_qat_export_equals_the_fake_quantized_forward_and_lowers_the_quantized_loss(trained, tmp_path):
    base = load_run(trained)
    config = QuantizationConfig(bits=4, granularity="group", group_size=32)
    latent = quantization_aware_training(base, config, tmp_path / "qat", steps=20, lr=3e-3, progress=False)
    exported = quantize_model(latent, config)
    tokens = jnp.asarray(np.fromfile(trained / "data/val.bin", dtype=np.uint16)[:64].reshape(2, 32).astype(np.int32))
    np.testing.assert_allclose(exported(tokens), fake_quantized_model(latent, config)(tokens), rtol=1e-5, atol=1e-5)
    windows = jnp.asarray(np.fromfile(trained / "data/val.bin", dtype=np.uint16)[:33 * 8].reshape(8, 33).astype(np.int32))
    before, after = qat_loss(config)(base.model, windows), qat_loss(config)(latent, windows)
    assert float(after) < float(before)  # it trained the quantized model, not only the float one
    assert (tmp_path / "qat" / "metrics.jsonl").is_file()


def test_quantize_command_refuses_a_quantized_run_and_a_taken_output(trained, tmp_path, capsys):
    assert main(["quantize", "--run", str(trained), "--bits", "8", "--decode-tokens", "0",
                 "--out", str(tmp_path / "q8")]) == 0
    assert main(["quantize", "--run", str(tmp_path / "q8"), "--bits", "4", "--out", str(tmp_path / "x")]) == 2
    assert main(["quantize", "--run", str(trained), "--bits", "8", "--out", str(tmp_path / "q8")]) == 2
    err = capsys.readouterr().err
    assert "already quantized" in err and "already holds a run" in err
