"""Configs: frozen dataclasses, loaded from YAML and overridden with ``key=value``.

A run is described by one :class:`RunConfig` with four sections (``model``, ``tokenizer``,
``data``, ``train``). The YAML files in ``configs/`` map 1:1 onto these classes, and
``--set model.n_layers=4`` overrides any field by its dotted path. Every mistake — an unknown
key, a wrong type, an impossible combination — fails at load time with the key's path in the
message, long before anything is compiled.
"""

from __future__ import annotations

import copy
import dataclasses
import types
import typing
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any, Literal

import yaml

from tinyslm.errors import ConfigError

PRESETS = ("gpt", "llama")

# What each preset means when a field is left unset (None). GPT-2: learned positions, LayerNorm,
# GELU MLP, biases everywhere. Llama: RoPE, RMSNorm, SwiGLU, no biases.
_PRESET_DEFAULTS: dict[str, dict[str, Any]] = {
    "gpt": dict(positions="learned", norm="layernorm", mlp="gelu", bias=True, norm_eps=1e-5),
    "llama": dict(positions="rope", norm="rmsnorm", mlp="swiglu", bias=False, norm_eps=1e-5),
}


@dataclass(frozen=True)
class RopeScaling:
    """Llama 3's RoPE frequency scaling (long wavelengths stretched by ``factor``)."""

    factor: float = 8.0
    low_freq_factor: float = 1.0
    high_freq_factor: float = 4.0
    original_max_seq_len: int = 8192


