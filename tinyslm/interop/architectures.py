"""The three Hugging Face architectures tinyslm speaks, each as one table used both ways.

Three architectures cover most small language models, and tinyslm's two presets cover all three:

* ``GPT2LMHeadModel`` -> ``preset="gpt"``.
* ``LlamaForCausalLM`` -> ``preset="llama"`` (SmolLM2, TinyLlama, Llama 3.2 with its "llama3"
  RoPE scaling).
* ``Qwen2ForCausalLM`` -> ``preset="llama"`` with ``qkv_bias=True``: a Llama with biases on q, k, v.

An :class:`Architecture` holds everything that differs between one of them and tinyslm: which
config.json key is which :class:`~tinyslm.config.ModelConfig` field, which settings tinyslm
cannot compute (they are refused, not ignored), and which tensor is which parameter. Import and
export read the same tables in opposite directions, so they cannot drift apart. Three tensor
layouts occur:

* ``linear`` — ``torch.nn.Linear`` stores its weight (out, in) and computes ``x @ W.T``;
  tinyslm's kernels are (in, out) and compute ``x @ W``, so the matrix is transposed.
* ``conv1d`` — GPT-2's ``Conv1D`` (despite its name, a linear layer) already stores (in, out).
  GPT-2 also fuses q, k and v into one ``c_attn`` matrix: tinyslm's three kernels side by side.
* ``same`` — embeddings, norm scales and biases are identical.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from tinyslm.config import ModelConfig, RopeScaling
from tinyslm.errors import CheckpointError
from tinyslm.interop.hf_tokenizer import HFTokenizer

@dataclass(frozen=True)
class TensorMap:
    """One correspondence: tinyslm parameter(s) <-> one Hugging Face tensor.

    ``ours`` names one parameter, or several that Hugging Face fuses along its output features.
    ``{i}`` in a name stands for the block's index.
    """

    ours: tuple[str, ...]
    theirs: str
    layout: str = "same"  # "linear" (transposed), "conv1d" (as is, may be fused) or "same"


def _linear(ours: str, theirs: str, layout: str = "linear") -> tuple[TensorMap, TensorMap]:
    """A linear layer: its kernel and its (optional) bias."""
    return TensorMap((f"{ours}.kernel",), f"{theirs}.weight", layout), TensorMap((f"{ours}.bias",), f"{theirs}.bias")


@dataclass(frozen=True)
class Architecture:
    """Everything that differs between a Hugging Face architecture and tinyslm, in one place.

    ``config_keys``: ModelConfig field -> config.json key. ``defaults``: the values transformers
    assumes for config.json keys that are absent. ``requires``: config.json keys whose value must be
    one of the listed ones (else the architecture uses a feature tinyslm does not have).
    ``fixed``: ModelConfig fields the architecture implies. ``tensors``: the name table.
    """

    hf_class: str
    model_type: str
    gguf_arch: str  # llama.cpp's name for it
    preset: str
    config_keys: dict[str, str]
    defaults: dict[str, object]
    requires: dict[str, tuple]
    tensors: tuple[TensorMap, ...]
    fixed: dict[str, object] = field(default_factory=dict)
    base_prefix: str = "model."  # some checkpoints omit it (the original GPT-2 files do)

    def tensor_maps(self, params: dict[str, tuple[int, ...]] | None, n_layers: int) -> list[TensorMap]:
        """The table for ``n_layers`` blocks, ``{i}`` expanded; with ``params`` (a model's parameter
        names), only the entries whose parameters the model has."""
        maps = []
        for entry in self.tensors:
            for i in range(n_layers) if "{i}" in entry.theirs else [None]:
                ours = tuple(name.format(i=i) for name in entry.ours)
                if params is None or all(name in params for name in ours):
                    maps.append(TensorMap(ours, entry.theirs.format(i=i), entry.layout))
        return maps


_LLAMA_TENSORS = (
    TensorMap(("embed.weight",), "model.embed_tokens.weight"),
    TensorMap(("blocks.{i}.attn_norm.scale",), "model.layers.{i}.input_layernorm.weight"),
    *_linear("blocks.{i}.attn.q", "model.layers.{i}.self_attn.q_proj"),
    *_linear("blocks.{i}.attn.k", "model.layers.{i}.self_attn.k_proj"),
    *_linear("blocks.{i}.attn.v", "model.layers.{i}.self_attn.v_proj"),
    *_linear("blocks.{i}.attn.o", "model.layers.{i}.self_attn.o_proj"),
    TensorMap(("blocks.{i}.mlp_norm.scale",), "model.layers.{i}.post_attention_layernorm.weight"),
    *_linear("blocks.{i}.mlp.gate", "model.layers.{i}.mlp.gate_proj"),
    *_linear("blocks.{i}.mlp.up", "model.layers.{i}.mlp.up_proj"),
    *_linear("blocks.{i}.mlp.down", "model.layers.{i}.mlp.down_proj"),
    TensorMap(("final_norm.scale",), "model.norm.weight"),
    TensorMap(("head.kernel",), "lm_head.weight", "linear"),
)

_LLAMA_CONFIG_KEYS = dict(
    vocab_size="vocab_size", d_model="hidden_size", n_layers="num_hidden_layers", n_heads="num_attention_heads",
    n_kv_heads="num_key_value_heads", d_ff="intermediate_size", max_seq_len="max_position_embeddings",
    norm_eps="rms_norm_eps", tie_embeddings="tie_word_embeddings",
)

LLAMA = Architecture(
    hf_class="LlamaForCausalLM", model_type="llama", gguf_arch="llama", preset="llama",
    config_keys=_LLAMA_CONFIG_KEYS,
    defaults=dict(tie_word_embeddings=False, rms_norm_eps=1e-6, max_position_embeddings=2048, rope_theta=10000.0),
    requires=dict(hidden_act=("silu",), attention_bias=(False,), mlp_bias=(False,)),
    tensors=_LLAMA_TENSORS,
)

QWEN2 = replace(
    LLAMA, hf_class="Qwen2ForCausalLM", model_type="qwen2", gguf_arch="qwen2", fixed=dict(qkv_bias=True),
    defaults=dict(tie_word_embeddings=False, rms_norm_eps=1e-6, max_position_embeddings=32768, rope_theta=10000.0),
    requires=dict(hidden_act=("silu",), use_sliding_window=(False,)),
)

GPT2 = Architecture(
    hf_class="GPT2LMHeadModel", model_type="gpt2", gguf_arch="gpt2", preset="gpt",
    config_keys=dict(
        vocab_size="vocab_size", d_model="n_embd", n_layers="n_layer", n_heads="n_head", d_ff="n_inner",
        max_seq_len="n_positions", norm_eps="layer_norm_epsilon", tie_embeddings="tie_word_embeddings",
    ),
    defaults=dict(tie_word_embeddings=True, layer_norm_epsilon=1e-5, n_positions=1024),
    requires=dict(activation_function=("gelu_new", "gelu_pytorch_tanh"), scale_attn_weights=(True,),
                  scale_attn_by_inverse_layer_idx=(False,)),
    tensors=(
        TensorMap(("embed.weight",), "transformer.wte.weight"),
        TensorMap(("pos_embed.weight",), "transformer.wpe.weight"),
        TensorMap(("blocks.{i}.attn_norm.scale",), "transformer.h.{i}.ln_1.weight"),
        TensorMap(("blocks.{i}.attn_norm.bias",), "transformer.h.{i}.ln_1.bias"),
        TensorMap(tuple(f"blocks.{{i}}.attn.{x}.kernel" for x in "qkv"), "transformer.h.{i}.attn.c_attn.weight", "conv1d"),
        TensorMap(tuple(f"blocks.{{i}}.attn.{x}.bias" for x in "qkv"), "transformer.h.{i}.attn.c_attn.bias"),
        *_linear("blocks.{i}.attn.o", "transformer.h.{i}.attn.c_proj", "conv1d"),
        TensorMap(("blocks.{i}.mlp_norm.scale",), "transformer.h.{i}.ln_2.weight"),
        TensorMap(("blocks.{i}.mlp_norm.bias",), "transformer.h.{i}.ln_2.bias"),
        *_linear("blocks.{i}.mlp.up", "transformer.h.{i}.mlp.c_fc", "conv1d"),
        *_linear("blocks.{i}.mlp.down", "transformer.h.{i}.mlp.c_proj", "conv1d"),
        TensorMap(("final_norm.scale",), "transformer.ln_f.weight"),
        TensorMap(("final_norm.bias",), "transformer.ln_f.bias"),
        TensorMap(("head.kernel",), "lm_head.weight", "linear"),
    ),
    base_prefix="transformer.",
)

ARCHITECTURES = {arch.hf_class: arch for arch in (GPT2, LLAMA, QWEN2)}

# ------------------------------------------------------------------------------------ configs


def find_architecture(hf_config: dict, where: str) -> Architecture:
    """The :class:`Architecture` that config.json's ``architectures`` (or ``model_type``) names."""
    names = list(hf_config.get("architectures") or [])
    for arch in ARCHITECTURES.values():
        if arch.hf_class in names or (not names and hf_config.get("model_type") == arch.model_type):
            return arch
    raise CheckpointError(
        f"{where}: unsupported architecture {names or hf_config.get('model_type')!r}; tinyslm imports "
        f"{sorted(ARCHITECTURES)}"
    )


