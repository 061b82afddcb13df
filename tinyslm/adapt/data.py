"""Labelled examples -> a validation split -> fixed-shape batches for the training loop.

A classifier is tuned on ``train`` data only: :func:`split_examples` holds part of it out for
validation (stratified, so every label keeps its share), and the test split is touched once, at
the end. :class:`ExampleBatches` is the :class:`tinyslm.train.Batches` of a fine-tuning run:
it deals the examples out in shuffled epochs, each step's batch a pure function of
``(seed, step)`` as the trainer requires for exact resumes.

Every batch has the same shape ``(batch_size, max_len)``: texts shorter than ``max_len`` are
padded at the end, longer ones cut. A fixed shape means the training step compiles once; the
padding is masked out of every loss and every pooled feature.

:func:`word_dropout_copies` adds noisy copies of the training examples (augmentation).
"""

from __future__ import annotations

import re
from collections import defaultdict

import numpy as np

from tinyslm.errors import DataError
from tinyslm.tokenizer import Tokenizer


def split_examples(examples: list[tuple[str, str]], val_fraction: float, seed: int
                   ) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """Split ``(label, text)`` pairs into (train, validation): about ``val_fraction`` of each label
    (at least one example) is held out, chosen at random with ``seed``; 0 holds nothing out.

    Near-duplicates stay on one side. Datasets collected by asking people (or a model) to describe a
    condition several times are full of close paraphrases; with one in training and its twin in
    validation, validation measures memory, not generalisation, and scores far above the test set.
    Examples of one label whose word 3-gram sets overlap by :data:`NEAR_DUPLICATE_JACCARD` or more are
    linked, and each linked group is held out (or kept) whole, which is how Symptom2Disease's own
    test split was cut.
    """
    if not 0.0 <= val_fraction < 1.0:
        raise DataError(f"val_fraction must be in [0, 1), got {val_fraction}")
    if val_fraction == 0.0:
        return list(examples), []
    by_label: dict[str, list[int]] = defaultdict(list)
    for i, (label, _) in enumerate(examples):
        by_label[label].append(i)
    rng = np.random.default_rng(seed)
    held_out: list[int] = []
    for label in sorted(by_label):
        indices = by_label[label]
        if len(indices) < 2:
            raise DataError(f"label {label!r} has {len(indices)} example; need at least 2 to hold one out")
        groups = near_duplicate_groups([examples[i][1] for i in indices])
        if len(groups) == 1:  # one big family of paraphrases: nothing to keep apart, hold out at random
            groups = [[i] for i in range(len(indices))]
        target = max(1, round(val_fraction * len(indices)))
        chosen: list[int] = []
        for g in rng.permutation(len(groups)):  # whole groups, as many as fit in the target
            if len(chosen) + len(groups[g]) <= target:
                chosen.extend(groups[g])
        if not chosen:  # every group is bigger than the target: the smallest one
            chosen = min(groups, key=len)
        held_out.extend(indices[i] for i in chosen)
    held = set(held_out)
    train = [ex for i, ex in enumerate(examples) if i not in held]
    val = [ex for i, ex in enumerate(examples) if i in held]
    return train, val


NEAR_DUPLICATE_JACCARD = 0.3


def near_duplicate_groups(texts: list[str], threshold: float = NEAR_DUPLICATE_JACCARD,
                          word_threshold: float | None = None) -> list[list[int]]:
    """Group texts linked by near-duplication: the connected components of the graph with an edge
    wherever two texts' sets of lowercased word 3-grams have a Jaccard similarity >= ``threshold``
    (or, given ``word_threshold``, their sets of words one >= ``word_threshold``: looser paraphrases).
    Returns lists of indices, in order of their first member."""
    words = [re.findall(r"\w+", text.lower()) for text in texts]
    shingles = [{tuple(w[i : i + 3]) for i in range(len(w) - 2)} for w in words]
    vocabularies = [set(w) for w in words]
    parent = list(range(len(texts)))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for i in range(len(texts)):
        for j in range(i + 1, len(texts)):
            a, b = shingles[i], shingles[j]
            if a and b and len(a & b) >= threshold * len(a | b):
                parent[root(i)] = root(j)
            elif word_threshold is not None:
                a, b = vocabularies[i], vocabularies[j]
                if len(a & b) >= word_threshold * len(a | b):
                    parent[root(i)] = root(j)
    groups: dict[int, list[int]] = defaultdict(list)
    for i in range(len(texts)):
        groups[root(i)].append(i)
    return sorted(groups.values(), key=lambda members: members[0])


