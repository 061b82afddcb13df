"""Hugging Face model directories <-> tinyslm run directories.

A Hugging Face model directory holds three things, and each has a tinyslm counterpart:

    config.json                      -> ModelConfig (config.yaml)
    model.safetensors                -> the parameters (checkpoints/)
      (or model-0000N-of-0000M.safetensors + model.safetensors.index.json)
    tokenizer.json / tokenizer.model -> HFTokenizer (tokenizer/)

The architecture tables (:mod:`tinyslm.interop.architectures`) say which tensor is which
parameter; this module applies them. RoPE needs no conversion: tinyslm rotates pairs
(i, i + head_dim/2) — the "rotate half" layout of Hugging Face's Llama and Qwen2 — so the q and
k weights are copied as they are (compare GGUF, :mod:`tinyslm.interop.gguf`, where they are not).
"""

from __future__ import annotations

import json
from pathlib import Path

import jax.numpy as jnp
import numpy as np
from flax import nnx
from safetensors.numpy import load_file, save_file

from tinyslm.config import ModelConfig, RunConfig, TrainConfig
from tinyslm.errors import CheckpointError
from tinyslm.interop.architectures import Architecture, config_from_hf, config_to_hf
from tinyslm.interop.hf_tokenizer import HFTokenizer
from tinyslm.model import TransformerLM
from tinyslm.train.checkpoint import load_run, save_run

CONFIG_JSON = "config.json"
WEIGHTS = "model.safetensors"
WEIGHTS_INDEX = "model.safetensors.index.json"

# Buffers some checkpoints carry that are not parameters: GPT-2's causal masks, cached RoPE frequencies.
_BUFFERS = (".attn.bias", ".attn.masked_bias", ".rotary_emb.inv_freq")


# ------------------------------------------------------------------------------------ tensors


def flat_params(model: TransformerLM) -> dict[str, np.ndarray]:
    """The model's parameters by dotted path, e.g. ``"blocks.0.attn.q.kernel"`` -> (d_model, d_model)."""
    return {".".join(map(str, path)): np.asarray(v[...]) for path, v in nnx.to_flat_state(nnx.state(model, nnx.Param))}


def to_hf_state(model: TransformerLM, arch: Architecture) -> dict[str, np.ndarray]:
    """tinyslm parameters -> Hugging Face tensors (float32), named and laid out as ``arch`` expects."""
    ours = flat_params(model)
    state = {}
    for entry in arch.tensor_maps({k: v.shape for k, v in ours.items()}, model.config.n_layers):
        tensor = np.concatenate([ours[name] for name in entry.ours], axis=-1)  # fuse GPT-2's q, k, v
        state[entry.theirs] = np.ascontiguousarray(tensor.T if entry.layout == "linear" else tensor, np.float32)
    return state


def model_from_hf_state(config: ModelConfig, arch: Architecture, state: dict[str, np.ndarray], where: str,
                        file_names: dict[str, str] | None = None) -> TransformerLM:
    """Build the tinyslm model from Hugging Face tensors (the inverse of :func:`to_hf_state`).

    Every parameter must be found, with the right shape, and every tensor must be used: a
    leftover tensor means the checkpoint computes something this model would silently ignore.
    ``file_names`` (Hugging Face name -> name in the file) makes error messages name what the
    user's file calls a tensor (a GGUF file's names differ).
    """
    file_names = file_names or {}
    state = {(k if k.startswith((arch.base_prefix, "lm_head")) else arch.base_prefix + k): v for k, v in state.items()}
    abstract = nnx.eval_shape(lambda: TransformerLM(config, rngs=nnx.Rngs(0)))
    graphdef, abstract_state = nnx.split(abstract)
    variables = {".".join(map(str, path)): v for path, v in nnx.to_flat_state(abstract_state)}
    values, missing = {}, []
    for entry in arch.tensor_maps({k: v.shape for k, v in variables.items()}, config.n_layers):
        if entry.theirs not in state:
            missing.append(file_names.get(entry.theirs, entry.theirs))
            continue
        theirs = np.asarray(state.pop(entry.theirs), np.float32)
        shapes = [variables[name].shape for name in entry.ours]
        ours_shape = (*shapes[0][:-1], sum(s[-1] for s in shapes))  # fused along the output axis
        theirs_shape = ours_shape[::-1] if entry.layout == "linear" else ours_shape
        if theirs.shape != theirs_shape:
            raise CheckpointError(f"{where}: tensor {file_names.get(entry.theirs, entry.theirs)} has shape {theirs.shape}, but the config implies {theirs_shape}")
        tensor = theirs.T if entry.layout == "linear" else theirs
        for name, part in zip(entry.ours, np.split(tensor, np.cumsum([s[-1] for s in shapes])[:-1], axis=-1)):
            values[name] = part
    if missing:
        raise CheckpointError(f"{where}: missing tensor(s) {', '.join(missing[:5])}"
                              f"{f' and {len(missing) - 5} more' if len(missing) > 5 else ''} needed by {arch.hf_class}")
    if config.tie_embeddings:
        state.pop("lm_head.weight", None)  # a tied head stored anyway: transformers ignores it too
    unused = sorted(k for k in state if not k.endswith(_BUFFERS))
    if unused:
        raise CheckpointError(f"{where}: tensor(s) {', '.join(unused[:5])} are not part of {arch.hf_class} "
                              "as tinyslm understands it; refusing to drop them silently")
    filled = [(path, v.replace(jnp.asarray(values[".".join(map(str, path))]))) for path, v in nnx.to_flat_state(abstract_state)]
    return nnx.merge(graphdef, nnx.from_flat_state(filled))


