"""Tokenizers: turn text into a list of integer ids and back.

A language model never sees text, only ids from a fixed vocabulary. Two choices of vocabulary
are built here:

* :class:`CharTokenizer` — one id per distinct character of the corpus. Tiny vocabulary (65 for
  Shakespeare, as in nanoGPT), long sequences, nothing to train. It cannot encode a character it
  has never seen.
* :class:`SentencePieceTokenizer` — subword units learned from the corpus by sentencepiece
  (Kudo & Richardson 2018), with either byte-pair encoding (BPE: start from characters and keep
  merging the most frequent adjacent pair; Sennrich et al. 2016) or the unigram language model
  (start from many candidate pieces and keep pruning the ones that least hurt the corpus
  likelihood; Kudo 2018). Common words become one id, rare ones a few, so sequences are several
  times shorter than with characters.

Both are exact: ``decode(encode(text)) == text``. For sentencepiece that takes a few settings
(see :meth:`SentencePieceTokenizer.train`): no Unicode normalisation, no whitespace clean-up,
and *byte fallback*, which spells any character missing from the vocabulary as its UTF-8 bytes,
so no text is unencodable.

The vocabulary layout of a sentencepiece tokenizer is fixed: ``PAD_ID=0``, ``UNK_ID=1``,
``BOS_ID=2``, ``EOS_ID=3``, then the newline (id 4), the 256 byte tokens ``<0x00>..<0xFF>``
(ids 5..260), then the learned pieces.

On disk a tokenizer is a directory holding ``tokenizer.json`` (its type and size; for a
character tokenizer also its alphabet) and, for sentencepiece, ``tokenizer.model``.
"""

from __future__ import annotations

import io
import json
import os
import re
from pathlib import Path
from typing import Iterator, Protocol, Sequence, runtime_checkable

import numpy as np
import sentencepiece as spm

from tinyslm.config import TokenizerConfig
from tinyslm.errors import TokenizerError

PAD_ID, UNK_ID, BOS_ID, EOS_ID = 0, 1, 2, 3
NEWLINE = "\n"
META = "\u2581"  # "▁": sentencepiece's stand-in for a space inside pieces
_META_UTF8 = META.encode("utf-8")
# Ids every sentencepiece vocabulary spends before learning anything: 4 specials, "\n", 256 bytes.
MIN_SENTENCEPIECE_VOCAB = 4 + 1 + 256

META_FILE = "tokenizer.json"
MODEL_FILE = "tokenizer.model"
TOKENIZER_TYPES = ("char", "bpe", "unigram", "hf")  # "hf": tinyslm.interop.hf_tokenizer.HFTokenizer

_CHUNK_CHARS = 1024  # sentencepiece skips sentences over 4192 bytes; 1024 chars is at most 4096
_MAX_SENTENCES = 1_000_000  # a bigger corpus is subsampled (shuffled) to this many sentences


@runtime_checkable
class Tokenizer(Protocol):
    """What the rest of tinyslm needs from a tokenizer: encode, decode, save, and the special ids.

    A special id is ``None`` when the tokenizer has no such token (a character tokenizer has none).
    """

    vocab_size: int
    bos_id: int | None
    eos_id: int | None
    pad_id: int | None
    unk_id: int | None

    def encode(self, text: str, *, bos: bool = False, eos: bool = False) -> list[int]: ...

    def decode(self, ids: Sequence[int]) -> str: ...

    def save(self, directory: str | Path) -> None: ...


