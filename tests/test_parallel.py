"""Data-parallel and fully sharded training on several devices, checked on CPU.

XLA can pretend one CPU is N devices (``--xla_force_host_platform_device_count=N``), but only
before JAX starts, so every device count runs in its own interpreter (tests/parallel_worker.py).
The same global batch must give the same losses and weights on 1, 2 and 4 devices; a checkpoint
written on one device count must resume on another.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

WORKER = Path(__file__).with_name("parallel_worker.py")


def run_on(devices: int, workdir: Path, *jobs: str) -> dict:
    env = {**os.environ, "XLA_FLAGS": f"--xla_force_host_platform_device_count={devices}", "JAX_PLATFORMS": "cpu"}
    done = subprocess.run([sys.executable, str(WORKER), str(workdir), *jobs], env=env, capture_output=True,
                          text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    results = {}
    for line in done.stdout.splitlines():
        if line.startswith("{"):
            results.update(json.loads(line))
    return results


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict:
    workdir = tmp_path_factory.mktemp("parallel")
    results = run_on(1, workdir, "one:auto:6", "half_on_one:auto:3")
    results.update(run_on(4, workdir, "four:auto:6", "four_fsdp:fsdp:6", "mixed:data=2,fsdp=2:6",
                          "half_on_one:auto:6:resume", "half_on_four:fsdp:3", "indivisible"))
    results.update(run_on(2, workdir, "two:auto:6", "half_on_four:auto:6:resume"))
    return results


def assert_same_training(a: dict, b: dict) -> None:
    assert a["losses"].keys() == b["losses"].keys()
    np.testing.assert_allclose(list(a["losses"].values()), list(b["losses"].values()), rtol=2e-5)
    for x, y in zip(a["params"], b["params"]):
        np.testing.assert_allclose(x, y, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("name", ["two", "four", "four_fsdp", "mixed"])
def test_same_losses_and_weights_on_any_mesh(runs, name):
    assert runs[name]["devices"] == {"two": 2}.get(name, 4)
    assert_same_training(runs["one"], runs[name])


def test_checkpoints_resume_across_device_counts(runs):
    assert runs["half_on_one"]["devices"] == 4  # written on 1 device, resumed on 4
    assert runs["half_on_four"]["devices"] == 2  # written on 4 (fsdp), resumed on 2
    assert_same_training(runs["one"], runs["half_on_one"])
    assert_same_training(runs["one"], runs["half_on_four"])


def test_indivisible_batch_is_a_clear_error(runs):
    message = runs["indivisible"]
    assert message and "train.batch_size=6" in message and "4 devices" in message and "multiple of 4" in message
