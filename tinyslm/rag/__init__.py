"""Retrieval-augmented generation (RAG): a small model that looks things up instead of making them up.

A 135M-parameter model has read a lot but remembers little of it precisely; asked about a rare
condition it answers fluently and wrongly (it *hallucinates*). RAG (Lewis et al. 2020,
arXiv:2005.11401) gives it the facts at question time: find the passages most relevant to the
question in a document store, put them in the prompt, and let the model answer from them.

    store = load_documents("diseases_symptoms")          # store.py: passages with ids
    retriever = BM25Retriever(store)                     # bm25.py (or DenseRetriever, dense.py)
    answers = answer_questions(model, tokenizer, ["What are the symptoms of gout?"], retriever, k=3)
    # answer.py: retrieve -> build_prompt (prompt.py: chat template, context budget) -> generate

``evaluate.py`` measures both halves on questions whose answer is known: the retriever's
recall@k, and how much of what the model says is true (symptom precision).

Medical content here is a teaching demo, not medical advice (:data:`NOTICE`).
"""

from tinyslm.rag.answer import RagAnswer, answer_questions, retrieve
from tinyslm.rag.bm25 import BM25, BM25Retriever, idf, terms
from tinyslm.rag.dense import DenseRetriever, embed, mean_pool
from tinyslm.rag.evaluate import (
    SymptomMatcher,
    SymptomQuestion,
    answer_precision,
    precision_report,
    recall_at_k,
    split_symptoms,
    symptom_matcher,
    symptom_questions,
)
from tinyslm.rag.prompt import NOTICE, Prompt, build_prompt, chat_prompt, render_chat
from tinyslm.rag.store import DocumentStore, Hit, Passage, chunk_words, load_documents, top_k

RETRIEVERS = ("bm25", "dense")

__all__ = [
    "Passage", "DocumentStore", "Hit", "chunk_words", "load_documents", "top_k",
    "BM25", "BM25Retriever", "idf", "terms", "DenseRetriever", "embed", "mean_pool",
    "NOTICE", "Prompt", "build_prompt", "chat_prompt", "render_chat",
    "RagAnswer", "answer_questions", "retrieve",
    "SymptomMatcher", "SymptomQuestion", "answer_precision", "split_symptoms", "symptom_matcher", "symptom_questions",
    "precision_report", "recall_at_k", "RETRIEVERS",
]
