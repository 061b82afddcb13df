"""BM25: rank passages by the query words they contain (Robertson & Zaragoza 2009).

BM25 is the workhorse of search engines, and still a strong baseline for retrieval-augmented
generation. It needs no training and no model: a passage scores high when it contains the
query's words, especially *rare* words, and especially when it is short. For a query of words
q_1 .. q_n and a passage d:

    score(q, d) = sum_i  idf(q_i) * tf(q_i, d) * (k1 + 1) / (tf(q_i, d) + k1 * (1 - b + b * |d| / avgdl))

    idf(t) = ln(1 + (N - n_t + 0.5) / (n_t + 0.5))

* ``tf(t, d)``: how often word t occurs in d. The fraction *saturates*: the first occurrence
  counts most, each further one less, and no number of repeats is worth more than (k1 + 1)
  times one. ``k1`` (1.2-2.0) sets how fast it saturates.
* ``|d| / avgdl``: d's length over the average passage length. A long passage contains more
  words by chance, so ``b`` (0.75) scales how much length is held against it.
* ``idf(t)``: inverse document frequency, N passages of which n_t contain t. A word in nearly
  every passage ("symptoms", "the") scores near zero; a word in one passage scores ln(N) or so.
  The ``1 +`` inside the log keeps it positive (Lucene's variant; the 1994 original can go
  negative for words in more than half of the passages).

A word that occurs twice in the query counts twice. Words are lower-cased runs of letters and
digits without a short list of stop words (:func:`terms`); there is no stemming, so "cough" and
"coughing" are different words.

Reference: S. Robertson and H. Zaragoza, "The Probabilistic Relevance Framework: BM25 and
Beyond", Foundations and Trends in Information Retrieval 3(4), 2009.
"""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from collections.abc import Sequence

import numpy as np

from tinyslm.rag.store import DocumentStore

_WORD = re.compile(r"[^\W_]+")  # runs of letters and digits, in any script


# Question words carry no topic, but in a corpus of terse table rows they are *rare*, so BM25's idf
# rewards them: "What are the symptoms of hemophilia?" would rank first the one row that says
# "beyond what is necessary". Search engines drop such function words ("stop words") before indexing.
STOP_WORDS = frozenset(
    "a an and are as at be by can could do does did for from has have had how i in is it its me my of on or "
    "should that the their there these this those to was were what when where which who why will with would "
    "you your".split())


def terms(text: str, stop_words: frozenset[str] = STOP_WORDS) -> list[str]:
    """The words BM25 compares: lower-cased runs of letters and digits ("Sjögren's" -> ["sjögren", "s"]),
    without ``stop_words``."""
    return [w for w in _WORD.findall(text.lower()) if w not in stop_words]


def idf(doc_freq: np.ndarray, n_docs: int) -> np.ndarray:
    """BM25's inverse document frequency ln(1 + (N - n + 0.5) / (n + 0.5)) of words found in ``doc_freq``
    (n) of ``n_docs`` (N) passages."""
    doc_freq = np.asarray(doc_freq, np.float64)
    return np.log1p((n_docs - doc_freq + 0.5) / (doc_freq + 0.5))


class BM25:
    """A BM25 index over tokenised documents: built once, then :meth:`scores` answers each query.

    The index is an *inverted* one: for every word, the documents that contain it and how often.
    Scoring a query then touches only the documents that share a word with it.
    """

    def __init__(self, documents: Sequence[Sequence[str]], k1: float = 1.5, b: float = 0.75):
        self.n_docs = len(documents)
        lengths = np.array([len(d) for d in documents], np.float64)
        avg_length = lengths.mean() if self.n_docs and lengths.mean() > 0 else 1.0
        # The length part of the denominator is the same for every word of a document: compute it once.
        self.length_norm = k1 * (1 - b + b * lengths / avg_length)  # (N,)
        self.k1 = k1
        counts: dict[str, dict[int, int]] = defaultdict(dict)  # word -> {document index: tf}
        for i, document in enumerate(documents):
            for word, tf in Counter(document).items():
                counts[word][i] = tf
        self.postings = {word: (np.fromiter(docs.keys(), np.int64, len(docs)), np.fromiter(docs.values(), np.float64, len(docs)))
                         for word, docs in counts.items()}
        self.idf = {word: float(idf(len(docs), self.n_docs)) for word, docs in counts.items()}

    def scores(self, query: Sequence[str]) -> np.ndarray:
        """query: a list of words -> one score per document (N,); words no document has add nothing."""
        scores = np.zeros(self.n_docs)
        for word in query:
            if word not in self.postings:
                continue
            docs, tf = self.postings[word]
            scores[docs] += self.idf[word] * tf * (self.k1 + 1) / (tf + self.length_norm[docs])
        return scores


class BM25Retriever:
    """BM25 over a :class:`DocumentStore`'s passages: ``scores(question)`` -> (N,)."""

    name = "bm25"

    def __init__(self, store: DocumentStore, k1: float = 1.5, b: float = 0.75):
        self.store = store
        self.index = BM25([terms(p.text) for p in store.passages], k1=k1, b=b)

    def scores(self, query: str) -> np.ndarray:
        return self.index.scores(terms(query))
