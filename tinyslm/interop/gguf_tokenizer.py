"""A tokenizer inside a GGUF file (``tokenizer.ggml.*`` metadata) <-> a tinyslm tokenizer.

GGUF stores the tokenizer in one of two forms, named by ``tokenizer.ggml.model``:

* ``"gpt2"``: byte-level BPE — the tokens, the merges, and a named pre-tokeniser
  (``tokenizer.ggml.pre``, e.g. ``"smollm"``) that says how text is cut into words before merging.
  We rebuild it as a `tokenizers` BPE with the same splitting rule.
* ``"llama"``: sentencepiece — the pieces, their scores and their types (normal, control,
  byte, ...). We rebuild a sentencepiece model from them. llama.cpp encodes these by merging the
  best-scoring adjacent pair first: exact for BPE-trained vocabularies, an approximation for
  unigram ones (tinyslm's ``type: unigram`` tokenizers included).

tinyslm's character tokenizer is written as a ``"llama"`` vocabulary of single characters with
no scores and no special tokens, and read back as a character tokenizer. llama.cpp assumes
BOS/EOS ids for such a vocabulary (1 and 2), so its end-of-text handling differs from tinyslm's
(which has none), and a character missing from the vocabulary cannot be encoded there either.
"""

from __future__ import annotations

import json
import warnings

import gguf
import sentencepiece as spm
import tokenizers
from sentencepiece import sentencepiece_model_pb2 as sp_pb2
from tokenizers import AddedToken, Regex, decoders, models, pre_tokenizers

from tinyslm.errors import TokenizerError
from tinyslm.interop.hf_tokenizer import HFTokenizer
from tinyslm.tokenizer import META, CharTokenizer, Tokenizer

# llama.cpp's pre-tokenisers (tokenizer.ggml.pre), spelled as `tokenizers` pre-tokenisers. The
# regular expressions are the ones llama.cpp uses for these names.
_LLAMA3_SPLIT = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*"
                 r"|\s*[\r\n]+|\s+(?!\S)|\s+")
_QWEN2_SPLIT = _LLAMA3_SPLIT.replace(r"\p{N}{1,3}", r"\p{N}")


def _regex_then_bytes(pattern: str) -> pre_tokenizers.PreTokenizer:
    return pre_tokenizers.Sequence([pre_tokenizers.Split(Regex(pattern), behavior="isolated"),
                                    pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)])


_PRE_TOKENIZERS = {  # name -> (pre-tokeniser, ignore_merges: a whole word in the vocabulary is one token)
    "gpt-2": (lambda: pre_tokenizers.ByteLevel(add_prefix_space=False), False),
    "default": (lambda: pre_tokenizers.ByteLevel(add_prefix_space=False), False),
    "smollm": (lambda: pre_tokenizers.Sequence([pre_tokenizers.Digits(individual_digits=True),
                                                pre_tokenizers.ByteLevel(add_prefix_space=False)]), False),
    "qwen2": (lambda: _regex_then_bytes(_QWEN2_SPLIT), False),
    "llama-bpe": (lambda: _regex_then_bytes(_LLAMA3_SPLIT), True),
}
_NORMAL, _CONTROL, _USER_DEFINED, _BYTE = 1, 3, 4, 6  # token types (the same numbers as sentencepiece's)


def tokenizer_from_gguf(metadata: dict, where: str) -> Tokenizer:
    """Rebuild the tokenizer from a GGUF file's ``tokenizer.*`` metadata (key -> value)."""
    get = metadata.get
    kind = get("tokenizer.ggml.model")
    tokens = get("tokenizer.ggml.tokens")
    if tokens is None:
        raise TokenizerError(f"{where} holds no tokenizer (tokenizer.ggml.tokens is missing)")
    types = get("tokenizer.ggml.token_type", [_NORMAL] * len(tokens))
    specials = {f"{name}_id": get(f"tokenizer.ggml.{key}_token_id")
                for name, key in (("bos", "bos"), ("eos", "eos"), ("pad", "padding"), ("unk", "unknown"))}
    template = get("tokenizer.chat_template")
    if kind == "gpt2":
        backend = _bpe_from_vocab(tokens, get("tokenizer.ggml.merges", []), types,
                                  get("tokenizer.ggml.pre", "default"))
        return HFTokenizer(backend, chat_template=template, **specials)
    if kind == "llama":
        scores = get("tokenizer.ggml.scores")
        if scores is None and all(len(t) == 1 for t in tokens) and set(types) == {_NORMAL}:
            return CharTokenizer("".join(t.replace(META, " ") for t in tokens))  # see export
        backend = _sentencepiece_from_vocab(tokens, scores, types, get("tokenizer.ggml.add_space_prefix", True))
        return HFTokenizer(backend, chat_template=template, **specials)
    raise TokenizerError(f"{where}: tokenizer model {kind!r} is not supported (tinyslm reads 'gpt2' and 'llama')")


