"""Classify by generation: ask the language model to write the label, and score every label.

Instead of adding a head, keep the model a language model and make the task a text to complete:

    Symptoms: I have a rash on my arms and it itches.
    Condition: Psoriasis

Fine-tuning teaches it to write the right label after ``Condition:``; only the label's tokens are
predicted in the loss (the symptoms are given, not to be learned). To classify, do not sample:
compute the log-probability of *each* label as the continuation of the prompt,

    log p(label | prompt) = sum over the label's tokens of log p(token | prompt, earlier tokens)

and pick the most likely one. The answer is always one of the known labels, and a softmax over
the label scores gives a probability for each, as a head would. This is how instruction-tuned
models are evaluated on multiple-choice benchmarks, and how a model that was never given a
head can still be compared with one that was.

Each label is written as ``" " + label + "\\n"``: the closing newline makes the score that of the
whole label, not of its beginning ("Common" is a prefix of "Common Cold" in spirit, if not here).
"""

from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from tinyslm.adapt.data import map_fixed_batches
from tinyslm.adapt.lora import set_lora_dropout_key
from tinyslm.errors import DataError
from tinyslm.tokenizer import Tokenizer
from tinyslm.train.step import language_model_loss

PROMPT_PREFIX = "Symptoms: "
PROMPT_SUFFIX = "\nCondition:"


def prompt_ids(tokenizer: Tokenizer, text: str, max_tokens: int) -> list[int]:
    """``Symptoms: <text>\\nCondition:`` as ids, the text cut so that the whole prompt fits ``max_tokens``."""
    prefix, suffix = tokenizer.encode(PROMPT_PREFIX), tokenizer.encode(PROMPT_SUFFIX)
    room = max_tokens - len(prefix) - len(suffix)
    if room < 1:
        raise DataError(f"a context of {max_tokens} tokens leaves no room for the symptoms after the prompt")
    return prefix + tokenizer.encode(text)[:room] + suffix


def answer_ids(tokenizer: Tokenizer, label: str) -> list[int]:
    """The tokens the model should write for ``label``: ``" <label>\\n"``."""
    return tokenizer.encode(f" {label}\n")


def answer_windows(prompts: list[list[int]], answers: list[list[int]], max_len: int, pad_id: int
                   ) -> tuple[np.ndarray, np.ndarray]:
    """Prompt + answer rows -> windows (N, max_len + 1) int32 and a mask (N, max_len) float32.

    Window row i is prompt + answer padded with ``pad_id``; the model reads ``windows[:, :-1]`` and
    predicts ``windows[:, 1:]``. The mask is 1 exactly where the predicted token is part of the
    answer: the loss and the score count those and nothing else (not the prompt, not the padding).
    """
    windows = np.full((len(prompts), max_len + 1), pad_id, np.int32)
    mask = np.zeros((len(prompts), max_len), np.float32)
    for i, (prompt, answer) in enumerate(zip(prompts, answers)):
        ids = prompt + answer
        if len(ids) > max_len + 1:
            raise DataError(f"prompt + answer is {len(ids)} tokens, more than the {max_len + 1} a window holds")
        windows[i, : len(ids)] = ids
        mask[i, len(prompt) - 1 : len(ids) - 1] = 1.0  # predictions made at the last prompt token onwards
    return windows, mask


def answer_loss(model: nnx.Module, batch: dict, dropout_key: jax.Array | None = None) -> jax.Array:
    """Next-token loss on the answer tokens only, over the batch's real rows (``weight`` 1)."""
    set_lora_dropout_key(model, dropout_key)
    return language_model_loss(model, batch["windows"], dropout_key, batch["mask"] * batch["weight"][:, None])


@partial(jax.jit, static_argnums=0)
def _answer_log_likelihood(graphdef, state, windows, mask):
    """Sum of log p(answer tokens): windows (N, T+1), mask (N, T) -> (N,)."""
    logits = nnx.merge(graphdef, state)(windows[:, :-1])
    log_probs = jax.nn.log_softmax(logits, axis=-1)
    picked = jnp.take_along_axis(log_probs, windows[:, 1:, None], axis=-1)[..., 0]  # (N, T)
    return (picked * mask).sum(-1)



def label_log_likelihoods(model: nnx.Module, prompts: list[list[int]], answers: list[list[int]], max_len: int,
                          pad_id: int, batch_size: int = 64) -> np.ndarray:
    """log p(answer j | prompt i) for every prompt and every answer: (N prompts, L answers) float32.

    All N x L rows are scored in batches of a fixed shape (the last one filled up), so the scoring
    function compiles once.
    """
    pairs = [(p, a) for p in prompts for a in answers]
    windows, mask = answer_windows([p for p, _ in pairs], [a for _, a in pairs], max_len, pad_id)
    graphdef, state = nnx.split(model)
    scores = map_fixed_batches(partial(_answer_log_likelihood, graphdef, state), (windows, mask), batch_size)
    return scores.reshape(len(prompts), len(answers))