def read_safetensors(directory: Path) -> dict[str, np.ndarray]:
    """All tensors of a model directory: ``model.safetensors``, or the shards its index lists."""
    if (directory / WEIGHTS).is_file():
        files = [directory / WEIGHTS]
    elif (directory / WEIGHTS_INDEX).is_file():
        weight_map = json.loads((directory / WEIGHTS_INDEX).read_text())["weight_map"]
        files = [directory / name for name in sorted(set(weight_map.values()))]
        absent = [str(f) for f in files if not f.is_file()]
        if absent:
            raise CheckpointError(f"{directory / WEIGHTS_INDEX} lists shard(s) that are missing: {', '.join(absent)}")
    else:
        raise CheckpointError(f"{directory}: no {WEIGHTS} or {WEIGHTS_INDEX}; tinyslm reads safetensors weights "
                              "(convert a pytorch_model.bin with transformers' save_pretrained first)")
    state: dict[str, np.ndarray] = {}
    for f in files:
        state.update(load_file(f))
    return state


# ------------------------------------------------------------------------------------ entry points


def imported_run_config(config: ModelConfig) -> RunConfig:
    """The run config of an imported model (training settings are defaults, within its context)."""
    return RunConfig(model=config, train=TrainConfig(seq_len=min(TrainConfig.seq_len, config.max_seq_len)))


def load_hf(directory: str | Path) -> tuple[TransformerLM, HFTokenizer]:
    """Read a local Hugging Face model directory into a tinyslm model and its tokenizer."""
    directory = Path(directory)
    if not (directory / CONFIG_JSON).is_file():
        raise CheckpointError(f"{directory} is not a Hugging Face model directory: no {CONFIG_JSON} in it")
    hf_config = json.loads((directory / CONFIG_JSON).read_text())
    arch, config = config_from_hf(hf_config, str(directory / CONFIG_JSON))
    model = model_from_hf_state(config, arch, read_safetensors(directory), str(directory))
    return model, HFTokenizer.from_pretrained(directory, hf_config)


def import_hf(directory: str | Path, out: str | Path) -> Path:
    """Convert a local Hugging Face model directory into the tinyslm run directory ``out``."""
    model, tokenizer = load_hf(directory)
    return save_run(out, imported_run_config(model.config), model, tokenizer, meta={"imported_from": str(directory)})


def export_hf(run_dir: str | Path, out: str | Path) -> Path:
    """Write the run ``run_dir`` as a Hugging Face model directory that ``transformers`` loads.

    The weights go to one ``model.safetensors`` (float32); the tokenizer as ``tokenizer.json`` or
    ``tokenizer.model`` (see :meth:`HFTokenizer.convert` for how tinyslm's own tokenizers map).
    """
    run = load_run(run_dir)
    tokenizer = HFTokenizer.convert(run.tokenizer)
    arch, hf_config = config_to_hf(run.config.model, tokenizer)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    save_file(to_hf_state(run.model, arch), out / WEIGHTS, metadata={"format": "pt"})
    (out / CONFIG_JSON).write_text(json.dumps(hf_config, indent=2) + "\n")
    tokenizer.save_pretrained(out)
    return out
