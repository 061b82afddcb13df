"""Lesson 12, retrieval-augmented generation (BM25 scoring, mean pooling): references and inputs to try."""

from __future__ import annotations

import numpy as np

from tinyslm.grader.core import Case, Exercise, Lesson

# --------------------------------------------------------------------------------------- lesson 12


def _ref_bm25_idf(doc_freq, n_docs):
    from tinyslm.rag import idf

    return idf(doc_freq, n_docs)


def _ref_bm25_scores(query, documents, k1=1.5, b=0.75):
    from tinyslm.rag import BM25

    return BM25(documents, k1=k1, b=b).scores(query)


def _ref_mean_pool(hidden, mask):
    from tinyslm.rag import mean_pool

    return np.asarray(mean_pool(np.asarray(hidden, np.float32), np.asarray(mask, bool)))


def _cases_bm25_idf() -> list[Case]:
    return [
        Case("one word in 1 of 2 documents", (np.array([1]), 2)),
        Case("rare to common words, N=100", (np.array([1, 5, 50, 99, 100]), 100)),
        Case("a word in every document stays positive", (np.array([7]), 7)),
    ]


def _random_corpus(seed: int, n_docs: int, vocab: int) -> list[list[str]]:
    rng = np.random.default_rng(seed)
    words = [f"w{i}" for i in range(vocab)]
    return [[str(w) for w in rng.choice(words, size=rng.integers(1, 15))] for _ in range(n_docs)]


def _cases_bm25_scores() -> list[Case]:
    docs = [["a", "b"], ["a", "c", "c"]]
    corpus = _random_corpus(12, 20, 10)
    with_empty = _random_corpus(13, 8, 6)
    with_empty[2] = []
    return [
        Case("docs [a b], [a c c]; query [c]", (["c"], docs)),
        Case("a word every document has", (["a"], docs)),
        Case("a query word no document has scores nothing", (["zebra", "c"], docs)),
        Case("a repeated query word counts twice", (["c", "c", "b"], docs)),
        Case("random corpus of 20 documents", (["w1", "w4", "w7"], corpus)),
        Case("b=0: no length normalisation", (["w2", "w3"], corpus), dict(k1=1.2, b=0.0)),
        Case("k1=0.5, b=1", (["w0", "w9", "w5"], corpus), dict(k1=0.5, b=1.0)),
        Case("an empty document among them", (["w1", "w2"], with_empty)),
    ]


def _cases_mean_pool() -> list[Case]:
    rng = np.random.default_rng(14)
    hidden = rng.normal(size=(3, 5, 4)).astype(np.float32)
    return [
        Case("no padding", (hidden[:1], np.ones((1, 5), bool))),
        Case("rows of lengths 5, 2, 1 (right-padded)", (hidden, np.arange(5) < np.array([[5], [2], [1]]))),
        Case("huge values in the padding must not leak", (np.where(np.arange(5)[None, :, None] < 3, hidden, 1e6),
                                                          np.broadcast_to(np.arange(5) < 3, (3, 5)))),
    ]


LESSON = Lesson("12", "rag", (
    Exercise("bm25_idf", _ref_bm25_idf, _cases_bm25_idf, atol=1e-8),
    Exercise("bm25_scores", _ref_bm25_scores, _cases_bm25_scores, atol=1e-8),
    Exercise("mean_pool", _ref_mean_pool, _cases_mean_pool, atol=1e-5),
))
