"""The baseline every text classifier must beat: TF-IDF features and logistic regression.

Before crediting a fine-tuned language model with anything, ask what a model with no notion of
word order or meaning gets on the same split. TF-IDF (term frequency x inverse document
frequency; Spärck Jones 1972) turns a text into a sparse vector with one entry per word or word
pair, weighted up when the word is frequent in this text and down when it is common in all of
them; logistic regression then learns one weight per (feature, label). It trains in a second
and, on a few hundred short symptom descriptions, is hard to beat.

Its one hyperparameter, the inverse regularisation strength ``C``, is chosen on the same held-out
validation examples the language-model classifiers are tuned on; the test split is not seen.
Needs scikit-learn (in the ``dev`` extra).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from tinyslm.adapt.metrics import classification_scores
from tinyslm.errors import TinySLMError

C_GRID = (1.0, 10.0, 100.0)


@dataclass
class TfidfClassifier:
    """A fitted TF-IDF + logistic regression pipeline with the label order of its outputs."""

    pipeline: Any
    labels: list[str]
    c: float

    def predict_proba(self, texts: list[str]) -> np.ndarray:
        """texts -> (N, n_labels) probabilities, columns in the order of :attr:`labels`."""
        return self.pipeline.predict_proba(texts)

    def evaluate(self, examples: list[tuple[str, str]]) -> dict:
        """{"accuracy", "macro_f1", "n", "confusion"} on ``(label, text)`` pairs, as :meth:`Classifier.evaluate`."""
        index = {label: i for i, label in enumerate(self.labels)}
        true = np.array([index[label] for label, _ in examples])
        predicted = self.predict_proba([text for _, text in examples]).argmax(-1)
        return classification_scores(true, predicted, len(self.labels))


def tfidf_pipeline(c: float, seed: int = 0) -> Any:
    """An unfitted scikit-learn pipeline: word unigrams and bigrams, sublinear term frequency
    (1 + log tf), lowercase, then logistic regression with inverse regularisation strength ``c``."""
    try:
        from sklearn.feature_extraction.text import TfidfVectorizer
        from sklearn.linear_model import LogisticRegression
        from sklearn.pipeline import make_pipeline
    except ImportError:
        raise TinySLMError("the TF-IDF baseline needs scikit-learn: pip install 'tinyslm[dev]'") from None
    return make_pipeline(TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True),
                         LogisticRegression(C=c, max_iter=5000, random_state=seed))


def fit_tfidf(train: list[tuple[str, str]], val: list[tuple[str, str]], seed: int = 0) -> TfidfClassifier:
    """Fit :func:`tfidf_pipeline` on ``train`` for each ``C`` of :data:`C_GRID`; return the best by validation macro-F1."""
    texts, labels = [text for _, text in train], [label for label, _ in train]
    best = None
    for c in C_GRID:
        pipeline = tfidf_pipeline(c, seed)
        pipeline.fit(texts, labels)
        candidate = TfidfClassifier(pipeline, list(pipeline.classes_), c)
        score = candidate.evaluate(val)["macro_f1"]
        if best is None or score > best[0]:
            best = (score, candidate)
    return best[1]
