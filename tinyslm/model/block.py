"""The transformer block: normalise, attend, add; normalise, transform, add.

    x = x + attention(norm(x))      tokens exchange information
    x = x + mlp(norm(x))            each token thinks on its own

This is the *pre-norm* arrangement (GPT-2, Llama): the residual stream ``x`` itself is never
normalised, which keeps gradients flowing through deep stacks (Xiong et al. 2020,
arXiv:2002.04745).

Inside a block (and inside every norm) the tokens are rows of one ``(B*T, d_model)`` matrix: only
attention needs to know which row belongs to which sequence. This is about speed on XLA:CPU. The
gradients of biases and norm scales are sums over all tokens; over a 3-D ``(B, T, d)`` tensor XLA
splits such a sum into strided windows that ran ~9x slower than the same sum over rows (profiled on
the Shakespeare recipe: windowed sums took 9.2 ms of a train step's ~60, and 3.6 ms after flattening).
"""

from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp
from flax import nnx

from tinyslm.config import ModelConfig
from tinyslm.model.attention import Attention, LayerCache
from tinyslm.model.linear import Linear


def layer_norm(x: jax.Array, scale: jax.Array, bias: jax.Array | None, eps: float) -> jax.Array:
    """LayerNorm (Ba et al. 2016): subtract the mean, divide by the std, then scale and shift.

    x (..., D) -> (..., D); statistics are computed in float32 whatever x's dtype. The backward
    pass is written out by hand in :func:`_layer_norm_backward`.
    """
    return _layer_norm(x.astype(jnp.float32), scale, bias, eps).astype(x.dtype)


@partial(jax.custom_vjp, nondiff_argnums=(3,))
def _layer_norm(x: jax.Array, scale: jax.Array, bias: jax.Array | None, eps: float) -> jax.Array:
    return _layer_norm_forward(x, scale, bias, eps)[0]


def _layer_norm_forward(x, scale, bias, eps):
    centred = x - x.mean(-1, keepdims=True)
    rstd = jax.lax.rsqrt(jnp.square(centred).mean(-1, keepdims=True) + eps)
    x_hat = centred * rstd
    y = x_hat * scale
    return (y if bias is None else y + bias), (x_hat, rstd, scale, bias)


def _layer_norm_backward(eps, saved, dy):
    """The gradients of y = x_hat * scale + bias, with x_hat = (x - mean) * rstd, worked out by hand:

        g = dy * scale
        dx = rstd * (g - mean(g) - x_hat * mean(g * x_hat))        means over the D features
        dscale = sum of dy * x_hat over tokens,  dbias = sum of dy over tokens

    Autodiff reaches the same numbers by differentiating each step of the forward pass, the mean
    inside the variance included, whose share of the gradient is exactly zero. The written-out form
    does less work: it made the Shakespeare recipe's whole train step ~2.5% faster on the 2-core CPU
    (RMSNorm's autodiff backward, already short, measured the same as a written-out one).
    """
    x_hat, rstd, scale, bias = saved
    g = dy * scale
    dx = rstd * (g - g.mean(-1, keepdims=True) - x_hat * (g * x_hat).mean(-1, keepdims=True))
    return dx, _sum_over_tokens(dy * x_hat), None if bias is None else _sum_over_tokens(dy)


_layer_norm.defvjp(_layer_norm_forward, _layer_norm_backward)


def _sum_over_tokens(a: jax.Array) -> jax.Array:
    """(..., D) -> (D,): the gradient of a per-feature parameter that every token shares."""
    return a.reshape(-1, a.shape[-1]).sum(0)


def rms_norm(x: jax.Array, scale: jax.Array, eps: float) -> jax.Array:
    """RMSNorm (Zhang & Sennrich 2019): divide by the root-mean-square, then scale. No mean, no shift.

    Cheaper than LayerNorm and, in practice, just as good; Llama, Qwen and SmolLM use it.
    """
    x32 = x.astype(jnp.float32)
    y = x32 * jax.lax.rsqrt(jnp.square(x32).mean(-1, keepdims=True) + eps) * scale
    return y.astype(x.dtype)


