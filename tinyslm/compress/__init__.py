"""Making a trained model smaller: quantization (``quantize``, ``quantized``, ``gptq``, ``qat``), distillation
(``distill``: a small student trained on a larger teacher's predictions) and pruning (``prune``:
magnitude, Wanda, N:M; ``structured``: fewer heads, neurons, layers; ``prune_run``: a run end to end)."""

from tinyslm.compress.quantize import dequantize, fake_quantize, pack_int4, quantize, unpack_int4
from tinyslm.compress.quantized import QuantizedEmbedding, QuantizedLinear, quantize_model
from tinyslm.compress.gptq import gptq_model
from tinyslm.compress.prune import compute_masks, apply_masks, mask_constraint, nm_mask, unstructured_mask, wanda_scores
from tinyslm.compress.structured import prune_structured
from tinyslm.compress.prune_run import PruneSpec, prune_run, write_pruned_run

__all__ = [
    "quantize", "dequantize", "pack_int4", "unpack_int4", "fake_quantize", "quantize_model", "gptq_model", "QuantizedLinear",
    "QuantizedEmbedding", "compute_masks", "apply_masks", "mask_constraint", "nm_mask", "unstructured_mask",
    "wanda_scores", "prune_structured", "PruneSpec", "prune_run", "write_pruned_run",
]
