"""Tests for tinyslm.data: registry lookup and download, prepare/load_tokens, the batch sampler.

All offline: downloads use ``file://`` URLs to files written in tmp_path. The tests at the end
also check the real shared data when ``TINYSLM_DATA_DIR`` points at it (CI sets it).
"""

from __future__ import annotations

import csv
import dataclasses
import hashlib
import io
import os
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tinyslm.config import DataConfig
from tinyslm.data import (
    DATASETS,
    dataset_file,
    eval_batches,
    get_dataset,
    list_datasets,
    load_labeled,
    load_text,
    load_tokens,
    prepare,
    read_meta,
    sample_batch,
    split_point,
)
from tinyslm.data.prepare import _line_chunks
from tinyslm.errors import DataError

REAL_DATA_DIR = os.environ.get("TINYSLM_DATA_DIR")


class ByteTokenizer:
    """A stand-in tokenizer: one id per UTF-8 byte (so any text round-trips exactly)."""

    vocab_size = 256
    offset = 0

    def encode(self, text: str, *, bos: bool = False, eos: bool = False) -> list[int]:
        return [b + self.offset for b in text.encode("utf-8")]

    def decode(self, ids) -> str:
        return bytes(int(i) - self.offset for i in ids).decode("utf-8")


class WideTokenizer(ByteTokenizer):
    """Byte ids shifted past 65,535: a vocabulary that needs uint32 on disk."""

    vocab_size = 70_000
    offset = 65_500


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.fixture(autouse=True)
def private_cache(tmp_path, monkeypatch) -> Path:
    """Every test gets an empty cache of its own; the user's ~/.cache is never touched."""
    cache = tmp_path / "cache"
    monkeypatch.setenv("TINYSLM_CACHE_DIR", str(cache))
    return cache / "data"


@pytest.fixture
def toy(tmp_path, monkeypatch):
    """A registered dataset "toy" with one file, whose URL is a file:// path in tmp_path."""
    content = b"hello\nworld\n"
    upstream = tmp_path / "upstream" / "toy.txt"
    upstream.parent.mkdir()
    upstream.write_bytes(content)
    entry = dataclasses.replace(
        get_dataset("tinyshakespeare"),
        name="toy",
        files={"toy.txt": sha256(content)},
        urls={"toy.txt": upstream.as_uri()},
    )
    monkeypatch.setitem(DATASETS, "toy", entry)
    data_dir = tmp_path / "data_dir"
    monkeypatch.setenv("TINYSLM_DATA_DIR", str(data_dir))
    return dict(entry=entry, content=content, upstream=upstream, data_dir=data_dir)


def put(path: Path, content: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content)
    return path


# --------------------------------------------------------------------------------------------
# Registry
# --------------------------------------------------------------------------------------------


def test_registry_lists_the_five_datasets_with_pinned_files():
    names = [d.name for d in list_datasets()]
    assert names == ["symptoms", "tinyshakespeare", "tinystories", "symptom2disease", "diseases_symptoms"]
    for dataset in list_datasets():
        assert dataset.description and dataset.license
        for filename, digest in dataset.files.items():
            assert len(digest) == 64 and set(digest) <= set("0123456789abcdef"), filename
        assert set(dataset.urls) <= set(dataset.files)
    assert get_dataset("symptoms").files == {}
    assert "unverified" in get_dataset("symptom2disease").license


def test_unknown_dataset_lists_known_names():
    with pytest.raises(DataError, match="unknown dataset 'shakespear'.*tinyshakespeare"):
        get_dataset("shakespear")
    with pytest.raises(DataError, match="unknown dataset"):
        load_text(DataConfig(name="shakespear"))


def test_unknown_file_lists_the_dataset_files():
    with pytest.raises(DataError, match="no file 'valid.csv'.*test.csv.*train.csv"):
        dataset_file("symptom2disease", "valid.csv")


def test_data_dir_wins_over_cache_and_cache_over_download(toy, private_cache):
    in_cache = put(private_cache / "toy" / "toy.txt", toy["content"])
    in_data_dir = put(toy["data_dir"] / "toy" / "toy.txt", toy["content"])
    toy["upstream"].unlink()  # any attempt to download would now fail
    assert dataset_file("toy", "toy.txt") == in_data_dir
    in_data_dir.unlink()
    assert dataset_file("toy", "toy.txt") == in_cache


def test_download_lands_verified_in_the_cache(toy, private_cache):
    path = dataset_file("toy", "toy.txt")
    assert path == private_cache / "toy" / "toy.txt"
    assert path.read_bytes() == toy["content"]
    assert os.listdir(path.parent) == ["toy.txt"]  # no .part file left behind
    toy["upstream"].unlink()
    assert dataset_file("toy", "toy.txt") == path  # served from the cache now


