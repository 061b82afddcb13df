"""The linear layer every other layer is made of: y = x @ W + b.

The kernel is stored (d_in, d_out), inputs are flattened to 2-D before the matmul, and the matmul
has its own backward pass. All three choices are about speed on XLA:CPU, measured on this
project's 2-core machine:

* a 3-D (B, T, d) input made the MLP's forward+backward ~2x slower than the same rows flattened
  to (B*T, d);
* ``x @ W`` with W (d_in, d_out) runs a single-row (decoding) matvec as fast as memory allows;
* the weight gradient Xᵀ dY sums over the N rows of both operands. XLA:CPU runs that product
  faster with the *narrower* operand on the left: for the MLP's down projection (d_in = 4 d_out)
  it takes ~14.4 ms as dYᵀ X against ~16.4 as Xᵀ dY (2048 rows, 1536 -> 384), 0.77 against
  1.10 ms at the Shakespeare recipe's size. :func:`matmul` computes the gradient in that order
  (:func:`rows_product`) and transposes the small result, which made whole train steps 1-1.5%
  faster. The same holds for a tied output head, whose table gradient dlogitsᵀ H has the wide
  (N, vocab) operand on the left: 6.6 against 3.8 ms at the default config's size.
"""

from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp
from flax import nnx
from jax import lax

ROWS = (((0,), (0,)), ((), ()))  # dot_general dimensions: contract the leading (row) axis of both


def rows_product(a: jax.Array, b: jax.Array) -> jax.Array:
    """aᵀ b for a (N, m) and b (N, n): a weight gradient, summed over the N rows of both.

    On CPU, when a is the wider operand, it is computed as (bᵀ a)ᵀ: the narrower operand on the
    left. The barrier keeps XLA from folding the transpose back into the dot, which would restore
    the slower order.
    """
    if a.shape[1] > b.shape[1] and jax.default_backend() == "cpu":
        return lax.optimization_barrier(lax.dot_general(b, a, ROWS)).T
    return lax.dot_general(a, b, ROWS)


@partial(jax.custom_vjp, nondiff_argnums=(2,))
def matmul(x: jax.Array, kernel: jax.Array, transposed: bool = False) -> jax.Array:
    """x (N, d_in) @ kernel (d_in, d_out) -> (N, d_out); the gradients are those of the plain product.

    With ``transposed`` the kernel is stored (d_out, d_in) and the product is x @ kernelᵀ, spelled
    as a ``dot_general`` on both minor axes (a tied output head reads the embedding table this way).
    """
    return _product(x, kernel, transposed)


def _product(x, kernel, transposed):
    return lax.dot_general(x, kernel, (((1,), (1 if transposed else 0,)), ((), ())))


def _matmul_forward(x, kernel, transposed):
    return _product(x, kernel, transposed), (x, kernel)


def _matmul_backward(transposed, saved, dy):
    x, kernel = saved
    dx = lax.dot_general(dy, kernel, (((1,), (0 if transposed else 1,)), ((), ())))  # dY W or dY Wᵀ
    return dx, rows_product(dy, x) if transposed else rows_product(x, dy)


matmul.defvjp(_matmul_forward, _matmul_backward)


class Linear(nnx.Module):
    """y (..., d_out) = x (..., d_in) @ kernel (d_in, d_out) + bias, computed in x's dtype."""

    def __init__(self, d_in: int, d_out: int, *, bias: bool, std: float, rngs: nnx.Rngs):
        self.kernel = nnx.Param(std * jax.random.normal(rngs.params(), (d_in, d_out)))
        self.bias = nnx.Param(jnp.zeros((d_out,))) if bias else None

    def __call__(self, x: jax.Array) -> jax.Array:
        lead = x.shape[:-1]
        y = matmul(x.reshape(-1, x.shape[-1]), self.kernel[...].astype(x.dtype))
        if self.bias is not None:
            y = y + self.bias[...].astype(y.dtype)
        return y.reshape(*lead, y.shape[-1])
