"""Lesson 12 exercises: the retrieval half of retrieval-augmented generation.

Implement each function below with numpy, then check your work from the repository root with

    tinyslm check 12            (or: pytest lessons/12_rag)
"""

from __future__ import annotations

import numpy as np


def bm25_idf(doc_freq: np.ndarray, n_docs: int) -> np.ndarray:
    """BM25's inverse document frequency of words found in ``doc_freq`` of ``n_docs`` documents.

    doc_freq (W,) int: n_t, how many documents contain each word; n_docs: N. Returns (W,) float:

        idf(t) = ln(1 + (N - n_t + 0.5) / (n_t + 0.5))

    Rare words get a large idf, words in nearly every document an idf near (but above) zero.
    """
    raise NotImplementedError


def bm25_scores(query: list[str], documents: list[list[str]], k1: float = 1.5, b: float = 0.75) -> np.ndarray:
    """The BM25 score of every document for ``query`` (Robertson & Zaragoza 2009) -> (N,) float.

    query: a list of words; documents: N lists of words. With tf(t, d) the number of times word t
    occurs in document d, |d| the number of words in d and avgdl the average of |d| over all
    N documents:

        score(d) = sum over the words t of the query of
                   idf(t) * tf(t, d) * (k1 + 1) / (tf(t, d) + k1 * (1 - b + b * |d| / avgdl))

    with idf as in :func:`bm25_idf` (n_t = the number of documents containing t). A word that
    occurs twice in the query counts twice; a word that no document contains adds nothing.
    """
    raise NotImplementedError


def mean_pool(hidden: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """A text embedding from a language model: average each row's hidden states over its real tokens.

    hidden (B, T, D) float: the model's last hidden states; mask (B, T) bool: True for real
    tokens, False for padding. Returns (B, D): for row b, the mean of hidden[b, t] over the
    positions t where mask[b, t] is True. Padding must not count in the sum or in the number
    of tokens. (Every row has at least one real token.)
    """
    raise NotImplementedError
