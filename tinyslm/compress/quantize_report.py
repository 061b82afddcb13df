"""Measuring what quantization costs and buys: size, quality against the float model, decoding speed.

For each variant of a model (float32 first) the report gives

* ``bits_per_weight`` and ``weight_bytes`` (``bytes_on_disk`` for a saved run): the gain;
* ``perplexity`` on held-out text: the quality that matters;
* ``mean_kl`` — KL(float || quantized) of the next-token distributions, averaged over every
  position — and ``top1_agreement``, how often both models rank the same token first: how far
  the quantized model drifts from the one it copies, even where perplexity hides it;
* ``tokens_per_s``: greedy decoding speed at batch 1.
"""

from __future__ import annotations

import math
import statistics
import time
from dataclasses import replace
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from tinyslm.compress.quantized import bits_per_weight, weight_bytes
from tinyslm.config import QuantizationConfig
from tinyslm.data import load_text, load_tokens, split_point
from tinyslm.decode import generate_ids
from tinyslm.train import Run, save_run
from tinyslm.train.checkpoint import CHECKPOINT_DIR, DATA_DIR
from tinyslm.train.evaluate import _consecutive_windows


def held_out_tokens(run: Run, data: str | None = None, max_tokens: int | None = None) -> np.ndarray:
    """Validation tokens: the run's own ``data/val.bin``, or the held-out end of dataset ``data``.

    ``max_tokens`` keeps only the first tokens of that split (a fixed slice, for slow models).
    """
    if data is None and (run.path / DATA_DIR / "val.bin").is_file():
        tokens = np.asarray(load_tokens(run.path / DATA_DIR, "val"))
    else:
        text = load_text(replace(run.config.data, name=data or run.config.data.name, path=None))
        tokens = np.asarray(run.tokenizer.encode(text[split_point(text, run.config.data.val_fraction):]))
    return tokens[:max_tokens]


@jax.jit
def _log_probs(logits: jax.Array) -> jax.Array:
    return jax.nn.log_softmax(logits.astype(jnp.float32), axis=-1)


def _logits(model: nnx.Module, windows: np.ndarray) -> jax.Array:
    graphdef, state = nnx.split(model)
    return _forward(graphdef, state, jnp.asarray(windows[:, :-1]))


_forward = jax.jit(lambda graphdef, state, tokens: nnx.merge(graphdef, state)(tokens), static_argnums=0)


@jax.jit
def _batch_stats(logp_ref: jax.Array, logits: jax.Array, targets: jax.Array, mask: jax.Array) -> jax.Array:
    """Masked sums over a batch -> (negative log-likelihood, KL(ref || model), top-1 agreements)."""
    logp = jax.nn.log_softmax(logits.astype(jnp.float32), axis=-1)  # (B, T, V)
    nll = -jnp.take_along_axis(logp, targets[..., None], axis=-1)[..., 0]
    kl = (jnp.exp(logp_ref) * (logp_ref - logp)).sum(-1)
    agree = (logp.argmax(-1) == logp_ref.argmax(-1)).astype(jnp.float32)
    return jnp.stack([(nll * mask).sum(), (kl * mask).sum(), (agree * mask).sum()])


def compare_quality(reference: nnx.Module, variants: dict[str, nnx.Module], tokens: np.ndarray, seq_len: int,
                    batch_size: int = 8) -> dict[str, dict]:
    """Perplexity of every model, and KL / top-1 agreement against ``reference``, over every token once.

    -> {name: {"val_loss", "perplexity", "mean_kl", "top1_agreement"}}; ``reference`` is scored too
    (as "reference", KL 0, agreement 1) unless it is also among ``variants``.
    """
    windows, mask = _consecutive_windows(np.asarray(tokens), seq_len)
    models = {"reference": reference, **variants} if reference not in variants.values() else dict(variants)
    sums = {name: np.zeros(3) for name in models}
    for i in range(0, len(windows), batch_size):
        batch, batch_mask = windows[i : i + batch_size], jnp.asarray(mask[i : i + batch_size])
        logp_ref = _log_probs(_logits(reference, batch))
        for name, model in models.items():
            logits = logp_ref if model is reference else _logits(model, batch)
            sums[name] += np.asarray(_batch_stats(logp_ref, logits, jnp.asarray(batch[:, 1:]), batch_mask))
    count = float(mask.sum())
    return {name: {"val_loss": s[0] / count, "perplexity": math.exp(min(s[0] / count, 50.0)),
                   "mean_kl": s[1] / count, "top1_agreement": s[2] / count} for name, s in sums.items()}


def decode_tokens_per_s(model: nnx.Module, prompt: list[int], new_tokens: int = 64, repeats: int = 3) -> float:
    """Greedy batch-1 decoding speed: new tokens / wall time, median of ``repeats`` after a warm-up."""
    generate_ids(model, [prompt], max_new_tokens=new_tokens)  # compiles
    walls = []
    for _ in range(repeats):
        start = time.perf_counter()
        generate_ids(model, [prompt], max_new_tokens=new_tokens)
        walls.append(time.perf_counter() - start)
    return new_tokens / statistics.median(walls)


def disk_bytes(run_dir: str | Path) -> int:
    """Bytes of every file under the run's ``checkpoints/`` (arrays and orbax's metadata)."""
    return sum(f.stat().st_size for f in Path(run_dir, CHECKPOINT_DIR).rglob("*") if f.is_file())


def size_row(model: nnx.Module) -> dict:
    """The size columns of a variant's row."""
    return {"bits_per_weight": round(bits_per_weight(model), 3), "weight_bytes": weight_bytes(model)}


def save_quantized(out: str | Path, run: Run, config: QuantizationConfig, model: nnx.Module, meta: dict) -> Path:
    """Write a quantized model as a run directory (config.yaml gets the ``quantization:`` section)."""
    return save_run(out, replace(run.config, quantization=config), model, run.tokenizer, run.step, meta)


def plot_size_vs_perplexity(rows: list[dict], path: str | Path, title: str = "") -> Path:
    """Scatter of weight megabytes vs perplexity, one labelled point per variant; saved as PNG.

    Drawn on its own Agg canvas (like the loss plot), leaving a notebook's pyplot alone.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(7, 4.5))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    for row in rows:
        ax.scatter(row["weight_bytes"] / 1e6, row["perplexity"], s=30)
        ax.annotate(row["variant"], (row["weight_bytes"] / 1e6, row["perplexity"]), textcoords="offset points",
                    xytext=(4, 4), fontsize=8)
    ax.set_xlabel("weights (MB)")
    ax.set_ylabel("validation perplexity")
    ax.set_title(title or "size vs quality")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    return Path(path)
