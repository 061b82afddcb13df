"""The linear layer every other layer is made of: y = x @ W + b.

The kernel is stored (d_in, d_out) and inputs are flattened to 2-D before the matmul. Both choices
are about speed on XLA:CPU, measured on this project's 2-core machine: a 3-D (B, T, d) input made
the MLP's forward+backward ~2x slower than the same rows flattened to (B*T, d), and ``x @ W`` with
W (d_in, d_out) runs a single-row (decoding) matvec as fast as memory allows.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx


class Linear(nnx.Module):
    """y (..., d_out) = x (..., d_in) @ kernel (d_in, d_out) + bias, computed in x's dtype."""

    def __init__(self, d_in: int, d_out: int, *, bias: bool, std: float, rngs: nnx.Rngs):
        self.kernel = nnx.Param(std * jax.random.normal(rngs.params(), (d_in, d_out)))
        self.bias = nnx.Param(jnp.zeros((d_out,))) if bias else None

    def __call__(self, x: jax.Array) -> jax.Array:
        lead = x.shape[:-1]
        y = x.reshape(-1, x.shape[-1]) @ self.kernel[...].astype(x.dtype)  # (N, d_in) @ (d_in, d_out)
        if self.bias is not None:
            y = y + self.bias[...].astype(y.dtype)
        return y.reshape(*lead, y.shape[-1])