def test_missing_everywhere_names_file_folders_url_and_remedy(toy, private_cache):
    toy["upstream"].unlink()
    with pytest.raises(DataError) as err:
        dataset_file("toy", "toy.txt")
    message = str(err.value)
    for needle in ("'toy.txt'", str(toy["data_dir"] / "toy" / "toy.txt"), str(private_cache / "toy" / "toy.txt"),
                   toy["upstream"].as_uri(), "the download failed", "set TINYSLM_DATA_DIR"):
        assert needle in message


def test_missing_error_says_when_data_dir_is_unset(toy, monkeypatch):
    monkeypatch.delenv("TINYSLM_DATA_DIR")
    toy["upstream"].unlink()
    with pytest.raises(DataError, match=r"TINYSLM_DATA_DIR is not set"):
        dataset_file("toy", "toy.txt")


def test_files_without_url_say_there_is_no_download(tmp_path, monkeypatch):
    monkeypatch.setenv("TINYSLM_DATA_DIR", str(tmp_path / "empty"))
    with pytest.raises(DataError, match="'train.csv'.*no public download") as err:
        dataset_file("symptom2disease", "train.csv")
    assert "TINYSLM_DATA_DIR" in str(err.value).split("To fix:")[1]


def test_download_with_wrong_sha256_is_rejected_and_not_kept(toy, private_cache):
    toy["upstream"].write_bytes(b"tampered\n")
    with pytest.raises(DataError) as err:
        dataset_file("toy", "toy.txt")
    message = str(err.value)
    assert "sha256 mismatch for toy.txt" in message
    assert sha256(toy["content"]) in message and sha256(b"tampered\n") in message
    assert os.listdir(private_cache / "toy") == []  # neither the bad file nor its .part


def test_corrupt_cached_file_is_downloaded_again(toy, private_cache):
    put(private_cache / "toy" / "toy.txt", b"half a fi")
    assert dataset_file("toy", "toy.txt").read_bytes() == toy["content"]


def test_wrong_file_in_data_dir_is_an_error(toy):
    put(toy["data_dir"] / "toy" / "toy.txt", b"something else\n")
    with pytest.raises(DataError, match="sha256 mismatch.*unset TINYSLM_DATA_DIR"):
        dataset_file("toy", "toy.txt")


# --------------------------------------------------------------------------------------------
# Text from datasets (offline: the real entries re-pinned to small files written here)
# --------------------------------------------------------------------------------------------


def pin(monkeypatch, data_dir: Path, name: str, files: dict[str, bytes]) -> None:
    """Write ``files`` under data_dir/name and re-pin the registry entry to their hashes."""
    for filename, content in files.items():
        put(data_dir / name / filename, content)
    entry = dataclasses.replace(get_dataset(name), files={f: sha256(c) for f, c in files.items()})
    monkeypatch.setitem(DATASETS, name, entry)
    monkeypatch.setenv("TINYSLM_DATA_DIR", str(data_dir))


def csv_bytes(rows: list[list[str]]) -> bytes:
    out = io.StringIO(newline="")
    csv.writer(out, lineterminator="\n").writerows(rows)
    return out.getvalue().encode()


def test_load_text_reads_a_user_file(tmp_path):
    path = put(tmp_path / "mine.txt", "naïve text\n".encode())
    assert load_text(DataConfig(name="no-such-name", path=str(path))) == "naïve text\n"
    with pytest.raises(DataError, match="data.path.*missing.txt.*not found"):
        load_text(DataConfig(path=str(tmp_path / "missing.txt")))


def test_symptom2disease_text_is_train_only_and_labels_load(tmp_path, monkeypatch):
    train = csv_bytes([["label", "text"], ["Acne", " Spots on my face, and more. "], ["Dengue", "High fever."]])
    test = csv_bytes([["label", "text"], ["Acne", "HELD OUT"]])
    pin(monkeypatch, tmp_path / "d", "symptom2disease", {"train.csv": train, "test.csv": test})
    assert load_text(DataConfig(name="symptom2disease")) == "Spots on my face, and more.\nHigh fever.\n"
    assert load_labeled("symptom2disease", "train") == [("Acne", " Spots on my face, and more. "),
                                                        ("Dengue", "High fever.")]
    assert load_labeled("symptom2disease", "test") == [("Acne", "HELD OUT")]
    with pytest.raises(DataError, match="unknown split 'val'"):
        load_labeled("symptom2disease", "val")
    with pytest.raises(DataError, match="has no labels"):
        load_labeled("tinyshakespeare", "train")


