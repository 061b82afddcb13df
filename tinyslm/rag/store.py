"""The document store: the passages a retriever searches, each with a stable id.

Retrieval works on *passages*, not whole files: a passage must be short enough that several fit
in the model's prompt next to the question, and focused enough that a match means something.
Two kinds of source become passages here:

* **table rows** (a CSV file, or a registered table such as ``diseases_symptoms``): one row is one
  passage, already the right size. Its id is ``<source>:<row id>``, e.g. ``diseases_symptoms:17``.
* **text** (``.txt`` / ``.md`` files, a folder of them, or a registered text dataset): split at
  blank lines into paragraphs, and long paragraphs into overlapping windows of words
  (:func:`chunk_words`). Its id is ``<file>#<n>``, e.g. ``notes.txt#3``.

An id names a passage in answers and reports, so that a reader can check what the model was shown.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from tinyslm.errors import DataError

TEXT_SUFFIXES = (".txt", ".md")


@dataclass(frozen=True)
class Passage:
    """One retrievable unit: ``id`` (stable, shown to users), ``title``, ``text``, and for a table
    row its ``fields`` (column -> value) so that evaluations can read the row's own data."""

    id: str
    title: str
    text: str
    fields: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class DocumentStore:
    """An ordered collection of passages; a retriever's scores are indexed like ``passages``."""

    passages: tuple[Passage, ...]
    source: str

    def __post_init__(self) -> None:
        if not self.passages:
            raise DataError(f"{self.source}: no passages to search (is it empty?)")
        ids = [p.id for p in self.passages]
        if len(set(ids)) != len(ids):
            raise DataError(f"{self.source}: passage ids are not unique")

    def __len__(self) -> int:
        return len(self.passages)

    def __getitem__(self, i: int) -> Passage:
        return self.passages[i]


# ----------------------------------------------------------------------------------- text -> passages


def chunk_words(text: str, max_words: int = 120, overlap: int = 20) -> list[str]:
    """Split ``text`` into windows of at most ``max_words`` words, each sharing ``overlap`` words
    with the one before, so that a sentence cut at a window's end is whole in the next one.

    Whitespace inside a window is normalised to single spaces. Empty text gives no windows.
    """
    if not 0 <= overlap < max_words:
        raise ValueError(f"need 0 <= overlap < max_words, got overlap={overlap}, max_words={max_words}")
    words = text.split()
    step = max_words - overlap
    starts = range(0, max(len(words) - overlap, 1), step)
    return [" ".join(words[s:s + max_words]) for s in starts if words[s:s + max_words]]


def passages_from_text(text: str, source: str, max_words: int = 120, overlap: int = 20) -> list[Passage]:
    """Paragraphs (split at blank lines) of ``text``, long ones chunked; ids ``<source>#0``, ``#1``, ..."""
    paragraphs = [p for p in re.split(r"\n\s*\n", text) if p.strip()]
    chunks = [chunk for p in paragraphs for chunk in chunk_words(p, max_words, overlap)]
    return [Passage(f"{source}#{i}", source, chunk) for i, chunk in enumerate(chunks)]


# ----------------------------------------------------------------------------------- rows -> passages


def passages_from_rows(rows: Iterable[Mapping[str, str]], source: str, *, id_column: str | None = None,
                       title_column: str | None = None,
                       render: Callable[[Mapping[str, str]], str] | None = None) -> list[Passage]:
    """One passage per row. ``id_column`` gives the id (default: the row number from 1),
    ``title_column`` the title (default: the first other column), ``render(row)`` the text
    (default: one ``column: value`` line per non-empty column except the id)."""
    passages = []
    for n, row in enumerate(rows, start=1):
        row = {c: (v or "").strip() for c, v in row.items() if c is not None}  # short rows give None values
        columns = [c for c in row if c != id_column]
        title = row[title_column or columns[0]]
        text = render(row) if render else "".join(f"{c}: {row[c]}\n" for c in columns if row[c])
        passages.append(Passage(f"{source}:{row[id_column] if id_column else n}", title, text, row))
    return passages


def _csv_rows(path: Path) -> list[dict[str, str]]:
    with open(path, encoding="utf-8", newline="") as f:
        return list(csv.DictReader(f))


# ----------------------------------------------------------------------------------- loading


def load_documents(name_or_path: str | Path, max_words: int = 120, overlap: int = 20) -> DocumentStore:
    """A store from a registered dataset name or a path.

    * ``diseases_symptoms``: one passage per condition (``Disease: / Symptoms: / Treatments:``),
      id ``diseases_symptoms:<Code>``;
    * another registered name: its training text, chunked;
    * a ``.csv`` file: one passage per row; a ``.txt``/``.md`` file, or a folder of them: chunked text.
    """
    from tinyslm.config import DataConfig
    from tinyslm.data import DATASETS, disease_paragraph, load_rows, load_text

    name = str(name_or_path)
    if name == "diseases_symptoms":
        rows = load_rows(name)
        return DocumentStore(tuple(passages_from_rows(rows, name, id_column="Code", title_column="Name",
                                                      render=disease_paragraph)), name)
    if name in DATASETS:
        return DocumentStore(tuple(passages_from_text(load_text(DataConfig(name=name)), name, max_words, overlap)), name)
    path = Path(name).expanduser()
    if path.is_dir():
        files = sorted(p for p in path.rglob("*") if p.suffix in TEXT_SUFFIXES and p.is_file())
        if not files:
            raise DataError(f"{path}: no {'/'.join(TEXT_SUFFIXES)} files in this folder")
        passages = [p for f in files for p in passages_from_text(_read(f), str(f.relative_to(path)), max_words, overlap)]
        return DocumentStore(tuple(passages), str(path))
    if path.suffix == ".csv" and path.is_file():
        return DocumentStore(tuple(passages_from_rows(_csv_rows(path), path.name)), str(path))
    if path.suffix in TEXT_SUFFIXES and path.is_file():
        return DocumentStore(tuple(passages_from_text(_read(path), path.name, max_words, overlap)), str(path))
    raise DataError(f"--docs {name!r}: not a dataset name ({', '.join(sorted(DATASETS))}), nor an existing "
                    f".csv, {'/'.join(TEXT_SUFFIXES)} file or folder of them")


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError as err:
        raise DataError(f"{path} is not UTF-8 text ({err}); convert it to UTF-8 first") from None


# ----------------------------------------------------------------------------------- search results


@dataclass(frozen=True)
class Hit:
    """A passage a retriever found, with its score (higher = more relevant; scales differ by retriever)."""

    passage: Passage
    score: float


def top_k(store: DocumentStore, scores, k: int) -> list[Hit]:
    """The ``k`` best-scoring passages, best first; ties keep the store's order. scores: (N,)."""
    if k < 1:
        raise DataError(f"k must be >= 1, got {k}")
    order = np.argsort(-np.asarray(scores), kind="stable")[:k]
    return [Hit(store[int(i)], float(scores[i])) for i in order]
