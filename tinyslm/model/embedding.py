"""Token embeddings and the two ways of telling a transformer where each token sits.

A transformer's attention is blind to order: it compares every token with every other token, so
"dog bites man" and "man bites dog" look the same to it unless positions are injected. There are
two ways to do that here:

* **Learned positions** (GPT-2): a second embedding table indexed by position, added to the token
  embedding. Simple, but the model cannot go past the ``max_seq_len`` rows it was trained with.
* **Rotary position embeddings, RoPE** (Su et al. 2021, "RoFormer", arXiv:2104.09864; Llama):
  rotate each pair of query/key features by an angle proportional to the position. The dot
  product of a rotated query at position m and a rotated key at position n then depends only on
  m - n, so attention sees *relative* distance, and nothing is added to the residual stream.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
from flax import nnx

from tinyslm.config import RopeScaling
from tinyslm.model.linear import matmul


class Embedding(nnx.Module):
    """A lookup table: token id -> a learned vector of size ``d_model``.

    The same table can also serve as the output head ("tied embeddings", Press & Wolf 2017):
    the logit of token v is the dot product of the final hidden state with row v.
    """

    def __init__(self, num_embeddings: int, features: int, *, std: float, rngs: nnx.Rngs):
        self.weight = nnx.Param(std * jax.random.normal(rngs.params(), (num_embeddings, features)))  # (V, D)

    def __call__(self, ids: jax.Array) -> jax.Array:
        """ids (...,) int -> vectors (..., D)."""
        return jnp.take(self.weight[...], ids, axis=0)

    def attend(self, h: jax.Array) -> jax.Array:
        """Use the table as a tied output head: h (N, D) -> logits (N, V) = h @ weight.T.

        Spelled as a ``dot_general`` contracting both minor axes (:func:`matmul` with
        ``transposed``): on XLA:CPU writing ``h @ W.T`` materialises the transpose and is over 10x
        slower for a single decoding row.
        """
        return matmul(h, self.weight[...].astype(h.dtype), transposed=True)


def rope_frequencies(head_dim: int, theta: float, scaling: RopeScaling | None = None) -> jax.Array:
    """The rotation speed of each feature pair: inv_freq (head_dim/2,) = theta^(-2i/head_dim).

    Pair 0 turns by one radian per position; the last pair turns ~``theta`` times slower, so
    the model sees both fine (nearby) and coarse (far) position information.

    With ``scaling`` (Llama 3.1's long-context recipe): pairs whose wavelength is longer than
    the original context are slowed down by ``factor``, short wavelengths are left alone, and
    the band in between is interpolated smoothly.
    """
    inv_freq = 1.0 / (theta ** (jnp.arange(0, head_dim, 2, dtype=jnp.float32) / head_dim))
    if scaling is None:
        return inv_freq
    wavelen = 2 * math.pi / inv_freq
    low_freq_wavelen = scaling.original_max_seq_len / scaling.low_freq_factor
    high_freq_wavelen = scaling.original_max_seq_len / scaling.high_freq_factor
    smooth = (scaling.original_max_seq_len / wavelen - scaling.low_freq_factor) / (
        scaling.high_freq_factor - scaling.low_freq_factor
    )
    interpolated = (1 - smooth) * inv_freq / scaling.factor + smooth * inv_freq
    scaled = jnp.where(wavelen > low_freq_wavelen, inv_freq / scaling.factor, interpolated)
    return jnp.where(wavelen < high_freq_wavelen, inv_freq, scaled)


def apply_rope(x: jax.Array, positions: jax.Array, inv_freq: jax.Array) -> jax.Array:
    """Rotate query or key vectors by their positions.

    x (B, T, H, D), positions (B, T) int, inv_freq (D/2,) -> (B, T, H, D).

    Feature i is paired with feature i + D/2 (the "rotate half" layout used by Hugging Face
    Llama/Qwen checkpoints), and each pair (a, b) is rotated by angle = position * inv_freq[i]:
        a' = a cos - b sin,   b' = b cos + a sin.

    Written with the two halves as an axis of length 2, that is ``[a, b] * [cos, cos] + [b, a] *
    [-sin, sin]``, where ``[b, a]`` reverses that axis. The same numbers as computing a' and b'
    and concatenating them, but XLA:CPU runs the reversal as plain indexing and a concatenation
    as a per-element choice between its inputs: this form made the Llama recipe's whole train
    step 2.5-4.5% faster on the 2-core CPU (measured; broadcasting one cos over the length-2 axis
    instead of stacking it twice was 7% *slower*).
    """
    angles = positions[:, :, None].astype(jnp.float32) * inv_freq  # (B, T, D/2)
    cos, sin = jnp.cos(angles)[:, :, None], jnp.sin(angles)[:, :, None]  # (B, T, 1, D/2): one rotation for every head
    cos_pair = jnp.stack([cos, cos], axis=-2)  # (B, T, 1, 2, D/2)
    sin_pair = jnp.stack([-sin, sin], axis=-2)
    halves = x.astype(jnp.float32).reshape(*x.shape[:-1], 2, x.shape[-1] // 2)  # (B, T, H, 2, D/2): [a, b]
    rotated = halves * cos_pair + halves[..., ::-1, :] * sin_pair
    return rotated.reshape(x.shape).astype(x.dtype)