WORD_DROPOUT = 0.15  # chosen on benchmarks/probe_layers.py's paraphrase-aware folds (0.10, 0.15, 0.25 tried)


def word_dropout_copies(examples: list[tuple[str, str]], copies: int, p: float = WORD_DROPOUT, seed: int = 0
                        ) -> list[tuple[str, str]]:
    """``copies`` noisy variants of every ``(label, text)``: each word dropped with probability ``p``.

    A paraphrase keeps the meaning and changes the words; a classifier fitted on a few hundred
    texts leans on particular words instead. Training on copies with words missing makes it
    spread its weight over every word that carries the label (word dropout, Iyyer et al. 2015;
    the "random deletion" of EDA, Wei & Zou 2019). Copy ``j`` of example ``i`` is at
    ``i * copies + j``; a copy never comes out empty (then it keeps every word). Use it on training
    examples only: validation and test texts stay as written.
    """
    if copies < 0 or not 0.0 <= p < 1.0:
        raise DataError(f"augmentation needs copies >= 0 and a word-dropout rate in [0, 1); got {copies}, {p}")
    rng = np.random.default_rng(seed)
    noisy = []
    for label, text in examples:
        words = text.split()
        for _ in range(copies):
            kept = [word for word in words if rng.random() > p]
            noisy.append((label, " ".join(kept or words)))
    return noisy


def pad_sequences(sequences: list[list[int]], max_len: int, pad_id: int) -> tuple[np.ndarray, np.ndarray]:
    """Token lists -> tokens (N, max_len) int32 padded at the end with ``pad_id``, lengths (N,) int32.

    A sequence longer than ``max_len`` keeps its first ``max_len`` tokens.
    """
    tokens = np.full((len(sequences), max_len), pad_id, np.int32)
    lengths = np.zeros(len(sequences), np.int32)
    for i, ids in enumerate(sequences):
        ids = ids[:max_len]
        tokens[i, : len(ids)] = ids
        lengths[i] = len(ids)
    if len(sequences) and lengths.min() == 0:
        raise DataError("an example encodes to no tokens at all (an empty text?)")
    return tokens, lengths


def map_fixed_batches(fn, arrays: tuple[np.ndarray, ...], batch_size: int, progress=None) -> np.ndarray:
    """``fn(*rows)`` over the arrays' rows in batches of exactly ``batch_size``, results concatenated.

    The last batch is filled up with copies of row 0 and their results dropped, so a jitted ``fn``
    compiles once, whatever the number of rows. ``progress`` (tqdm-like) may wrap the batches.
    """
    n = len(arrays[0])
    batches = _fixed_batches(np.arange(n), batch_size)
    out = [np.asarray(fn(*(a[rows] for a in arrays))) for rows in (progress(batches) if progress else batches)]
    return np.concatenate(out)[:n]


def _fixed_batches(rows: np.ndarray, batch_size: int) -> list[np.ndarray]:
    """Row indices in batches of exactly ``batch_size``; the last is filled up with copies of the first row."""
    rows = np.concatenate([rows, np.repeat(rows[:1], -len(rows) % batch_size)])
    return [rows[i : i + batch_size] for i in range(0, len(rows), batch_size)]


LENGTH_BUCKET = 16  # map_length_buckets cuts each batch's columns to a multiple of this many tokens


