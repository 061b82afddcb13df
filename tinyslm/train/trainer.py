"""The training loop: from a config to a trained, resumable run directory.

    text -> tokenizer -> train/val token files -> random windows -> compiled step -> checkpoints

Every ``log_interval`` steps the loss goes to ``metrics.jsonl`` and the progress bar; every
``eval_interval`` steps the model is scored on a fixed set of validation windows and ``loss.png``
is redrawn; every ``ckpt_interval`` steps, at the end, and on Ctrl-C a checkpoint is written.

Resuming is exact: batch ``step`` is drawn from ``(seed, step)`` and the dropout key is
``fold_in(key(seed), step)``, so a resumed run computes bit for bit what an uninterrupted run would.
"""

from __future__ import annotations

import math
import signal
import time
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path

import jax
import numpy as np
from flax import nnx
from tqdm import tqdm

from tinyslm.config import RunConfig, save_config
from tinyslm.data import load_text, prepare, split_point
from tinyslm.errors import CheckpointError, TrainingError
from tinyslm.tokenizer import Tokenizer, load_tokenizer, train_tokenizer
from tinyslm.train.checkpoint import (
    CONFIG_FILE, DATA_DIR, METRICS_FILE, PLOT_FILE, TOKENIZER_DIR, Checkpointer,
)
from tinyslm.train.metrics import MetricsLog, device_peak_flops, flops_per_token, plot_losses
from tinyslm.train.optim import learning_rate_schedule, make_optimizer
from tinyslm.train.parallel import check_batch_divides, is_main_process, make_mesh, shard_batch, shard_weights
from tinyslm.train.step import make_eval_step, make_train_step, step_flops
from tinyslm.train.task import PRETRAINING, TrainingTask


@dataclass
class TrainResult:
    """What a finished (or interrupted) training run reports."""

    run_dir: Path
    config: RunConfig
    model: nnx.Module
    tokenizer: Tokenizer
    final_step: int
    train_loss: float
    val_loss: float | None
    wall_s: float
    tokens_per_s: float
    interrupted: bool = False

    def summary(self) -> dict:
        """The JSON figures of ``tinyslm train --json`` (stable snake_case keys, units in names)."""
        return {
            "run_dir": str(self.run_dir), "final_step": self.final_step, "train_loss": self.train_loss,
            "val_loss": self.val_loss, "wall_s": round(self.wall_s, 2), "tokens_per_s": round(self.tokens_per_s, 1),
            "interrupted": self.interrupted,
        }


def prepare_run(config: RunConfig, run_dir: Path, tokenizer: Tokenizer | None = None) -> tuple[RunConfig, Tokenizer]:
    """Create the run directory: train the tokenizer (unless one is given), tokenise the data, write the config."""
    text = load_text(config.data)
    cut = split_point(text, config.data.val_fraction)
    if tokenizer is None:
        # A char vocabulary must cover every character it will see, validation included; a subword
        # tokenizer learns from the training part only and spells anything unseen with byte fallback.
        tokenizer = train_tokenizer(config.tokenizer, text if config.tokenizer.type == "char" else text[:cut])
    tokenizer.save(run_dir / TOKENIZER_DIR)
    source = config.data.path or config.data.name
    prepare(text, tokenizer, run_dir / DATA_DIR, config.data.val_fraction, source=source)
    config = replace(config, model=replace(config.model, vocab_size=tokenizer.vocab_size))
    save_config(config, run_dir / CONFIG_FILE)
    return config, tokenizer


class _StopRequest:
    """Turns the first Ctrl-C into a request to stop at the next step boundary (the second one aborts)."""

    def __init__(self):
        self.requested = False

    @contextmanager
    def installed(self):
        try:
            previous = signal.signal(signal.SIGINT, self._handle)
        except ValueError:  # not the main thread: leave Ctrl-C as it is
            yield
            return
        try:
            yield
        finally:
            signal.signal(signal.SIGINT, previous)

    def _handle(self, signum, frame):
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True


