"""Prompt assembly: retrieved passages and the question, in the model's own chat format, within its context.

An instruction-tuned model was fine-tuned on conversations written in one exact format, its
*chat template*: SmolLM2-Instruct, for instance, wraps every turn as
``<|im_start|>user\\n...<|im_end|>\\n`` and answers after ``<|im_start|>assistant\\n``. A prompt
in any other format is text the model never saw during fine-tuning, and it answers worse. The
template travels with the model (``tokenizer.chat_template``, read from the GGUF file's
``tokenizer.chat_template`` or Hugging Face's ``tokenizer_config.json``) as a small Jinja
program over a list of messages; :func:`render_chat` runs it, the way ``transformers`` does
(a sandboxed Jinja environment that strips the template's own line breaks).

Retrieval-augmented generation (Lewis et al. 2020, arXiv:2005.11401) puts the retrieved passages
into the user's turn, before the question, with an instruction to use them. The prompt must also
leave room for the answer: a model with a context of ``max_seq_len`` tokens that should answer in
up to ``max_new_tokens`` has ``max_seq_len - max_new_tokens`` tokens for the prompt.
:func:`build_prompt` keeps the best-ranked passages that fit in that budget, and if even the best
one alone does not fit, cuts its end off.

A tokenizer without a chat template (tinyslm's own, trained on plain text) gets the same user
message followed by ``Answer:``: a plain-text prompt for a plain-text model.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

from tinyslm.errors import GenerationError
from tinyslm.rag.store import Hit
from tinyslm.tokenizer import Tokenizer

NOTICE = "Teaching demo of retrieval-augmented generation, not medical advice."
INSTRUCTION = "Answer the question using the passages below."


def render_chat(template: str, messages: Sequence[dict], *, add_generation_prompt: bool = True,
                bos_token: str = "", eos_token: str = "") -> str:
    """Run a Jinja chat template over ``messages`` ([{"role": "user", "content": "..."}, ...]).

    The same settings as ``transformers``' ``apply_chat_template``: an immutable sandbox (a
    template is code shipped with a model file, so it must not reach Python objects), blocks
    that swallow their own line breaks, and ``raise_exception`` for templates that validate roles.
    """
    from jinja2 import TemplateError
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    def raise_exception(message: str):
        raise TemplateError(message)

    environment = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)
    environment.globals["raise_exception"] = raise_exception
    try:
        return environment.from_string(template).render(
            messages=list(messages), add_generation_prompt=add_generation_prompt,
            bos_token=bos_token, eos_token=eos_token)
    except TemplateError as err:
        raise GenerationError(f"the tokenizer's chat template failed: {err}") from None


def chat_prompt(tokenizer: Tokenizer, user_message: str) -> str:
    """One user turn, ready for the model to answer: its chat template if it has one, else plain text."""
    template = getattr(tokenizer, "chat_template", None)
    if not template:
        return f"{user_message}\nAnswer:"
    special = {f"{name}_token": tokenizer.id_to_token(i)
               for name in ("bos", "eos") if (i := getattr(tokenizer, f"{name}_id")) is not None}
    return render_chat(template, [{"role": "user", "content": user_message}], **special)


def user_message(question: str, hits: Sequence[Hit]) -> str:
    """The user's turn: the instruction and each passage under its id, then the question.
    Without passages it is the bare question (the model answers from memory)."""
    if not hits:
        return question
    passages = "\n\n".join(f"[{hit.passage.id}]\n{hit.passage.text.strip()}" for hit in hits)
    return f"{INSTRUCTION}\n\n{passages}\n\nQuestion: {question}"


@dataclass(frozen=True)
class Prompt:
    """An assembled prompt: its ``text``, its length in tokens, the passages it holds (best first),
    and whether the last of them was cut short to fit."""

    text: str
    n_tokens: int
    hits: tuple[Hit, ...]
    trimmed: bool = False


def build_prompt(tokenizer: Tokenizer, question: str, hits: Sequence[Hit], max_tokens: int) -> Prompt:
    """The chat prompt for ``question`` with as many of ``hits`` (best first) as fit in ``max_tokens``.

    Lower-ranked passages are dropped first. If only the best passage is left and it still does
    not fit, its text is cut, a few tokens at a time, until the prompt fits. A question that does
    not fit even without passages is an error.
    """
    def assemble(kept: Sequence[Hit]) -> Prompt:
        text = chat_prompt(tokenizer, user_message(question, kept))
        return Prompt(text, len(tokenizer.encode(text)), tuple(kept))

    kept = list(hits)
    prompt = assemble(kept)
    while prompt.n_tokens > max_tokens and len(kept) > 1:
        kept.pop()
        prompt = assemble(kept)
    if prompt.n_tokens > max_tokens and kept:
        best = kept[0]
        ids = tokenizer.encode(best.passage.text)
        keep = len(ids)
        while prompt.n_tokens > max_tokens:
            keep -= prompt.n_tokens - max_tokens + 1  # the overflow, and one more for the "..."
            if keep <= 0:  # not even a few words of it fit: the question goes alone
                prompt = assemble([])
                break
            cut = replace(best.passage, text=tokenizer.decode(ids[:keep]).rstrip() + " ...")
            prompt = replace(assemble([Hit(cut, best.score)]), trimmed=True)
    if prompt.n_tokens > max_tokens:
        raise GenerationError(f"the question alone takes {prompt.n_tokens} prompt tokens, more than the "
                              f"{max_tokens} the context leaves; shorten it or ask for fewer new tokens")
    return prompt
