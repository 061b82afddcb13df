"""What the training loop trains: the model it starts from, the loss, the data, what may change.

:func:`tinyslm.train.train` is the one training loop in tinyslm. Pretraining uses it with the
defaults below; everything that trains something else says so with a :class:`TrainingTask`:

* fine-tuning starts from a trained model (``init_model``) and keeps its tokenizer;
* LoRA and last-blocks-only fine-tuning freeze part of the model (``trainable``);
* pruning recovery puts the pruned zeros back after every update (``constrain``);
* distillation and quantization-aware training change the loss (``loss``);
* classification feeds labelled examples instead of token windows (``batches``);
* distillation keeps only the student in the run directory (``saved``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Protocol

import numpy as np
from flax import nnx

from tinyslm.config import RunConfig
from tinyslm.data import eval_batches, load_tokens, sample_batch
from tinyslm.model import TransformerLM
from tinyslm.tokenizer import Tokenizer
from tinyslm.train.checkpoint import DATA_DIR
from tinyslm.train.step import LossFn, language_model_loss


class Batches(Protocol):
    """Where a run's batches come from. Both methods must be pure functions of their arguments,
    so that a resumed run sees exactly the batches an uninterrupted one would."""

    def train(self, step: int) -> Any:
        """The batch of training step ``step``: a pytree whose leaves have shape ``(grad_accum, batch_size, ...)``."""

    def validation(self) -> list:
        """The fixed list of validation batches (leaves ``(batch_size, ...)``) scored at every evaluation."""


class TokenWindows:
    """Random windows of the run's own ``data/train.bin`` and a fixed set from ``data/val.bin``."""

    def __init__(self, run_dir: Path, config: RunConfig):
        self.train_tokens = load_tokens(run_dir / DATA_DIR, "train")
        self.val_tokens = load_tokens(run_dir / DATA_DIR, "val")
        self.tc = config.train

    def train(self, step: int) -> np.ndarray:
        tc = self.tc
        windows = sample_batch(self.train_tokens, seed=tc.seed, step=step, batch_size=tc.batch_size * tc.grad_accum,
                               seq_len=tc.seq_len)
        return windows.reshape(tc.grad_accum, tc.batch_size, tc.seq_len + 1)

    def validation(self) -> list:
        tc = self.tc
        return list(eval_batches(self.val_tokens, seed=tc.seed, n_batches=tc.eval_batches, batch_size=tc.batch_size,
                                 seq_len=tc.seq_len))


def fresh_model(config: RunConfig) -> nnx.Module:
    """A randomly initialised :class:`TransformerLM` of ``config.model`` (seeded by ``train.seed``)."""
    return TransformerLM(config.model, rngs=nnx.Rngs(config.train.seed))


@dataclass(frozen=True)
class TrainingTask:
    """The defaults are pretraining: a fresh model, next-token loss on the run's token windows,
    every ``nnx.Param`` trained.

    Attributes:
        init_model: ``config -> module`` to start from. It is called again on ``--resume`` (before
            the checkpoint is restored into it), so it must rebuild the same structure.
        tokenizer: reuse this tokenizer instead of training one (needed when ``init_model`` loads
            trained weights: their embedding rows belong to that tokenizer's ids).
        loss: ``loss(model, batch, dropout_key) -> scalar``, traced inside the compiled step.
        trainable: an ``nnx`` filter choosing the variables that get gradients; the rest is frozen.
        constrain: maps the trainable state after each update back onto an allowed set.
        batches: ``(run_dir, config) -> Batches``; default :class:`TokenWindows`.
        saved: ``training module -> the module the run directory holds``, when that is only part of
            what is trained (distillation trains a student next to a frozen teacher; the run is
            the student). Default: the whole module.
    """

    init_model: Callable[[RunConfig], nnx.Module] = fresh_model
    tokenizer: Tokenizer | None = None
    loss: LossFn = language_model_loss
    trainable: Any = nnx.Param
    constrain: Callable[[nnx.State], nnx.State] | None = None
    batches: Callable[[Path, RunConfig], Batches] = TokenWindows
    saved: Callable[[nnx.Module], nnx.Module] | None = None


PRETRAINING = TrainingTask()
