"""Tests for tinyslm.tokenizer: exact round trips, special ids, save/load, and clear errors."""

from __future__ import annotations

import json
import os
import random
import re
from pathlib import Path

import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tinyslm.config import TokenizerConfig
from tinyslm.errors import TokenizerError
from tinyslm.tokenizer import (
    BOS_ID,
    EOS_ID,
    MIN_SENTENCEPIECE_VOCAB,
    PAD_ID,
    UNK_ID,
    CharTokenizer,
    SentencePieceTokenizer,
    Tokenizer,
    load_tokenizer,
    train_tokenizer,
)

DATA_DIR = Path(os.environ.get("TINYSLM_DATA_DIR", Path(__file__).resolve().parents[2] / "shared" / "data"))
PROPERTY = settings(max_examples=150, deadline=None)


def make_corpus(n_lines: int = 300, seed: int = 0) -> str:
    """About 12 KB of English-like lines with digits, punctuation and some indentation."""
    rng = random.Random(seed)
    subjects = ["the cat", "a small dog", "my old friend", "the teacher", "every student", "the river"]
    verbs = ["sees", "follows", "remembers", "draws", "carries", "visits", "likes"]
    objects = ["the garden", "a red apple", "the long road", "two birds", "the quiet village", "a letter"]
    tails = ["in 2024", "at 10:30", "after 3 days", "on page 17", "with 42 friends", "again", "today"]
    lines = []
    for _ in range(n_lines):
        sentence = f"{rng.choice(subjects)} {rng.choice(verbs)} {rng.choice(objects)} {rng.choice(tails)}."
        lines.append(("    " if rng.random() < 0.1 else "") + sentence.capitalize())
    return "\n".join(lines) + "\n"


CORPUS = make_corpus()
# Corpus characters (so merges get exercised), the meta symbol, and any Unicode (byte fallback).
ANY_TEXT = st.text(
    st.one_of(st.sampled_from(sorted(set(CORPUS)) + ["\u2581", "\t", "\r"]), st.characters(codec="utf-8"))
)


@pytest.fixture(scope="module")
def bpe() -> SentencePieceTokenizer:
    return SentencePieceTokenizer.train(CORPUS, vocab_size=400, model_type="bpe")


@pytest.fixture(scope="module")
def unigram() -> SentencePieceTokenizer:
    return SentencePieceTokenizer.train(CORPUS, vocab_size=320, model_type="unigram")


# ---------------------------------------------------------------------------------------------
# CharTokenizer
# ---------------------------------------------------------------------------------------------


def test_char_vocabulary_is_the_sorted_distinct_characters():
    tok = CharTokenizer.from_text("hello world\n")
    assert tok.vocab_size == 9
    assert tok.encode("\n dehlorw") == list(range(9))
    assert (tok.bos_id, tok.eos_id, tok.pad_id, tok.unk_id) == (None, None, None, None)
    assert isinstance(tok, Tokenizer)


def test_char_shakespeare_has_nanogpt_vocabulary():
    path = DATA_DIR / "tinyshakespeare" / "input.txt"
    if not path.is_file():
        pytest.skip(f"{path} not available")
    assert CharTokenizer.from_text(path.read_text(encoding="utf-8")).vocab_size == 65


@PROPERTY
@given(st.text(st.sampled_from(sorted(set(CORPUS)))))
def test_char_round_trip(text):
    tok = CharTokenizer.from_text(CORPUS)
    ids = tok.encode(text)
    assert len(ids) == len(text)
    assert tok.decode(ids) == text


def test_char_unknown_character_names_it_and_its_position():
    tok = CharTokenizer.from_text("hello world")
    with pytest.raises(TokenizerError) as info:
        tok.encode("hello wörld")
    message = str(info.value)
    assert repr("ö") in message and "position 7" in message
    assert "rebuild" in message and "byte fallback" in message


def test_char_has_no_bos_or_eos():
    with pytest.raises(TokenizerError, match="no BOS/EOS"):
        CharTokenizer.from_text("abc").encode("abc", bos=True)


