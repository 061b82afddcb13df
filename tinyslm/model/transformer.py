"""The language model: token ids -> embeddings -> N blocks -> final norm -> logits over the vocabulary.

One class covers both families of small language models people use today:

* ``preset="gpt"`` — GPT-2 (Radford et al. 2019): learned positions, LayerNorm, GELU MLP, biases.
* ``preset="llama"`` — Llama (Touvron et al. 2023) and its descendants SmolLM2, Qwen2 (with
  ``qkv_bias``), Llama 3.2 (with ``rope_scaling``): RoPE, RMSNorm, SwiGLU, grouped-query
  attention, no biases.

Initialisation follows GPT-2: every matrix ~ N(0, 0.02²), and the two projections that write into
the residual stream (attention output, MLP down) are scaled by 1/sqrt(2 * n_layers), so that the
stream's variance does not grow with depth.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

from tinyslm.config import ModelConfig
from tinyslm.model.attention import LayerCache
from tinyslm.model.block import Block, Norm, dropout
from tinyslm.model.embedding import Embedding, rope_frequencies
from tinyslm.model.linear import Linear

COMPUTE_DTYPES = {"float32": jnp.float32, "bfloat16": jnp.bfloat16}


class TransformerLM(nnx.Module):
    """A decoder-only transformer language model. Parameters are float32; compute is ``compute_dtype``."""

    def __init__(self, config: ModelConfig, *, rngs: nnx.Rngs):
        c = self.config = config
        self.embed = Embedding(c.vocab_size, c.d_model, std=c.init_std, rngs=rngs)
        self.pos_embed = Embedding(c.max_seq_len, c.d_model, std=c.init_std, rngs=rngs) if c.positions == "learned" else None
        self.blocks = nnx.List([Block(c, rngs=rngs) for _ in range(c.n_layers)])
        self.final_norm = Norm(c.d_model, c.norm, bias=c.bias, eps=c.norm_eps)
        self.head = None if c.tie_embeddings else Linear(c.d_model, c.vocab_size, bias=False, std=c.init_std, rngs=rngs)

    def __call__(self, tokens: jax.Array, positions: jax.Array | None = None, *, dropout_key: jax.Array | None = None) -> jax.Array:
        """tokens (B, T) int -> logits (B, T, vocab_size) float32. Positions default to 0..T-1."""
        logits, _ = self.forward(tokens, positions, dropout_key=dropout_key)
        return logits

    def forward(
        self,
        tokens: jax.Array,
        positions: jax.Array | None = None,
        cache: list[LayerCache] | None = None,
        *,
        dropout_key: jax.Array | None = None,
    ) -> tuple[jax.Array, list[LayerCache] | None]:
        """The full forward pass, optionally reading and extending a KV cache.

        tokens (B, T), positions (B, T) (the cache slots these tokens occupy), cache: one
        :class:`LayerCache` per layer or None -> logits (B, T, V) float32, updated cache.
        """
        hidden, cache = self.hidden_states(tokens, positions, cache, dropout_key=dropout_key)
        return self.logits(hidden), cache

    def hidden_states(
        self,
        tokens: jax.Array,
        positions: jax.Array | None = None,
        cache: list[LayerCache] | None = None,
        *,
        dropout_key: jax.Array | None = None,
    ) -> tuple[jax.Array, list[LayerCache] | None]:
        """tokens (B, T) -> final-normed hidden states (B, T, d_model), updated cache."""
        c = self.config
        B, T = tokens.shape
        if positions is None:
            positions = jnp.broadcast_to(jnp.arange(T), (B, T))
        keys = [None] * (c.n_layers + 1) if dropout_key is None else list(jax.random.split(dropout_key, c.n_layers + 1))
        x, inv_freq = self.block_inputs(tokens, positions, keys[0])

        new_cache = None if cache is None else []
        for i, block in enumerate(self.blocks):
            x, layer_cache = block(x, positions, inv_freq, None if cache is None else cache[i], keys[i + 1])
            if cache is not None:
                new_cache.append(layer_cache)
        return self.final_norm(x), new_cache

    def residual_stream(self, tokens: jax.Array, n_blocks: int) -> list[jax.Array]:
        """tokens (B, T) -> the residual stream at layers 0..n_blocks, each (B, T, d_model).

        Layer 0 is the embedded input, layer i the stream after block i (no final norm). What a
        probe reads (:mod:`tinyslm.adapt.probe`): later blocks are never run.
        """
        B, T = tokens.shape
        positions = jnp.broadcast_to(jnp.arange(T), (B, T))
        x, inv_freq = self.block_inputs(tokens, positions)
        stream = [x]
        for block in self.blocks[:n_blocks]:
            x, _ = block(x, positions, inv_freq, None, None)
            stream.append(x)
        return stream

    def block_inputs(self, tokens: jax.Array, positions: jax.Array, dropout_key: jax.Array | None = None
                     ) -> tuple[jax.Array, jax.Array | None]:
        """tokens, positions (B, T) -> the stream entering block 1 (compute dtype), RoPE's frequencies (or None).

        Every block is called as ``block(x, positions, inv_freq, cache, dropout_key)``; code that
        runs blocks one at a time (calibration, probes) starts from here."""
        c = self.config
        x = self.embed(tokens)  # (B, T, D)
        if self.pos_embed is not None:
            x = x + self.pos_embed(positions)
        x = dropout(x.astype(COMPUTE_DTYPES[c.compute_dtype]), c.dropout, dropout_key)
        inv_freq = rope_frequencies(c.head_dim, c.rope_theta, c.rope_scaling) if c.positions == "rope" else None
        return x, inv_freq

    def logits(self, hidden: jax.Array) -> jax.Array:
        """hidden (B, T, D) -> logits (B, T, V) in float32 (through the tied embedding or the head)."""
        B, T, D = hidden.shape
        flat = hidden.reshape(B * T, D)
        out = self.embed.attend(flat) if self.head is None else self.head(flat)
        return out.reshape(B, T, -1).astype(jnp.float32)

    def init_cache(self, batch: int, max_len: int | None = None) -> list[LayerCache]:
        """An empty KV cache for ``batch`` sequences of up to ``max_len`` (default: the context) tokens."""
        c = self.config
        max_len = max_len or c.max_seq_len
        dtype = COMPUTE_DTYPES[c.compute_dtype]
        return [LayerCache.empty(batch, max_len, c.n_kv_heads, c.head_dim, dtype) for _ in range(c.n_layers)]


def param_count(config: ModelConfig) -> int:
    """The exact number of parameters :class:`TransformerLM` creates for ``config``, from the shapes alone.

    GPT-2 small (12 x 768, vocab 50257, 1024 positions, tied) -> 124,439,808.
    """
    c = config
    d, q_d, kv_d = c.d_model, c.n_heads * c.head_dim, c.n_kv_heads * c.head_dim

    def linear(d_in: int, d_out: int, bias: bool) -> int:
        return d_in * d_out + (d_out if bias else 0)

    norm = d * (2 if c.norm == "layernorm" and c.bias else 1)
    qkv_bias = c.bias or c.qkv_bias
    attention = linear(d, q_d, qkv_bias) + 2 * linear(d, kv_d, qkv_bias) + linear(q_d, d, c.bias)
    mlp = (3 if c.mlp == "swiglu" else 2) * d * c.d_ff + ((2 if c.mlp == "swiglu" else 1) * c.d_ff + d if c.bias else 0)
    per_block = 2 * norm + attention + mlp
    embeddings = c.vocab_size * d + (c.max_seq_len * d if c.positions == "learned" else 0)
    head = 0 if c.tie_embeddings else d * c.vocab_size
    return embeddings + c.n_layers * per_block + norm + head


def count_params(model: nnx.Module) -> int:
    """Count the parameters a model actually holds (to check :func:`param_count` against)."""
    return sum(x.size for x in jax.tree.leaves(nnx.state(model, nnx.Param)))
