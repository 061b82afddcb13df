"""Attention alone: tinyslm's causal attention against PyTorch's fused kernel, forward + backward.

Times the gradient of ``sum(attention(q, k, v) * g)`` with respect to q, k and v, where q, k, v
and the output gradient ``g`` are all *arguments* of the compiled function. That detail matters:
a gradient closed over as a constant lets XLA precompute the parts of the backward pass that
depend on it alone (the slices of ``g`` for each query block) at compile time, and a first
version of this measurement read ~40% too fast that way. The peer is
``torch.nn.functional.scaled_dot_product_attention(..., is_causal=True)`` (its fused CPU kernel),
2 torch threads, on the same shapes, float32.

    python benchmarks/attention_core.py                       # the three shapes below, one JSON object
    python benchmarks/attention_core.py --impl naive blocked  # compare tinyslm's implementations

Shapes (batch, tokens, heads, head_dim): ``wide`` (8, 256, 6, 64) and ``shakespeare``
(12, 64, 4, 32) are the two models of ``train_throughput.py``; ``default`` (16, 128, 4, 32) is
``configs/default.yaml``'s. Each figure is the median ms per call over runs of 5 calls,
tinyslm first, then PyTorch. ``blocked`` is timed twice: as tinyslm runs it (through the fused
C++ kernel of ``tinyslm.model.cpu_kernels`` where it builds) and as XLA's own ops
(``TINYSLM_CPU_KERNELS=0``), reported as ``tinyslm_blocked_xla_ms``.
"""

from __future__ import annotations

import argparse
import json
import os

import tinyslm  # noqa: F401  (sets the XLA:CPU defaults before JAX starts)
import jax
import jax.numpy as jnp

from tinyslm.model.attention import ATTENTION_IMPLEMENTATIONS, blocked_attention
from train_throughput import median_ms

SHAPES = {"wide": (8, 256, 6, 64), "shakespeare": (12, 64, 4, 32), "default": (16, 128, 4, 32)}


def tinyslm_call(attend, shape: tuple[int, int, int, int]):
    """One forward + backward of ``attend`` on random (B, T, H, D) inputs, as ``step(sync)``."""
    B, T, _, _ = shape
    q, k, v, g = (jax.random.normal(key, shape) for key in jax.random.split(jax.random.key(0), 4))
    positions = jnp.broadcast_to(jnp.arange(T), (B, T))

    def loss(q, k, v, g):
        return jnp.sum(attend(q, k, v, positions, positions) * g)

    grads = jax.jit(jax.grad(loss, argnums=(0, 1, 2)))

    def step(sync: bool):
        out = grads(q, k, v, g)
        if sync:
            jax.block_until_ready(out)

    return step


def torch_call(shape: tuple[int, int, int, int]):
    import torch

    B, T, H, D = shape
    q, k, v = (torch.randn(B, H, T, D, requires_grad=True) for _ in range(3))
    g = torch.randn(B, H, T, D)

    def step(sync: bool):  # eager PyTorch is always in sync
        torch.nn.functional.scaled_dot_product_attention(q, k, v, is_causal=True).backward(g)

    return step


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shapes", nargs="+", default=list(SHAPES), choices=list(SHAPES))
    parser.add_argument("--impl", nargs="+", default=["blocked"], choices=list(ATTENTION_IMPLEMENTATIONS))
    parser.add_argument("--calls", type=int, default=60, help="timed calls of each (in runs of 5)")
    parser.add_argument("--threads", type=int, default=2, help="torch intra-op threads (match the cores)")
    args = parser.parse_args()

    import torch

    torch.set_num_threads(args.threads)
    report = {"jax": jax.__version__, "torch": torch.__version__, "shapes": {}}
    for name in args.shapes:
        shape = SHAPES[name]
        row = {"B,T,H,D": shape}
        for impl in args.impl:
            row[f"tinyslm_{impl}_ms"] = round(median_ms(tinyslm_call(ATTENTION_IMPLEMENTATIONS[impl], shape), args.calls, 3), 2)
            if impl == "blocked":  # and once more without the fused C++ kernel: XLA's own ops
                os.environ["TINYSLM_CPU_KERNELS"] = "0"
                row["tinyslm_blocked_xla_ms"] = round(median_ms(tinyslm_call(blocked_attention, shape), args.calls, 3), 2)
                del os.environ["TINYSLM_CPU_KERNELS"]
        row["torch_sdpa_ms"] = round(median_ms(torch_call(shape), args.calls, 3), 2)
        report["shapes"][name] = row
    print(json.dumps(report))


if __name__ == "__main__":
    main()