def test_char_save_load(tmp_path):
    tok = CharTokenizer.from_text(CORPUS + "é✓")
    tok.save(tmp_path / "new" / "dir")
    loaded = load_tokenizer(tmp_path / "new" / "dir")
    assert isinstance(loaded, CharTokenizer)
    assert loaded.vocab_size == tok.vocab_size
    assert loaded.encode(CORPUS + "✓é") == tok.encode(CORPUS + "✓é")


# ---------------------------------------------------------------------------------------------
# SentencePieceTokenizer
# ---------------------------------------------------------------------------------------------


@PROPERTY
@given(ANY_TEXT)
def test_bpe_round_trip_any_text(bpe, text):
    assert bpe.decode(bpe.encode(text)) == text


@PROPERTY
@given(ANY_TEXT)
def test_unigram_round_trip_any_text(unigram, text):
    assert unigram.decode(unigram.encode(text)) == text


EDGE_CASES = ["", "\u2581", "a\u2581b \u2581", "  two  spaces \t\ttabs\r\n\n\nend  ", "日本語 🙂"]


@pytest.mark.parametrize("text", EDGE_CASES)
def test_round_trip_edge_cases(bpe, unigram, text):
    for tok in (bpe, unigram):
        assert tok.decode(tok.encode(text)) == text


def test_learned_subwords_compress_the_corpus(bpe, unigram):
    assert bpe.vocab_size == 400 and unigram.vocab_size == 320
    assert bpe.model_type == "bpe" and unigram.model_type == "unigram"
    # Subwords beat one token per character on the text they learned from: by a wide margin for
    # BPE's 400 - 298 = 102 learned pieces, by less for unigram's 22 (this corpus allows no more).
    assert len(bpe.encode(CORPUS)) < len(CORPUS) / 2
    assert len(unigram.encode(CORPUS)) < len(CORPUS) * 3 / 4


def test_special_ids_and_bos_eos_flags(bpe):
    assert (bpe.pad_id, bpe.unk_id, bpe.bos_id, bpe.eos_id) == (0, 1, 2, 3) == (PAD_ID, UNK_ID, BOS_ID, EOS_ID)
    ids = bpe.encode("the cat")
    assert bpe.encode("the cat", bos=True) == [BOS_ID, *ids]
    assert bpe.encode("the cat", eos=True) == [*ids, EOS_ID]
    assert bpe.encode("the cat", bos=True, eos=True) == [BOS_ID, *ids, EOS_ID]
    assert UNK_ID not in bpe.encode("unseen: ĀāŒ∑ 🙂")  # byte fallback, never <unk>


def test_lone_surrogate_is_a_clear_error(bpe):
    with pytest.raises(TokenizerError, match=r"'\\ud800' at position 2 is a lone surrogate"):
        bpe.encode("ab\ud800")


def test_decode_skips_specials_and_accepts_arrays(bpe):
    ids = bpe.encode("the river", bos=True, eos=True) + [PAD_ID, PAD_ID]
    assert bpe.decode(ids) == "the river"
    assert bpe.decode(np.array(ids, dtype=np.int32)) == "the river"
    assert bpe.decode(jnp.array(ids)) == "the river"
    assert bpe.decode([]) == ""


def test_decode_rejects_out_of_range_ids(bpe):
    with pytest.raises(TokenizerError, match="400 is out of range"):
        bpe.decode([5, 400])
    with pytest.raises(TokenizerError, match="out of range"):
        CharTokenizer.from_text("ab").decode(np.array([0, -1]))


def test_newline_is_one_token_and_digits_are_split(bpe):
    newline = bpe.encode("\n")
    assert newline == [4]
    assert bpe.encode("a\nb").count(4) == 1
    # "2024" is frequent in the corpus, yet each digit stays its own token.
    ids = bpe.encode("in 2024")
    assert [bpe.decode([i]) for i in ids[-4:]] == ["2", "0", "2", "4"]


