"""Dense retrieval: compare meanings as vectors, with embeddings from a tinyslm model.

BM25 (:mod:`tinyslm.rag.bm25`) matches words; it cannot know that "shortness of breath" and
"breathlessness" mean the same thing. A dense retriever maps every text to one vector, an
*embedding*, and ranks passages by how close their vectors are to the question's.

The embedding here is the simplest one a language model gives: run the text through the model,
take its final hidden states (one D-dimensional vector per token), and average them over the real
tokens (*mean pooling*; padding is masked out). Vectors are scaled to length 1, so the cosine
similarity of two texts is the dot product of their embeddings:

    embed(text) = normalize(mean_t h_t)          cos(q, d) = embed(q) . embed(d)

Dedicated embedding models (Sentence-BERT, Reimers & Gurevych 2019, arXiv:1908.10084; DPR,
Karpukhin et al. 2020, arXiv:2004.04906) are trained so that these similarities track meaning.
A language model's hidden states are trained only to predict the next token, so its pooled
embeddings are a much weaker retriever. Lesson 12 measures how much weaker.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx
from tqdm import tqdm

from tinyslm.decode import prompt_bucket
from tinyslm.errors import DataError
from tinyslm.model import TransformerLM
from tinyslm.rag.store import DocumentStore
from tinyslm.tokenizer import Tokenizer


def mean_pool(hidden: jax.Array, mask: jax.Array) -> jax.Array:
    """Average each row's hidden states over its real tokens: hidden (B, T, D), mask (B, T) bool -> (B, D).

    Padding positions (mask False) count neither in the sum nor in the number of tokens.
    """
    weights = mask.astype(hidden.dtype)[..., None]  # (B, T, 1)
    return (hidden * weights).sum(axis=1) / jnp.maximum(weights.sum(axis=1), 1.0)


@partial(jax.jit, static_argnames="graphdef")
def _embed_batch(params, tokens: jax.Array, lengths: jax.Array, *, graphdef) -> jax.Array:
    """tokens (B, T) right-padded, lengths (B,) -> unit-length mean-pooled embeddings (B, D) float32."""
    model = nnx.merge(graphdef, params)
    hidden, _ = model.hidden_states(tokens)  # (B, T, D); causal, so padding never reaches real tokens
    pooled = mean_pool(hidden.astype(jnp.float32), jnp.arange(tokens.shape[1]) < lengths[:, None])
    return pooled / jnp.maximum(jnp.linalg.norm(pooled, axis=-1, keepdims=True), 1e-12)


def embed(model: TransformerLM, tokenizer: Tokenizer, texts: Sequence[str], batch_size: int = 16,
          progress: bool = False) -> np.ndarray:
    """Unit-length embeddings of ``texts`` -> (N, D) float32.

    Texts are sorted by length and batched, each batch right-padded to a power-of-two bucket
    (the decoder's :func:`~tinyslm.decode.prompt_bucket`), so a few compiled shapes serve any
    text and little compute goes to padding. A text longer than the model's context keeps its
    first ``max_seq_len`` tokens. ``progress`` shows a progress bar over the texts.
    """
    context = model.config.max_seq_len
    ids = [tokenizer.encode(t)[:context] for t in texts]
    empty = [i for i, x in enumerate(ids) if not x]
    if empty:
        raise DataError(f"text {empty[0]} is empty; there is nothing to embed")
    graphdef, params = nnx.split(model)
    out = np.zeros((len(ids), model.config.d_model), np.float32)
    order = np.argsort([len(x) for x in ids], kind="stable")
    for start in tqdm(range(0, len(order), batch_size), desc="embedding", unit="batch", disable=not progress):
        rows = order[start:start + batch_size]
        width = prompt_bucket(max(len(ids[r]) for r in rows), context)
        tokens = np.zeros((len(rows), width), np.int32)
        for j, r in enumerate(rows):
            tokens[j, :len(ids[r])] = ids[r]
        lengths = np.array([len(ids[r]) for r in rows], np.int32)
        out[rows] = np.asarray(_embed_batch(params, tokens, lengths, graphdef=graphdef))
    return out


class DenseRetriever:
    """Cosine similarity between mean-pooled embeddings: ``scores(question)`` -> (N,) in [-1, 1].

    The passages are embedded once, when the retriever is built (the index); each question
    costs one forward pass of the model.
    """

    name = "dense"

    def __init__(self, model: TransformerLM, tokenizer: Tokenizer, store: DocumentStore, batch_size: int = 16,
                 progress: bool = False):
        self.model, self.tokenizer, self.store = model, tokenizer, store
        self.embeddings = embed(model, tokenizer, [p.text for p in store.passages], batch_size, progress)  # (N, D)

    def scores(self, query: str) -> np.ndarray:
        return self.embeddings @ embed(self.model, self.tokenizer, [query])[0]