class CharTokenizer:
    """One id per character: id ``i`` is the ``i``-th of the corpus's distinct characters, sorted.

    The simplest possible tokenizer, and the one nanoGPT uses for Shakespeare. It has no special
    tokens at all (so the Shakespeare vocabulary is exactly its 65 characters), and it cannot
    encode a character that was not in the text it was built from.
    """

    bos_id: int | None = None
    eos_id: int | None = None
    pad_id: int | None = None
    unk_id: int | None = None

    def __init__(self, chars: str) -> None:
        if not chars or len(set(chars)) != len(chars):
            raise TokenizerError(f"CharTokenizer needs a non-empty string of distinct characters, got {chars!r}")
        self.chars = chars
        self.vocab_size = len(chars)
        self._id_of = {ch: i for i, ch in enumerate(chars)}

    @classmethod
    def from_text(cls, text: str) -> CharTokenizer:
        """Build the vocabulary from the sorted distinct characters of ``text``."""
        if not text:
            raise TokenizerError("cannot build a CharTokenizer from empty text")
        return cls("".join(sorted(set(text))))

    def encode(self, text: str, *, bos: bool = False, eos: bool = False) -> list[int]:
        """Map each character to its id; an unknown character is an error that says where it is."""
        if bos or eos:
            raise TokenizerError(
                "CharTokenizer has no BOS/EOS tokens (bos_id and eos_id are None); "
                "check `tokenizer.bos_id is not None` before asking for them"
            )
        try:
            return [self._id_of[ch] for ch in text]
        except KeyError as err:
            ch = err.args[0]
            raise TokenizerError(
                f"character {ch!r} at position {text.index(ch)} is not in this CharTokenizer's "
                f"vocabulary of {self.vocab_size} characters; rebuild the tokenizer on text that "
                "contains it, or use a sentencepiece tokenizer (type 'bpe' or 'unigram'), whose "
                "byte fallback encodes any text"
            ) from None

    def decode(self, ids: Sequence[int]) -> str:
        """Map ids back to characters (accepts lists and numpy/jax integer arrays)."""
        return "".join(self.chars[i] for i in _id_list(ids, self.vocab_size))

    def save(self, directory: str | Path) -> None:
        """Write ``tokenizer.json`` with the alphabet into ``directory`` (created if missing)."""
        _write_meta(directory, {"type": "char", "vocab_size": self.vocab_size, "chars": self.chars})

    @classmethod
    def load(cls, directory: str | Path) -> CharTokenizer:
        """Read a tokenizer written by :meth:`save`."""
        meta = _read_meta(directory, expected=("char",))
        if not isinstance(meta.get("chars"), str):
            path = Path(directory) / META_FILE
            raise TokenizerError(f"{path}: 'chars' (the alphabet) is missing; re-save the tokenizer")
        return cls(meta["chars"])

    def __repr__(self) -> str:
        return f"CharTokenizer(vocab_size={self.vocab_size})"