def map_length_buckets(fn, tokens: np.ndarray, lengths: np.ndarray, batch_size: int, progress=None,
                       multiple: int = LENGTH_BUCKET) -> np.ndarray:
    """``fn(tokens, lengths)`` over batches of texts of similar length, each cut to the columns it needs.

    Texts padded to the longest one spend much of their compute on padding: Symptom2Disease's
    prompted texts average 50 SmolLM2 tokens, padded to 81. Here each row's length is rounded up
    to a multiple of ``multiple`` (at most the tokens' width); rows of one width are batched
    together on only that many columns, in batches of exactly ``batch_size`` (filled up with copies
    of the group's first row, as :func:`map_fixed_batches` does), so a jitted ``fn`` compiles once
    per width present. The result is the same: padding sits at the end, and in a causal model no
    real token reads a later position. Results come back in the rows' order; ``progress``
    (tqdm-like) may wrap all the batches.
    """
    widths = np.minimum(-(-lengths // multiple) * multiple, tokens.shape[1])
    batches = []  # (row indices, width)
    for width in np.unique(widths):
        batches += [(rows, width) for rows in _fixed_batches(np.flatnonzero(widths == width), batch_size)]
    out: np.ndarray | None = None
    for rows, width in progress(batches) if progress else batches:
        result = np.asarray(fn(tokens[rows, :width], lengths[rows]))
        out = np.empty((len(tokens), *result.shape[1:]), result.dtype) if out is None else out
        out[rows] = result  # a filled-up row is written twice with the same values
    return out


def pad_id_of(tokenizer: Tokenizer) -> int:
    """The id that fills padded positions: the tokenizer's pad id, or 0 when it has none (characters).
    Which id it is does not matter for the result, since every padded position is masked."""
    return 0 if tokenizer.pad_id is None else tokenizer.pad_id


class ExampleBatches:
    """Shuffled epochs of encoded examples, as the training loop's :class:`tinyslm.train.Batches`.

    ``train_arrays`` and ``val_arrays`` are dicts of arrays with one row per example (tokens,
    lengths, label ids, ...). Training batches have leaves ``(grad_accum, batch_size, ...)``;
    every row also gets a ``weight`` of 1. Validation covers each held-out example exactly once;
    its last batch is filled up with rows of weight 0, which losses leave out.
    """

    def __init__(self, train_arrays: dict, val_arrays: dict, batch_size: int, grad_accum: int, seed: int):
        self.train_arrays, self.val_arrays = train_arrays, val_arrays
        self.n = len(next(iter(train_arrays.values())))
        self.batch_size, self.grad_accum, self.seed = batch_size, grad_accum, seed

    def train(self, step: int) -> dict:
        per_step = self.batch_size * self.grad_accum
        positions = np.arange(step * per_step, (step + 1) * per_step)  # positions in the endless stream
        epochs, offsets = positions // self.n, positions % self.n
        orders = {epoch: self._order(epoch) for epoch in set(epochs.tolist())}
        rows = np.array([orders[e][o] for e, o in zip(epochs.tolist(), offsets)])
        batch = {name: array[rows] for name, array in self.train_arrays.items()}
        batch["weight"] = np.ones(per_step, np.float32)
        return {name: a.reshape(self.grad_accum, self.batch_size, *a.shape[1:]) for name, a in batch.items()}

    def _order(self, epoch: int) -> np.ndarray:
        """The shuffled order of epoch ``epoch``: a pure function of (seed, epoch)."""
        return np.random.default_rng([self.seed, epoch]).permutation(self.n)

    def validation(self) -> list[dict]:
        n_val = len(next(iter(self.val_arrays.values())))
        batches = []
        for start in range(0, n_val, self.batch_size):
            rows = np.arange(start, start + self.batch_size)
            real = rows < n_val
            rows = np.where(real, rows, 0)  # filler rows repeat example 0 with weight 0
            batch = {name: array[rows] for name, array in self.val_arrays.items()}
            batch["weight"] = real.astype(np.float32)
            batches.append(batch)
        return batches
