"""Decoding against its references: the uncached forward pass, one-by-one generation, hand-computed samplers.

Compilation dominates these tests, so the models, prompt sets and ``max_new_tokens`` are shared:
most tests reuse a handful of compiled loops.
"""

from contextlib import contextmanager

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from tinyslm.config import ModelConfig
from tinyslm.decode import (
    GREEDY, MinP, RepetitionPenalty, Sampler, Temperature, TopK, TopP, decode_step, generate, generate_ids,
    make_sampler, prefill, prompt_bucket, stream,
)
from tinyslm.errors import GenerationError
from tinyslm.model import TransformerLM
from tinyslm.tokenizer import SentencePieceTokenizer

CONTEXT = 128
NEW = 12  # max_new_tokens of most tests (part of the compiled shapes, so shared)
BATCH = [[5, 17, 9], [40, 3, 8, 11, 2, 30, 7, 19, 23], list(range(50, 70))]  # buckets 16, 16, 32
SAMPLED = make_sampler(temperature=1.0)
TEXT = (
    "The quick brown fox jumps over the lazy dog. A small model learns to write one token at a time.\n"
    "Attention lets every token look back at the tokens before it; the cache keeps their keys and values.\n"
) * 8


def perturbed_model(preset: str, vocab_size: int, **extra) -> TransformerLM:
    """A tiny model with weights moved off their 0.02 init, so that its outputs vary from token to token."""
    config = ModelConfig(preset=preset, vocab_size=vocab_size, d_model=32, n_layers=2, n_heads=4,
                         max_seq_len=CONTEXT, **extra)
    model = TransformerLM(config, rngs=nnx.Rngs(0))
    rng = np.random.default_rng(1)
    nnx.update(model, jax.tree.map(lambda x: x + 0.3 * rng.standard_normal(x.shape, np.float32),
                                   nnx.state(model, nnx.Param)))
    return model


@pytest.fixture(scope="module")
def tokenizer() -> SentencePieceTokenizer:
    return SentencePieceTokenizer.train(TEXT, vocab_size=300)


@pytest.fixture(scope="module")
def models(tokenizer) -> dict[str, TransformerLM]:
    return {
        "gpt": perturbed_model("gpt", tokenizer.vocab_size),
        "llama": perturbed_model("llama", tokenizer.vocab_size, n_kv_heads=2),  # grouped-query attention
    }


@contextmanager
def count_compiles():
    """Count XLA compilations (not cache hits) while the block runs."""
    events = []

    def listener(name, duration, **kwargs):
        if name == "/jax/core/compile/backend_compile_duration":
            events.append(name)

    jax.monitoring.register_event_duration_secs_listener(listener)
    try:
        yield events
    finally:
        jax.monitoring.unregister_event_duration_listener(listener)


# ----------------------------------------------------------------------------- the cache


@pytest.mark.parametrize("preset", ["gpt", "llama"])
def test_cached_logits_equal_uncached_at_every_step(models, preset):
    model = models[preset]
    rng = np.random.default_rng(0)
    seqs = jnp.asarray(rng.integers(0, model.config.vocab_size, (2, 14)))
    # By causality (tested in test_model), full[b, t] is the uncached forward of the prefix seqs[b, :t+1].
    full = nnx.jit(lambda m, x: m(x))(model, seqs)
    lengths = jnp.array([3, 6])  # ragged prompts, right-padded to 8 in one batch
    prompt = jnp.where(jnp.arange(8) < lengths[:, None], seqs[:, :8], 0)
    logits, cache = nnx.jit(prefill, static_argnums=3)(model, prompt, lengths, 16)
    rows = jnp.arange(2)
    np.testing.assert_allclose(logits, full[rows, lengths - 1], atol=1e-5)
    step = nnx.jit(decode_step)
    for _ in range(8):  # teacher-forced: feed each row's next true token
        logits, cache = step(model, cache, seqs[rows, cache.lengths])
        np.testing.assert_allclose(logits, full[rows, cache.lengths - 1], atol=1e-5)


@pytest.mark.parametrize("preset", ["gpt", "llama"])
def test_greedy_with_cache_equals_without(models, preset):
    cached = generate_ids(models[preset], BATCH, max_new_tokens=NEW)
    uncached = generate_ids(models[preset], BATCH, max_new_tokens=NEW, use_cache=False)
    assert cached.token_ids == uncached.token_ids
    assert cached.new_tokens == [NEW] * 3 and cached.finish_reasons == ["max_new_tokens"] * 3
    assert len({t for ids in cached.token_ids for t in ids}) > 5  # not one repeated token


def test_batched_equals_one_by_one(models):
    batched = generate_ids(models["llama"], BATCH, max_new_tokens=NEW)
    alone = [generate_ids(models["llama"], [p], max_new_tokens=NEW).token_ids[0] for p in BATCH]
    assert batched.token_ids == alone


# ----------------------------------------------------------------------------- stopping