class SentencePieceTokenizer:
    """A learned subword vocabulary (BPE or unigram) with byte fallback, run by sentencepiece.

    Special tokens have fixed ids: ``pad_id=0``, ``unk_id=1``, ``bos_id=2``, ``eos_id=3``.
    Thanks to byte fallback ``unk_id`` is never produced by :meth:`encode`.
    """

    pad_id: int | None = PAD_ID
    unk_id: int | None = UNK_ID
    bos_id: int | None = BOS_ID
    eos_id: int | None = EOS_ID

    def __init__(self, model_proto: bytes, model_type: str) -> None:
        try:
            self._sp = spm.SentencePieceProcessor(model_proto=model_proto)
        except RuntimeError as err:
            raise TokenizerError(f"not a valid sentencepiece model ({err}); re-train or re-save it") from None
        self.model_type = model_type
        self._meta_bytes = [self._sp.piece_to_id(f"<0x{b:02X}>") for b in _META_UTF8]

    @property
    def vocab_size(self) -> int:
        return self._sp.get_piece_size()

    @classmethod
    def train(cls, text: str, vocab_size: int, model_type: str = "bpe", *, seed: int = 0) -> SentencePieceTokenizer:
        """Learn a ``vocab_size`` vocabulary from ``text``, in memory, in a few seconds.

        Settings, and why:

        * ``normalization_rule_name="identity"``, ``remove_extra_whitespaces=False``,
          ``add_dummy_prefix=False``: the default NFKC normalisation and whitespace clean-up
          change the text, and then decode(encode(text)) != text.
        * ``byte_fallback=True``: a character outside the vocabulary becomes its UTF-8 bytes
          instead of ``<unk>``, so every string can be encoded and decoded exactly.
        * ``split_digits=True``: each digit is its own token (as in Llama), so "2024" is 2,0,2,4
          and the model sees numbers digit by digit rather than as arbitrary chunks.
        * ``"\\n"`` is a user-defined symbol: always exactly one token (id 4). The text is
          therefore trained line by line; long lines are cut into chunks sentencepiece accepts.
        * ``allow_whitespace_only_pieces=True``: runs of spaces (indentation) can become one token.

        ``seed`` fixes the shuffle used when a corpus has more than a million lines and is
        subsampled; smaller corpora are used whole and train deterministically.
        """
        if model_type not in ("bpe", "unigram"):
            raise TokenizerError(f"model_type must be 'bpe' or 'unigram', got {model_type!r}")
        if vocab_size < MIN_SENTENCEPIECE_VOCAB:
            raise TokenizerError(
                f"vocab_size={vocab_size} is too small: a sentencepiece tokenizer needs at least "
                f"{MIN_SENTENCEPIECE_VOCAB} ids (4 special tokens, the newline and 256 byte-fallback "
                "tokens) plus one per distinct character of the text"
            )
        if not text.replace(NEWLINE, ""):
            raise TokenizerError("cannot train a tokenizer on empty text")
        model = io.BytesIO()
        spm.set_random_generator_seed(seed)
        try:
            spm.SentencePieceTrainer.train(
                sentence_iterator=_sentences(text),
                model_writer=model,
                model_type=model_type,
                vocab_size=vocab_size,
                normalization_rule_name="identity",
                remove_extra_whitespaces=False,
                add_dummy_prefix=False,
                byte_fallback=True,
                split_digits=True,
                allow_whitespace_only_pieces=True,
                user_defined_symbols=[NEWLINE],
                pad_id=PAD_ID,
                unk_id=UNK_ID,
                bos_id=BOS_ID,
                eos_id=EOS_ID,
                input_sentence_size=_MAX_SENTENCES,
                shuffle_input_sentence=True,
                num_threads=os.cpu_count() or 1,
                minloglevel=2,  # errors only: training is quick and needs no progress log
            )
        except RuntimeError as err:
            raise _training_error(err, vocab_size, model_type) from None
        return cls(model.getvalue(), model_type)

    def encode(self, text: str, *, bos: bool = False, eos: bool = False) -> list[int]:
        """Split ``text`` into pieces and return their ids, with BOS/EOS added when asked."""
        try:
            data = text.encode("utf-8")  # sentencepiece works on UTF-8 bytes
        except UnicodeEncodeError as err:
            raise TokenizerError(
                f"character {text[err.start]!r} at position {err.start} is a lone surrogate, not "
                "valid Unicode text; decode the source with errors='replace' to drop it"
            ) from None
        ids = [BOS_ID] if bos else []
        # Sentencepiece writes every space as META, so a literal META in the text would decode as
        # a space. We send each literal one as its three UTF-8 byte tokens instead.
        for i, part in enumerate(data.split(_META_UTF8)):
            if i:
                ids += self._meta_bytes
            ids += self._sp.encode(part)
        if eos:
            ids.append(EOS_ID)
        return ids

    def decode(self, ids: Sequence[int]) -> str:
        """Join the pieces back into text; PAD, BOS and EOS decode to nothing."""
        return self._sp.decode(_id_list(ids, self.vocab_size))

    def save(self, directory: str | Path) -> None:
        """Write ``tokenizer.model`` and ``tokenizer.json`` into ``directory`` (created if missing)."""
        _write_meta(directory, {
            "type": self.model_type, "vocab_size": self.vocab_size,
            "pad_id": PAD_ID, "unk_id": UNK_ID, "bos_id": BOS_ID, "eos_id": EOS_ID,
        })
        (Path(directory) / MODEL_FILE).write_bytes(self._sp.serialized_model_proto())

    @classmethod
    def load(cls, directory: str | Path) -> SentencePieceTokenizer:
        """Read a tokenizer written by :meth:`save`."""
        meta = _read_meta(directory, expected=("bpe", "unigram"))
        path = Path(directory) / MODEL_FILE
        if not path.is_file():
            raise TokenizerError(f"{path} is missing: a sentencepiece tokenizer needs it next to {META_FILE}")
        tokenizer = cls(path.read_bytes(), meta["type"])
        if tokenizer.vocab_size != meta.get("vocab_size"):
            raise TokenizerError(
                f"{path} has {tokenizer.vocab_size} pieces but {META_FILE} says "
                f"{meta.get('vocab_size')}; the two files come from different tokenizers"
            )
        return tokenizer

    def __repr__(self) -> str:
        return f"SentencePieceTokenizer(model_type={self.model_type!r}, vocab_size={self.vocab_size})"


def train_tokenizer(config: TokenizerConfig, text: str) -> Tokenizer:
    """Build the tokenizer ``config`` describes from ``text`` (``vocab_size`` is ignored for "char")."""
    if config.type == "char":
        return CharTokenizer.from_text(text)
    return SentencePieceTokenizer.train(text, config.vocab_size, config.type)


