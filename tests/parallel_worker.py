"""Run by tests/test_parallel.py in a fresh interpreter whose XLA_FLAGS fake N CPU devices.

    python tests/parallel_worker.py WORKDIR JOB [JOB ...]

Each JOB is NAME:MESH:STEPS[:resume]. It trains (or resumes) WORKDIR/NAME with that mesh up to
STEPS steps and prints one JSON line {NAME: {"losses": {...}, "params": [...]}}. The job
``indivisible`` instead checks that a batch size the devices cannot split fails clearly.
"""

import json
import sys
from pathlib import Path

import jax
import numpy as np
from flax import nnx

from tinyslm.config import load_config
from tinyslm.errors import ConfigError
from tinyslm.train import MetricsLog, train

TINY = ["data.corpus_bytes=40000", "tokenizer.type=char", "model.d_model=32", "model.n_layers=2", "model.n_heads=2",
        "model.max_seq_len=16", "train.seq_len=16", "train.batch_size=8", "train.grad_accum=2",
        "train.warmup_steps=2", "train.lr=3e-3", "train.eval_batches=1", "train.log_interval=1",
        "train.eval_interval=3", "train.ckpt_interval=3", "train.decay_steps=6", "train.samples=0"]


def run(workdir: Path, job: str) -> dict:
    if job == "indivisible":
        try:
            train(load_config(None, [*TINY, "train.batch_size=6"]), workdir / "bad", progress=False)
        except ConfigError as err:
            return {"indivisible": str(err)}
        return {"indivisible": None}
    name, mesh, steps, *resume = job.split(":")
    overrides = [f"train.mesh={mesh}", f"train.max_steps={steps}"]
    run_dir = workdir / name
    config = load_config(run_dir / "config.yaml" if resume else None, overrides if resume else [*TINY, *overrides])
    result = train(config, run_dir, resume=bool(resume), progress=False)
    losses = {r["step"]: r["loss"] for r in MetricsLog(run_dir / "metrics.jsonl").read() if r["event"] == "train"}
    params = [np.asarray(leaf).ravel()[:64].tolist() for leaf in jax.tree.leaves(nnx.state(result.model))]
    return {name: {"losses": losses, "params": params, "devices": jax.device_count()}}


if __name__ == "__main__":
    workdir = Path(sys.argv[1])
    for job in sys.argv[2:]:
        print(json.dumps(run(workdir, job)), flush=True)