def test_sentencepiece_save_load(bpe, unigram, tmp_path):
    for tok in (bpe, unigram):
        directory = tmp_path / tok.model_type
        tok.save(directory)
        assert json.loads((directory / "tokenizer.json").read_text())["type"] == tok.model_type
        loaded = load_tokenizer(directory)
        assert isinstance(loaded, SentencePieceTokenizer)
        assert (loaded.model_type, loaded.vocab_size) == (tok.model_type, tok.vocab_size)
        assert loaded.encode(CORPUS, bos=True) == tok.encode(CORPUS, bos=True)


def test_training_is_deterministic_and_in_memory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    first = SentencePieceTokenizer.train(CORPUS, 300)
    second = SentencePieceTokenizer.train(CORPUS, 300)
    assert first._sp.serialized_model_proto() == second._sp.serialized_model_proto()
    assert list(tmp_path.iterdir()) == []


def test_train_tokenizer_dispatches_on_type():
    for kind, cls in [("char", CharTokenizer), ("bpe", SentencePieceTokenizer), ("unigram", SentencePieceTokenizer)]:
        tok = train_tokenizer(TokenizerConfig(type=kind, vocab_size=300), CORPUS)
        assert type(tok) is cls and isinstance(tok, Tokenizer)
        assert tok.decode(tok.encode(CORPUS)) == CORPUS


# ---------------------------------------------------------------------------------------------
# Errors
# ---------------------------------------------------------------------------------------------


def test_vocab_too_small_says_the_minimum():
    with pytest.raises(TokenizerError, match=f"at least {MIN_SENTENCEPIECE_VOCAB}"):
        SentencePieceTokenizer.train(CORPUS, 100)
    # Beyond the fixed 261 ids, each distinct character of the text (newline aside) needs one.
    minimum = MIN_SENTENCEPIECE_VOCAB + len(set(CORPUS) - {"\n"})
    with pytest.raises(TokenizerError, match=rf"minimum is {minimum}\b"):
        SentencePieceTokenizer.train(CORPUS, minimum - 1)
    assert SentencePieceTokenizer.train(CORPUS, minimum).vocab_size == minimum


def test_vocab_too_large_and_bad_inputs():
    with pytest.raises(TokenizerError, match=r"too large for this text: .* at most \d+ unigram pieces"):
        SentencePieceTokenizer.train(CORPUS, 2000, "unigram")
    with pytest.raises(TokenizerError, match="'bpe' or 'unigram'"):
        SentencePieceTokenizer.train(CORPUS, 400, "wordpiece")
    with pytest.raises(TokenizerError, match="empty text"):
        SentencePieceTokenizer.train("\n\n", 400)


def test_load_missing_tokenizer_names_the_path(tmp_path):
    missing = tmp_path / "nothing here"
    with pytest.raises(TokenizerError, match=re.escape(repr(str(missing)))):
        load_tokenizer(missing)


def test_load_corrupt_files(bpe, tmp_path):
    (tmp_path / "tokenizer.json").write_text("{not json")
    with pytest.raises(TokenizerError, match="not valid JSON"):
        load_tokenizer(tmp_path)
    (tmp_path / "tokenizer.json").write_text('{"type": "wordpiece"}')
    with pytest.raises(TokenizerError, match="unknown tokenizer type 'wordpiece'"):
        load_tokenizer(tmp_path)
    bpe.save(tmp_path)
    (tmp_path / "tokenizer.model").write_bytes(b"garbage")
    with pytest.raises(TokenizerError, match="not a valid sentencepiece model"):
        load_tokenizer(tmp_path)
    (tmp_path / "tokenizer.model").unlink()
    with pytest.raises(TokenizerError, match="tokenizer.model is missing"):
        load_tokenizer(tmp_path)
    with pytest.raises(TokenizerError, match="holds a 'bpe' tokenizer"):
        CharTokenizer.load(tmp_path)
