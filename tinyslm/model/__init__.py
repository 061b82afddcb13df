"""The transformer, one concept per module: embedding -> attention -> block -> transformer."""

from tinyslm.model.attention import LayerCache, blocked_attention, causal_attention, fused_attention
from tinyslm.model.block import layer_norm, rms_norm
from tinyslm.model.embedding import apply_rope, rope_frequencies
from tinyslm.model.transformer import TransformerLM, count_params, param_count

__all__ = [
    "TransformerLM", "LayerCache", "param_count", "count_params",
    "causal_attention", "blocked_attention", "fused_attention",
    "apply_rope", "rope_frequencies", "layer_norm", "rms_norm",
]
