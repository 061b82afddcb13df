"""Configs load, override and fail with the offending key's path in the message."""

from pathlib import Path

import pytest

from tinyslm.config import ModelConfig, RunConfig, load_config, save_config
from tinyslm.errors import ConfigError

CONFIGS = sorted(Path(__file__).parents[1].joinpath("configs").glob("*.yaml"))


def test_default_yaml_equals_builtin_defaults():
    assert load_config("configs/default.yaml") == RunConfig()


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_every_shipped_config_loads(path):
    config = load_config(path)
    assert config.train.seq_len <= config.model.max_seq_len


def test_presets_fill_unset_fields():
    gpt, llama = ModelConfig(preset="gpt"), ModelConfig(preset="llama")
    assert (gpt.positions, gpt.norm, gpt.mlp, gpt.bias) == ("learned", "layernorm", "gelu", True)
    assert (llama.positions, llama.norm, llama.mlp, llama.bias) == ("rope", "rmsnorm", "swiglu", False)
    assert gpt.d_ff == 4 * gpt.d_model and llama.n_kv_heads == llama.n_heads


def test_overrides_parse_yaml_values_and_rederive_presets():
    config = load_config(None, ["model.preset=gpt", "model.n_layers=2", "train.lr=3e-4", "model.n_heads=2",
                                "model.rope_scaling.factor=32"])
    assert config.model.n_layers == 2 and config.train.lr == 3e-4 and config.model.norm == "layernorm"
    assert config.model.n_kv_heads == 2 and config.model.d_ff == 4 * 128
    assert config.model.rope_scaling.factor == 32.0


@pytest.mark.parametrize("override,key", [
    ("model.nlayers=2", "model.nlayers"),
    ("model.n_layers=two", "model.n_layers"),
    ("model.n_layers=0", "model.n_layers"),
    ("model.n_heads=3", "model.d_model"),
    ("model.n_kv_heads=3", "model.n_kv_heads"),
    ("model.preset=bert", "model.preset"),
    ("model.norm=batchnorm", "model.norm"),
    ("train.lr=-1", "train.lr"),
    ("train.seq_len=4096", "train.seq_len"),
    ("tokenizer.type=word", "tokenizer.type"),
    ("nosection.x=1", "nosection"),
])
def test_bad_values_name_the_key(override, key):
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        load_config(None, [override])


def test_yaml_errors_name_the_key(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("model:\n  d_model: 64\n  layers: 3\n")
    with pytest.raises(ConfigError, match=r"model\.layers: unknown key"):
        load_config(path)
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "missing.yaml")


def test_save_and_load_round_trip(tmp_path):
    config = load_config(None, ["model.preset=gpt", "model.rope_scaling.factor=8"])
    save_config(config, tmp_path / "c.yaml")
    assert load_config(tmp_path / "c.yaml") == config
