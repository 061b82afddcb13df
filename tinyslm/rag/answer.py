"""Retrieve, assemble, generate: answering questions with (or without) retrieved passages.

    store = load_documents("diseases_symptoms")
    retriever = BM25Retriever(store)
    [a] = answer_questions(model, tokenizer, ["What are the symptoms of gout?"], retriever, k=3)
    a.text, [h.passage.id for h in a.hits], a.retrieval_ms

Questions are answered in batches by the KV-cached decoder (:func:`tinyslm.decode.generate`),
greedily by default: for looking facts up, the most likely answer is the one to judge. Prompts
are sorted by length before batching, so each batch pads to a similar length.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from tinyslm.decode import GREEDY, Sampler, generate
from tinyslm.errors import GenerationError
from tinyslm.model import TransformerLM
from tinyslm.rag.prompt import NOTICE, Prompt, build_prompt
from tinyslm.rag.store import Hit, top_k
from tinyslm.tokenizer import Tokenizer


@dataclass(frozen=True)
class RagAnswer:
    """One answered question: the answer ``text``, the passages its prompt held (empty without
    retrieval), the retrieval time, the prompt's size, and the timings of the batch it was
    generated in (``prefill_ms``, ``tokens_per_s``, ``ms_per_token``: see :class:`GenerationResult`)."""

    question: str
    text: str
    hits: tuple[Hit, ...]
    retrieved: tuple[Hit, ...]  # what retrieve() returned, before the context budget dropped any
    retrieval_ms: float
    prompt_tokens: int
    trimmed: bool
    new_tokens: int
    finish_reason: str
    prefill_ms: float
    tokens_per_s: float | None
    ms_per_token: float | None

    def summary(self) -> dict:
        """The CLI's JSON: answer, passages (id, title, score), timings and the notice."""
        return {
            "question": self.question,
            "answer": self.text,
            "passages": [{"id": h.passage.id, "title": h.passage.title, "score": round(h.score, 4)} for h in self.hits],
            "trimmed": self.trimmed,
            "retrieval_ms": round(self.retrieval_ms, 3),
            "prompt_tokens": self.prompt_tokens,
            "new_tokens": self.new_tokens,
            "finish_reason": self.finish_reason,
            "prefill_ms": round(self.prefill_ms, 3),
            "tokens_per_s": None if self.tokens_per_s is None else round(self.tokens_per_s, 2),
            "ms_per_token": None if self.ms_per_token is None else round(self.ms_per_token, 3),
            "notice": NOTICE,
        }


# Passages below half the best score are dropped by default (chosen on a 12-question development
# sample of diseases_symptoms, which the benchmark leaves out).
MIN_SCORE_RATIO = 0.5


def retrieve(retriever, question: str, k: int, min_score_ratio: float = MIN_SCORE_RATIO) -> tuple[list[Hit], float]:
    """The ``k`` best passages for ``question`` and the time it took in ms (scoring + ranking).

    ``min_score_ratio`` drops passages scoring below that fraction of the best one (the best is
    always kept): a passage that only shares a common word with the question is noise, and a
    small model is easily distracted by irrelevant context (Shi et al. 2023, arXiv:2302.00093).
    Measured with SmolLM2-135M on 60 diseases_symptoms questions (benchmarks/README.md): the
    share of true symptoms in its answers rose 1.8x over no retrieval with the top 3 passages,
    2.6x with the top 3 cut at half the best score, and 3.1x with the top passage alone.
    """
    start = time.perf_counter()
    best, *rest = top_k(retriever.store, retriever.scores(question), k)
    hits = [best] + [h for h in rest if h.score >= min_score_ratio * best.score]
    return hits, 1000 * (time.perf_counter() - start)


def answer_questions(model: TransformerLM, tokenizer: Tokenizer, questions: Sequence[str], retriever=None, *,
                     k: int = 3, min_score_ratio: float = MIN_SCORE_RATIO, max_new_tokens: int = 64,
                     batch_size: int = 8, max_prompt_tokens: int | None = None, sampler: Sampler = GREEDY,
                     seed: int = 0, progress=None) -> list[RagAnswer]:
    """Answer each question, with the ``k`` passages ``retriever`` finds, or from memory when it is None.
    (``min_score_ratio``: see :func:`retrieve`.)

    The prompt budget is the model's context minus ``max_new_tokens`` (or ``max_prompt_tokens``
    if smaller). ``progress(n)``, if given, is called after each batch with its size.
    """
    budget = model.config.max_seq_len - max_new_tokens
    if max_prompt_tokens is not None:
        budget = min(budget, max_prompt_tokens)
    if budget < 1:
        raise GenerationError(f"max_new_tokens={max_new_tokens} leaves no room for a prompt in the model's "
                              f"context of {model.config.max_seq_len} tokens")
    prompts: list[Prompt] = []
    retrieved, retrieval_ms = [], []
    for question in questions:
        hits, ms = retrieve(retriever, question, k, min_score_ratio) if retriever is not None else ([], 0.0)
        retrieved.append(tuple(hits))
        retrieval_ms.append(ms)
        prompts.append(build_prompt(tokenizer, question, hits, budget))

    answers: list[RagAnswer | None] = [None] * len(questions)
    order = np.argsort([p.n_tokens for p in prompts], kind="stable")
    for start in range(0, len(order), batch_size):
        rows = [int(i) for i in order[start:start + batch_size]]
        result = generate(model, tokenizer, [prompts[i].text for i in rows], max_new_tokens=max_new_tokens,
                          sampler=sampler, seed=seed)
        for j, i in enumerate(rows):
            answers[i] = RagAnswer(
                question=questions[i], text=result.texts[j].strip(), hits=prompts[i].hits, retrieved=retrieved[i],
                retrieval_ms=retrieval_ms[i], prompt_tokens=prompts[i].n_tokens, trimmed=prompts[i].trimmed,
                new_tokens=result.new_tokens[j], finish_reason=result.finish_reasons[j], prefill_ms=result.prefill_ms,
                tokens_per_s=result.tokens_per_s, ms_per_token=result.ms_per_token,
            )
        if progress is not None:
            progress(len(rows))
    return answers
