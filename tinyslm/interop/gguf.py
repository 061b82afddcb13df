"""GGUF files <-> tinyslm run directories: the format of llama.cpp and Ollama.

A GGUF file is one self-contained model: a list of metadata (``llama.block_count = 30``,
``tokenizer.ggml.tokens = [...]``, ...) followed by named tensors, each stored in float32, float16
or a block-quantized format (Q8_0: blocks of 32 weights as int8 codes + one scale; Q4_0/Q4_1 and
the K-quants: 4-6 bits per weight). Reading it takes the ``gguf`` package, which dequantizes
every block format to float32.

A GGUF file is what llama.cpp's ``convert_hf_to_gguf.py`` makes from a Hugging Face checkpoint,
so this module goes through the Hugging Face tensors of :mod:`tinyslm.interop.hf` and adds only
what that converter changes:

* **Names**: ``model.layers.3.self_attn.q_proj.weight`` -> ``blk.3.attn_q.weight``. The ``gguf``
  package's ``TensorNameMap`` is that mapping; composed with the architecture's table in
  :mod:`tinyslm.interop.architectures`, it gives the GGUF name of every tinyslm parameter, both ways.
* **Layout**: every matrix is stored (out, in) like ``torch.nn.Linear``, so GPT-2's Conv1D
  matrices, which Hugging Face keeps (in, out), are transposed.
* **The llama architecture permutes the rows of q and k.** RoPE rotates pairs of features, and
  there are two conventions for which features pair up. Meta's original Llama pairs neighbours
  (0, 1), (2, 3), ...; Hugging Face pairs each feature of the first half of a head with the
  same one in the second half, (i, i + head_dim/2) ("rotate half"), and its conversion script
  reordered the q and k rows of Meta's weights to match. llama.cpp's ``llama`` architecture
  rotates neighbours, as Meta did, so its converter reorders them back; we undo that on import
  and redo it on export. The ``qwen2`` architecture rotates halves in llama.cpp too (its
  "NeoX" mode), so nothing is permuted there, and GPT-2 has no RoPE.
* **Llama 3's RoPE scaling** is not stored as its four numbers but as its effect: a
  ``rope_freqs.weight`` tensor of one divisor per frequency. We write it on export and recover
  the four numbers from it on import.

The tokenizer travels inside the file too: see :mod:`tinyslm.interop.gguf_tokenizer`.
"""

from __future__ import annotations

import math
from dataclasses import replace
from pathlib import Path

import gguf
import numpy as np

from tinyslm.config import ModelConfig, RopeScaling
from tinyslm.errors import CheckpointError
from tinyslm.interop.architectures import GPT2, LLAMA, QWEN2, Architecture, architecture_of
from tinyslm.interop.gguf_tokenizer import tokenizer_from_gguf, write_tokenizer
from tinyslm.interop.hf import imported_run_config, model_from_hf_state, to_hf_state
from tinyslm.interop.hf_tokenizer import HFTokenizer
from tinyslm.model import TransformerLM, rope_frequencies
from tinyslm.tokenizer import Tokenizer
from tinyslm.train.checkpoint import load_run, save_run

ARCHITECTURES = {arch.gguf_arch: arch for arch in (GPT2, LLAMA, QWEN2)}
ROPE_FREQS = "rope_freqs.weight"
DTYPES = {"f32": gguf.GGMLQuantizationType.F32, "q8_0": gguf.GGMLQuantizationType.Q8_0}
_FILE_TYPES = {"f32": gguf.LlamaFileType.ALL_F32, "q8_0": gguf.LlamaFileType.MOSTLY_Q8_0}

# "{arch}.KEY" metadata <-> ModelConfig field. (GPT-2 files have no KV-head count and no RoPE.)
_METADATA = {
    "context_length": "max_seq_len", "embedding_length": "d_model", "block_count": "n_layers",
    "feed_forward_length": "d_ff", "attention.head_count": "n_heads", "attention.head_count_kv": "n_kv_heads",
    "rope.freq_base": "rope_theta",
}
_EPS_KEY = {"rmsnorm": "attention.layer_norm_rms_epsilon", "layernorm": "attention.layer_norm_epsilon"}

