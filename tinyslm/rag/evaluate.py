"""Measuring RAG on ``diseases_symptoms``: questions with known answers, retrieval recall, answer precision.

**Questions.** For a condition X the question is "What are the symptoms of X?", and its answer
document is X's row. Conditions whose name appears in more than one row (Sciatica has three)
are left out, so every question has exactly one right row.

**Recall@k** of a retriever: the share of questions whose answer row is among its top k passages.

**Symptom precision** of an answer: of the symptoms the answer mentions, the share that are
listed in the condition's row. It asks "is what the model says true?", not "did it say
everything?", which is the failure that retrieval is meant to fix: a small model asked about a
rare condition confidently lists symptoms of something else.

How symptom mentions are found (the matching rules):

* The **symptom vocabulary** is every symptom phrase in the table: each row's ``Symptoms``
  field split at commas (commas inside parentheses do not split), e.g. "Shortness of breath".
* Phrases and answers are **normalised** the same way: lower-cased, cut into runs of letters and
  digits (punctuation and parentheses become word breaks), and a final "s" is dropped from words
  longer than three letters that do not end in "ss" (so "headaches" matches "headache").
* A phrase is **mentioned** when its normalised words occur consecutively in the normalised
  answer. Longer phrases are matched first and the words they cover are used up, so an answer
  saying "chest pain" mentions "chest pain", not also "pain".
* A mention is **correct** when the phrase is one of the row's own symptoms (after normalising).

An answer that mentions no symptom of the vocabulary has no precision; the report counts those
answers apart, and pools the rest two ways: ``precision`` (all mentions of all answers pooled:
correct mentions / mentions) and ``mean_precision`` (the average of the answers' precisions).
"""

from __future__ import annotations

import random
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from tinyslm.rag.store import DocumentStore, top_k

_WORD = re.compile(r"[^\W_]+")


def split_symptoms(field: str) -> list[str]:
    """A ``Symptoms`` field -> its phrases: split at commas outside parentheses, stripped, empty ones dropped."""
    phrases, depth, current = [], 0, []
    for ch in field:
        depth += (ch == "(") - (ch == ")")
        if ch == "," and depth <= 0:
            phrases.append("".join(current))
            current = []
        else:
            current.append(ch)
    phrases.append("".join(current))
    return [p.strip() for p in phrases if p.strip()]


def normalize(text: str) -> tuple[str, ...]:
    """Lower-cased words, with a plural "s" dropped from words of more than three letters (not "ss")."""
    return tuple(w[:-1] if len(w) > 3 and w.endswith("s") and not w.endswith("ss") else w
                 for w in _WORD.findall(text.lower()))


class SymptomMatcher:
    """Finds the symptom phrases of a vocabulary that a text mentions (longest phrases first)."""

    def __init__(self, phrases: Iterable[str]):
        self.phrases = sorted({p for p in map(normalize, phrases) if p}, key=lambda p: (-len(p), p))

    def mentions(self, text: str) -> set[tuple[str, ...]]:
        """The normalised phrases mentioned in ``text``, each word of the text used by at most one phrase."""
        words = list(normalize(text))
        found = set()
        for phrase in self.phrases:
            n = len(phrase)
            for i in range(len(words) - n + 1):
                if tuple(words[i:i + n]) == phrase:
                    found.add(phrase)
                    words[i:i + n] = [None] * n  # used up: shorter phrases cannot match inside it
        return found


@dataclass(frozen=True)
class SymptomQuestion:
    """A question about one condition, with the id of its answer passage and its row's symptoms."""

    question: str
    condition: str
    passage_id: str
    symptoms: frozenset[tuple[str, ...]]  # normalised phrases


def symptom_questions(store: DocumentStore, n: int | None = None, seed: int = 0) -> list[SymptomQuestion]:
    """"What are the symptoms of X?" for conditions named in exactly one row of a diseases_symptoms store.

    ``n``: a random sample of that many (drawn with ``seed``), in store order; None: all of them.
    """
    names = Counter(p.title.lower() for p in store.passages)
    questions = [SymptomQuestion(f"What are the symptoms of {p.title}?", p.title, p.id,
                                 frozenset(map(normalize, split_symptoms(p.fields["Symptoms"]))))
                 for p in store.passages if names[p.title.lower()] == 1]
    if n is not None:
        keep = set(random.Random(seed).sample(range(len(questions)), min(n, len(questions))))
        questions = [q for i, q in enumerate(questions) if i in keep]
    return questions


def symptom_matcher(store: DocumentStore) -> SymptomMatcher:
    """The matcher over every symptom phrase of a diseases_symptoms store."""
    return SymptomMatcher(s for p in store.passages for s in split_symptoms(p.fields["Symptoms"]))


def answer_precision(answer: str, question: SymptomQuestion, matcher: SymptomMatcher) -> tuple[int, int]:
    """(correct mentions, mentions) of one answer."""
    mentioned = matcher.mentions(answer)
    return len(mentioned & question.symptoms), len(mentioned)


def precision_report(answers: Sequence[str], questions: Sequence[SymptomQuestion], matcher: SymptomMatcher) -> dict:
    """Symptom precision of ``answers`` to ``questions`` (see the module docstring for the rules)."""
    counts = [answer_precision(a, q, matcher) for a, q in zip(answers, questions, strict=True)]
    scored = [(c, m) for c, m in counts if m > 0]
    correct, mentioned = sum(c for c, _ in scored), sum(m for _, m in scored)
    return {
        "questions": len(counts),
        "answers_with_symptoms": len(scored),
        "mentions": mentioned,
        "correct_mentions": correct,
        "precision": correct / mentioned if mentioned else None,
        "mean_precision": sum(c / m for c, m in scored) / len(scored) if scored else None,
    }


def recall_at_k(retriever, questions: Sequence[SymptomQuestion], ks: Sequence[int] = (1, 3, 5)) -> dict[int, float]:
    """Share of questions whose answer passage is among the retriever's top k, for each k in ``ks``."""
    ranks = []
    for q in questions:
        ids = [h.passage.id for h in top_k(retriever.store, retriever.scores(q.question), max(ks))]
        ranks.append(ids.index(q.passage_id) + 1 if q.passage_id in ids else None)
    return {k: sum(r is not None and r <= k for r in ranks) / len(ranks) for k in ks}
