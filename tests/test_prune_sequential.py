"""Sequential (block-by-block) Wanda calibration, and calibrating on another dataset's text.

Sequential calibration measures block l on the output of blocks 0..l-1 *after* they were pruned
(Sun et al. 2023, arXiv:2306.11695). The reference here is the model's own pieces called by hand on
a copy whose earlier blocks carry the same masks, with the norms summed in NumPy.
"""

import json
import os

import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from tinyslm.cli import main
from tinyslm.compress.calibrate import Activations, block_linears, calibration_tokens, collect_activations
from tinyslm.compress.prune import apply_masks, compute_masks, prune_sequentially, sparsity
from tinyslm.compress.prune_run import PruneSpec, prune_model
from tinyslm.compress.quantize_report import held_out_tokens
from tinyslm.config import ModelConfig, RunConfig, TrainConfig, load_config
from tinyslm.data import load_text, read_meta, split_point
from tinyslm.errors import ConfigError
from tinyslm.model import TransformerLM, rope_frequencies
from tinyslm.tokenizer import CharTokenizer
from tinyslm.train import load_run, save_run

from test_prune import random_model  # every block weight random, nothing cancelling by accident

LLAMA = ModelConfig(vocab_size=29, d_model=16, n_layers=3, n_heads=4, n_kv_heads=2, d_ff=32, max_seq_len=16)
GPT = ModelConfig(preset="gpt", vocab_size=29, d_model=16, n_layers=3, n_heads=2, d_ff=32, max_seq_len=16)


def windows(n: int = 10, seed: int = 1) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 29, (n, 16))


def by_block(masks: dict, block: int) -> dict:
    return {name: m for name, m in masks.items() if name.startswith(f"blocks.{block}.")}


def test_sequential_at_sparsity_zero_is_one_shot():
    model, tokens = random_model(LLAMA), windows()
    one_shot = collect_activations(model, tokens, batch_size=4)
    kernels = {name: np.asarray(l.kernel[...]) for name, l in block_linears(model).items()}
    seen = []
    masks = prune_sequentially(model, tokens, sparsity=0.0)
    collect_activations(model, tokens, batch_size=4, after_block=lambda i, a: seen.append(a))
    assert all(m.all() for m in masks.values()) and masks.keys() == kernels.keys()
    for name, linear in block_linears(model).items():  # nothing was pruned
        np.testing.assert_array_equal(np.asarray(linear.kernel[...]), kernels[name])
    assert [len(a.input_norms) for a in seen] == [7, 14, 21]  # block i's callback sees blocks 0..i
    for name, norm in one_shot.input_norms.items():
        np.testing.assert_allclose(seen[-1].input_norms[name], norm, rtol=1e-6)
    np.testing.assert_allclose(seen[-1].block_cosine, one_shot.block_cosine, rtol=1e-6)


def test_sequential_norms_are_measured_on_the_pruned_earlier_blocks():
    original, tokens = random_model(LLAMA), windows()
    pruned = nnx.clone(original)
    seen = {}
    masks = prune_sequentially(pruned, tokens, sparsity=0.5)
    # Replay: the same masks, block by block, recording what each block was measured on.
    replay = nnx.clone(original)
    collect_activations(replay, tokens, batch_size=3,
                        after_block=lambda i, a: (seen.update(a.input_norms), apply_masks(replay, by_block(masks, i))))
    one_shot = collect_activations(original, tokens)
    positions = jnp.broadcast_to(jnp.arange(16), tokens.shape)
    inv_freq = rope_frequencies(LLAMA.head_dim, LLAMA.rope_theta)
    for block in (1, 2):
        # By hand: a copy whose blocks before `block` carry their masks; run the model's pieces on it.
        earlier = {name: m for b in range(block) for name, m in by_block(masks, b).items()}
        reference = apply_masks(nnx.clone(original), earlier)
        x = reference.embed(jnp.asarray(tokens))
        for b in range(block):
            x, _ = reference.blocks[b](x, positions, inv_freq)
        layer = reference.blocks[block]
        attended, _ = layer.attn(layer.attn_norm(x), positions, inv_freq)
        h = layer.mlp_norm(x + attended)
        gate, up = np.asarray(layer.mlp.gate(h), np.float64), np.asarray(layer.mlp.up(h), np.float64)
        inputs = {"attn.q": np.asarray(layer.attn_norm(x), np.float64), "mlp.up": np.asarray(h, np.float64),
                  "mlp.down": gate / (1 + np.exp(-gate)) * up}
        for path, X in inputs.items():
            name = f"blocks.{block}.{path}"
            naive = np.sqrt((X.reshape(-1, X.shape[-1]) ** 2).sum(axis=0))
            np.testing.assert_allclose(seen[name], naive, rtol=2e-4, atol=1e-6)
            assert not np.allclose(one_shot.input_norms[name], naive, rtol=1e-3)  # one-shot did not see the pruning
        # ... and the block's masks are Wanda's, per output, on exactly those norms.
        measured = Activations(input_norms=seen, block_cosine=np.zeros(3), tokens=tokens.size)
        expected = compute_masks(reference, "wanda", sparsity=0.5, activations=measured, block=block)
        for name, mask in expected.items():
            np.testing.assert_array_equal(masks[name], mask)
    for name, mask in by_block(masks, 0).items():  # block 0 sees the same input either way
        np.testing.assert_array_equal(mask, compute_masks(original, "wanda", sparsity=0.5, activations=one_shot,
                                                          block=0)[name])


