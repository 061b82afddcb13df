"""Two versions of the fused CPU attention kernel, side by side in one process: forward and forward + backward.

On a shared 2-core machine the load drifts by tens of percent from minute to minute, so timing
two versions in separate processes compares the machine as much as the code. This script builds
both C++ files (``cpu_kernels``' own build, cached), registers them under two names, checks that
they compute the same gradients, and then times them taking turns (``train_throughput``'s
``interleaved_ms``: each round, 10 calls of each in runs of 5); the report gives the per-round
ratios' median and how many rounds the second version won.

    git show HEAD~1:tinyslm/model/flash_attention_cpu.cc > /tmp/old.cc
    python benchmarks/kernel_ab.py /tmp/old.cc tinyslm/model/flash_attention_cpu.cc --shape 8 256 6 64
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

import tinyslm  # noqa: F401  (sets the XLA:CPU defaults before JAX starts)
import jax
import jax.numpy as jnp

from tinyslm.model import cpu_kernels
from train_throughput import interleaved_ms


def _wait(result, sync: bool) -> None:
    if sync:
        jax.block_until_ready(result)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("first", type=Path, help="the C++ file of version A (e.g. the previous commit's)")
    parser.add_argument("second", type=Path, help="the C++ file of version B")
    parser.add_argument("--shape", type=int, nargs=4, default=[8, 256, 6, 64], metavar=("B", "T", "H", "D"))
    parser.add_argument("--rounds", type=int, default=20)
    args = parser.parse_args()

    q, k, v, d_out = (jax.random.normal(key, tuple(args.shape)) for key in jax.random.split(jax.random.key(0), 4))
    calls, gradients = {}, {}
    for name, source in (("A", args.first), ("B", args.second)):
        cpu_kernels.load_kernel(source, f"kernel_ab_{name}")
        attend = cpu_kernels.attention_op(f"kernel_ab_{name}")
        forward = jax.jit(attend)
        gradients[name] = jax.jit(jax.grad(lambda q, k, v, g, attend=attend: jnp.sum(attend(q, k, v) * g), argnums=(0, 1, 2)))
        calls[f"{name} forward"] = lambda sync, f=forward: _wait(f(q, k, v), sync)
        calls[f"{name} forward+backward"] = lambda sync, f=gradients[name]: _wait(f(q, k, v, d_out), sync)
    max_difference = max(float(jnp.abs(a - b).max()) for a, b in zip(*(gradients[n](q, k, v, d_out) for n in "AB")))

    ms = interleaved_ms(calls, args.rounds, steps_per_round=10, pause_s=0.0)  # each turn starts with an untimed call
    report = {"shape": args.shape, "rounds": args.rounds, "max_gradient_difference": max_difference}
    for part in ("forward", "forward+backward"):
        ratios = [a / b for a, b in zip(ms[f"A {part}"], ms[f"B {part}"])]
        report[part] = {"A_ms": round(statistics.median(ms[f"A {part}"]), 3), "B_ms": round(statistics.median(ms[f"B {part}"]), 3),
                        "speedup_B_over_A": round(statistics.median(ratios), 3), "rounds_B_faster": sum(x > 1 for x in ratios)}
    print(json.dumps(report))


if __name__ == "__main__":
    main()