def train(config: RunConfig, run_dir: str | Path, *, resume: bool = False, progress: bool = True,
          task: TrainingTask = PRETRAINING) -> TrainResult:
    """Train ``config`` into ``run_dir`` (or continue the run there with ``resume=True``).

    ``task`` says what is trained and how (see :class:`TrainingTask`); the default is pretraining.
    """
    run_dir = Path(run_dir)
    if resume:
        if not (run_dir / CONFIG_FILE).is_file():
            raise CheckpointError(f"cannot resume: {run_dir} has no {CONFIG_FILE}; start it without --resume")
        tokenizer = load_tokenizer(run_dir / TOKENIZER_DIR)
    else:
        if run_dir.exists() and any(run_dir.iterdir()):
            raise CheckpointError(f"{run_dir} already exists; continue it with --resume or choose another --out")
        run_dir.mkdir(parents=True, exist_ok=True)
        config, tokenizer = prepare_run(config, run_dir, task.tokenizer)
    save_config(config, run_dir / CONFIG_FILE)  # a resume may extend max_steps

    tc, mc = config.train, config.model
    mesh = make_mesh(tc.mesh)
    check_batch_divides(tc.batch_size, mesh)
    batches = task.batches(run_dir, config)
    val_batches = [shard_batch(batch, mesh) for batch in batches.validation()]

    model = task.init_model(config)
    graphdef, params, frozen = nnx.split(model, task.trainable, ...)
    params, frozen = shard_weights(params, mesh), shard_weights(frozen, mesh)
    tx = make_optimizer(tc, params)
    opt_state = shard_weights(tx.init(params), mesh)
    checkpointer = Checkpointer(run_dir, keep=tc.keep_checkpoints)
    log = MetricsLog(run_dir / METRICS_FILE, enabled=is_main_process())
    start = 0
    if resume and checkpointer.latest_step() is not None:
        if task.saved is None:  # restored onto this run's mesh, whatever mesh wrote the checkpoint
            restored = checkpointer.restore(shard_weights(nnx.state(model), mesh), opt_state)
            params, frozen = nnx.split_state(restored["params"], task.trainable, ...)
        else:  # the frozen part was rebuilt by init_model; the trained part was saved on its own
            restored = checkpointer.restore(shard_weights(nnx.state(task.saved(model)), mesh), opt_state,
                                            trainable_like=params)
            params = restored["trainable"]
        opt_state, start = restored["opt_state"], restored["meta"]["step"]
        log.truncate_after(start)

    train_step = make_train_step(graphdef, tx, use_dropout=mc.dropout > 0, loss_fn=task.loss, constrain=task.constrain)
    eval_step = make_eval_step(graphdef, task.loss)
    schedule = learning_rate_schedule(tc)
    base_key = jax.random.key(tc.seed)
    tokens_per_step = tc.batch_size * tc.grad_accum * tc.seq_len
    first_batch = shard_batch(batches.train(start), mesh, leading_axes=1)
    flops_per_step = _step_flops(train_step, params, opt_state, first_batch, jax.random.fold_in(base_key, start),
                                 frozen, config)
    peak, peak_source = device_peak_flops()

    def evaluate(step: int) -> float:
        val_loss = float(np.mean([eval_step(params, batch, frozen) for batch in val_batches]))
        log.write("eval", step, val_loss=val_loss, val_perplexity=math.exp(min(val_loss, 50.0)))
        if log.enabled:
            plot_losses(log.read(), run_dir / PLOT_FILE, title=run_dir.name)
        return val_loss

    def save(step: int, loss: float) -> None:
        if task.saved is None:
            checkpointer.save(step, nnx.merge_state(params, frozen), opt_state, {"train_loss": loss})
        else:
            nnx.update(model, params, frozen)
            checkpointer.save(step, nnx.state(task.saved(model)), opt_state, {"train_loss": loss}, trainable=params)

    stop = _StopRequest()
    bar = tqdm(total=tc.max_steps, initial=start, disable=not (progress and log.enabled), dynamic_ncols=True,
               unit="step")
    pending: list[tuple[int, jax.Array]] = []  # losses not yet fetched from the device
    loss, val_loss, done = float("nan"), None, start
    t_start = t_mark = time.perf_counter()
    tokens_timed, time_timed, mark_step = 0, 0.0, start
    if start == 0:
        log.write("start", 0, peak_flops=peak, peak_source=peak_source, flops_per_step=flops_per_step)

    with stop.installed():
        for step in range(start, tc.max_steps):
            key = jax.random.fold_in(base_key, step)
            batch = shard_batch(batches.train(step), mesh, leading_axes=1)  # (micro-batches, rows, ...)
            params, opt_state, metrics = train_step(params, opt_state, batch, key, frozen)
            pending.append((step + 1, metrics["loss"]))
            done = step + 1
            last = done == tc.max_steps or stop.requested
            if done % tc.log_interval and done % tc.ckpt_interval and done % tc.eval_interval and not last:
                continue

            loss = _check_finite(pending, checkpointer)
            now = time.perf_counter()
            interval_s, interval_tokens = now - t_mark, (done - mark_step) * tokens_per_step
            if mark_step == start:  # the first interval includes compilation: report it, do not average it in
                log.write("compile", done, first_interval_s=round(interval_s, 3))
            else:
                tokens_timed, time_timed = tokens_timed + interval_tokens, time_timed + interval_s
            rate = tokens_timed / time_timed if time_timed else interval_tokens / interval_s
            mfu = rate / tokens_per_step * flops_per_step / peak
            lr = float(schedule(step))
            log.write("train", done, loss=loss, lr=lr, grad_norm=float(metrics["grad_norm"]),
                      tokens_per_s=round(rate, 1), mfu=float(f"{mfu:.4g}"), elapsed_s=round(now - t_start, 2))
            bar.set_postfix(loss=f"{loss:.3f}", lr=f"{lr:.1e}", tok_s=f"{rate:,.0f}", refresh=False)
            bar.update(done - bar.n)
            if done % tc.eval_interval == 0 or last:
                val_loss = evaluate(done)
                bar.write(f"step {done:>6}: train loss {loss:.4f} · val loss {val_loss:.4f}")
            if done % tc.ckpt_interval == 0 or last:
                save(done, loss)
            t_mark, mark_step = time.perf_counter(), done
            if stop.requested:
                bar.write(f"Interrupted: checkpoint saved at step {done}; continue with --resume.")
                break
    bar.close()
    checkpointer.close()
    nnx.update(model, params, frozen)
    wall = time.perf_counter() - t_start
    rate = tokens_timed / time_timed if time_timed else (done - start) * tokens_per_step / max(wall, 1e-9)
    log.write("end", done, train_loss=loss, val_loss=val_loss, wall_s=round(wall, 2), tokens_per_s=round(rate, 1))
    saved_model = model if task.saved is None else task.saved(model)
    return TrainResult(run_dir, config, saved_model, tokenizer, done, loss, val_loss, wall, rate, stop.requested)


def _check_finite(pending: list[tuple[int, jax.Array]], checkpointer: Checkpointer) -> float:
    """Fetch the queued losses; stop with a clear message at the first NaN/inf. Returns the last loss."""
    losses = [(step, float(loss)) for step, loss in pending]
    pending.clear()
    for step, loss in losses:
        if not math.isfinite(loss):
            last_good = checkpointer.latest_step()
            kept = f"the last good checkpoint (step {last_good}) is kept" if last_good else "no checkpoint was written yet"
            checkpointer.close()
            raise TrainingError(
                f"training diverged: the loss became {loss} at step {step}; {kept}. "
                "Try a lower train.lr, a longer train.warmup_steps, or train.grad_clip=1.0."
            )
    return losses[-1][1]


def _step_flops(train_step, params, opt_state, batch, key, frozen, config: RunConfig) -> float:
    """Model FLOPs of one optimizer step: XLA's count of the step about to run first (the PaLM
    formula where the backend gives no count)."""
    flops = step_flops(train_step, params, opt_state, batch, key, frozen)
    if flops is None:
        tc = config.train
        return flops_per_token(config.model, tc.seq_len) * tc.batch_size * tc.grad_accum * tc.seq_len
    return flops