class Norm(nnx.Module):
    """LayerNorm (with a bias when ``bias``) or RMSNorm, as the config says."""

    def __init__(self, d: int, kind: str, *, bias: bool, eps: float):
        self.kind, self.eps = kind, eps
        self.scale = nnx.Param(jnp.ones((d,)))
        self.bias = nnx.Param(jnp.zeros((d,))) if bias and kind == "layernorm" else None

    def __call__(self, x: jax.Array) -> jax.Array:
        rows = x.reshape(-1, x.shape[-1])  # (tokens, d): see the module docstring
        if self.kind == "rmsnorm":
            y = rms_norm(rows, self.scale[...], self.eps)
        else:
            y = layer_norm(rows, self.scale[...], None if self.bias is None else self.bias[...], self.eps)
        return y.reshape(x.shape)


class MLP(nnx.Module):
    """The per-token feed-forward network.

    * ``gelu`` (GPT-2): down(gelu(up(x))), with GELU's tanh approximation as GPT-2 used it
      (Hendrycks & Gimpel 2016).
    * ``swiglu`` (Llama): down(silu(gate(x)) * up(x)) — a gated linear unit (Shazeer 2020,
      arXiv:2002.05202): one branch decides, per feature, how much of the other passes through.
    """

    def __init__(self, config: ModelConfig, *, rngs: nnx.Rngs):
        c = config
        residual_std = c.init_std / (2 * c.n_layers) ** 0.5
        self.kind = c.mlp
        self.gate = Linear(c.d_model, c.d_ff, bias=c.bias, std=c.init_std, rngs=rngs) if c.mlp == "swiglu" else None
        self.up = Linear(c.d_model, c.d_ff, bias=c.bias, std=c.init_std, rngs=rngs)
        self.down = Linear(c.d_ff, c.d_model, bias=c.bias, std=residual_std, rngs=rngs)

    def __call__(self, x: jax.Array) -> jax.Array:
        if self.kind == "swiglu":
            return self.down(jax.nn.silu(self.gate(x)) * self.up(x))
        return self.down(jax.nn.gelu(self.up(x), approximate=True))


def dropout(x: jax.Array, rate: float, key: jax.Array | None) -> jax.Array:
    """Zero each element with probability ``rate`` and rescale the rest (Srivastava et al. 2014).

    With ``key=None`` (evaluation, decoding) or ``rate=0`` it is the identity.
    """
    if key is None or rate == 0.0:
        return x
    keep = jax.random.bernoulli(key, 1.0 - rate, x.shape)
    return jnp.where(keep, x / (1.0 - rate), 0).astype(x.dtype)


class Block(nnx.Module):
    """One pre-norm transformer block: attention then MLP, each added to the residual stream."""

    def __init__(self, config: ModelConfig, *, rngs: nnx.Rngs):
        c = config
        self.dropout_rate = c.dropout
        self.attn_norm = Norm(c.d_model, c.norm, bias=c.bias, eps=c.norm_eps)
        self.attn = Attention(c, rngs=rngs)
        self.mlp_norm = Norm(c.d_model, c.norm, bias=c.bias, eps=c.norm_eps)
        self.mlp = MLP(c, rngs=rngs)

    def __call__(
        self,
        x: jax.Array,
        positions: jax.Array,
        inv_freq: jax.Array | None,
        cache: LayerCache | None = None,
        dropout_key: jax.Array | None = None,
    ) -> tuple[jax.Array, LayerCache | None]:
        """x (B, T, d_model) -> (B, T, d_model), updated cache."""
        keys = (None, None) if dropout_key is None else tuple(jax.random.split(dropout_key))
        B, T, D = x.shape
        x = x.reshape(B * T, D)  # the residual stream as rows (see the module docstring)
        attended, cache = self.attn(self.attn_norm(x).reshape(B, T, D), positions, inv_freq, cache)
        x = x + dropout(attended.reshape(B * T, D), self.dropout_rate, keys[0])
        x = x + dropout(self.mlp(self.mlp_norm(x)), self.dropout_rate, keys[1])
        return x.reshape(B, T, D), cache
