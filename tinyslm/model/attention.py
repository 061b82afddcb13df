"""Causal self-attention with multi-head, grouped-query and multi-query variants, and a KV cache.

Each token asks a question (its *query*), advertises what it contains (its *key*) and offers
content (its *value*). A token's output is the average of the values of the tokens before it,
weighted by how well its query matches their keys (Vaswani et al. 2017, "Attention Is All You
Need", arXiv:1706.03762):

    scores  = q @ k.T / sqrt(head_dim)          how relevant is each earlier token?
    scores  = where(causal, scores, -inf)       a token may not look at the future
    weights = softmax(scores)                   relevances that sum to one
    out     = weights @ v                       the weighted mix of values

Grouped-query attention (Ainslie et al. 2023, arXiv:2305.13245) lets ``G`` query heads share one
key/value head: ``n_kv_heads == n_heads`` is ordinary multi-head attention, ``n_kv_heads == 1``
is multi-query attention (Shazeer 2019). Fewer KV heads means a smaller KV cache when decoding.

Positions drive the mask: a query at position p sees every key whose position is <= p. During
training the positions are 0..T-1 and this is the usual triangle; during decoding the keys are
the slots of a preallocated cache and slot j holds the token at position j.
"""

from __future__ import annotations

from dataclasses import dataclass

import jax
import jax.numpy as jnp
from flax import nnx

from tinyslm.config import ModelConfig
from tinyslm.model import cpu_kernels
from tinyslm.model.embedding import apply_rope
from tinyslm.model.linear import Linear

QUERY_BLOCK = 32  # rows of queries per block in blocked_attention
MAX_QUERY_BLOCKS = 4  # longer contexts get longer blocks rather than more of them


@jax.tree_util.register_dataclass
@dataclass
class LayerCache:
    """One layer's preallocated keys and values: k, v (B, max_len, n_kv_heads, head_dim).

    Slot j holds the key/value of the token at position j; writing a token at position p
    overwrites slot p, so the cache never grows or reallocates while decoding.
    """

    k: jax.Array
    v: jax.Array

    @classmethod
    def empty(cls, batch: int, max_len: int, n_kv_heads: int, head_dim: int, dtype=jnp.float32) -> "LayerCache":
        shape = (batch, max_len, n_kv_heads, head_dim)
        return cls(k=jnp.zeros(shape, dtype), v=jnp.zeros(shape, dtype))

    def write(self, k_new: jax.Array, v_new: jax.Array, positions: jax.Array) -> "LayerCache":
        """Store k/v_new (B, T, Hkv, D) in slots positions[b, 0] .. positions[b, 0] + T - 1.

        Each row may start at a different position (prompts of different lengths). The caller
        (the decoder) guarantees the slots exist; ``dynamic_update_slice`` would otherwise clamp.
        """

        def write_row(cache_row, new_row, start):  # (S, Hkv, D), (T, Hkv, D), ()
            return jax.lax.dynamic_update_slice(cache_row, new_row.astype(cache_row.dtype), (start, 0, 0))

        starts = positions[:, 0]
        return LayerCache(
            k=jax.vmap(write_row)(self.k, k_new, starts),
            v=jax.vmap(write_row)(self.v, v_new, starts),
        )


def attention_weights(scores: jax.Array, visible: jax.Array, head_dim: int) -> jax.Array:
    """Scaled, masked softmax over the keys: scores (B, Hkv, G, T, S), visible (B, T, S) -> float32 weights.

    Scores are divided by sqrt(head_dim) so their spread does not grow with the head size, hidden
    keys get -inf (weight exactly 0), and the softmax runs in float32 whatever the compute dtype.
    """
    scores = scores.astype(jnp.float32) / jnp.sqrt(jnp.float32(head_dim))
    return jax.nn.softmax(jnp.where(visible[:, None, None], scores, -jnp.inf), axis=-1)


