"""Pruning: exact sparsity, N:M groups, Wanda against NumPy, fixed masks through recovery, and
structured pruning that gives a smaller model computing what the zeroed original computes."""

import json

import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from tinyslm.cli import main
from tinyslm.compress.calibrate import block_linears, calibration_windows, collect_activations
from tinyslm.compress.prune import (
    apply_masks, compute_masks, magnitude_scores, mask_constraint, masks_from_zeros, nm_mask, sparsity,
    unstructured_mask, wanda_scores,
)
from tinyslm.compress.prune_run import PruneSpec, prune_model, recover
from tinyslm.compress.structured import apply_plan, plan_structured, zero_pruned_units
from tinyslm.config import ModelConfig, load_config
from tinyslm.errors import ConfigError
from tinyslm.model import TransformerLM, count_params, param_count
from tinyslm.train import load_run, train

TINY = [
    "data.corpus_bytes=60000", "tokenizer.type=char", "model.d_model=32", "model.n_layers=2", "model.n_heads=4",
    "model.n_kv_heads=2", "model.max_seq_len=32", "train.seq_len=32", "train.batch_size=8", "train.warmup_steps=2",
    "train.lr=3e-3", "train.eval_batches=2", "train.log_interval=5", "train.max_steps=12", "train.eval_interval=12",
    "train.samples=0",
]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A tiny Llama-style run (GQA: 4 query heads, 2 K/V heads) trained for 12 steps."""
    out = tmp_path_factory.mktemp("prune") / "base"
    train(load_config(None, TINY), out, progress=False)
    return load_run(out)


def random_model(config: ModelConfig, seed: int = 0) -> TransformerLM:
    """A model whose block weights and biases are all random (biases start at zero), so nothing cancels by accident."""
    model = TransformerLM(config, rngs=nnx.Rngs(seed))
    rng = np.random.default_rng(seed)
    for linear in block_linears(model).values():
        linear.kernel[...] = jnp.asarray(rng.normal(0, 0.3, linear.kernel.shape), jnp.float32)
        if linear.bias is not None:
            linear.bias[...] = jnp.asarray(rng.normal(0, 0.3, linear.bias.shape), jnp.float32)
    return model


# ------------------------------------------------------------------------------------- masks


@pytest.mark.parametrize("scope", ["output", "layer", "global"])
@pytest.mark.parametrize("target", [0.3, 0.5, 0.7])
def test_achieved_sparsity_equals_target(trained, scope, target):
    masks = compute_masks(trained.model, "magnitude", sparsity=target, scope=scope)
    pruned = apply_masks(nnx.clone(trained.model), masks)
    zeros = sum(int(np.sum(np.asarray(l.kernel[...]) == 0)) for l in block_linears(pruned).values())
    total = sum(l.kernel.size for l in block_linears(pruned).values())
    assert abs(zeros / total - target) < 0.001
    assert abs(sparsity(masks) - target) < 0.001
    if scope != "global":  # every layer on its own hits the target too
        for mask in masks.values():
            assert abs(1 - mask.mean() - target) < 0.001 + 1 / mask.size


def test_unstructured_mask_prunes_exactly_the_lowest_scores():
    scores = np.random.default_rng(0).random((12, 5))
    mask = unstructured_mask(scores, 0.4)
    assert (~mask).sum() == 24 and scores[~mask].max() < scores[mask].min()
    per_output = unstructured_mask(scores, 0.5, per_output=True)
    for k in range(5):  # each column loses its own 6 lowest
        assert (~per_output[:, k]).sum() == 6 and scores[~per_output[:, k], k].max() < scores[per_output[:, k], k].min()


@pytest.mark.parametrize("n, m", [(2, 4), (4, 8)])
def test_nm_mask_keeps_the_n_best_of_every_group(n, m):
    scores = np.random.default_rng(1).random((32, 6))
    mask = nm_mask(scores, n, m)
    for k in range(6):
        for start in range(0, 32, m):
            group, kept = scores[start:start + m, k], mask[start:start + m, k]
            assert kept.sum() == n  # so at least m - n zeros
            assert set(np.flatnonzero(kept)) == set(np.argsort(-group)[:n])


def test_two_four_pruned_model_has_two_zeros_in_every_group_of_four(trained):
    windows = calibration_windows(trained.path, 16, 32)
    pruned, masks = prune_model(trained.model, PruneSpec("nm", nm=(2, 4), score="wanda"), windows)
    for name, linear in block_linears(pruned).items():
        kernel = np.asarray(linear.kernel[...])
        groups = (kernel.reshape(kernel.shape[0] // 4, 4, -1) == 0).sum(axis=1)
        assert groups.min() >= 2, name
    with pytest.raises(ConfigError, match="not divisible by 3"):
        nm_mask(np.ones((32, 4)), 1, 3)


# ------------------------------------------------------------------------------------- Wanda


def test_wanda_scores_match_a_naive_numpy_computation(trained):
    model, windows = trained.model, calibration_windows(trained.path, 6, 32)
    activations = collect_activations(model, windows, batch_size=4)
    assert activations.tokens == 6 * 32
    # The inputs of three layers, computed with the model's own pieces outside any probe.
    x = model.embed(jnp.asarray(windows))
    positions = jnp.broadcast_to(jnp.arange(32), windows.shape)
    from tinyslm.model import rope_frequencies

    inv_freq = rope_frequencies(model.config.head_dim, model.config.rope_theta)
    block0 = model.blocks[0]
    attended, _ = block0.attn(block0.attn_norm(x), positions, inv_freq)
    h = block0.mlp_norm(x + attended)
    inputs = {
        "blocks.0.attn.q": block0.attn_norm(x),
        "blocks.0.mlp.down": jnp.asarray(np.asarray(block0.mlp.up(h)) / (1 + np.exp(-np.asarray(block0.mlp.gate(h))))
                                         * np.asarray(block0.mlp.gate(h))),
        "blocks.1.attn.q": model.blocks[1].attn_norm(model.blocks[0](x, positions, inv_freq)[0]),
    }
    for name, X in inputs.items():
        X = np.asarray(X, np.float64).reshape(-1, X.shape[-1])
        W = np.asarray(block_linears(model)[name].kernel[...], np.float64)
        naive = np.zeros_like(W)
        for j in range(W.shape[0]):  # score of weight (j, k) = |W_jk| * sqrt(sum over tokens of x_j^2)
            norm_j = np.sqrt(sum(X[t, j] ** 2 for t in range(X.shape[0])))
            for k in range(W.shape[1]):
                naive[j, k] = abs(W[j, k]) * norm_j
        np.testing.assert_allclose(wanda_scores(W, activations.input_norms[name]), naive, rtol=2e-4, atol=1e-6)


def test_wanda_keeps_the_weights_magnitude_drops_on_a_high_norm_input():
    rng = np.random.default_rng(2)
    kernel = rng.uniform(0.5, 1.0, (8, 4)) * rng.choice([-1, 1], (8, 4))
    kernel[0] = 0.05  # the smallest weights all read input feature 0 ...
    input_norms = np.ones(8)
    input_norms[0] = 100.0  # ... which is by far the largest input feature
    by_magnitude = unstructured_mask(magnitude_scores(kernel), 0.5, per_output=True)
    by_wanda = unstructured_mask(wanda_scores(kernel, input_norms), 0.5, per_output=True)
    assert not by_magnitude[0].any() and by_wanda[0].all()
    x = rng.normal(size=(64, 8)) * input_norms / np.sqrt(64)
    error = lambda mask: np.linalg.norm(x @ kernel - x @ (kernel * mask))  # noqa: E731
    assert error(by_wanda) < error(by_magnitude)  # and it changes the layer's output less


# ------------------------------------------------------------------------------------- recovery


def test_masks_stay_fixed_through_recovery_steps(trained, tmp_path):
    windows = calibration_windows(trained.path, 16, 32)
    pruned, masks = prune_model(trained.model, PruneSpec("wanda", 0.5), windows)
    before = {name: np.asarray(l.kernel[...]) for name, l in block_linears(pruned).items()}
    result = recover(trained, pruned, tmp_path / "recovered", 4, masks=masks, progress=False)
    recovered = load_run(tmp_path / "recovered")
    for name, linear in block_linears(recovered.model).items():
        kernel = np.asarray(linear.kernel[...])
        np.testing.assert_array_equal(kernel != 0, masks[name])  # the same zeros, no more, no fewer
        assert not np.allclose(kernel, before[name])  # while the kept weights were trained
    assert result.final_step == 4
    assert masks_from_zeros(recovered.model).keys() == masks.keys()


def test_mask_constraint_puts_the_zeros_back_in_a_state():
    model = random_model(ModelConfig(vocab_size=11, d_model=16, n_layers=1, n_heads=2))
    masks = compute_masks(model, "magnitude", sparsity=0.5)
    state = mask_constraint(masks)(nnx.state(model, nnx.Param))
    nnx.update(model, state)
    for name, linear in block_linears(model).items():
        assert np.all(np.asarray(linear.kernel[...])[~masks[name]] == 0)


# ------------------------------------------------------------------------------------- structured


@pytest.mark.parametrize("config, heads, neurons, layers", [
    (ModelConfig(vocab_size=23, d_model=32, n_layers=3, n_heads=6, n_kv_heads=2, head_dim=8), 0.34, 0.25, 1),
    (ModelConfig(preset="gpt", vocab_size=23, d_model=32, n_layers=3, n_heads=4, max_seq_len=16), 0.25, 0.5, 1),
    (ModelConfig(vocab_size=23, d_model=32, n_layers=2, n_heads=4, n_kv_heads=1, qkv_bias=True), 0.5, 0.25, 0),
])
def test_structured_pruning_shrinks_the_model_and_computes_the_zeroed_original(config, heads, neurons, layers):
    model = random_model(config)
    tokens = np.random.default_rng(3).integers(0, 23, (12, 16))
    plan = plan_structured(model, collect_activations(model, tokens), heads=heads, neurons=neurons, layers=layers)
    small = apply_plan(model, plan)
    assert count_params(small) == param_count(plan.config) < param_count(config)
    assert plan.config.n_layers == config.n_layers - layers and plan.config.head_dim == config.head_dim
    assert plan.config.n_heads % plan.config.n_kv_heads == 0
    zeroed = zero_pruned_units(model, plan)
    logits = nnx.jit(lambda m, t: m(t))
    probe = jnp.asarray(tokens[:3])
    np.testing.assert_allclose(logits(small, probe), logits(zeroed, probe), atol=2e-5)
    assert np.abs(logits(small, probe) - logits(model, probe)).max() > 1e-3  # something was removed


def test_structured_pruning_removes_the_least_important_units():
    model = random_model(ModelConfig(vocab_size=23, d_model=32, n_layers=2, n_heads=4, n_kv_heads=4))
    model.blocks[1].mlp.down.kernel[...] = model.blocks[1].mlp.down.kernel[...].at[5].multiply(1e-3)  # a silent neuron
    model.blocks[0].attn.o.kernel[...] = model.blocks[0].attn.o.kernel[...].at[16:24].multiply(1e-3)  # a silent head
    activations = collect_activations(model, np.random.default_rng(4).integers(0, 23, (8, 16)))
    plan = plan_structured(model, activations, heads=0.25, neurons=0.05)
    assert 5 not in plan.neurons[1] and 2 not in plan.heads[0]
    with pytest.raises(ConfigError, match="layers"):
        plan_structured(model, activations, layers=2)


# ------------------------------------------------------------------------------------- the command


def test_cli_prunes_a_run_into_a_smaller_run_and_sweeps(trained, tmp_path, capsys):
    out = tmp_path / "small"
    assert main(["prune", "--run", str(trained.path), "--method", "structured", "--sparsity", "0.5",
                 "--recover-steps", "3", "--calibration", "16", "--decode-tokens", "8", "--out", str(out),
                 "--no-progress", "--json"]) == 0
    report = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    original, pruned, recovered = report["variants"]
    assert pruned["params"] == recovered["params"] == param_count(load_run(out).model.config) < original["params"]
    assert pruned["bytes"] == 4 * pruned["params"] and recovered["perplexity"] < pruned["perplexity"]
    assert all(v["tokens_per_s"] > 0 for v in report["variants"])
    assert json.loads((out / "prune_report.json").read_text())["variants"] == report["variants"]

    assert main(["prune", "--run", str(trained.path), "--method", "wanda", "--calibration", "8", "--decode-tokens", "0",
                 "--out", str(tmp_path / "w"), "--json"]) == 0
    report = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert report["variants"][1]["sparsity"] == pytest.approx(0.5, abs=1e-3)
    assert main(["eval", "--run", str(tmp_path / "w")]) == 0  # a pruned run is an ordinary run

    plot = tmp_path / "sweep.png"
    assert main(["prune", "--run", str(trained.path), "--sweep", "0.5", "--plot", str(plot), "--calibration", "8",
                 "--json"]) == 0
    names = [v["name"] for v in json.loads(capsys.readouterr().out.strip().splitlines()[-1])["variants"]]
    assert names == ["original", "magnitude 50%", "wanda 50%", "structured 50%", "2:4 magnitude", "2:4 wanda"]
    assert plot.stat().st_size > 1000

    assert main(["prune", "--run", str(trained.path), "--method", "wanda"]) == 2  # no --out
    assert "needs --method and --out" in capsys.readouterr().err