@dataclass(frozen=True)
class ModelConfig:
    """The transformer's shape and flavour.

    Fields left as ``None`` take the preset's choice: ``preset="gpt"`` is GPT-2 (learned
    positions, LayerNorm, GELU, biases), ``preset="llama"`` is Llama (RoPE, RMSNorm, SwiGLU,
    grouped-query attention, no biases).
    """

    preset: str = "llama"
    vocab_size: int = 1024  # a run sets this from its tokenizer
    d_model: int = 128
    n_layers: int = 4
    n_heads: int = 4
    n_kv_heads: int | None = None  # None -> n_heads (multi-head attention); 1 -> multi-query
    head_dim: int | None = None  # None -> d_model // n_heads; set when heads were removed (pruning)
    d_ff: int | None = None  # None -> 4*d_model (gelu) or ~8/3*d_model rounded up to 32 (swiglu)
    max_seq_len: int = 128
    positions: Literal["learned", "rope"] | None = None
    norm: Literal["layernorm", "rmsnorm"] | None = None
    mlp: Literal["gelu", "swiglu"] | None = None
    bias: bool | None = None  # biases in every linear layer and norm (GPT-2)
    qkv_bias: bool = False  # biases on q/k/v only (Qwen2)
    tie_embeddings: bool = True
    dropout: float = 0.0
    norm_eps: float | None = None
    rope_theta: float = 10000.0
    rope_scaling: RopeScaling | None = None
    init_std: float = 0.02
    # "blocked": on a CPU in float32 a fused C++ kernel (tinyslm.model.cpu_kernels), else queries
    # in blocks that skip the masked triangle (the fastest on a CPU either way);
    # "naive": the lesson's step-by-step einsum; "fused": jax.nn.dot_product_attention (cuDNN on GPU)
    attention: Literal["blocked", "naive", "fused"] = "blocked"
    compute_dtype: Literal["float32", "bfloat16"] = "float32"

    def __post_init__(self) -> None:
        if self.preset not in PRESETS:
            raise ConfigError(f"model.preset: unknown preset {self.preset!r}; choose one of {PRESETS}")
        for name, value in _PRESET_DEFAULTS[self.preset].items():
            if getattr(self, name) is None:
                object.__setattr__(self, name, value)
        if self.n_kv_heads is None:
            object.__setattr__(self, "n_kv_heads", self.n_heads)
        if self.d_ff is None:
            object.__setattr__(self, "d_ff", _default_d_ff(self.d_model, self.mlp))
        for name in ("vocab_size", "d_model", "n_layers", "n_heads", "n_kv_heads", "d_ff", "max_seq_len"):
            _require(getattr(self, name) > 0, f"model.{name}", f"must be positive, got {getattr(self, name)}")
        if self.head_dim is None:
            _require(
                self.d_model % self.n_heads == 0,
                "model.d_model",
                f"d_model={self.d_model} is not divisible by n_heads={self.n_heads}",
            )
            object.__setattr__(self, "head_dim", self.d_model // self.n_heads)
        _require(self.head_dim > 0, "model.head_dim", f"must be positive, got {self.head_dim}")
        _require(
            self.n_heads % self.n_kv_heads == 0,
            "model.n_kv_heads",
            f"n_heads={self.n_heads} is not divisible by n_kv_heads={self.n_kv_heads}",
        )
        _require(0.0 <= self.dropout < 1.0, "model.dropout", f"must be in [0, 1), got {self.dropout}")
        _require(self.init_std > 0, "model.init_std", f"must be positive, got {self.init_std}")
        if self.positions == "rope":
            _require(self.head_dim % 2 == 0, "model.d_model", f"RoPE needs an even head_dim, got {self.head_dim}")


def _default_d_ff(d_model: int, mlp: str) -> int:
    if mlp == "gelu":
        return 4 * d_model
    # SwiGLU has three matrices instead of two: 2/3 of 4*d keeps the parameter count (Shazeer 2020).
    return -(-int(8 * d_model / 3) // 32) * 32


@dataclass(frozen=True)
class TokenizerConfig:
    """Which tokenizer to build for a run: characters, or a sentencepiece BPE / unigram model."""

    type: Literal["char", "bpe", "unigram"] = "bpe"
    vocab_size: int = 1024  # ignored for "char" (the vocabulary is the corpus's characters)

    def __post_init__(self) -> None:
        _require(self.vocab_size > 0, "tokenizer.vocab_size", f"must be positive, got {self.vocab_size}")


@dataclass(frozen=True)
class DataConfig:
    """Where the training text comes from: a registered dataset name, or your own text file."""

    name: str = "symptoms"  # a name from `tinyslm data list`
    path: str | None = None  # your own UTF-8 text file; overrides `name`
    val_fraction: float = 0.1  # the last 10% of the text is held out for validation
    corpus_bytes: int = 2_000_000  # size of the generated corpus (embedded dataset only)
    seed: int = 0  # seed of the generated corpus (embedded dataset only)

    def __post_init__(self) -> None:
        _require(0.0 < self.val_fraction < 1.0, "data.val_fraction", f"must be in (0, 1), got {self.val_fraction}")
        _require(self.corpus_bytes > 0, "data.corpus_bytes", f"must be positive, got {self.corpus_bytes}")


@dataclass(frozen=True)
class TrainConfig:
    """How to train: batch, schedule, optimizer, precision and how often to log, eval and save."""

    batch_size: int = 16
    seq_len: int = 128
    grad_accum: int = 1  # micro-batches per optimizer step
    max_steps: int = 800
    lr: float = 2e-3
    min_lr: float = 1e-4  # cosine decays to this floor
    warmup_steps: int = 100
    decay_steps: int | None = None  # None -> max_steps
    weight_decay: float = 0.1
    beta1: float = 0.9
    beta2: float = 0.99
    grad_clip: float = 1.0  # global-norm clipping; 0 disables
    eval_interval: int = 200
    eval_batches: int = 20
    log_interval: int = 10
    ckpt_interval: int = 400
    keep_checkpoints: int = 2
    seed: int = 1337
    samples: int = 3  # samples printed at the end of `tinyslm train`
    sample_tokens: int = 80
    sample_prompt: str = "\n"  # the samples continue this text (a newline: start a fresh line)
    mesh: str = "auto"  # devices: auto (all on the data axis), fsdp, or e.g. data=2,fsdp=4 (train/parallel.py)

    def __post_init__(self) -> None:
        for name in ("batch_size", "seq_len", "grad_accum", "max_steps", "eval_interval", "eval_batches",
                     "log_interval", "ckpt_interval", "keep_checkpoints"):
            _require(getattr(self, name) > 0, f"train.{name}", f"must be positive, got {getattr(self, name)}")
        _require(self.lr > 0, "train.lr", f"must be positive, got {self.lr}")
        _require(0 <= self.min_lr <= self.lr, "train.min_lr", f"must be in [0, lr={self.lr}], got {self.min_lr}")
        _require(self.warmup_steps >= 0, "train.warmup_steps", f"must be >= 0, got {self.warmup_steps}")
        _require(self.grad_clip >= 0, "train.grad_clip", f"must be >= 0, got {self.grad_clip}")


@dataclass(frozen=True)
class QuantizationConfig:
    """How a run's weights are quantized (see ``tinyslm.compress.quantize``).

    A quantized run's config.yaml has a ``quantization:`` section; a float run has none. One scale
    per tensor, per output channel, or per ``group_size`` consecutive inputs of each output channel
    (llama.cpp's Q8_0 / Q4_0 / Q4_1 blocks are groups of 32). The ``scheme`` is ``symmetric``
    (absmax: w ~ q * s, signed q) or ``asymmetric`` (min-max: w ~ q * s + m, unsigned q and an
    offset m, the group's minimum, stored next to each scale).
    """

    bits: Literal[8, 4] = 8
    granularity: Literal["tensor", "channel", "group"] = "channel"
    group_size: int = 32  # inputs per scale when granularity is "group" (32, 64, 128)
    scale_dtype: Literal["float16", "float32"] = "float16"  # also the offsets' dtype (asymmetric)
    embeddings: bool = True  # also quantize the token embedding table and the output head
    scheme: Literal["symmetric", "asymmetric"] = "symmetric"

    def __post_init__(self) -> None:
        _require(self.group_size > 0 and self.group_size % 2 == 0, "quantization.group_size",
                 f"must be a positive even number, got {self.group_size}")
        _require(self.scheme in ("symmetric", "asymmetric"), "quantization.scheme",
                 f"must be 'symmetric' or 'asymmetric', got {self.scheme!r}")


@dataclass(frozen=True)
class RunConfig:
    """Everything needed to rebuild a run: written to ``runs/NAME/config.yaml``."""

    model: ModelConfig = field(default_factory=ModelConfig)
    tokenizer: TokenizerConfig = field(default_factory=TokenizerConfig)
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    quantization: QuantizationConfig | None = None  # set on quantized runs only

    def __post_init__(self) -> None:
        _require(
            self.train.seq_len <= self.model.max_seq_len,
            "train.seq_len",
            f"seq_len={self.train.seq_len} exceeds model.max_seq_len={self.model.max_seq_len}",
        )


def _require(ok: bool, key: str, message: str) -> None:
    if not ok:
        raise ConfigError(f"{key}: {message}")


# --------------------------------------------------------------------------------------------
# Dicts <-> dataclasses, with type checks that name the key.
# --------------------------------------------------------------------------------------------


def from_dict(cls: type, data: Any, path: str = "") -> Any:
    """Build dataclass ``cls`` from a (YAML-loaded) dict, checking keys and types recursively."""
    where = path or "config"
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: expected a mapping, got {type(data).__name__} {data!r}")
    hints = typing.get_type_hints(cls)
    known = {f.name for f in fields(cls)}
    unknown = sorted(set(data) - known)
    if unknown:
        key = f"{path}.{unknown[0]}" if path else unknown[0]
        raise ConfigError(f"{key}: unknown key; valid keys here are {sorted(known)}")
    kwargs = {name: _coerce(hints[name], value, f"{path}.{name}" if path else name) for name, value in data.items()}
    try:
        return cls(**kwargs)
    except TypeError as err:  # pragma: no cover - all fields have defaults
        raise ConfigError(f"{where}: {err}") from None


def _coerce(tp: Any, value: Any, path: str) -> Any:
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        options = typing.get_args(tp)
        if value is None and type(None) in options:
            return None
        errors = []
        for option in options:
            if option is type(None):
                continue
            try:
                return _coerce(option, value, path)
            except ConfigError as err:
                errors.append(str(err))
        raise ConfigError(errors[0] if len(errors) == 1 else f"{path}: {value!r} matches none of {tp}")
    if origin is Literal:
        allowed = typing.get_args(tp)
        if value not in allowed:
            raise ConfigError(f"{path}: {value!r} is not one of {allowed}")
        return value
    if dataclasses.is_dataclass(tp):
        return value if isinstance(value, tp) else from_dict(tp, value, path)
    if tp is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if tp is float and isinstance(value, str):  # YAML 1.1 reads "3e-4" (no dot) as a string
        try:
            return float(value)
        except ValueError:
            pass
    if tp in (int, float, str, bool) and (type(value) is tp):
        return value
    raise ConfigError(f"{path}: expected {getattr(tp, '__name__', tp)}, got {type(value).__name__} {value!r}")


def to_dict(config: Any) -> dict:
    """A plain dict of a config dataclass (YAML-ready, resolved preset values included)."""
    return dataclasses.asdict(config)


def apply_overrides(data: dict, overrides: list[str] | tuple[str, ...]) -> dict:
    """Set ``section.key=value`` strings (values parsed as YAML) in a raw config dict.

    Overrides go into the dict *before* presets are resolved, so ``model.preset=gpt`` or
    ``model.n_heads=8`` re-derive every field that was left unset.

    >>> apply_overrides({}, ["model.n_layers=2"])
    {'model': {'n_layers': 2}}
    """
    data = copy.deepcopy(data)
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"override {item!r}: expected KEY=VALUE, e.g. model.n_layers=4")
        key, raw = (part.strip() for part in item.split("=", 1))
        parts = key.split(".")
        cls, node = RunConfig, data
        for i, part in enumerate(parts):
            names = {f.name for f in fields(cls)}
            if part not in names:
                raise ConfigError(f"{'.'.join(parts[: i + 1])}: unknown key in override {item!r}; "
                                  f"valid keys here are {sorted(names)}")
            if i == len(parts) - 1:
                node[part] = yaml.safe_load(raw)
                break
            cls = _dataclass_in(typing.get_type_hints(cls)[part])
            if cls is None:
                raise ConfigError(f"{'.'.join(parts[: i + 1])}: is a value, not a section, in override {item!r}")
            if not isinstance(node.get(part), dict):
                node[part] = {}
            node = node[part]
    return data


def _dataclass_in(tp: Any) -> type | None:
    """The dataclass in a field's type (``RopeScaling | None`` -> RopeScaling), if any."""
    options = typing.get_args(tp) if typing.get_origin(tp) in (typing.Union, types.UnionType) else (tp,)
    return next((t for t in options if dataclasses.is_dataclass(t)), None)


def load_config(path: str | Path | None = None, overrides: list[str] | tuple[str, ...] = ()) -> RunConfig:
    """Load a YAML config (or the built-in defaults when ``path`` is None) with overrides applied."""
    data: dict = {}
    if path is not None:
        path = Path(path)
        if not path.is_file():
            raise ConfigError(f"config file {str(path)!r} not found (run from the repository root, or give a full path)")
        try:
            data = yaml.safe_load(path.read_text()) or {}
        except yaml.YAMLError as err:
            raise ConfigError(f"{path}: not valid YAML: {err}") from None
        if not isinstance(data, dict):
            raise ConfigError(f"{path}: expected a mapping of sections (model, tokenizer, data, train)")
    return from_dict(RunConfig, apply_overrides(data, overrides))


def save_config(config: RunConfig, path: str | Path) -> None:
    """Write the fully resolved config as YAML (enough to rebuild the run).

    Optional sections that are unset (``quantization: None`` on a float run) are left out.
    """
    sections = {name: value for name, value in to_dict(config).items() if value is not None}
    Path(path).write_text(yaml.safe_dump(sections, sort_keys=False))


__all__ = [
    "ModelConfig", "RopeScaling", "TokenizerConfig", "DataConfig", "TrainConfig", "QuantizationConfig", "RunConfig",
    "from_dict", "to_dict", "apply_overrides", "load_config", "save_config", "replace", "PRESETS",
]