def config_from_hf(hf_config: dict, where: str = "config.json") -> tuple[Architecture, ModelConfig]:
    """Read a Hugging Face config.json (as a dict) into the architecture and a tinyslm ModelConfig."""
    arch = find_architecture(hf_config, where)
    get = {**arch.defaults, **{k: v for k, v in hf_config.items() if v is not None}}.get
    for key, allowed in arch.requires.items():
        if key in hf_config and hf_config[key] not in allowed:
            raise CheckpointError(f"{where}: {key}={hf_config[key]!r} is not supported (tinyslm needs one of {allowed})")
    fields = {ours: get(theirs) for ours, theirs in arch.config_keys.items() if get(theirs) is not None}
    if arch.preset == "llama":
        fields["rope_theta"], fields["rope_scaling"] = _rope_from_hf(hf_config, arch, where)
    config = ModelConfig(preset=arch.preset, **fields, **arch.fixed)
    head_dim = hf_config.get("head_dim")
    if head_dim is not None and head_dim != config.head_dim:
        raise CheckpointError(f"{where}: head_dim={head_dim} is not hidden_size/num_attention_heads="
                              f"{config.head_dim}, which tinyslm assumes")
    return arch, config


def _rope_from_hf(hf_config: dict, arch: Architecture, where: str) -> tuple[float, RopeScaling | None]:
    """RoPE settings from either spelling: ``rope_parameters`` (transformers >= 5) or the older
    top-level ``rope_theta`` + ``rope_scaling``."""
    params = hf_config.get("rope_parameters") or {**(hf_config.get("rope_scaling") or {})}
    theta = float(params.get("rope_theta", hf_config.get("rope_theta", arch.defaults["rope_theta"])))
    kind = params.get("rope_type", params.get("type", "default"))
    if kind == "default":
        return theta, None
    if kind != "llama3":
        raise CheckpointError(f"{where}: RoPE scaling {kind!r} is not supported (tinyslm has 'default' and 'llama3')")
    return theta, RopeScaling(
        factor=float(params["factor"]), low_freq_factor=float(params["low_freq_factor"]),
        high_freq_factor=float(params["high_freq_factor"]),
        original_max_seq_len=int(params["original_max_position_embeddings"]),
    )