def test_eos_stops_only_the_rows_that_emit_it(models):
    free = generate_ids(models["llama"], BATCH, max_new_tokens=NEW).token_ids
    eos = free[0][3]
    result = generate_ids(models["llama"], BATCH, max_new_tokens=NEW, eos_id=eos)
    for ids, got, reason in zip(free, result.token_ids, result.finish_reasons):
        if eos in ids:
            assert got == ids[: ids.index(eos) + 1] and reason == "eos"
        else:
            assert got == ids and reason == "max_new_tokens"
    assert result.finish_reasons[0] == "eos"


def test_context_full_stops_the_row_and_says_so(models):
    long = list(range(1, CONTEXT - 5))  # room for 6 more tokens in the context
    result = generate_ids(models["llama"], [long, [5, 6, 7]], max_new_tokens=NEW)
    assert result.finish_reasons == ["context_full", "max_new_tokens"]
    assert result.new_tokens == [CONTEXT - len(long), NEW]


def test_too_long_prompt_is_an_error_unless_truncation_is_asked(models):
    too_long = list(range(1, CONTEXT + 20))
    with pytest.raises(GenerationError, match="truncate_prompt=True"):
        generate_ids(models["llama"], [too_long], max_new_tokens=NEW)
    with pytest.raises(GenerationError, match="no room"):
        generate_ids(models["llama"], [list(range(CONTEXT))], max_new_tokens=NEW)
    # Truncation keeps the end of the prompt and leaves room for the requested tokens.
    cut = generate_ids(models["llama"], [too_long, [5, 6, 7]], max_new_tokens=NEW, truncate_prompt=True)
    kept = generate_ids(models["llama"], [too_long[-(CONTEXT - NEW):], [5, 6, 7]], max_new_tokens=NEW)
    assert cut.token_ids == kept.token_ids and cut.finish_reasons == ["max_new_tokens"] * 2


def test_bad_requests_are_generation_errors(models):
    with pytest.raises(GenerationError, match="vocabulary"):
        generate_ids(models["llama"], [[1, 10_000]])
    with pytest.raises(GenerationError, match="empty"):
        generate_ids(models["llama"], [[]])
    with pytest.raises(GenerationError, match="max_new_tokens"):
        generate_ids(models["llama"], [[1]], max_new_tokens=0)


# ----------------------------------------------------------------------------- text, streaming, seeds

PROMPT = "Überraschung: 日本語 and ✓ — the fox"  # characters the tokenizer only knows as UTF-8 bytes


def test_seeds_reproduce_and_differ(models, tokenizer):
    run = lambda seed: generate(models["llama"], tokenizer, PROMPT, max_new_tokens=50, sampler=SAMPLED, seed=seed)
    first, again, other = run(0), run(0), run(1)
    assert first.token_ids == again.token_ids and first.texts == again.texts
    assert first.token_ids != other.token_ids


def test_streaming_equals_generate_with_multibyte_text(models, tokenizer):
    assert any(i < 261 for i in tokenizer.encode(PROMPT))  # the prompt really uses byte tokens
    whole = generate(models["llama"], tokenizer, PROMPT, max_new_tokens=50, sampler=SAMPLED, seed=3)
    text_stream = stream(models["llama"], tokenizer, PROMPT, max_new_tokens=50, sampler=SAMPLED, seed=3)
    pieces = list(text_stream)
    assert "".join(pieces) == whole.texts[0] == tokenizer.decode(whole.token_ids[0])
    assert len(pieces) > 5 and text_stream.result.token_ids == whole.token_ids
    assert text_stream.result.finish_reasons == whole.finish_reasons == ["max_new_tokens"]


def test_stop_strings_cut_the_text_in_generate_and_stream(models, tokenizer):
    free = generate(models["llama"], tokenizer, PROMPT, max_new_tokens=50, sampler=SAMPLED, seed=3)
    text, ids = free.texts[0], free.token_ids[0]
    # A stop string that starts with a character made of several byte tokens, well into the text.
    stop = next(text[i : i + 2] for i in range(10, len(text) - 1)
                if ord(text[i]) > 127 and "\ufffd" not in text[i : i + 2])
    expected = text[: text.index(stop)]
    completes = next(k for k in range(1, len(ids) + 1) if stop in tokenizer.decode(ids[:k]))
    stopped = generate(models["llama"], tokenizer, PROMPT, max_new_tokens=50, sampler=SAMPLED, seed=3,
                       stop=["never appears", stop])
    assert stopped.texts == [expected] and stopped.finish_reasons == ["stop_string"]
    assert stopped.token_ids == [ids[:completes]]
    text_stream = stream(models["llama"], tokenizer, PROMPT, max_new_tokens=50, sampler=SAMPLED, seed=3, stop=[stop])
    assert "".join(text_stream) == expected and text_stream.result.token_ids == stopped.token_ids


# ----------------------------------------------------------------------------- compilation


