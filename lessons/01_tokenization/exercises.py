"""Lesson 01 exercises: byte-pair encoding by hand.

Implement each function below, then check your work from the repository root with

    tinyslm check 01            (or: pytest lessons/01_tokenization)

Byte-pair encoding (Sennrich, Haddow & Birch 2016) starts from a text's UTF-8 bytes — ids 0..255 —
and repeatedly replaces the most frequent adjacent pair of ids with a new id: 256 for the first
merge, 257 for the second, and so on. The list of merges *is* the tokenizer.
"""

from __future__ import annotations


def count_pairs(ids: list[int]) -> dict[tuple[int, int], int]:
    """Count every adjacent pair of ids.

    >>> count_pairs([1, 2, 3, 1, 2])
    {(1, 2): 2, (2, 3): 1, (3, 1): 1}

    Pairs overlap: [7, 7, 7] holds the pair (7, 7) twice. Insert pairs into the dict in the order
    you first meet them (a plain dict or collections.Counter does this); train_bpe relies on it to
    break ties. An empty or one-element list has no pairs.
    """
    raise NotImplementedError


def merge(ids: list[int], pair: tuple[int, int], new_id: int) -> list[int]:
    """Return a new list in which every occurrence of ``pair`` is replaced by ``new_id``.

    >>> merge([1, 2, 3, 1, 2], (1, 2), 99)
    [99, 3, 99]

    Scan left to right; once two ids are merged, the scan continues after both, so
    merge([7, 7, 7], (7, 7), 99) == [99, 7]. Do not modify ``ids`` itself.
    """
    raise NotImplementedError


def train_bpe(text: str, num_merges: int) -> list[tuple[int, int]]:
    """Learn ``num_merges`` merges from ``text``; return the merged pairs in the order learned.

    Start from ``list(text.encode("utf-8"))``. Merge number i (counting from 0) replaces the most
    frequent pair with the new id ``256 + i``. When several pairs are equally frequent, take the
    one that occurs first in the current sequence (``max(counts, key=counts.get)`` does this when
    ``counts`` was filled in order). Stop early when no pair is left (the text is one token).

    >>> train_bpe("aaabdaaabac", 3)
    [(97, 97), (256, 97), (257, 98)]
    """
    raise NotImplementedError


def bpe_encode(text: str, merges: list[tuple[int, int]]) -> list[int]:
    """Encode ``text`` with learned ``merges``: its UTF-8 bytes, then each merge applied in order.

    Merge i turns ``merges[i]`` into id ``256 + i``, and it must be applied before merge i + 1,
    because later merges are built out of the ids earlier ones create.

    >>> merges = train_bpe("aaabdaaabac", 3)
    >>> bpe_encode("aaab", merges)
    [258]
    """
    raise NotImplementedError