def architecture_of(config: ModelConfig) -> Architecture:
    """The Hugging Face architecture that computes exactly what ``config`` computes, or an error."""
    arch = GPT2 if config.preset == "gpt" else QWEN2 if config.qkv_bias else LLAMA
    reference = ModelConfig(preset=arch.preset, **arch.fixed)
    differs = [name for name in ("positions", "norm", "mlp", "bias", "qkv_bias")
               if getattr(config, name) != getattr(reference, name)]
    if arch is GPT2 and config.n_kv_heads != config.n_heads:
        differs.append("n_kv_heads")
    if differs:
        raise CheckpointError(
            f"this model differs from {arch.hf_class} in {', '.join(f'model.{d}' for d in differs)}; "
            f"only models with the standard {arch.preset!r} preset settings can be exported"
        )
    return arch


def config_to_hf(config: ModelConfig, tokenizer: HFTokenizer | None = None) -> tuple[Architecture, dict]:
    """A config.json (as a dict) for ``config``: the inverse of :func:`config_from_hf`.

    RoPE is written in the older spelling (``rope_theta``, ``rope_scaling``), which every
    transformers version reads.
    """
    arch = architecture_of(config)
    hf = {"architectures": [arch.hf_class], "model_type": arch.model_type, "torch_dtype": "float32"}
    hf.update({theirs: getattr(config, ours) for ours, theirs in arch.config_keys.items()})
    hf.update({key: allowed[0] for key, allowed in arch.requires.items()})
    if arch.preset == "llama":
        hf["rope_theta"] = config.rope_theta
        if config.rope_scaling is not None:
            s = config.rope_scaling
            hf["rope_scaling"] = dict(rope_type="llama3", factor=s.factor, low_freq_factor=s.low_freq_factor,
                                      high_freq_factor=s.high_freq_factor,
                                      original_max_position_embeddings=s.original_max_seq_len)
    if tokenizer is not None:
        hf.update(bos_token_id=tokenizer.bos_id, eos_token_id=tokenizer.eos_id, pad_token_id=tokenizer.pad_id)
    return arch, hf