def causal_attention(q: jax.Array, k: jax.Array, v: jax.Array, q_positions: jax.Array, k_positions: jax.Array) -> jax.Array:
    """Attention written out step by step (the lesson's version).

    q (B, T, H, D); k, v (B, S, Hkv, D); q_positions (B, T); k_positions (B, S) -> (B, T, H, D).
    Query t of row b sees key s iff k_positions[b, s] <= q_positions[b, t].
    """
    B, T, H, D = q.shape
    n_kv = k.shape[2]
    q = q.reshape(B, T, n_kv, H // n_kv, D)  # split query heads into groups that share a KV head
    scores = jnp.einsum("btkgd,bskd->bkgts", q, k)  # (B, Hkv, G, T, S)
    visible = k_positions[:, None, :] <= q_positions[:, :, None]  # (B, T, S)
    weights = attention_weights(scores, visible, D).astype(v.dtype)
    out = jnp.einsum("bkgts,bskd->btkgd", weights, v)  # (B, T, Hkv, G, D)
    return out.reshape(B, T, H, D)


def blocked_attention(q: jax.Array, k: jax.Array, v: jax.Array, q_positions: jax.Array, k_positions: jax.Array) -> jax.Array:
    """The same computation laid out for a CPU: one batch of matrices, queries in blocks.

    Two changes to :func:`causal_attention`, both exact:

    * **Layout.** The heads are moved next to the batch once, so attention is a single batch of
      ``B * n_kv_heads`` matrix products whose rows are the ``G`` query heads x ``T`` queries that
      share one key/value head. XLA:CPU runs such plain 3-D batched products far faster than the
      5-D einsum with its batch dimensions in the middle: at the wide benchmark shape (8 x 6 heads
      x 256 x 64), forward and backward took 41-56 ms instead of ~63 on the 2-core CPU (PyTorch's
      fused kernel: 27-43, median ~31: ``benchmarks/attention_core.py``); at the Shakespeare
      recipe's (12 x 4 x 64 x 32) the two tie.
    * **Causal blocks.** When the keys are the queries' own tokens in order (``k_positions is
      q_positions``: training, scoring, a prompt without a cache), the queries ``t0 <= t < t1`` can
      only see keys ``s < t1``. Attending block by block to that prefix alone skips most of the
      masked upper triangle: with four blocks, 10 of the 16 score tiles are computed instead of all
      16. This is the idea of FlashAttention's causal tiling (Dao et al. 2022, arXiv:2205.14135)
      without the fused kernel, which XLA cannot express on a CPU.

    Both still run every block's scores, mask and softmax as separate XLA ops over whole tensors
    in memory. So on the CPU in float32, when :mod:`tinyslm.model.cpu_kernels` could build its
    fused C++ kernel, training and scoring go through that kernel instead, which keeps each
    64 x 64 tile of scores in cache: the same numbers to float32 rounding, and at the wide
    benchmark shape 1.2-2.3x as fast forward and backward (``benchmarks/attention_core.py``).

    With a cache (decoding) it is exactly :func:`causal_attention`.
    q (B, T, H, D); k, v (B, S, Hkv, D); positions as in :func:`causal_attention` -> (B, T, H, D).
    """
    if k_positions is not q_positions:
        return causal_attention(q, k, v, q_positions, k_positions)
    if cpu_kernels.available(q, k):
        return cpu_kernels.flash_attention(q, k, v)
    B, T, H, D = q.shape
    n_kv = k.shape[2]
    G = H // n_kv
    q = q.reshape(B, T, n_kv, G, D).transpose(0, 2, 3, 1, 4).reshape(B * n_kv, G, T, D)
    k, v = (x.transpose(0, 2, 1, 3).reshape(B * n_kv, T, D) for x in (k, v))
    block = max(QUERY_BLOCK, -(-T // MAX_QUERY_BLOCKS))  # at most MAX_QUERY_BLOCKS blocks: bounded compile time
    rows = []
    for t0 in range(0, T, block):
        t1 = min(T, t0 + block)
        rows_q = q[:, :, t0:t1].reshape(B * n_kv, G * (t1 - t0), D)  # G heads x (t1 - t0) queries
        scores = jnp.einsum("nrd,nsd->nrs", rows_q, k[:, :t1]).reshape(B, n_kv, G, t1 - t0, t1)
        visible = k_positions[:, None, :t1] <= q_positions[:, t0:t1, None]  # (B, t1 - t0, t1)
        weights = attention_weights(scores, visible, D).astype(v.dtype)
        out = jnp.einsum("nrs,nsd->nrd", weights.reshape(B * n_kv, G * (t1 - t0), t1), v[:, :t1])
        rows.append(out.reshape(B * n_kv, G, t1 - t0, D))
    out = jnp.concatenate(rows, axis=2).reshape(B, n_kv, G, T, D)
    return out.transpose(0, 3, 1, 2, 4).reshape(B, T, H, D)


def fused_attention(q: jax.Array, k: jax.Array, v: jax.Array, q_positions: jax.Array, k_positions: jax.Array) -> jax.Array:
    """The same computation through ``jax.nn.dot_product_attention`` (cuDNN flash attention on GPU).

    Without a cache the keys are the queries' own tokens in order (``k_positions is q_positions``),
    so the mask is the plain causal triangle: ``is_causal`` lets the kernel skip the masked half
    instead of reading a (B, T, S) mask from memory.
    """
    implementation = "cudnn" if jax.default_backend() == "gpu" and q.dtype == jnp.bfloat16 else None
    if k_positions is q_positions:
        return jax.nn.dot_product_attention(q, k, v, is_causal=True, implementation=implementation)
    visible = k_positions[:, None, :] <= q_positions[:, :, None]  # (B, T, S)
    return jax.nn.dot_product_attention(q, k, v, mask=visible[:, None], implementation=implementation)


ATTENTION_IMPLEMENTATIONS = {"naive": causal_attention, "blocked": blocked_attention, "fused": fused_attention}


class Attention(nnx.Module):
    """Multi-head / grouped-query causal self-attention with optional RoPE and KV cache."""

    def __init__(self, config: ModelConfig, *, rngs: nnx.Rngs):
        c = config
        self.n_heads, self.n_kv_heads, self.head_dim = c.n_heads, c.n_kv_heads, c.head_dim
        self.use_rope = c.positions == "rope"
        self.attend = ATTENTION_IMPLEMENTATIONS[c.attention]
        qkv_bias = c.bias or c.qkv_bias
        residual_std = c.init_std / (2 * c.n_layers) ** 0.5  # GPT-2: keep the residual stream's variance flat
        self.q = Linear(c.d_model, c.n_heads * c.head_dim, bias=qkv_bias, std=c.init_std, rngs=rngs)
        self.k = Linear(c.d_model, c.n_kv_heads * c.head_dim, bias=qkv_bias, std=c.init_std, rngs=rngs)
        self.v = Linear(c.d_model, c.n_kv_heads * c.head_dim, bias=qkv_bias, std=c.init_std, rngs=rngs)
        self.o = Linear(c.n_heads * c.head_dim, c.d_model, bias=c.bias, std=residual_std, rngs=rngs)

    def __call__(
        self,
        x: jax.Array,
        positions: jax.Array,
        inv_freq: jax.Array | None,
        cache: LayerCache | None = None,
    ) -> tuple[jax.Array, LayerCache | None]:
        """x (B, T, d_model), positions (B, T) -> (B, T, d_model), updated cache (or None)."""
        B, T, _ = x.shape
        q = self.q(x).reshape(B, T, self.n_heads, self.head_dim)
        k = self.k(x).reshape(B, T, self.n_kv_heads, self.head_dim)
        v = self.v(x).reshape(B, T, self.n_kv_heads, self.head_dim)
        if self.use_rope:
            q, k = apply_rope(q, positions, inv_freq), apply_rope(k, positions, inv_freq)
        if cache is None:
            k_all, v_all, k_positions = k, v, positions
        else:
            cache = cache.write(k, v, positions)
            k_all, v_all = cache.k.astype(q.dtype), cache.v.astype(q.dtype)
            k_positions = jnp.broadcast_to(jnp.arange(cache.k.shape[1]), (B, cache.k.shape[1]))
        out = self.attend(q, k_all, v_all, positions, k_positions)  # (B, T, H, D)
        return self.o(out.reshape(B, T, self.n_heads * self.head_dim)), cache
