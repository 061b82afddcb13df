"""Tokenise a text once and store it as a flat array of token ids on disk.

Training reads millions of random windows; re-tokenising text for each of them would cost more
than the model itself. So, like nanoGPT, we tokenise once and write the ids as raw integers:

    out_dir/
      train.bin   token ids of the first (1 - val_fraction) of the text
      val.bin     token ids of the rest
      meta.json   how to read them back: dtype, token counts, the tokenizer, the source

A ``.bin`` file has no header — just ids, 2 bytes each (uint16) when the vocabulary fits in
65,536 ids, 4 bytes (uint32) otherwise — so it can be memory-mapped: ``load_tokens`` returns an
array backed by the file itself, and the operating system pages in only the windows we touch.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from tqdm import tqdm

from tinyslm.errors import DataError

SPLITS = ("train", "val")
_CHUNK_CHARS = 1 << 16  # tokenise about 64k characters per call: few calls, a smooth progress bar
_PROGRESS_MIN_CHARS = 1 << 20  # below ~1 MB tokenising takes a blink; no bar


def prepare(text: str, tokenizer, out_dir: str | Path, val_fraction: float, *, source: str = "text") -> dict:
    """Tokenise ``text`` into ``out_dir/{train,val}.bin`` plus ``meta.json``; return the meta dict.

    The split is by position, not by random lines: the last ``val_fraction`` of the text is
    validation. Neighbouring lines are often near-copies (a verse, a template), so a random line
    split would let the model see validation text while training and make the val loss lie.
    ``source`` is a one-line description of where the text came from, kept in meta.json.
    """
    cut = split_point(text, val_fraction)
    parts = {"train": text[:cut], "val": text[cut:]}
    for split, part in parts.items():
        if not part:
            raise DataError(f"the {split} split is empty: the text has only {len(text)} characters; "
                            "use a longer text or a different data.val_fraction")
    dtype = token_dtype(tokenizer.vocab_size)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    n_tokens = {}
    for split, part in parts.items():
        ids = encode_in_chunks(part, tokenizer, dtype, desc=f"tokenizing {split}")
        ids.tofile(out_dir / f"{split}.bin")
        n_tokens[split] = len(ids)
    meta = {
        "tokenizer": {"type": type(tokenizer).__name__, "vocab_size": tokenizer.vocab_size},
        "dtype": dtype.name,
        "tokens": n_tokens,
        "chars": {split: len(part) for split, part in parts.items()},
        "val_fraction": val_fraction,
        "source": source,
    }
    (out_dir / "meta.json").write_text(json.dumps(meta, indent=2) + "\n")
    return meta


def split_point(text: str, val_fraction: float) -> int:
    """The character index where validation starts: the line break nearest ``1 - val_fraction``.

    Cutting mid-line would leave half a sentence at the end of train and the other half at the
    start of val. A text with no line break inside it is cut at the exact position instead.
    Either way both sides keep at least one character (when the text has two).
    """
    target = min(max(round(len(text) * (1 - val_fraction)), 1), len(text) - 1)
    line_start_before = text.rfind("\n", 0, target) + 1  # 0 when there is no break before target
    line_start_after = text.find("\n", target) + 1  # 0 when there is no break after it
    candidates = [i for i in (line_start_before, line_start_after) if 0 < i < len(text)]
    if not candidates:
        return target
    return min(candidates, key=lambda i: abs(i - target))


def token_dtype(vocab_size: int) -> np.dtype:
    """The smallest unsigned integer type that holds every id: uint16 up to 65,536 ids, else uint32."""
    return np.dtype(np.uint16 if vocab_size <= 1 << 16 else np.uint32)


def encode_in_chunks(text: str, tokenizer, dtype: np.dtype, desc: str = "tokenizing") -> np.ndarray:
    """Token ids of ``text`` as one array, encoded a block of whole lines at a time.

    Chunks end at line breaks, so for a tokenizer that never merges across a line break (ours
    do not) this gives exactly the ids of encoding the whole text in one call, while costing one
    ``encode`` call per 64k characters and letting us show progress. Each chunk's ids become a
    compact numpy array at once (2-4 bytes per id) rather than one long list of Python ints.
    """
    show = len(text) >= _PROGRESS_MIN_CHARS
    arrays = [np.zeros(0, dtype)]  # so that an empty text gives an empty array, not an error
    with tqdm(total=len(text), unit="char", unit_scale=True, desc=desc, disable=None if show else True) as bar:
        for chunk in _line_chunks(text, _CHUNK_CHARS):
            arrays.append(np.asarray(tokenizer.encode(chunk), dtype=dtype))
            bar.update(len(chunk))
    return np.concatenate(arrays)


def _line_chunks(text: str, size: int):
    """Consecutive pieces of ``text`` of at least ``size`` characters, each ending at a line break."""
    start = 0
    while start < len(text):
        end = text.find("\n", start + size) + 1 or len(text)  # find() = -1 means: take the rest
        yield text[start:end]
        start = end


def read_meta(out_dir: str | Path) -> dict:
    """The ``meta.json`` written by :func:`prepare`; a DataError if the folder was never prepared."""
    path = Path(out_dir) / "meta.json"
    if not path.is_file():
        raise DataError(f"no prepared data in {Path(out_dir)} ({path.name} is missing); "
                        "run `tinyslm data prepare NAME` or tinyslm.data.prepare() first")
    return json.loads(path.read_text())


def load_tokens(out_dir: str | Path, split: str) -> np.memmap:
    """The token ids of ``split`` ("train" or "val") as a read-only memory-mapped array."""
    if split not in SPLITS:
        raise DataError(f"unknown split {split!r}; choose one of {SPLITS}")
    meta = read_meta(out_dir)
    path = Path(out_dir) / f"{split}.bin"
    if not path.is_file():
        raise DataError(f"{path} is missing; prepare the data again")
    tokens = np.memmap(path, dtype=meta["dtype"], mode="r")
    if len(tokens) != meta["tokens"][split]:
        raise DataError(f"{path} holds {len(tokens)} tokens but meta.json says {meta['tokens'][split]}; "
                        "the file is truncated or stale — prepare the data again")
    return tokens