@pytest.mark.parametrize("config", [LLAMA, GPT])
@pytest.mark.parametrize("target", [0.3, 0.5, 0.7])
def test_sequential_pruning_hits_the_target_sparsity_exactly(config, target):
    model = random_model(config)
    pruned, masks = prune_model(model, PruneSpec("wanda", target, sequential=True), windows())
    assert abs(sparsity(masks) - target) < 0.001
    for name, linear in block_linears(pruned).items():
        kernel = np.asarray(linear.kernel[...])
        np.testing.assert_array_equal(kernel != 0, masks[name])  # the model carries exactly its masks
        assert abs((kernel == 0).mean() - target) <= 0.001 + 1 / kernel.size
    assert all(np.asarray(l.kernel[...]).all() for l in block_linears(model).values())  # the original is untouched


def test_sequential_two_four_and_what_it_refuses():
    pruned, masks = prune_model(random_model(LLAMA), PruneSpec("nm", nm=(2, 4), score="wanda", sequential=True),
                                windows())
    for name, linear in block_linears(pruned).items():
        kernel = np.asarray(linear.kernel[...])
        assert ((kernel.reshape(-1, 4, kernel.shape[1]) == 0).sum(axis=1) == 2).all(), name
    with pytest.raises(ConfigError, match="global"):
        prune_sequentially(random_model(LLAMA), windows(), sparsity=0.5, scope="global")
    with pytest.raises(ConfigError, match="activation-based"):
        PruneSpec("magnitude", 0.5, sequential=True)


# ------------------------------------------------------------------------------------- another dataset's text


@pytest.fixture(scope="module")
def run_without_data(tmp_path_factory):
    """A run with a character tokenizer over TinyStories and no data/ folder, like an imported model."""
    if not os.environ.get("TINYSLM_DATA_DIR"):  # the TinyStories sample is a shared data file
        pytest.skip("set TINYSLM_DATA_DIR to the shared data folder")
    text = load_text(load_config(None, ["data.name=tinystories"]).data)
    tokenizer = CharTokenizer.from_text(text)
    config = RunConfig(model=ModelConfig(vocab_size=tokenizer.vocab_size, d_model=16, n_layers=2, n_heads=2,
                                         d_ff=32, max_seq_len=32),
                       data=load_config(None, ["data.name=symptoms"]).data,
                       train=TrainConfig(seq_len=32, sample_prompt="Once"))
    path = tmp_path_factory.mktemp("imported") / "run"
    save_run(path, config, TransformerLM(config.model, rngs=nnx.Rngs(0)), tokenizer)
    return load_run(path), text


def test_calibration_text_is_the_part_before_the_held_out_slice(run_without_data):
    run, text = run_without_data
    tokens = calibration_tokens(run.path, "tinystories")
    held_out = held_out_tokens(run, "tinystories")
    cut = split_point(text, run.config.data.val_fraction)
    assert run.tokenizer.decode(tokens.tolist()) == text[:cut]  # training part only, all of it ...
    assert run.tokenizer.decode(held_out.tolist()) == text[cut:]  # ... and evaluation on the rest


def test_cli_prunes_a_run_without_data_on_another_dataset(run_without_data, tmp_path, capsys):
    run, _ = run_without_data
    out = tmp_path / "pruned"
    assert main(["prune", "--run", str(run.path), "--method", "wanda", "--sequential", "--data", "tinystories",
                 "--eval-tokens", "300", "--calibration", "8", "--decode-tokens", "4", "--out", str(out),
                 "--json"]) == 0
    report = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    original, pruned = report["variants"]
    assert pruned["name"] == "wanda 50% sequential" and pruned["sparsity"] == pytest.approx(0.5, abs=1e-3)
    assert pruned["perplexity"] != original["perplexity"] and pruned["tokens_per_s"] > 0
    assert load_run(out).config.model == run.config.model and not (out / "data").exists()

    recovered = tmp_path / "recovered"  # recovery trains on --data too
    assert main(["prune", "--run", str(run.path), "--method", "structured", "--sparsity", "0.5",
                 "--data", "tinystories", "--eval-tokens", "300", "--calibration", "8", "--decode-tokens", "0",
                 "--recover-steps", "2", "--no-progress", "--out", str(recovered), "--json"]) == 0
    variants = json.loads(capsys.readouterr().out.strip().splitlines()[-1])["variants"]
    assert len(variants) == 3 and variants[2]["params"] < variants[0]["params"]
    assert read_meta(recovered / "data")["source"] == "tinystories"
