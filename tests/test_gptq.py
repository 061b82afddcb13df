"""GPTQ: the blocked Cholesky algorithm against a naive Optimal Brain Surgeon loop, its grid, its gain."""

from dataclasses import replace

import jax.numpy as jnp
import numpy as np
import pytest

from tinyslm.compress import gptq
from tinyslm.compress.gptq import DAMPING, gptq_quantize
from tinyslm.compress.quantize import dequantize, grid, quantize
from tinyslm.config import QuantizationConfig

CONFIGS = [
    QuantizationConfig(bits=4),
    QuantizationConfig(bits=8, granularity="tensor"),
    QuantizationConfig(bits=4, granularity="group", group_size=16),
    QuantizationConfig(bits=4, granularity="group", group_size=16, scheme="asymmetric"),
]


def _ids(config: QuantizationConfig) -> str:
    return f"int{config.bits}-{config.granularity}-{config.scheme}"


def _layer(d_in=64, d_out=24, tokens=1500, seed=0) -> tuple[np.ndarray, np.ndarray]:
    """Weights (d_in, d_out) and correlated inputs X (tokens, d_in), as a real layer sees them."""
    rng = np.random.default_rng(seed)
    mixing = np.eye(d_in) + 0.4 * rng.normal(size=(d_in, d_in))
    x = (rng.normal(size=(tokens, d_in)) @ mixing).astype(np.float32)
    return rng.normal(size=(d_in, d_out)).astype(np.float32), x


def _naive_gptq(w: np.ndarray, gram: np.ndarray, config: QuantizationConfig) -> np.ndarray:
    """GPTQ as the paper first states it (OBS, float64): round row i, move the rows not yet rounded by
    -H⁻¹[j, i] / H⁻¹[i, i] times its error, then take row i out of H⁻¹; no Cholesky, no blocks.
    With a fixed grid the rows go in order of decreasing H[i, i]; by groups, in their own order, and
    a group's grid is measured when its first row comes up."""
    w = w.astype(np.float64).copy()
    h = gram.astype(np.float64) + DAMPING * np.mean(np.diag(gram)) * np.eye(len(gram))
    h_inv = np.linalg.inv(h)
    rounded = np.zeros_like(w)
    channel = replace(config, granularity="channel")
    fixed = None if config.granularity == "group" else grid(jnp.asarray(w, jnp.float32), config)
    order = np.arange(len(w)) if fixed is None else np.argsort(-np.diag(gram), kind="stable")
    for n, i in enumerate(order):
        later = order[n + 1:]
        if fixed is not None:
            scale, offset = fixed
        elif i % config.group_size == 0:
            scale, offset = grid(jnp.asarray(w[i:i + config.group_size], jnp.float32), channel)
        q, s, m = quantize(jnp.asarray(w[i:i + 1], jnp.float32), channel, (scale, offset))
        rounded[i] = np.asarray(dequantize(q, s, m))[0]
        error = (w[i] - rounded[i]) / h_inv[i, i]
        w[later] -= np.outer(h_inv[later, i], error)
        h_inv -= np.outer(h_inv[:, i], h_inv[i, :]) / h_inv[i, i]
    return rounded


@pytest.mark.parametrize("config", CONFIGS, ids=_ids)
def test_blocked_cholesky_gptq_equals_the_naive_loop(config, monkeypatch):
    monkeypatch.setattr(gptq, "BLOCK_ROWS", 16)  # four blocks, so the between-block update is exercised
    w, x = _layer()
    ours, _ = gptq_quantize(jnp.asarray(w), jnp.asarray(x.T @ x), config)
    reference = _naive_gptq(w, x.T @ x, config)
    same = np.isclose(np.asarray(ours), reference, rtol=0, atol=1e-4)
    # float32 vs float64 may round a weight that sits almost exactly between two levels the other way
    assert same.mean() > 0.99, f"{(~same).sum()} of {same.size} weights differ from the naive loop"


@pytest.mark.parametrize("config", CONFIGS, ids=_ids)
def test_gptq_weights_sit_on_its_grid_and_cut_the_output_error(config):
    w, x = _layer(seed=1)
    w_hat, on = gptq_quantize(jnp.asarray(w), jnp.asarray(x.T @ x), config)
    stored = quantize(w_hat, config, on)
    np.testing.assert_array_equal(np.asarray(dequantize(*stored)), np.asarray(w_hat))  # stored losslessly
    rtn = np.asarray(dequantize(*quantize(jnp.asarray(w), config)))
    ours_error = np.linalg.norm(x @ (np.asarray(w_hat) - w))
    rtn_error = np.linalg.norm(x @ (rtn - w))
    assert ours_error < 0.85 * rtn_error, (ours_error, rtn_error)


def test_with_uncorrelated_inputs_gptq_is_round_to_nearest():
    """A diagonal XᵀX means no input can make up for another: there is nothing to spread the error over."""
    w, _ = _layer(seed=2)
    gram = np.diag(np.linspace(0.5, 3.0, w.shape[0])).astype(np.float32)
    config = QuantizationConfig(bits=4)
    w_hat, _ = gptq_quantize(jnp.asarray(w), jnp.asarray(gram), config)
    np.testing.assert_array_equal(np.asarray(w_hat), np.asarray(dequantize(*quantize(jnp.asarray(w), config))))


def test_an_input_calibration_never_saw_gets_zero_weights():
    w, x = _layer(seed=3)
    x[:, 5] = 0.0
    w_hat, _ = gptq_quantize(jnp.asarray(w), jnp.asarray(x.T @ x), QuantizationConfig(bits=8))
    assert np.all(np.isfinite(np.asarray(w_hat)))
    np.testing.assert_array_equal(np.asarray(w_hat)[5], 0.0)