def load_tokenizer(directory: str | Path) -> Tokenizer:
    """Load whichever tokenizer was saved into ``directory``, as named by its ``tokenizer.json``."""
    meta = _read_meta(directory, expected=TOKENIZER_TYPES)
    if meta["type"] == "hf":  # a pretrained model's tokenizer, imported by tinyslm.interop
        try:
            from tinyslm.interop.hf_tokenizer import HFTokenizer
        except ImportError as err:
            raise TokenizerError(
                f"{directory} holds a Hugging Face tokenizer, which needs the `tokenizers` package ({err}); "
                "install it with `pip install 'tinyslm[hf]'`"
            ) from None
        return HFTokenizer.load(directory)
    cls = CharTokenizer if meta["type"] == "char" else SentencePieceTokenizer
    return cls.load(directory)


def _sentences(text: str) -> Iterator[str]:
    """The training sentences: each line of ``text`` (newline removed), cut into short chunks."""
    for line in text.split(NEWLINE):
        for start in range(0, len(line), _CHUNK_CHARS):
            yield line[start : start + _CHUNK_CHARS]


def _training_error(err: RuntimeError, vocab_size: int, model_type: str) -> TokenizerError:
    """Turn sentencepiece's terse C++ check failures into a message that says what to do."""
    message = str(err)
    if match := re.search(r"smaller than required_chars\. \d+ vs (\d+)", message):
        return TokenizerError(
            f"vocab_size={vocab_size} is too small for this text: the minimum is {match[1]} "
            f"({MIN_SENTENCEPIECE_VOCAB} ids for the special tokens, the newline and the 256 "
            "byte-fallback tokens, plus one per distinct character); use a larger vocab_size"
        )
    if match := re.search(r"Vocabulary size too high .*<= (\d+)", message):
        return TokenizerError(
            f"vocab_size={vocab_size} is too large for this text: sentencepiece can learn at most "
            f"{match[1]} {model_type} pieces from it; use a smaller vocab_size or more text"
        )
    return TokenizerError(f"sentencepiece could not train a {model_type} tokenizer ({vocab_size=}): {message}")


def _id_list(ids: Sequence[int], vocab_size: int) -> list[int]:
    """Check that ``ids`` (a list, or a numpy/jax array) is 1-D, integer and in range."""
    array = np.asarray(ids)
    if array.ndim != 1 or (array.size and not np.issubdtype(array.dtype, np.integer)):
        raise TokenizerError(f"decode expects a 1-D sequence of integer ids, got shape {array.shape} of {array.dtype}")
    out_of_range = array[(array < 0) | (array >= vocab_size)]
    if out_of_range.size:
        raise TokenizerError(
            f"token id {out_of_range[0]} is out of range for a vocabulary of {vocab_size} "
            f"(ids 0..{vocab_size - 1}); were these ids made by a different tokenizer?"
        )
    return array.tolist()


def _write_meta(directory: str | Path, meta: dict) -> None:
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    (directory / META_FILE).write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")


def _read_meta(directory: str | Path, expected: tuple[str, ...]) -> dict:
    """Read ``tokenizer.json`` and check that it names one of the ``expected`` types."""
    path = Path(directory) / META_FILE
    if not path.is_file():
        raise TokenizerError(
            f"no tokenizer in {str(directory)!r}: {META_FILE} not found there; give the directory a "
            "tokenizer was saved to (a run's `tokenizer/`), or train one with `tinyslm tokenizer train`"
        )
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise TokenizerError(f"{path} is not valid JSON ({err}); re-save the tokenizer") from None
    kind = meta.get("type") if isinstance(meta, dict) else None
    if kind not in TOKENIZER_TYPES:
        raise TokenizerError(f"{path}: unknown tokenizer type {kind!r}, expected one of {TOKENIZER_TYPES}")
    if kind not in expected:
        raise TokenizerError(f"{path} holds a {kind!r} tokenizer; load it with load_tokenizer()")
    return meta


__all__ = [
    "Tokenizer", "CharTokenizer", "SentencePieceTokenizer", "train_tokenizer", "load_tokenizer",
    "PAD_ID", "UNK_ID", "BOS_ID", "EOS_ID", "MIN_SENTENCEPIECE_VOCAB",
]
