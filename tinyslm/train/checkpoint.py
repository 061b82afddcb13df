"""Run directories: the one on-disk format everything in tinyslm reads and writes.

    runs/NAME/
      config.yaml       the fully resolved config: enough to rebuild the model
      tokenizer/        the tokenizer's files
      data/             train.bin / val.bin token memmaps + meta.json
      checkpoints/      step_N/ (orbax): params, optimizer state, step
      metrics.jsonl     one JSON object per log / eval event
      loss.png          train and validation curves

A checkpoint holds the parameters, the optimizer state and the step. That is all a resume needs:
batches and dropout keys are pure functions of (seed, step), so the data position and the random
state are the step itself. Orbax writes each checkpoint into a temporary folder and renames it
when complete, so a crash or kill during a save never damages the previous checkpoint.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import jax
import orbax.checkpoint as ocp
from flax import nnx

from tinyslm.config import RunConfig, load_config, save_config
from tinyslm.errors import CheckpointError
from tinyslm.model import TransformerLM
from tinyslm.tokenizer import Tokenizer, load_tokenizer

CONFIG_FILE = "config.yaml"
TOKENIZER_DIR = "tokenizer"
DATA_DIR = "data"
CHECKPOINT_DIR = "checkpoints"
METRICS_FILE = "metrics.jsonl"
PLOT_FILE = "loss.png"

# Orbax reports every save and restore at INFO level; a training progress bar is enough.
logging.getLogger("absl").setLevel(logging.WARNING)


class Checkpointer:
    """Save and restore (params, optimizer state, metadata) under ``run_dir/checkpoints/step_N``."""

    def __init__(self, run_dir: str | Path, keep: int = 2):
        options = ocp.CheckpointManagerOptions(max_to_keep=keep, enable_async_checkpointing=False, step_prefix="step")
        self.manager = ocp.CheckpointManager(Path(run_dir, CHECKPOINT_DIR).absolute(), options=options)

    def save(self, step: int, params, opt_state=None, meta: dict | None = None, trainable=None) -> None:
        """Write checkpoint ``step`` (overwriting nothing; the oldest beyond ``keep`` is deleted).

        ``params`` are the run's model weights (what :func:`load_run` reads). Without ``opt_state``
        only they are saved: enough to evaluate or generate, not to resume. ``trainable`` is the
        trained state when it is more than the run's model (a distillation's projections, say).
        """
        if step in self.manager.all_steps():
            return
        parts = {"params": ocp.args.StandardSave(params), "meta": ocp.args.JsonSave({"step": step, **(meta or {})})}
        if opt_state is not None:
            parts["opt_state"] = ocp.args.StandardSave(opt_state)
        if trainable is not None:
            parts["trainable"] = ocp.args.StandardSave(trainable)
        self.manager.save(step, args=ocp.args.Composite(**parts))
        self.manager.wait_until_finished()

    def latest_step(self) -> int | None:
        return self.manager.latest_step()

    def restore(self, params_like, opt_state_like=None, step: int | None = None, trainable_like=None) -> dict:
        """Restore into the shapes of ``params_like`` (and ``opt_state_like``, ``trainable_like``);
        returns a dict of the parts."""
        step = self.latest_step() if step is None else step
        if step is None:
            raise CheckpointError(f"no checkpoint found in {self.manager.directory}")
        parts = {"params": ocp.args.StandardRestore(_abstract(params_like)), "meta": ocp.args.JsonRestore()}
        if opt_state_like is not None:
            parts["opt_state"] = ocp.args.StandardRestore(_abstract(opt_state_like))
        if trainable_like is not None:
            parts["trainable"] = ocp.args.StandardRestore(_abstract(trainable_like))
        try:
            return dict(self.manager.restore(step, args=ocp.args.Composite(**parts)))
        except (ValueError, KeyError, FileNotFoundError) as err:
            raise CheckpointError(
                f"checkpoint {self.manager.directory}/step_{step} does not match the run's config.yaml: {err}"
            ) from None

    def close(self) -> None:
        self.manager.close()


def _abstract(tree):
    return jax.tree.map(ocp.utils.to_shape_dtype_struct, tree)


@dataclass
class Run:
    """A loaded run directory: its config, model (with the latest weights), tokenizer and step."""

    path: Path
    config: RunConfig
    model: TransformerLM
    tokenizer: Tokenizer
    step: int


def save_run(run_dir: str | Path, config: RunConfig, model: TransformerLM, tokenizer: Tokenizer, step: int = 0,
             meta: dict | None = None) -> Path:
    """Write a model that was not trained here (imported, quantized, pruned...) as a run directory."""
    path = Path(run_dir)
    if (path / CONFIG_FILE).exists():
        raise CheckpointError(f"{path} already holds a run; choose another --out")
    path.mkdir(parents=True, exist_ok=True)
    save_config(config, path / CONFIG_FILE)
    tokenizer.save(path / TOKENIZER_DIR)
    checkpointer = Checkpointer(path)
    try:
        checkpointer.save(step, nnx.state(model), meta=meta)
    finally:
        checkpointer.close()
    return path


def load_run(run_dir: str | Path, step: int | None = None) -> Run:
    """Load a trained run: rebuild the model from config.yaml and fill in checkpoint ``step`` (default: latest)."""
    path = Path(run_dir)
    if not (path / CONFIG_FILE).is_file():
        raise CheckpointError(
            f"{path} is not a run directory (no {CONFIG_FILE}); train one with `tinyslm train --out {path}`"
        )
    config = load_config(path / CONFIG_FILE)
    tokenizer = load_tokenizer(path / TOKENIZER_DIR)
    model = TransformerLM(config.model, rngs=nnx.Rngs(0))
    if config.quantization is not None:  # int8 / int4 layers in place of the float ones, then restore into them
        from tinyslm.compress.quantized import quantize_model  # imported here: compress builds on train

        model = quantize_model(model, config.quantization)
    restored_step = restore_weights(path, model, step)
    return Run(path=path, config=config, model=model, tokenizer=tokenizer, step=restored_step)


def restore_weights(run_dir: str | Path, model: nnx.Module, step: int | None = None) -> int:
    """Fill ``model`` (already built in the run's shape) with checkpoint ``step`` of ``run_dir``
    (default: the latest); returns the step restored."""
    checkpointer = Checkpointer(run_dir)
    try:
        restored = checkpointer.restore(nnx.state(model), step=step)
    finally:
        checkpointer.close()
    nnx.update(model, restored["params"])
    return restored["meta"]["step"]