def test_diseases_symptoms_rows_become_paragraphs(tmp_path, monkeypatch):
    table = csv_bytes([["Code", "Name", "Symptoms", "Treatments"],
                       ["1", "Panic disorder", "Palpitations, Sweating", "Therapy, Rest"],
                       ["2", "Gestational Cholestasis", "Itchy skin", ""]])
    pin(monkeypatch, tmp_path / "d", "diseases_symptoms", {"Diseases_Symptoms.csv": table})
    assert load_text(DataConfig(name="diseases_symptoms")) == (
        "Disease: Panic disorder\nSymptoms: Palpitations, Sweating\nTreatments: Therapy, Rest\n"
        "\n"
        "Disease: Gestational Cholestasis\nSymptoms: Itchy skin\n"
    )


def test_symptoms_corpus_is_generated():
    pytest.importorskip("tinyslm.data.symptoms")
    text = load_text(DataConfig(name="symptoms", corpus_bytes=20_000, seed=3))
    assert isinstance(text, str) and len(text) > 1000
    assert text == load_text(DataConfig(name="symptoms", corpus_bytes=20_000, seed=3))


# --------------------------------------------------------------------------------------------
# prepare / load_tokens
# --------------------------------------------------------------------------------------------

LINES = "".join(f"line {i}: {'é' * (i % 3)} the quick brown fox\n" for i in range(200))


def test_prepare_round_trips_through_uint16_files(tmp_path):
    tok = ByteTokenizer()
    meta = prepare(LINES, tok, tmp_path / "prep", val_fraction=0.1, source="unit test")
    train, val = load_tokens(tmp_path / "prep", "train"), load_tokens(tmp_path / "prep", "val")
    assert train.dtype == np.uint16 and isinstance(train, np.memmap) and not train.flags.writeable
    assert tok.decode(train) + tok.decode(val) == LINES
    assert (tmp_path / "prep" / "train.bin").stat().st_size == 2 * len(train)
    assert meta == read_meta(tmp_path / "prep")
    assert meta["dtype"] == "uint16" and meta["source"] == "unit test" and meta["val_fraction"] == 0.1
    assert meta["tokenizer"] == {"type": "ByteTokenizer", "vocab_size": 256}
    assert meta["tokens"] == {"train": len(train), "val": len(val)}
    assert meta["chars"]["train"] + meta["chars"]["val"] == len(LINES)


def test_prepare_uses_uint32_for_large_vocabularies(tmp_path):
    tok = WideTokenizer()
    meta = prepare(LINES, tok, tmp_path, val_fraction=0.2)
    train = load_tokens(tmp_path, "train")
    assert meta["dtype"] == "uint32" and train.dtype == np.uint32 and train.max() > 65_535
    assert tok.decode(train) + tok.decode(load_tokens(tmp_path, "val")) == LINES


def test_split_is_at_the_line_break_nearest_the_fraction():
    cut = split_point(LINES, 0.1)
    assert LINES[cut - 1] == "\n"
    line_length = max(len(line) for line in LINES.splitlines(keepends=True))
    assert abs(cut - 0.9 * len(LINES)) <= line_length / 2 + 1
    assert split_point("no line breaks at all", 0.5) == 10  # nothing to align with: exact position


@settings(max_examples=60, deadline=None)
@given(st.text(alphabet="ab\n", min_size=2, max_size=60), st.floats(0.05, 0.95))
def test_split_never_cuts_a_line_when_it_can_avoid_it(text, val_fraction):
    cut = split_point(text, val_fraction)
    assert 0 < cut < len(text)  # both splits get something
    line_starts = [i + 1 for i, c in enumerate(text[:-1]) if c == "\n"]  # lines after the first
    if line_starts:
        assert cut in line_starts


def test_line_chunks_cover_the_text_and_end_at_line_breaks():
    chunks = list(_line_chunks(LINES, 100))
    assert "".join(chunks) == LINES and len(chunks) > 10
    assert all(chunk.endswith("\n") for chunk in chunks)


def test_prepare_refuses_an_empty_split(tmp_path):
    with pytest.raises(DataError, match="train split is empty: the text has only 1 characters"):
        prepare("x", ByteTokenizer(), tmp_path, val_fraction=0.1)


def test_load_tokens_errors(tmp_path):
    with pytest.raises(DataError, match="no prepared data.*meta.json"):
        load_tokens(tmp_path, "train")
    prepare(LINES, ByteTokenizer(), tmp_path, val_fraction=0.1)
    with pytest.raises(DataError, match="unknown split 'test'"):
        load_tokens(tmp_path, "test")
    with open(tmp_path / "val.bin", "r+b") as f:
        f.truncate(10)
    with pytest.raises(DataError, match="holds 5 tokens but meta.json says"):
        load_tokens(tmp_path, "val")


