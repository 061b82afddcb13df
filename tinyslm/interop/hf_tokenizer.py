"""Hugging Face tokenizers behind tinyslm's :class:`~tinyslm.tokenizer.Tokenizer` interface.

A pretrained model is only useful with the exact tokenizer it was trained with: same vocabulary,
same ids, same rules for splitting text. Hugging Face ships that tokenizer in one of two forms,
and :class:`HFTokenizer` runs either, unchanged:

* ``tokenizer.json`` — a whole `tokenizers` pipeline (normaliser -> pre-tokeniser -> model ->
  decoder). SmolLM2, Qwen2, Llama 3 and GPT-2 use a *byte-level BPE*: text is first split by a
  regular expression (words, numbers, punctuation), every byte is shown as a printable character
  (GPT-2's ``bytes_to_unicode``: a space becomes ``Ġ``), then learned merges join characters.
* ``tokenizer.model`` — a sentencepiece model (Llama 2, TinyLlama, and tinyslm's own
  :class:`~tinyslm.tokenizer.SentencePieceTokenizer`).

Special tokens (``<|im_start|>``, ``<|im_end|>``, ...) typed in the text are matched as single
tokens, so a chat template can be written as plain text; they decode to nothing, like tinyslm's
own PAD/BOS/EOS. The tokenizer's ``chat_template`` (a Jinja string) is kept so that an export
hands it on.

In a run directory an ``HFTokenizer`` is ``tokenizer.json`` (tinyslm's metadata, type ``"hf"``)
next to the unchanged ``hf_tokenizer.json`` or ``tokenizer.model``.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Sequence

import sentencepiece as spm
from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers

from tinyslm.errors import TokenizerError
from tinyslm.tokenizer import META_FILE, MODEL_FILE, CharTokenizer, SentencePieceTokenizer, _id_list, _read_meta, _write_meta

HF_FILE = "hf_tokenizer.json"  # the `tokenizers` pipeline inside a tinyslm run (tokenizer.json is tinyslm's metadata)
HF_TOKENIZER_JSON = "tokenizer.json"  # ... and its name in a Hugging Face model directory
HF_TOKENIZER_CONFIG = "tokenizer_config.json"
_SPECIALS = ("bos", "eos", "pad", "unk")


class HFTokenizer:
    """A `tokenizers` pipeline or a sentencepiece model, with the special ids tinyslm needs."""

    def __init__(self, backend: Tokenizer | spm.SentencePieceProcessor, *, bos_id: int | None = None,
                 eos_id: int | None = None, pad_id: int | None = None, unk_id: int | None = None,
                 chat_template: str | None = None) -> None:
        self.backend = backend
        self.bos_id, self.eos_id, self.pad_id, self.unk_id = bos_id, eos_id, pad_id, unk_id
        self.chat_template = chat_template

    @property
    def is_sentencepiece(self) -> bool:
        return isinstance(self.backend, spm.SentencePieceProcessor)

    @property
    def vocab_size(self) -> int:
        if self.is_sentencepiece:
            return self.backend.get_piece_size()
        return self.backend.get_vocab_size(with_added_tokens=True)

    def token_to_id(self, token: str) -> int | None:
        """The id of ``token`` (a piece of the vocabulary, e.g. ``"<|im_end|>"``), or None."""
        if self.is_sentencepiece:
            i = self.backend.piece_to_id(token)
            return None if i == self.backend.unk_id() and token != self.backend.id_to_piece(i) else i
        return self.backend.token_to_id(token)

    def id_to_token(self, i: int) -> str:
        return self.backend.id_to_piece(i) if self.is_sentencepiece else self.backend.id_to_token(i)

    def encode(self, text: str, *, bos: bool = False, eos: bool = False) -> list[int]:
        """Text -> ids exactly as the original tokenizer splits it, with BOS/EOS added when asked."""
        for flag, name in ((bos, "bos"), (eos, "eos")):
            if flag and getattr(self, f"{name}_id") is None:
                raise TokenizerError(f"this tokenizer has no {name.upper()} token ({name}_id is None)")
        if self.is_sentencepiece:
            ids = self.backend.encode(text)
        else:
            ids = self.backend.encode(text, add_special_tokens=False).ids
        return [self.bos_id] * bos + ids + [self.eos_id] * eos

    def decode(self, ids: Sequence[int]) -> str:
        """Ids -> text; special tokens (BOS, EOS, chat markers) decode to nothing."""
        ids = _id_list(ids, self.vocab_size)
        if self.is_sentencepiece:
            return self.backend.decode(ids)
        return self.backend.decode(ids, skip_special_tokens=True)

    # ---------------------------------------------------------------- tinyslm's run directory

    def save(self, directory: str | Path) -> None:
        """Write tinyslm's ``tokenizer.json`` metadata and the backend's own file into ``directory``."""
        _write_meta(directory, {
            "type": "hf", "vocab_size": self.vocab_size,
            **{f"{name}_id": getattr(self, f"{name}_id") for name in _SPECIALS},
            "chat_template": self.chat_template,
        })
        if self.is_sentencepiece:
            (Path(directory) / MODEL_FILE).write_bytes(self.backend.serialized_model_proto())
        else:
            self.backend.save(str(Path(directory) / HF_FILE))

    @classmethod
    def load(cls, directory: str | Path) -> HFTokenizer:
        """Read a tokenizer written by :meth:`save`."""
        meta = _read_meta(directory, expected=("hf",))
        directory = Path(directory)
        if (directory / HF_FILE).is_file():
            backend = Tokenizer.from_file(str(directory / HF_FILE))
        elif (directory / MODEL_FILE).is_file():
            backend = spm.SentencePieceProcessor(model_proto=(directory / MODEL_FILE).read_bytes())
        else:
            raise TokenizerError(f"{directory}: neither {HF_FILE} nor {MODEL_FILE} is there next to {META_FILE}")
        return cls(backend, chat_template=meta.get("chat_template"),
                   **{f"{name}_id": meta.get(f"{name}_id") for name in _SPECIALS})

    # ---------------------------------------------------------------- Hugging Face model directories

    @classmethod
    def from_pretrained(cls, directory: str | Path, config: dict | None = None) -> HFTokenizer:
        """Read the tokenizer of a Hugging Face model directory.

        The pipeline comes from ``tokenizer.json`` (preferred) or ``tokenizer.model``; the special
        tokens from ``tokenizer_config.json`` (by name, e.g. ``"eos_token": "<|im_end|>"``), else
        from the model's ``config.json`` ids (``config``).
        """
        directory = Path(directory)
        if (directory / HF_TOKENIZER_JSON).is_file():
            backend = Tokenizer.from_file(str(directory / HF_TOKENIZER_JSON))
        elif (directory / MODEL_FILE).is_file():
            backend = spm.SentencePieceProcessor(model_file=str(directory / MODEL_FILE))
        else:
            raise TokenizerError(
                f"{directory} has no tokenizer: expected {HF_TOKENIZER_JSON} (a `tokenizers` pipeline) "
                f"or {MODEL_FILE} (sentencepiece); copy the model's tokenizer files into it"
            )
        settings = _read_json(directory / HF_TOKENIZER_CONFIG)
        tokenizer = cls(backend, chat_template=settings.get("chat_template"))
        for name in _SPECIALS:
            token = settings.get(f"{name}_token")
            token = token.get("content") if isinstance(token, dict) else token  # an AddedToken dict
            from_config = (config or {}).get(f"{name}_token_id")
            i = tokenizer.token_to_id(token) if isinstance(token, str) else None
            setattr(tokenizer, f"{name}_id", i if i is not None else (from_config if isinstance(from_config, int) else None))
        return tokenizer

    def save_pretrained(self, directory: str | Path) -> None:
        """Write ``tokenizer.json`` or ``tokenizer.model`` plus ``tokenizer_config.json`` for ``transformers``."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        settings: dict = {"tokenizer_class": "LlamaTokenizer" if self.is_sentencepiece else "PreTrainedTokenizerFast",
                          "add_bos_token": False, "add_eos_token": False, "clean_up_tokenization_spaces": False}
        if self.is_sentencepiece:
            (directory / MODEL_FILE).write_bytes(self.backend.serialized_model_proto())
            settings.update(legacy=True, add_prefix_space=False)  # encode exactly as sentencepiece does
        else:
            self.backend.save(str(directory / HF_TOKENIZER_JSON))
        for name in _SPECIALS:
            i = getattr(self, f"{name}_id")
            if i is not None:
                settings[f"{name}_token"] = self.id_to_token(i)
        if self.chat_template:
            settings["chat_template"] = self.chat_template
        (directory / HF_TOKENIZER_CONFIG).write_text(json.dumps(settings, indent=2, ensure_ascii=False) + "\n")

    # ---------------------------------------------------------------- tinyslm's own tokenizers

    @classmethod
    def convert(cls, tokenizer) -> HFTokenizer:
        """Express any tinyslm tokenizer as an ``HFTokenizer`` that encodes text the same way.

        * A sentencepiece tokenizer *is* a sentencepiece model: it is carried over unchanged. (One
          corner differs: tinyslm spells a literal ``▁`` in the text as its three UTF-8 bytes;
          plain sentencepiece reads it as a space.)
        * A character tokenizer becomes a `tokenizers` word-level vocabulary whose pre-tokeniser
          cuts the text into single characters, and whose decoder joins them without spaces. Like
          the original it has no special tokens and cannot encode an unseen character.
        """
        if isinstance(tokenizer, HFTokenizer):
            return tokenizer
        if isinstance(tokenizer, SentencePieceTokenizer):
            with tempfile.TemporaryDirectory() as tmp:
                tokenizer.save(tmp)
                backend = spm.SentencePieceProcessor(model_proto=(Path(tmp) / MODEL_FILE).read_bytes())
            return cls(backend, bos_id=tokenizer.bos_id, eos_id=tokenizer.eos_id, pad_id=tokenizer.pad_id,
                       unk_id=tokenizer.unk_id)
        if isinstance(tokenizer, CharTokenizer):
            backend = Tokenizer(models.WordLevel({ch: i for i, ch in enumerate(tokenizer.chars)}, unk_token="[UNK]"))
            backend.pre_tokenizer = pre_tokenizers.Split(Regex(r"[\s\S]"), behavior="isolated")
            backend.decoder = decoders.Fuse()
            return cls(backend)
        raise TokenizerError(f"cannot convert a {type(tokenizer).__name__} to a Hugging Face tokenizer")

    def __repr__(self) -> str:
        kind = "sentencepiece" if self.is_sentencepiece else "tokenizers"
        return f"HFTokenizer({kind}, vocab_size={self.vocab_size}, bos_id={self.bos_id}, eos_id={self.eos_id})"


def _read_json(path: Path) -> dict:
    if not path.is_file():
        return {}
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise TokenizerError(f"{path} is not valid JSON ({err})") from None
