"""LoRA: fine-tune a big matrix by learning a small low-rank correction to it.

Low-Rank Adaptation (Hu et al. 2021, "LoRA: Low-Rank Adaptation of Large Language Models",
arXiv:2106.09685) freezes a pretrained weight ``W`` (d_in, d_out) and learns two thin matrices
instead, ``A`` (d_in, r) and ``B`` (r, d_out) with a rank ``r`` much smaller than d_in and d_out:

    y = x @ W  +  (alpha / r) * dropout(x) @ A @ B

* **Few trainable parameters.** An adapter has ``r * (d_in + d_out)`` of them instead of
  ``d_in * d_out``: for a 576 x 576 projection of SmolLM2 and r = 8, 9,216 instead of 331,776.
  Fine-tuning memory (gradients, Adam's two moments) shrinks by the same factor.
* **It starts as the base model.** ``B`` starts at zero, so ``A @ B = 0`` and the adapted model
  computes exactly what the pretrained one did; ``A`` starts random so that gradients reach ``B``.
* **``alpha / r`` keeps the step size steady.** With the scale folded in, doubling ``r`` does not
  double the size of the update, so a learning rate tuned at one rank works at another.
* **No cost at inference.** ``merge`` folds the correction into the weight, ``W' = W + (alpha/r) A B``,
  and the model is again a plain one; ``unmerge`` subtracts it back out. Adapters are small, so one
  base model can serve many tasks by swapping a few hundred KB (:func:`save_adapters`).

Which matrices get adapters is a choice (``targets``): the original paper adapted the attention
query and value projections; adapting every projection (q, k, v, o and the MLP) costs more
parameters and usually gains a little quality.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from tinyslm.errors import CheckpointError, ConfigError
from tinyslm.model.block import dropout
from tinyslm.model.linear import Linear, matmul

TARGETS = ("q", "k", "v", "o", "gate", "up", "down")  # the projections of a block, by attribute name
ADAPTERS_CONFIG = "adapters.json"
ADAPTERS_WEIGHTS = "adapters.npz"


class LoRAParam(nnx.Param):
    """A parameter of a LoRA adapter. Being its own type, it can be chosen by an ``nnx`` filter
    (``nnx.split(model, LoRAParam, ...)``): that is how fine-tuning trains the adapters only."""


@dataclass(frozen=True)
class LoRAConfig:
    """Where adapters go and how big they are (stored in a run's ``classifier.yaml`` and with saved adapters)."""

    rank: int = 8
    alpha: float = 16.0
    dropout: float = 0.0
    targets: tuple[str, ...] = ("q", "k", "v", "o")

    def __post_init__(self) -> None:
        object.__setattr__(self, "targets", tuple(self.targets))
        if self.rank < 1:
            raise ConfigError(f"lora.rank: must be at least 1, got {self.rank}")
        if self.alpha <= 0:
            raise ConfigError(f"lora.alpha: must be positive, got {self.alpha}")
        if not 0.0 <= self.dropout < 1.0:
            raise ConfigError(f"lora.dropout: must be in [0, 1), got {self.dropout}")
        unknown = sorted(set(self.targets) - set(TARGETS))
        if unknown or not self.targets:
            raise ConfigError(f"lora.targets: {list(self.targets)} must be a non-empty subset of {list(TARGETS)}")


class LoRALinear(nnx.Module):
    """A frozen :class:`Linear` plus a trainable low-rank correction: x @ W + (alpha/r) dropout(x) @ A @ B."""

    def __init__(self, base: Linear, rank: int, alpha: float, dropout_rate: float, *, rngs: nnx.Rngs):
        d_in, d_out = base.kernel.shape
        self.base = base
        self.rank, self.alpha, self.dropout_rate = rank, alpha, dropout_rate
        # A ~ N(0, 1/d_in): x @ A has about the variance of one input feature. B = 0: no change yet.
        self.lora_a = LoRAParam(jax.random.normal(rngs.params(), (d_in, rank)) / np.sqrt(d_in))
        self.lora_b = LoRAParam(jnp.zeros((rank, d_out)))
        self.merged = False
        self.dropout_key = None  # set for one forward pass by set_lora_dropout_key (training only)

    @property
    def scale(self) -> float:
        return self.alpha / self.rank

    def delta(self) -> jax.Array:
        """The correction to the kernel, (alpha / r) * A @ B: (d_in, d_out)."""
        return self.scale * self.lora_a[...] @ self.lora_b[...]

    def __call__(self, x: jax.Array) -> jax.Array:
        """x (..., d_in) -> (..., d_out). Once merged, the correction is already inside the kernel."""
        y = self.base(x)
        if self.merged:
            return y
        rows = dropout(x, self.dropout_rate, self.dropout_key).reshape(-1, x.shape[-1])  # as Linear does
        low_rank = matmul(matmul(rows, self.lora_a[...].astype(x.dtype)), self.lora_b[...].astype(x.dtype))  # (N, r) -> (N, d_out)
        return y + (self.scale * low_rank.reshape(y.shape)).astype(y.dtype)


def apply_lora(model: nnx.Module, targets=("q", "k", "v", "o"), rank: int = 8, alpha: float = 16.0,
               dropout: float = 0.0, seed: int = 0) -> nnx.Module:
    """Wrap every :class:`Linear` named in ``targets`` (q, k, v, o, gate, up, down) in a :class:`LoRALinear`.

    Works in place on any module that contains transformer blocks (a language model, a
    classifier built on one) and returns it. ``seed`` draws the ``A`` matrices.
    """
    config = LoRAConfig(rank, alpha, dropout, tuple(targets))
    found = [(parent, name) for _, parent in nnx.iter_modules(model) for name in config.targets
             if isinstance(getattr(parent, name, None), Linear)]
    missing = sorted(set(config.targets) - {name for _, name in found})
    if missing:
        raise ConfigError(f"lora.targets: this model has no projection named {missing} (a GELU MLP has no 'gate')")
    rngs = nnx.Rngs(seed)
    for parent, name in found:
        setattr(parent, name, LoRALinear(getattr(parent, name), rank, alpha, dropout, rngs=rngs))
    return model


def lora_layers(model: nnx.Module) -> list[tuple[str, LoRALinear]]:
    """Every adapter in the model with its path ("lm/blocks/0/attn/q"), in a fixed order."""
    return [("/".join(map(str, path)), module) for path, module in nnx.iter_modules(model)
            if isinstance(module, LoRALinear)]


def lora_config(model: nnx.Module) -> LoRAConfig:
    """The :class:`LoRAConfig` the model's adapters were created with."""
    layers = lora_layers(model)
    if not layers:
        raise ConfigError("this model has no LoRA adapters (apply_lora adds them)")
    first = layers[0][1]
    targets = tuple(t for t in TARGETS if any(path.endswith("/" + t) for path, _ in layers))
    return LoRAConfig(first.rank, first.alpha, first.dropout_rate, targets)


def set_lora_dropout_key(model: nnx.Module, key: jax.Array | None) -> None:
    """Give every adapter its own dropout key for the next forward pass (None: no dropout).

    A training loss calls this on the model it was handed, before the forward pass; evaluation
    passes None. The key never reaches the saved state: it lives on the module only while traced.
    """
    for i, (_, layer) in enumerate(lora_layers(model)):
        layer.dropout_key = None if key is None else jax.random.fold_in(key, i)


def merge(model: nnx.Module) -> nnx.Module:
    """Fold every adapter into its kernel (W <- W + (alpha/r) A B), in place; the forward pass then
    costs what the base model's does. The adapters are kept, so :func:`unmerge` can undo it."""
    for _, layer in lora_layers(model):
        if not layer.merged:
            layer.base.kernel[...] = layer.base.kernel[...] + layer.delta()
            layer.merged = True
    return model


def unmerge(model: nnx.Module) -> nnx.Module:
    """Undo :func:`merge` (W <- W - (alpha/r) A B), in place: the base weights are back (to float32
    rounding) and the adapters are live again."""
    for _, layer in lora_layers(model):
        if layer.merged:
            layer.base.kernel[...] = layer.base.kernel[...] - layer.delta()
            layer.merged = False
    return model


def merged_copy(model: nnx.Module) -> nnx.Module:
    """A copy of the model with every adapter folded in and removed: plain :class:`Linear` layers
    again, the structure of the model before :func:`apply_lora`. The model itself is unchanged."""
    copy = nnx.clone(model)
    for _, parent in list(nnx.iter_modules(copy)):
        for name in TARGETS:
            layer = getattr(parent, name, None)
            if isinstance(layer, LoRALinear):
                if not layer.merged:
                    layer.base.kernel[...] = layer.base.kernel[...] + layer.delta()
                setattr(parent, name, layer.base)
    return copy


def trainable_count(model: nnx.Module, trainable=LoRAParam) -> int:
    """How many parameters an ``nnx`` filter selects (default: the LoRA adapters)."""
    return sum(x.size for x in jax.tree.leaves(nnx.state(model, trainable)))


def save_adapters(model: nnx.Module, directory: str | Path) -> Path:
    """Write the adapters alone: ``adapters.json`` (rank, alpha, dropout, targets) and ``adapters.npz``
    (A and B of every adapted layer, by path). A few KB to a few MB, against the whole model's size."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    layers = lora_layers(model)
    (directory / ADAPTERS_CONFIG).write_text(json.dumps(asdict(lora_config(model)), indent=1))
    arrays = {}
    for path, layer in layers:
        arrays[f"{path}/lora_a"] = np.asarray(layer.lora_a[...])
        arrays[f"{path}/lora_b"] = np.asarray(layer.lora_b[...])
    np.savez(directory / ADAPTERS_WEIGHTS, **arrays)
    return directory


def load_adapters(model: nnx.Module, directory: str | Path) -> nnx.Module:
    """Add the adapters saved in ``directory`` to ``model`` (the base they were trained on), in place."""
    directory = Path(directory)
    if not (directory / ADAPTERS_CONFIG).is_file() or not (directory / ADAPTERS_WEIGHTS).is_file():
        raise CheckpointError(f"{directory} holds no saved adapters ({ADAPTERS_CONFIG} + {ADAPTERS_WEIGHTS})")
    config = LoRAConfig(**json.loads((directory / ADAPTERS_CONFIG).read_text()))
    apply_lora(model, config.targets, config.rank, config.alpha, config.dropout)
    with np.load(directory / ADAPTERS_WEIGHTS) as arrays:
        for path, layer in lora_layers(model):
            for name in ("lora_a", "lora_b"):
                key = f"{path}/{name}"
                if key not in arrays or arrays[key].shape != getattr(layer, name).shape:
                    raise CheckpointError(f"{directory}: no adapter {key} of shape {getattr(layer, name).shape}; "
                                          "were these adapters trained on another model?")
                getattr(layer, name)[...] = jnp.asarray(arrays[key])
    return model