def test_no_recompilation_within_a_bucket_or_across_tokens(models, tokenizer):
    model = models["llama"]
    assert prompt_bucket(3, CONTEXT) == prompt_bucket(11, CONTEXT) == 16
    generate_ids(model, [[5, 6, 7]], max_new_tokens=NEW)  # compiles (or reuses) the bucket-16 loop
    with count_compiles() as compiles:
        result = generate_ids(model, [list(range(20, 31))], max_new_tokens=NEW)
    assert compiles == [] and result.new_tokens == [NEW]

    list(stream(model, tokenizer, PROMPT, max_new_tokens=50, sampler=SAMPLED))
    with count_compiles() as compiles:
        pieces = list(stream(model, tokenizer, PROMPT + " again", max_new_tokens=50, sampler=SAMPLED, seed=7))
    assert compiles == [] and len(pieces) > 5  # 50 tokens, one compiled step each, nothing compiled


def test_result_reports_speed_for_the_cli(models):
    result = generate_ids(models["llama"], [[5, 6, 7]], max_new_tokens=NEW)
    summary = result.summary()
    assert set(summary) == {"text", "new_tokens", "finish_reason", "prefill_ms", "tokens_per_s", "ms_per_token"}
    assert summary["new_tokens"] == NEW and result.decode_steps == NEW - 1
    assert summary["tokens_per_s"] == pytest.approx(1000 / result.ms_per_token, rel=1e-2)
    assert result.summary_line().startswith(f"{NEW} tokens · prefill ")


# ----------------------------------------------------------------------------- samplers by hand

PROBS = np.array([[0.15, 0.5, 0.05, 0.3]])  # ranked: id 1 (0.5), id 3 (0.3), id 0 (0.15), id 2 (0.05)
LOGITS = jnp.log(jnp.asarray(PROBS, jnp.float32))
NONE_SEEN = jnp.zeros(PROBS.shape, bool)


def kept(logits_filter, logits=LOGITS) -> set[int]:
    return set(np.flatnonzero(np.isfinite(np.asarray(logits_filter(logits, NONE_SEEN)[0]))).tolist())


def test_top_k_keeps_exactly_k():
    assert kept(TopK(1)) == {1} and kept(TopK(2)) == {1, 3} and kept(TopK(9)) == {0, 1, 2, 3}
    ties = jnp.array([[2.0, 1.0, 2.0, 2.0]])
    assert len(kept(TopK(2), ties)) == 2


def test_top_p_keeps_the_smallest_set_reaching_p():
    assert kept(TopP(0.45)) == {1}  # 0.5 >= 0.45 alone
    assert kept(TopP(0.79)) == {1, 3}  # 0.5 + 0.3 = 0.8
    assert kept(TopP(0.81)) == {1, 3, 0}  # 0.95
    assert kept(TopP(1.0)) == {0, 1, 2, 3}


def test_min_p_keeps_tokens_above_a_fraction_of_the_top():
    assert kept(MinP(0.25)) == {1, 3, 0}  # threshold 0.125
    assert kept(MinP(0.5)) == {1, 3}  # threshold 0.25
    assert kept(MinP(0.0)) == {0, 1, 2, 3}


def test_repetition_penalty_and_temperature_math():
    logits = jnp.array([[2.0, -1.0, 0.5, 3.0]])
    seen = jnp.array([[True, True, False, False]])
    np.testing.assert_allclose(RepetitionPenalty(2.0)(logits, seen), [[1.0, -2.0, 0.5, 3.0]])
    np.testing.assert_allclose(Temperature(0.5)(logits, seen), [[4.0, -2.0, 1.0, 6.0]])


def test_samplers_pick_from_what_the_filters_keep():
    assert int(GREEDY(LOGITS, NONE_SEEN, jax.random.key(0))[0]) == 1
    # Penalised, token 1 (log 0.5 < 0, times 4) falls behind token 3.
    assert int(Sampler((RepetitionPenalty(4.0),), greedy=True)(LOGITS, jnp.array([[0, 1, 0, 0]], bool), None)[0]) == 3
    many = jnp.repeat(LOGITS, 2000, axis=0)
    draws = np.asarray(Sampler((TopK(2),))(many, jnp.zeros(many.shape, bool), jax.random.key(0)))
    assert set(draws.tolist()) == {1, 3}
    assert np.mean(draws == 1) == pytest.approx(0.5 / 0.8, abs=0.04)  # renormalised over the kept two


def test_make_sampler_orders_filters_and_validates():
    assert make_sampler() == GREEDY
    s = make_sampler(0.8, top_k=5, top_p=0.9, min_p=0.05, repetition_penalty=1.1)
    assert s == Sampler((RepetitionPenalty(1.1), Temperature(0.8), TopK(5), TopP(0.9), MinP(0.05)))
    for bad in [dict(temperature=-1), dict(temperature=1, top_k=0), dict(temperature=1, top_p=1.5),
                dict(temperature=1, min_p=2), dict(repetition_penalty=0)]:
        with pytest.raises(GenerationError):
            make_sampler(**bad)