def _bpe_from_vocab(tokens: list[str], merges: list[str], types: list[int], pre: str) -> tokenizers.Tokenizer:
    """A byte-level BPE `tokenizers` pipeline from GGUF's tokens, merges and pre-tokeniser name."""
    if pre not in _PRE_TOKENIZERS:
        warnings.warn(f"GGUF pre-tokenizer {pre!r} is unknown to tinyslm; splitting text like GPT-2 instead, "
                      "so some texts (numbers, contractions) may get different ids than in llama.cpp")
    make_pre, ignore_merges = _PRE_TOKENIZERS.get(pre, _PRE_TOKENIZERS["default"])
    vocab = {token: i for i, token in enumerate(tokens)}
    backend = tokenizers.Tokenizer(models.BPE(vocab, [tuple(m.split(" ", 1)) for m in merges], ignore_merges=ignore_merges))
    backend.pre_tokenizer = make_pre()
    backend.decoder = decoders.ByteLevel()
    backend.add_tokens([AddedToken(t, special=ty == _CONTROL, normalized=False)
                        for t, ty in zip(tokens, types) if ty in (_CONTROL, _USER_DEFINED)])
    return backend


def _sentencepiece_from_vocab(tokens: list[str], scores: list[float] | None, types: list[int],
                              add_space_prefix: bool) -> spm.SentencePieceProcessor:
    """A sentencepiece BPE model from GGUF's pieces, scores and types.

    Sentencepiece BPE keeps no merge list: it merges the adjacent pair whose union has the
    highest score, which is exactly what llama.cpp does with these scores.
    """
    proto = sp_pb2.ModelProto()
    for token, score, kind in zip(tokens, scores or [0.0] * len(tokens), types):
        proto.pieces.add(piece=token, score=score, type=kind)
    proto.trainer_spec.model_type = sp_pb2.TrainerSpec.ModelType.BPE
    proto.trainer_spec.byte_fallback = _BYTE in types
    proto.normalizer_spec.name = "identity"
    proto.normalizer_spec.add_dummy_prefix = add_space_prefix
    proto.normalizer_spec.remove_extra_whitespaces = False
    try:
        return spm.SentencePieceProcessor(model_proto=proto.SerializeToString())
    except RuntimeError as err:
        raise TokenizerError(f"the GGUF's sentencepiece vocabulary is not valid ({err})") from None


def write_tokenizer(writer: gguf.GGUFWriter, tokenizer: HFTokenizer) -> None:
    """Write the ``tokenizer.ggml.*`` metadata: the inverse of :func:`tokenizer_from_gguf`."""
    if tokenizer.is_sentencepiece:
        proto = sp_pb2.ModelProto.FromString(tokenizer.backend.serialized_model_proto())
        writer.add_tokenizer_model("llama")
        writer.add_token_list([p.piece for p in proto.pieces])
        writer.add_token_scores([p.score for p in proto.pieces])
        writer.add_token_types([p.type for p in proto.pieces])
        writer.add_add_space_prefix(proto.normalizer_spec.add_dummy_prefix)
    else:
        spec = json.loads(tokenizer.backend.to_str())
        model, pre = spec["model"], spec.get("pre_tokenizer")
        vocab = tokenizer.backend.get_vocab(with_added_tokens=True)
        tokens = sorted(vocab, key=vocab.get)
        if [vocab[t] for t in tokens] != list(range(len(tokens))):
            raise TokenizerError("the tokenizer's ids are not contiguous from 0; GGUF cannot store it")
        if model["type"] == "WordLevel":  # tinyslm's character tokenizer (see HFTokenizer.convert)
            writer.add_tokenizer_model("llama")
            writer.add_token_list([t.replace(" ", META) for t in tokens])
            writer.add_token_types([_NORMAL] * len(tokens))
            writer.add_add_space_prefix(False)
        elif model["type"] == "BPE" and "ByteLevel" in json.dumps(pre):
            added = {t["content"]: t["special"] for t in spec.get("added_tokens", [])}
            writer.add_tokenizer_model("gpt2")
            writer.add_tokenizer_pre(_pre_tokenizer_name(pre))
            writer.add_token_list(tokens)
            writer.add_token_types([(_CONTROL if added[t] else _USER_DEFINED) if t in added else _NORMAL for t in tokens])
            writer.add_token_merges([m if isinstance(m, str) else " ".join(m) for m in model["merges"]])
        else:
            raise TokenizerError(f"a {model['type']} tokenizer without byte-level pre-tokenisation cannot be written to GGUF")
    for name, add in (("bos", writer.add_bos_token_id), ("eos", writer.add_eos_token_id),
                      ("pad", writer.add_pad_token_id), ("unk", writer.add_unk_token_id)):
        if getattr(tokenizer, f"{name}_id") is not None:
            add(getattr(tokenizer, f"{name}_id"))
    writer.add_add_bos_token(False)  # tinyslm prompts carry no BOS unless asked (generate's bos=True)
    if tokenizer.chat_template:
        writer.add_chat_template(tokenizer.chat_template)


def _pre_tokenizer_name(pre: dict | None) -> str:
    """The llama.cpp name of a `tokenizers` pre-tokeniser (the inverse of ``_PRE_TOKENIZERS``)."""
    for name, (make, _) in _PRE_TOKENIZERS.items():
        if json.loads(make().__getstate__()) == pre:
            return name
    warnings.warn("the tokenizer's pre-tokeniser has no llama.cpp name known to tinyslm; writing 'default' "
                  "(GPT-2's splitting), so llama.cpp may split some texts differently")
    return "default"
