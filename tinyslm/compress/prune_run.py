"""Pruning a run directory end to end: calibrate, prune, measure, recover, write the pruned run.

    runs/R  --calibrate on data/train.bin-->  prune  --measure on data/val.bin-->  recover (optional)  -->  runs/R-p

An imported model (e.g. SmolLM2-135M from a GGUF file) has no ``data/`` of its own: ``data=NAME``
calibrates on the training part of dataset NAME and measures on its held-out end instead.

Recovery fine-tuning is ordinary training through :func:`tinyslm.train.train` with a
:class:`TrainingTask` that starts from the pruned model, keeps the parent's tokenizer and — for
unstructured and N:M pruning — re-applies the masks after every update. A structurally pruned
model recovers as what it now is: a smaller dense model with its own config.

Every measurement is a *variant* (one dict): ``params`` (stored parameters), ``nonzero_params``,
``bytes`` (float32, as stored), ``sparsity`` (the fraction of the parent's block weights that are
gone: zeroed or removed), ``val_loss`` and ``perplexity`` on every token of the validation split,
and, when asked, decode ``tokens_per_s`` (greedy, batch 1).
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass, replace
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from tinyslm.compress.calibrate import block_linears, calibration_windows, collect_activations
from tinyslm.compress.prune import (
    Masks, Score, Scope, apply_masks, compute_masks, mask_constraint, prune_sequentially,
)
from tinyslm.compress.quantize_report import decode_tokens_per_s, held_out_tokens
from tinyslm.compress.structured import prune_structured
from tinyslm.config import RunConfig
from tinyslm.errors import ConfigError
from tinyslm.model import TransformerLM, count_params
from tinyslm.train import Run, TrainingTask, TrainResult, load_run, save_run, train
from tinyslm.train.checkpoint import DATA_DIR
from tinyslm.train.evaluate import evaluate_tokens

METHODS = ("magnitude", "wanda", "nm", "structured")
REPORT_FILE = "prune_report.json"


@dataclass(frozen=True)
class PruneSpec:
    """How to prune.

    method: ``magnitude`` / ``wanda`` (unstructured at ``sparsity``), ``nm`` (the ``nm`` pattern,
        weights ranked by ``score``) or ``structured`` (remove a ``sparsity`` fraction of the heads
        and of the MLP neurons of every block, and the ``drop_layers`` least influential blocks).
    scope: which weights compete in unstructured pruning (see :func:`compute_masks`).
    sequential: calibrate block by block, each block on the output of the already pruned blocks
        before it (:func:`prune_sequentially`); only for the Wanda score, which uses activations.
    """

    method: str
    sparsity: float = 0.5
    nm: tuple[int, int] = (2, 4)
    score: Score = "wanda"
    scope: Scope | None = None
    drop_layers: int = 0
    sequential: bool = False

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise ConfigError(f"method: unknown pruning method {self.method!r}; choose one of {METHODS}")
        if self.sequential and self.ranking != "wanda":
            raise ConfigError("sequential calibration only changes activation-based scores: use it with "
                              "--method wanda or --method nm --score wanda")

    @property
    def ranking(self) -> str:
        """What ranks the weights: ``magnitude``, ``wanda`` or (whole units) ``structured``."""
        return self.score if self.method == "nm" else self.method

    @property
    def label(self) -> str:
        """A short name for tables and plots, e.g. ``wanda 50%`` or ``2:4 wanda``."""
        sequential = " sequential" if self.sequential else ""
        if self.method == "nm":
            return f"{self.nm[0]}:{self.nm[1]} {self.score}{sequential}"
        if self.method == "structured":
            return f"structured {self.sparsity:.0%}" + (f" -{self.drop_layers} layers" if self.drop_layers else "")
        default_scope = "output" if self.method == "wanda" else "layer"
        scope = f" ({self.scope})" if self.scope and self.scope != default_scope else ""
        return f"{self.method} {self.sparsity:.0%}{scope}{sequential}"


def prune_model(model: TransformerLM, spec: PruneSpec, calibration: np.ndarray) -> tuple[TransformerLM, Masks | None]:
    """A pruned copy of ``model`` (the original is untouched) and its masks (None for structured pruning)."""
    if spec.method == "structured":
        small, _ = prune_structured(model, calibration, heads=spec.sparsity, neurons=spec.sparsity,
                                    layers=spec.drop_layers)
        return small, None
    pattern = {"sparsity": None, "nm": spec.nm} if spec.method == "nm" else {"sparsity": spec.sparsity, "nm": None}
    if spec.sequential:
        pruned = nnx.clone(model)
        return pruned, prune_sequentially(pruned, calibration, scope=spec.scope, **pattern)
    activations = collect_activations(model, calibration) if spec.ranking == "wanda" else None
    masks = compute_masks(model, spec.ranking, scope=spec.scope, activations=activations, **pattern)
    return apply_masks(nnx.clone(model), masks), masks


def _block_weights(model: TransformerLM) -> tuple[int, int]:
    """(stored, nonzero) weights over the kernels of the block linear layers."""
    kernels = [np.asarray(linear.kernel[...]) for linear in block_linears(model).values()]
    return sum(k.size for k in kernels), sum(int(np.count_nonzero(k)) for k in kernels)


def measure(model: TransformerLM, run: Run, val_tokens: np.ndarray, name: str, *, decode_tokens: int = 0) -> dict:
    """One variant's figures (see the module docstring); ``run`` is the parent (its block weights are 100%).

    With ``decode_tokens`` > 0, also the greedy batch-1 decoding speed over that many new tokens
    (at most what the context leaves after the run's sample prompt)."""
    parent_total, _ = _block_weights(run.model)
    _, nonzero_block = _block_weights(model)
    params = count_params(model)
    nonzero = sum(int(np.count_nonzero(x)) for x in jax.tree.leaves(nnx.state(model, nnx.Param)))
    figures = evaluate_tokens(model, val_tokens, seq_len=run.config.train.seq_len)
    variant = {"name": name, "params": params, "nonzero_params": nonzero, "bytes": 4 * params,
               "sparsity": round(1.0 - nonzero_block / parent_total, 6), "val_loss": figures["val_loss"],
               "perplexity": figures["perplexity"]}
    if decode_tokens > 0:
        prompt = run.tokenizer.encode(run.config.train.sample_prompt)
        new_tokens = min(decode_tokens, run.config.model.max_seq_len - len(prompt))
        variant["tokens_per_s"] = round(decode_tokens_per_s(model, prompt, new_tokens), 1)
    return variant


def recovery_config(config: RunConfig, model: TransformerLM, steps: int, lr: float | None = None,
                    data: str | None = None) -> RunConfig:
    """The parent's config for ``steps`` steps of recovery: the pruned model's shape, the parent's
    batch and optimizer, a warmup-cosine schedule squeezed into ``steps``, one evaluation and one
    checkpoint at the end; the parent's dataset, or dataset ``data`` (an imported model has none).

    The peak ``lr`` defaults to a tenth of the parent's: the surviving weights are already good and
    need nudging, not retraining. Measured on the structurally pruned (25%) Shakespeare and
    TinyStories models: the parent's own peak made recovery worse than no recovery on TinyStories
    (perplexity 31.98 -> 33.41), a tenth of it improved both (-> 30.02; Shakespeare 7.43 -> 6.79).
    """
    tc = config.train
    lr = tc.lr / 10 if lr is None else lr
    train_config = replace(tc, max_steps=steps, decay_steps=steps, warmup_steps=min(tc.warmup_steps, steps // 10),
                           lr=lr, min_lr=min(tc.min_lr, lr), eval_interval=steps, ckpt_interval=steps,
                           log_interval=min(tc.log_interval, steps), samples=0)
    data_config = config.data if data is None else replace(config.data, name=data, path=None)
    return replace(config, model=model.config, train=train_config, data=data_config)


def recover(parent: Run, model: TransformerLM, out: str | Path, steps: int, *, lr: float | None = None,
            masks: Masks | None = None, data: str | None = None, progress: bool = True) -> TrainResult:
    """Fine-tune the pruned ``model`` for ``steps`` steps on the parent's data (or dataset ``data``) into run ``out``.

    With ``masks`` the pruned weights are put back to zero after every update. ``model`` itself is
    trained (its buffers are donated to the compiled step): measure it before calling this.
    """
    # The compiled step donates (reuses) the parameter buffers. A pruned copy may share some of them
    # with the parent (the embedding, the norms), so give the model buffers of its own first.
    nnx.update(model, jax.tree.map(jnp.copy, nnx.state(model)))
    task = TrainingTask(init_model=lambda config: model, tokenizer=parent.tokenizer,
                        constrain=None if masks is None else mask_constraint(masks))
    return train(recovery_config(parent.config, model, steps, lr, data), out, task=task, progress=progress)


def write_pruned_run(parent: Run, model: TransformerLM, out: str | Path, meta: dict | None = None) -> Path:
    """Write ``model`` as a run directory with the parent's tokenizer, data (if it has any) and (resized) config."""
    path = save_run(out, replace(parent.config, model=model.config), model, parent.tokenizer, step=parent.step,
                    meta=meta)
    if (parent.path / DATA_DIR).is_dir():  # so eval and further pruning work on it (an imported model has none)
        shutil.copytree(parent.path / DATA_DIR, path / DATA_DIR)
    return path


def prune_run(run_dir: str | Path, out: str | Path, spec: PruneSpec, *, recover_steps: int = 0,
              recover_lr: float | None = None, n_calibration: int = 128, seed: int = 0, decode_tokens: int = 128,
              data: str | None = None, eval_tokens: int | None = None, progress: bool = True) -> dict:
    """Prune the run in ``run_dir`` into a new run ``out`` and report the variants.

    The report (also written to ``out/prune_report.json``) lists the original, the pruned model
    and, with ``recover_steps``, the recovered one, each with the figures of :func:`measure`
    (decode speed over ``decode_tokens`` new tokens included; 0 skips it). ``data`` calibrates on
    that dataset and measures on its held-out end (for a run without data of its own), and
    ``eval_tokens`` keeps only the first held-out tokens; recovery trains on ``data`` too.
    """
    parent = load_run(run_dir)
    val_tokens = held_out_tokens(parent, data, eval_tokens)
    windows = calibration_windows(parent.path, n_calibration, parent.config.train.seq_len, seed, data)
    variants = [measure(parent.model, parent, val_tokens, "original", decode_tokens=decode_tokens)]
    pruned, masks = prune_model(parent.model, spec, windows)
    variants.append(measure(pruned, parent, val_tokens, spec.label, decode_tokens=decode_tokens))
    meta = {"pruned_from": str(parent.path), "method": spec.label}
    if recover_steps > 0:
        result = recover(parent, pruned, out, recover_steps, lr=recover_lr, masks=masks, data=data, progress=progress)
        variants.append(measure(result.model, parent, val_tokens, f"{spec.label} + {recover_steps} steps recovery",
                                decode_tokens=decode_tokens))
        tc = parent.config.train
        meta["recovery_tokens"] = recover_steps * tc.grad_accum * tc.batch_size * tc.seq_len
    else:
        write_pruned_run(parent, pruned, out, meta)
    report = {"run_dir": str(out), **meta, "variants": variants}
    Path(out, REPORT_FILE).write_text(json.dumps(report, indent=2) + "\n")
    return report


def sweep(run_dir: str | Path, sparsities: list[float], *, patterns: tuple[tuple[int, int], ...] = ((2, 4),),
          n_calibration: int = 128, seed: int = 0, data: str | None = None,
          eval_tokens: int | None = None) -> list[dict]:
    """Perplexity against sparsity for magnitude, Wanda and structured pruning (no recovery), plus
    each N:M pattern for both scores. Each variant also names its ``method`` (for :func:`plot_sweep`).
    ``data`` and ``eval_tokens`` as in :func:`prune_run`."""
    parent = load_run(run_dir)
    val_tokens = held_out_tokens(parent, data, eval_tokens)
    windows = calibration_windows(parent.path, n_calibration, parent.config.train.seq_len, seed, data)
    specs = [PruneSpec(method, s) for method in ("magnitude", "wanda", "structured") for s in sparsities]
    specs += [PruneSpec("nm", nm=nm, score=score) for nm in patterns for score in ("magnitude", "wanda")]
    variants = [{**measure(parent.model, parent, val_tokens, "original"), "method": "original"}]
    for spec in specs:
        pruned, _ = prune_model(parent.model, spec, windows)
        method = spec.method if spec.method != "nm" else f"nm {spec.score}"
        variants.append({**measure(pruned, parent, val_tokens, spec.label), "method": method})
    return variants


def plot_sweep(variants: list[dict], path: str | Path, title: str = "") -> None:
    """Draw validation perplexity against sparsity, one line per method and N:M as single points."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(7, 4.2))
    FigureCanvasAgg(fig)
    ax = fig.subplots()
    original = next(v for v in variants if v["method"] == "original")
    ax.axhline(original["perplexity"], color="gray", linestyle="--", label="original")
    for method, style in (("magnitude", "o-"), ("wanda", "s-"), ("structured", "^-")):
        points = sorted((v["sparsity"], v["perplexity"]) for v in variants if v["method"] == method)
        if points:
            ax.plot(*zip(*points), style, label=method)
    for method, marker in (("nm magnitude", "X"), ("nm wanda", "P")):
        for v in (v for v in variants if v["method"] == method):
            ax.plot(v["sparsity"], v["perplexity"], marker, markersize=11, linestyle="none", label=v["name"])
    ax.set_yscale("log")
    ax.set_xlabel("sparsity (fraction of block weights removed)")
    ax.set_ylabel("validation perplexity (log scale)")
    ax.set_title(title)
    ax.grid(alpha=0.3, which="both")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