# --------------------------------------------------------------------------------------------
# Sampler
# --------------------------------------------------------------------------------------------

TOKENS = np.arange(5000, dtype=np.uint16)  # token i sits at position i: windows are easy to check


def test_batches_are_a_pure_function_of_seed_and_step():
    batch = sample_batch(TOKENS, seed=7, step=42, batch_size=8, seq_len=16)
    assert batch.shape == (8, 17) and batch.dtype == np.int32
    np.testing.assert_array_equal(batch, sample_batch(TOKENS, seed=7, step=42, batch_size=8, seq_len=16))
    assert not np.array_equal(batch, sample_batch(TOKENS, seed=7, step=43, batch_size=8, seq_len=16))
    assert not np.array_equal(batch, sample_batch(TOKENS, seed=8, step=42, batch_size=8, seq_len=16))


def test_windows_are_contiguous_slices_and_targets_are_shifted_inputs():
    batch = sample_batch(TOKENS, seed=0, step=0, batch_size=64, seq_len=32)
    starts = batch[:, 0]
    np.testing.assert_array_equal(batch, starts[:, None] + np.arange(33))
    inputs, targets = batch[:, :-1], batch[:, 1:]
    np.testing.assert_array_equal(targets, inputs + 1)  # here, the next token of t is t + 1
    assert starts.min() >= 0 and starts.max() + 33 <= len(TOKENS)
    assert len(np.unique(starts)) > 32  # random positions, not one repeated window


def test_sampler_reads_memmaps_and_reaches_the_last_token(tmp_path):
    prepare(LINES, ByteTokenizer(), tmp_path, val_fraction=0.5)
    val = load_tokens(tmp_path, "val")
    batch = sample_batch(val, seed=1, step=3, batch_size=4, seq_len=len(val) - 1)  # only one window fits
    np.testing.assert_array_equal(batch, np.broadcast_to(np.asarray(val, np.int32), (4, len(val))))


def test_eval_batches_are_fixed_and_distinct_from_each_other():
    batches = eval_batches(TOKENS, seed=5, n_batches=3, batch_size=4, seq_len=8)
    assert batches.shape == (3, 4, 9) and batches.dtype == np.int32
    np.testing.assert_array_equal(batches, eval_batches(TOKENS, seed=5, n_batches=3, batch_size=4, seq_len=8))
    np.testing.assert_array_equal(batches, batches[..., :1] + np.arange(9))
    assert not np.array_equal(batches[0], batches[1])


def test_too_short_split_says_how_long_it_is_and_what_to_reduce():
    with pytest.raises(DataError, match=r"only 10 tokens.*seq_len \+ 1 = 11.*at most 9"):
        sample_batch(TOKENS[:10], seed=0, step=0, batch_size=2, seq_len=10)
    with pytest.raises(DataError, match="only 10 tokens"):
        eval_batches(TOKENS[:10], seed=0, n_batches=1, batch_size=2, seq_len=10)


# --------------------------------------------------------------------------------------------
# The real shared data (when TINYSLM_DATA_DIR points at it)
# --------------------------------------------------------------------------------------------

real_data = pytest.mark.skipif(not REAL_DATA_DIR, reason="TINYSLM_DATA_DIR is not set")
REAL_FILES = [(d.name, f) for d in list_datasets() for f in d.files]


@real_data
@pytest.mark.parametrize(("name", "filename"), REAL_FILES)
def test_real_files_resolve_in_data_dir_with_matching_sha256(name, filename, monkeypatch):
    monkeypatch.setenv("TINYSLM_DATA_DIR", REAL_DATA_DIR)
    path = dataset_file(name, filename)
    assert path == Path(REAL_DATA_DIR).expanduser() / name / filename
    assert sha256(path.read_bytes()) == get_dataset(name).files[filename]


@real_data
def test_real_datasets_load_as_text_and_labels(monkeypatch):
    monkeypatch.setenv("TINYSLM_DATA_DIR", REAL_DATA_DIR)
    assert load_text(DataConfig(name="tinyshakespeare")).startswith("First Citizen:")
    assert load_text(DataConfig(name="tinystories")).startswith("Spot. Spot saw the shiny car")
    assert load_text(DataConfig(name="symptom2disease")).count("\n") == 816
    assert load_text(DataConfig(name="diseases_symptoms")).count("Disease: ") == 400
    train, test = load_labeled("symptom2disease", "train"), load_labeled("symptom2disease", "test")
    assert (len(train), len(test)) == (816, 192)
    assert len({label for label, _ in train}) == 24
    assert not {text for _, text in train} & {text for _, text in test}