# ------------------------------------------------------------------------------------ tensors


def gguf_table(arch: Architecture, n_layers: int) -> dict[str, tuple[str, str]]:
    """Hugging Face tensor name -> (GGUF tensor name, Hugging Face layout), for every tensor ``arch`` can have."""
    name_map = gguf.get_tensor_name_map(next(k for k, v in gguf.MODEL_ARCH_NAMES.items() if v == arch.gguf_arch), n_layers)
    return {entry.theirs: (name_map.get_name(entry.theirs, try_suffixes=(".weight", ".bias")), entry.layout)
            for entry in arch.tensor_maps(None, n_layers)}


def _permute_rope_rows(w: np.ndarray, n_heads: int, *, to_gguf: bool) -> np.ndarray:
    """Reorder q or k rows (n_heads * head_dim, ...) between the two RoPE pairings (see module doc).

    Hugging Face, per head: [x_0 .. x_{D/2-1}, y_0 .. y_{D/2-1}] (x_i rotates with y_i);
    llama.cpp ``llama``:    [x_0, y_0, x_1, y_1, ...].
    """
    half = w.shape[0] // n_heads // 2
    if to_gguf:
        return w.reshape(n_heads, 2, half, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)
    return w.reshape(n_heads, half, 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def _rope_heads(arch: Architecture, config: ModelConfig, name: str) -> int | None:
    """How many heads' q or k rows tensor ``name`` holds, if the GGUF architecture permutes it."""
    if arch is LLAMA and name.endswith(("q_proj.weight", "k_proj.weight")):
        return config.n_heads if "q_proj" in name else config.n_kv_heads
    return None


def _to_gguf_layout(arch: Architecture, config: ModelConfig, name: str, layout: str, w: np.ndarray) -> np.ndarray:
    """One Hugging Face tensor -> its GGUF form: (out, in) matrices, llama's q/k rows permuted."""
    w = w.T if layout == "conv1d" and w.ndim == 2 else w
    heads = _rope_heads(arch, config, name)
    return w if heads is None else _permute_rope_rows(w, heads, to_gguf=True)


def _from_gguf_layout(arch: Architecture, config: ModelConfig, name: str, layout: str, w: np.ndarray) -> np.ndarray:
    """The inverse of :func:`_to_gguf_layout`."""
    heads = _rope_heads(arch, config, name)
    w = w if heads is None else _permute_rope_rows(w, heads, to_gguf=False)
    return w.T if layout == "conv1d" and w.ndim == 2 else w


# ------------------------------------------------------------------------------------ RoPE scaling


def _rope_factors(config: ModelConfig) -> np.ndarray:
    """Llama 3 scaling as llama.cpp stores it: the divisor of each frequency, base / scaled."""
    base = rope_frequencies(config.head_dim, config.rope_theta)
    return np.asarray(base / rope_frequencies(config.head_dim, config.rope_theta, config.rope_scaling), np.float32)


def _rope_scaling_from_factors(factors: np.ndarray, config: ModelConfig, original: int) -> RopeScaling:
    """Recover (factor, low_freq_factor, high_freq_factor) from llama.cpp's per-frequency divisors.

    Long wavelengths are divided by ``factor`` (the largest divisor), short ones by 1, and in the
    band between, 1/divisor = (1 - s)/factor + s where s = (original/wavelength - low)/(high - low)
    is a straight line in 1/wavelength: two points of the band fix ``low`` and ``high``.
    """
    factors = np.asarray(factors, np.float64)
    factor = float(factors.max())
    inv_wavelength = np.asarray(rope_frequencies(config.head_dim, config.rope_theta), np.float64) / (2 * math.pi)
    band = (factors > 1 + 1e-6) & (factors < factor - 1e-6)
    if band.sum() >= 2:
        s = (1 / factors[band] - 1 / factor) / (1 - 1 / factor)
        slope, intercept = np.polyfit(original * inv_wavelength[band], s, 1)  # s = slope*x + intercept
        low = -intercept / slope
        scaling = RopeScaling(factor, float(low), float(low + 1 / slope), original)
    else:  # too few points to fit: Llama 3's published values, checked below
        scaling = RopeScaling(factor, 1.0, 4.0, original)
    if not np.allclose(_rope_factors(replace(config, rope_scaling=scaling)), factors, rtol=1e-3):
        raise CheckpointError(f"{ROPE_FREQS} does not match Llama 3's RoPE scaling; tinyslm cannot represent it")
    return scaling


# ------------------------------------------------------------------------------------ import


def _field(reader: gguf.GGUFReader, key: str, default=None):
    field = reader.fields.get(key)
    return default if field is None else field.contents()


def load_gguf(path: str | Path) -> tuple[TransformerLM, Tokenizer]:
    """Read a GGUF file (llama, qwen2 or gpt2 architecture; any quantization) into a model and tokenizer.

    Quantized weights are dequantized to float32: the model is the one the file describes,
    ready to evaluate, fine-tune or re-quantize with tinyslm's own methods.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"GGUF file {path} not found")
    reader = gguf.GGUFReader(path)
    arch_name = _field(reader, "general.architecture")
    if arch_name not in ARCHITECTURES:
        raise CheckpointError(f"{path}: unsupported GGUF architecture {arch_name!r}; tinyslm imports {sorted(ARCHITECTURES)}")
    arch = ARCHITECTURES[arch_name]
    tensors = {t.name: t for t in reader.tensors}
    config = _config_from_gguf(reader, arch, tensors, path)
    table = gguf_table(arch, config.n_layers)
    state = {}
    for hf_name, (gguf_name, layout) in table.items():
        if gguf_name in tensors and not (hf_name == "lm_head.weight" and config.tie_embeddings):
            t = tensors[gguf_name]
            w = np.asarray(gguf.quants.dequantize(t.data, t.tensor_type), np.float32)
            state[hf_name] = _from_gguf_layout(arch, config, hf_name, layout, w)
    names = {hf_name: gguf_name for hf_name, (gguf_name, _) in table.items()}
    unknown = sorted(set(tensors) - set(names.values()) - {ROPE_FREQS})
    if unknown:
        raise CheckpointError(f"{path}: tensor(s) {', '.join(unknown[:5])} are not part of the {arch_name} "
                              "architecture as tinyslm understands it; refusing to drop them silently")
    model = model_from_hf_state(config, arch, state, str(path), names)
    metadata = {key: f.contents() for key, f in reader.fields.items() if key.startswith("tokenizer.")}
    return model, tokenizer_from_gguf(metadata, str(path))


def import_gguf(path: str | Path, out: str | Path) -> Path:
    """Convert a GGUF file into the tinyslm run directory ``out`` (see :func:`load_gguf`)."""
    model, tokenizer = load_gguf(path)
    return save_run(out, imported_run_config(model.config), model, tokenizer, meta={"imported_from": str(path)})


def _config_from_gguf(reader: gguf.GGUFReader, arch: Architecture, tensors: dict, path: Path) -> ModelConfig:
    """ModelConfig from the ``{arch}.*`` metadata; vocabulary size and tying from the tensors."""
    fields = {}
    for key, ours in _METADATA.items():
        value = _field(reader, f"{arch.gguf_arch}.{key}")
        if value is not None:
            fields[ours] = _f32(value) if isinstance(value, float) else value
    missing = [f"{arch.gguf_arch}.{k}" for k in ("block_count", "embedding_length", "attention.head_count")
               if _METADATA[k] not in fields]
    if missing or "token_embd.weight" not in tensors:
        raise CheckpointError(f"{path}: missing {', '.join(missing) or 'tensor token_embd.weight'}; is the file complete?")
    embed, output = tensors["token_embd.weight"], tensors.get("output.weight")
    # Some converters store a tied head twice (GPT-2 always does): identical bytes mean tied.
    tied = output is None or (output.tensor_type == embed.tensor_type and np.array_equal(output.data, embed.data))
    reference = ModelConfig(preset=arch.preset)
    eps = _field(reader, f"{arch.gguf_arch}.{_EPS_KEY[reference.norm]}")
    config = ModelConfig(preset=arch.preset, vocab_size=int(embed.shape[-1]), tie_embeddings=tied,
                         norm_eps=reference.norm_eps if eps is None else _f32(eps), **fields, **arch.fixed)
    if ROPE_FREQS in tensors:
        original = int(_field(reader, f"{arch.gguf_arch}.rope.scaling.original_context_length", 8192))
        scaling = _rope_scaling_from_factors(np.asarray(tensors[ROPE_FREQS].data), config, original)
        config = replace(config, rope_scaling=scaling)
    return config


def _f32(value: float) -> float:
    """GGUF stores floats as float32; 7 significant digits recover the decimal that was written (1e-05)."""
    return float(f"{value:.7g}")


# ------------------------------------------------------------------------------------ export


def export_gguf(run_dir: str | Path, path: str | Path, dtype: str = "f32") -> Path:
    """Write the run ``run_dir`` as one GGUF file that llama.cpp and Ollama can run.

    ``dtype="q8_0"`` stores every matrix whose rows are a multiple of 32 long as Q8_0 (about a
    quarter of the size of float32, with a relative error around 0.5%); norms, biases and other
    small tensors stay float32, as llama.cpp's own converter does.
    """
    if dtype not in DTYPES:
        raise CheckpointError(f"dtype must be one of {sorted(DTYPES)}, got {dtype!r}")
    run = load_run(run_dir)
    config = run.config.model
    arch = architecture_of(config)
    tokenizer = HFTokenizer.convert(run.tokenizer)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    writer = gguf.GGUFWriter(path, arch.gguf_arch)
    writer.add_name(Path(run_dir).name)
    writer.add_file_type(_FILE_TYPES[dtype])
    _write_config(writer, arch, config)
    write_tokenizer(writer, tokenizer)

    table = gguf_table(arch, config.n_layers)
    for hf_name, w in to_hf_state(run.model, arch).items():
        gguf_name, layout = table[hf_name]
        w = _to_gguf_layout(arch, config, hf_name, layout, w)
        if dtype == "q8_0" and w.ndim == 2 and w.shape[1] % 32 == 0:  # Q8_0 blocks are 32 weights of one row
            writer.add_tensor(gguf_name, gguf.quants.quantize(w, DTYPES[dtype]), raw_dtype=DTYPES[dtype])
        else:
            writer.add_tensor(gguf_name, np.ascontiguousarray(w, np.float32))
    if config.rope_scaling is not None:
        writer.add_tensor(ROPE_FREQS, _rope_factors(config))
        writer.add_rope_scaling_orig_ctx_len(config.rope_scaling.original_max_seq_len)  # read by our import only
    if dtype != "f32":
        writer.add_quantization_version(gguf.GGML_QUANT_VERSION)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


def _write_config(writer: gguf.GGUFWriter, arch: Architecture, config: ModelConfig) -> None:
    """The ``{arch}.*`` hyperparameters llama.cpp reads to build the graph."""
    for key, ours in _METADATA.items():
        if arch is GPT2 and key in ("attention.head_count_kv", "rope.freq_base"):
            continue
        value = getattr(config, ours)
        writer.add_key_value(f"{arch.gguf_arch}.{key}", value,
                             gguf.GGUFValueType.FLOAT32 if isinstance(value, float) else gguf.GGUFValueType.UINT32)
    writer.add_key_value(f"{arch.gguf_arch}.{_EPS_KEY[config.norm]}", config.norm_eps, gguf.GGUFValueType.FLOAT32)
    writer.add_vocab_size(config.vocab_size)
    if config.positions == "rope":
        writer.add_rope_dimension_count(config.head_dim)
