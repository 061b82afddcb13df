"""What training reports: a JSONL log, loss curves, and how well the hardware is used (MFU).

Model FLOPs utilisation (MFU; Chowdhery et al. 2022, "PaLM", appendix B) is the share of the
device's peak arithmetic that the model's own math uses:

    MFU = (flops per token * tokens per second) / peak FLOP/s

A training step costs about 6 FLOPs per parameter per token (2 forward, 4 backward) plus the
attention scores, 12 * n_layers * seq_len * d_model per token (:func:`flops_per_token`). That
holds for pretraining only; the trainer credits each task with XLA's count of its own traced
step (:func:`tinyslm.train.step.step_flops`), which is this formula for pretraining and less
when weights are frozen. The peak is a published figure for GPUs and TPUs; on a CPU there is no
honest published figure, so tinyslm measures one: the speed of a large float32 matrix
multiplication on this machine.
"""

from __future__ import annotations

import json
import time
from functools import lru_cache
from pathlib import Path

import jax
import jax.numpy as jnp

from tinyslm.config import ModelConfig
from tinyslm.model import param_count

# Dense (no sparsity) peak FLOP/s by device kind, for bf16 matmuls.
PUBLISHED_PEAKS = {
    "H100": 989e12, "H200": 989e12, "A100": 312e12, "L4": 121e12, "T4": 65e12, "V100": 125e12,
    "TPU v5 lite": 197e12, "TPU v5e": 197e12, "TPU v5p": 459e12, "TPU v4": 275e12, "TPU v6 lite": 918e12,
}


def flops_per_token(config: ModelConfig, seq_len: int) -> float:
    """Training FLOPs per token: 6 x (parameters used in matmuls) + 12 x layers x seq_len x width."""
    c = config
    lookup_only = (c.max_seq_len * c.d_model if c.positions == "learned" else 0) + (
        0 if c.tie_embeddings else c.vocab_size * c.d_model  # an untied embedding is a lookup, not a matmul
    )
    return 6.0 * (param_count(c) - lookup_only) + 12.0 * c.n_layers * seq_len * c.d_model


@lru_cache(maxsize=1)
def device_peak_flops() -> tuple[float, str]:
    """(peak FLOP/s, how it was obtained) for the first JAX device."""
    device = jax.devices()[0]
    for name, peak in PUBLISHED_PEAKS.items():
        if name.lower() in device.device_kind.lower():
            return peak, f"{device.device_kind}: published dense bf16 peak {peak / 1e12:.0f} TFLOP/s"
    peak = _measured_matmul_flops()
    return peak, f"{device.device_kind}: measured float32 matmul peak {peak / 1e9:.0f} GFLOP/s"


def _measured_matmul_flops(n: int = 1024, repeats: int = 5) -> float:
    a = jnp.ones((n, n), jnp.float32)
    matmul = jax.jit(lambda x: x @ x)
    matmul(a).block_until_ready()
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        matmul(a).block_until_ready()
        best = min(best, time.perf_counter() - start)
    return 2 * n**3 / best


class MetricsLog:
    """Append-only ``metrics.jsonl``: one JSON object per event, each with an ``event`` and a ``step``."""

    def __init__(self, path: str | Path, enabled: bool = True):
        self.path = Path(path)
        self.enabled = enabled  # False on all but the first process of a multi-host job

    def write(self, event: str, step: int, **values) -> None:
        if not self.enabled:
            return
        with self.path.open("a") as f:
            f.write(json.dumps({"event": event, "step": step, **values}) + "\n")

    def read(self) -> list[dict]:
        if not self.path.exists():
            return []
        return [json.loads(line) for line in self.path.read_text().splitlines() if line.strip()]

    def truncate_after(self, step: int) -> None:
        """Drop events logged after ``step`` (a resumed run logs them again)."""
        if not self.enabled:
            return
        kept = [r for r in self.read() if r["step"] <= step]
        self.path.write_text("".join(json.dumps(r) + "\n" for r in kept))


def plot_losses(records: list[dict], path: str | Path, title: str = "") -> None:
    """Draw train and validation loss against step into a PNG.

    The figure is drawn on its own Agg canvas, not through pyplot, so that training inside a
    notebook leaves the notebook's plotting backend alone.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    train = [(r["step"], r["loss"]) for r in records if r["event"] == "train"]
    val = [(r["step"], r["val_loss"]) for r in records if r["event"] == "eval"]
    fig = Figure(figsize=(7, 4))
    FigureCanvasAgg(fig)
    ax = fig.subplots()
    if train:
        ax.plot(*zip(*train), label="train", alpha=0.8)
    if val:
        ax.plot(*zip(*val), "o-", label="validation")
    ax.set_xlabel("step")
    ax.set_ylabel("cross-entropy loss (nats/token)")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
