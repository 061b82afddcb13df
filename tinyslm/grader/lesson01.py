"""Lesson 01, tokenization (byte-pair encoding): references and inputs to try."""

from __future__ import annotations

import numpy as np

from tinyslm.grader.core import Case, Exercise, Lesson

# --------------------------------------------------------------------------------------- lesson 01
# Byte-pair encoding (Sennrich et al. 2016), on UTF-8 bytes as GPT-2 does it. Not a library
# function (sentencepiece runs it for tinyslm), so the reference solution lives here.


def _ref_count_pairs(ids: list[int]) -> dict[tuple[int, int], int]:
    counts: dict[tuple[int, int], int] = {}
    for pair in zip(ids, ids[1:]):
        counts[pair] = counts.get(pair, 0) + 1
    return counts


def _ref_merge(ids: list[int], pair: tuple[int, int], new_id: int) -> list[int]:
    out, i = [], 0
    while i < len(ids):
        if i + 1 < len(ids) and ids[i] == pair[0] and ids[i + 1] == pair[1]:
            out.append(new_id)
            i += 2
        else:
            out.append(ids[i])
            i += 1
    return out


def _ref_train_bpe(text: str, num_merges: int) -> list[tuple[int, int]]:
    ids = list(text.encode("utf-8"))
    merges = []
    for i in range(num_merges):
        counts = _ref_count_pairs(ids)
        if not counts:
            break
        pair = max(counts, key=counts.get)  # dicts keep insertion order: ties go to the first seen
        ids = _ref_merge(ids, pair, 256 + i)
        merges.append(pair)
    return merges


def _ref_bpe_encode(text: str, merges: list[tuple[int, int]]) -> list[int]:
    ids = list(text.encode("utf-8"))
    for i, pair in enumerate(merges):
        ids = _ref_merge(ids, tuple(pair), 256 + i)
    return ids


def _cases_count_pairs() -> list[Case]:
    rng = np.random.default_rng(1)
    return [
        Case("example [1, 2, 3, 1, 2]", ([1, 2, 3, 1, 2],)),
        Case("overlapping run [7, 7, 7]", ([7, 7, 7],)),
        Case("empty list", ([],)),
        Case("single id", ([42],)),
        Case("bytes of 'banana bandana'", (list(b"banana bandana"),)),
        Case("random ids", (rng.integers(0, 6, 40).tolist(),)),
    ]


def _cases_merge() -> list[Case]:
    rng = np.random.default_rng(2)
    return [
        Case("example", ([1, 2, 3, 1, 2], (1, 2), 99)),
        Case("overlapping run [7, 7, 7]", ([7, 7, 7], (7, 7), 99)),
        Case("run of four", ([7, 7, 7, 7], (7, 7), 99)),
        Case("pair absent", ([1, 2, 3], (3, 1), 99)),
        Case("reversed pair is not the pair", ([2, 1, 2, 1], (1, 2), 99)),
        Case("empty list", ([], (1, 2), 99)),
        Case("random ids", (rng.integers(0, 4, 50).tolist(), (1, 2), 256)),
    ]


def _cases_train_bpe() -> list[Case]:
    return [
        Case("'aaabdaaabac', 3 merges", ("aaabdaaabac", 3)),
        Case("'banana bandana', 4 merges", ("banana bandana", 4)),
        Case("a sentence, 20 merges", ("the cat sat on the mat; the cat ate the rat", 20)),
        Case("non-ASCII text (multi-byte UTF-8)", ("naïve café, déjà vu", 6)),
        Case("more merges than pairs", ("abc", 10)),
        Case("zero merges", ("hello", 0)),
        Case("empty text", ("", 5)),
    ]


def _cases_bpe_encode() -> list[Case]:
    corpus = "the cat sat on the mat; the cat ate the rat"
    merges = _ref_train_bpe(corpus, 20)
    return [
        Case("the training text itself", (corpus, merges)),
        Case("new text with known pieces", ("that rat sat", merges)),
        Case("text the merges never saw", ("xyz!", merges)),
        Case("no merges at all", ("hello", [])),
        Case("empty text", ("", merges)),
        Case("non-ASCII text", ("déjà vu", _ref_train_bpe("déjà vu, déjà vu", 5))),
    ]


LESSON = Lesson("01", "tokenization", (
    Exercise("count_pairs", _ref_count_pairs, _cases_count_pairs),
    Exercise("merge", _ref_merge, _cases_merge),
    Exercise("train_bpe", _ref_train_bpe, _cases_train_bpe),
    Exercise("bpe_encode", _ref_bpe_encode, _cases_bpe_encode),
))
