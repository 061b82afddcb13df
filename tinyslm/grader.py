"""The autograder: check a student's exercise functions against tinyslm's own implementations.

Each lesson folder ``lessons/NN_topic/`` holds an ``exercises.py`` with functions to implement.
The grader imports that file, calls every function on random and edge-case inputs, calls the
reference on the same inputs, and compares. A failure says which input failed and how: expected
vs got, a shape mismatch, an exception, or "not implemented yet" for an untouched stub.

    from tinyslm.grader import grade, print_report
    print_report(grade(1))                 # lessons/01_*/exercises.py
    print_report(grade("03", "my_attention.py"))

From a shell: ``tinyslm check 01`` (exit code 0 when everything passes), or
``pytest lessons/01_tokenization``.

The references are tinyslm's library functions (``tinyslm.model.apply_rope``,
``tinyslm.train.cross_entropy``, ...), wrapped to the exercise's signature. Concepts the library
does not implement as a standalone function — the BPE merge loop, which sentencepiece does for
us in C++ — have their reference solution here, not in the lesson folder, so that a student
reading the lesson does not stumble on the answer.
"""

from __future__ import annotations

import copy
import importlib.util
import re
import sys
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

# --------------------------------------------------------------------------------------- results


@dataclass
class Result:
    """The outcome of one exercise: passed or not, and a message that helps fix it."""

    lesson: str
    exercise: str
    passed: bool
    message: str
    cases_passed: int = 0
    cases_total: int = 0


@dataclass(frozen=True)
class Case:
    """One input to try: a short label for the report, positional and keyword arguments."""

    label: str
    args: tuple
    kwargs: dict = field(default_factory=dict)


@dataclass(frozen=True)
class Exercise:
    """A function a student writes: its name, the reference, the inputs to try, and tolerances."""

    name: str
    reference: Callable
    cases: Callable[[], list[Case]]
    atol: float = 1e-5
    rtol: float = 1e-5


@dataclass(frozen=True)
class Lesson:
    number: str
    slug: str
    exercises: tuple[Exercise, ...]

    @property
    def folder(self) -> str:
        return f"{self.number}_{self.slug}"


# --------------------------------------------------------------------------------------- comparing


def _describe(value: Any, limit: int = 80) -> str:
    """A short, readable description of an input or output value for a hint."""
    if hasattr(value, "shape") and hasattr(value, "dtype"):
        array = np.asarray(value)
        if array.size <= 12:
            return f"array({np.array2string(array, precision=4, separator=', ')}, dtype={array.dtype})"
        return f"array of shape {tuple(array.shape)} ({array.dtype})"
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _describe_args(case: Case) -> str:
    parts = [_describe(a) for a in case.args] + [f"{k}={_describe(v)}" for k, v in case.kwargs.items()]
    return ", ".join(parts)


def compare(got: Any, expected: Any, *, atol: float = 1e-5, rtol: float = 1e-5) -> str | None:
    """None when ``got`` matches ``expected``; otherwise one sentence saying how it differs."""
    if isinstance(expected, dict):
        if not isinstance(got, dict):
            return f"expected a dict, got {type(got).__name__} {_describe(got)}"
        got = dict(got)
        if got == expected:
            return None
        for key in expected:
            if key not in got:
                return f"key {key!r} is missing (expected {key!r}: {expected[key]!r})"
            if got[key] != expected[key]:
                return f"wrong value for key {key!r}: expected {expected[key]!r}, got {got[key]!r}"
        extra = next(k for k in got if k not in expected)
        return f"unexpected key {extra!r} (value {got[extra]!r}); it should not be there"
    if isinstance(expected, list):
        if not isinstance(got, (list, tuple)):
            return f"expected a list, got {type(got).__name__} {_describe(got)}"
        got = [tuple(g) if isinstance(g, list) else g for g in got]
        if len(got) != len(expected):
            return f"expected a list of length {len(expected)}, got length {len(got)}: expected {_describe(expected)}, got {_describe(got)}"
        for i, (g, e) in enumerate(zip(got, expected)):
            if g != e:
                return f"first difference at index {i}: expected {e!r}, got {g!r} (expected {_describe(expected)}, got {_describe(got)})"
        return None
    if isinstance(expected, (int, np.integer)) and not isinstance(expected, bool):
        if isinstance(got, bool) or not isinstance(got, (int, np.integer)):
            return f"expected an integer ({int(expected):,}), got {type(got).__name__} {_describe(got)}"
        return None if got == expected else f"expected {int(expected):,}, got {int(got):,} (off by {int(got) - int(expected):+,})"
    # Arrays and floats.
    if got is None:
        return "got None: did you forget to `return` the result?"
    try:
        got_arr = np.asarray(got)
    except Exception:  # noqa: BLE001 - anything that is not array-like
        return f"expected an array, got {type(got).__name__}"
    exp_arr = np.asarray(expected)
    if got_arr.shape != exp_arr.shape:
        return f"shape mismatch: expected shape {exp_arr.shape}, got {got_arr.shape}"
    if exp_arr.dtype == bool:
        if got_arr.dtype != bool:
            return f"expected a boolean array, got dtype {got_arr.dtype}"
        wrong = np.argwhere(got_arr != exp_arr)
        if wrong.size:
            idx = tuple(int(i) for i in wrong[0])
            return f"{len(wrong)} wrong entries; first at index {idx}: expected {exp_arr[idx]}, got {got_arr[idx]}"
        return None
    if not np.issubdtype(got_arr.dtype, np.number):
        return f"expected numbers, got dtype {got_arr.dtype}"
    got_f, exp_f = got_arr.astype(np.float64), exp_arr.astype(np.float64)
    ok = np.isclose(got_f, exp_f, atol=atol, rtol=rtol, equal_nan=False) | (np.isinf(exp_f) & (got_f == exp_f))
    if ok.all():
        return None
    if np.isnan(got_f).any():
        return "the output contains NaN (a division by zero, or exp() of a huge number?)"
    bad = np.argwhere(~ok)
    idx = tuple(int(i) for i in bad[0])
    where = f" at index {idx}" if idx else ""
    diff = np.abs(np.where(ok, 0.0, np.nan_to_num(got_f - exp_f, nan=np.inf, posinf=np.inf, neginf=np.inf)))
    return (
        f"values differ{where}: expected {exp_f[idx]:.6g}, got {got_f[idx]:.6g} "
        f"({bad.shape[0]} of {exp_f.size} entries off; largest difference {diff.max():.3g})"
    )


def _check_exercise(lesson: str, exercise: Exercise, func: Callable | None) -> Result:
    if func is None:
        return Result(lesson, exercise.name, False, f"function `{exercise.name}` not found in the exercises file")
    cases = exercise.cases()
    for n, case in enumerate(cases):
        expected = exercise.reference(*copy.deepcopy(case.args), **copy.deepcopy(case.kwargs))
        try:
            got = func(*copy.deepcopy(case.args), **copy.deepcopy(case.kwargs))
        except NotImplementedError:
            return Result(lesson, exercise.name, False, "not implemented yet", 0, len(cases))
        except Exception as err:  # noqa: BLE001 - any bug in student code is a hint, not a crash
            line = _student_line(err)
            return Result(
                lesson, exercise.name, False,
                f"case '{case.label}' raised {type(err).__name__}: {err}{line}\n    input: {_describe_args(case)}",
                n, len(cases),
            )
        problem = compare(got, expected, atol=exercise.atol, rtol=exercise.rtol)
        if problem:
            return Result(
                lesson, exercise.name, False,
                f"case '{case.label}': {problem}\n    input: {_describe_args(case)}", n, len(cases),
            )
    return Result(lesson, exercise.name, True, f"all {len(cases)} cases pass", len(cases), len(cases))


def _student_line(err: Exception) -> str:
    """' (line N of exercises.py)' for the innermost frame inside the student's file, if any."""
    frames = [f for f in traceback.extract_tb(err.__traceback__) if not f.filename.endswith("grader.py")]
    return f" (line {frames[-1].lineno} of {Path(frames[-1].filename).name})" if frames else ""


# --------------------------------------------------------------------------------------- lesson 01
# Byte-pair encoding (Sennrich et al. 2016), on UTF-8 bytes as GPT-2 does it. Not a library
# function (sentencepiece runs it for tinyslm), so the reference solution lives here.


def _ref_count_pairs(ids: list[int]) -> dict[tuple[int, int], int]:
    counts: dict[tuple[int, int], int] = {}
    for pair in zip(ids, ids[1:]):
        counts[pair] = counts.get(pair, 0) + 1
    return counts


def _ref_merge(ids: list[int], pair: tuple[int, int], new_id: int) -> list[int]:
    out, i = [], 0
    while i < len(ids):
        if i + 1 < len(ids) and ids[i] == pair[0] and ids[i + 1] == pair[1]:
            out.append(new_id)
            i += 2
        else:
            out.append(ids[i])
            i += 1
    return out


def _ref_train_bpe(text: str, num_merges: int) -> list[tuple[int, int]]:
    ids = list(text.encode("utf-8"))
    merges = []
    for i in range(num_merges):
        counts = _ref_count_pairs(ids)
        if not counts:
            break
        pair = max(counts, key=counts.get)  # dicts keep insertion order: ties go to the first seen
        ids = _ref_merge(ids, pair, 256 + i)
        merges.append(pair)
    return merges


def _ref_bpe_encode(text: str, merges: list[tuple[int, int]]) -> list[int]:
    ids = list(text.encode("utf-8"))
    for i, pair in enumerate(merges):
        ids = _ref_merge(ids, tuple(pair), 256 + i)
    return ids


def _cases_count_pairs() -> list[Case]:
    rng = np.random.default_rng(1)
    return [
        Case("example [1, 2, 3, 1, 2]", ([1, 2, 3, 1, 2],)),
        Case("overlapping run [7, 7, 7]", ([7, 7, 7],)),
        Case("empty list", ([],)),
        Case("single id", ([42],)),
        Case("bytes of 'banana bandana'", (list(b"banana bandana"),)),
        Case("random ids", (rng.integers(0, 6, 40).tolist(),)),
    ]


def _cases_merge() -> list[Case]:
    rng = np.random.default_rng(2)
    return [
        Case("example", ([1, 2, 3, 1, 2], (1, 2), 99)),
        Case("overlapping run [7, 7, 7]", ([7, 7, 7], (7, 7), 99)),
        Case("run of four", ([7, 7, 7, 7], (7, 7), 99)),
        Case("pair absent", ([1, 2, 3], (3, 1), 99)),
        Case("reversed pair is not the pair", ([2, 1, 2, 1], (1, 2), 99)),
        Case("empty list", ([], (1, 2), 99)),
        Case("random ids", (rng.integers(0, 4, 50).tolist(), (1, 2), 256)),
    ]


def _cases_train_bpe() -> list[Case]:
    return [
        Case("'aaabdaaabac', 3 merges", ("aaabdaaabac", 3)),
        Case("'banana bandana', 4 merges", ("banana bandana", 4)),
        Case("a sentence, 20 merges", ("the cat sat on the mat; the cat ate the rat", 20)),
        Case("non-ASCII text (multi-byte UTF-8)", ("naïve café, déjà vu", 6)),
        Case("more merges than pairs", ("abc", 10)),
        Case("zero merges", ("hello", 0)),
        Case("empty text", ("", 5)),
    ]


def _cases_bpe_encode() -> list[Case]:
    corpus = "the cat sat on the mat; the cat ate the rat"
    merges = _ref_train_bpe(corpus, 20)
    return [
        Case("the training text itself", (corpus, merges)),
        Case("new text with known pieces", ("that rat sat", merges)),
        Case("text the merges never saw", ("xyz!", merges)),
        Case("no merges at all", ("hello", [])),
        Case("empty text", ("", merges)),
        Case("non-ASCII text", ("déjà vu", _ref_train_bpe("déjà vu, déjà vu", 5))),
    ]


# --------------------------------------------------------------------------------------- lesson 02


def _ref_embedding_lookup(weight, ids):
    from flax import nnx

    from tinyslm.model.embedding import Embedding

    table = Embedding(1, 1, std=1.0, rngs=nnx.Rngs(0))
    table.weight = nnx.Param(np.asarray(weight))
    return np.asarray(table(np.asarray(ids)))


def _ref_rope_frequencies(head_dim: int, theta: float):
    from tinyslm.model import rope_frequencies

    return np.asarray(rope_frequencies(head_dim, theta))


def _ref_apply_rope(x, positions, inv_freq):
    from tinyslm.model import apply_rope

    return np.asarray(apply_rope(np.asarray(x), np.asarray(positions), np.asarray(inv_freq)))


def _cases_embedding_lookup() -> list[Case]:
    rng = np.random.default_rng(3)
    w = rng.normal(size=(10, 4)).astype(np.float32)
    return [
        Case("1-D ids", (w, np.array([3, 0, 9, 3]))),
        Case("2-D ids (batch, time)", (w, rng.integers(0, 10, (2, 5)))),
        Case("a single id", (w, np.array([7]))),
    ]


def _cases_rope_frequencies() -> list[Case]:
    return [
        Case("head_dim=8, theta=10000", (8, 10000.0)),
        Case("head_dim=64, theta=10000", (64, 10000.0)),
        Case("head_dim=2 (one pair)", (2, 10000.0)),
        Case("head_dim=16, theta=500000 (Llama 3)", (16, 500000.0)),
    ]


def _cases_apply_rope() -> list[Case]:
    rng = np.random.default_rng(4)

    def case(label, B, T, H, D, start=0, theta=10000.0):
        x = rng.normal(size=(B, T, H, D)).astype(np.float32)
        positions = np.broadcast_to(np.arange(start, start + T), (B, T)).copy()
        return Case(label, (x, positions, _ref_rope_frequencies(D, theta)))

    ragged = case("rows at different positions", 2, 3, 1, 4)
    ragged.args[1][1] = [10, 11, 12]
    return [
        case("B=1, T=4, H=1, D=4", 1, 4, 1, 4),
        case("B=2, T=5, H=3, D=8", 2, 5, 3, 8),
        case("positions starting at 100 (decoding)", 1, 3, 2, 8, start=100),
        case("D=2 (a single pair)", 1, 6, 1, 2),
        ragged,
    ]


# --------------------------------------------------------------------------------------- lesson 03


def _ref_softmax(x):
    import jax

    return np.asarray(jax.nn.softmax(np.asarray(x), axis=-1))


def _ref_causal_mask(T: int):
    positions = np.arange(T)
    return positions[None, :] <= positions[:, None]  # key position <= query position


def _ref_attention(q, k, v):
    from tinyslm.model import causal_attention

    B, T = q.shape[:2]
    positions = np.broadcast_to(np.arange(T), (B, T))
    return np.asarray(causal_attention(np.asarray(q), np.asarray(k), np.asarray(v), positions, positions))


def _cases_softmax() -> list[Case]:
    rng = np.random.default_rng(5)
    return [
        Case("a vector", (np.array([1.0, 2.0, 3.0], np.float32),)),
        Case("a batch of rows", (rng.normal(size=(3, 6)).astype(np.float32),)),
        Case("huge logits (exp overflows unless you subtract the max)", (np.array([1000.0, 999.0, 990.0], np.float32),)),
        Case("-inf entries (masked positions)", (np.array([0.5, -np.inf, 2.0, -np.inf], np.float32),)),
        Case("3-D input, softmax over the last axis", (rng.normal(size=(2, 3, 4)).astype(np.float32),)),
    ]


def _cases_causal_mask() -> list[Case]:
    return [Case("T=1", (1,)), Case("T=4", (4,)), Case("T=9", (9,))]


def _qkv(rng, B, T, H, Hkv, D):
    q = rng.normal(size=(B, T, H, D)).astype(np.float32)
    k = rng.normal(size=(B, T, Hkv, D)).astype(np.float32)
    v = rng.normal(size=(B, T, Hkv, D)).astype(np.float32)
    return q, k, v


def _cases_causal_attention() -> list[Case]:
    rng = np.random.default_rng(6)
    return [
        Case("B=1, T=4, H=1, D=8", _qkv(rng, 1, 4, 1, 1, 8)),
        Case("B=2, T=6, H=4, D=16", _qkv(rng, 2, 6, 4, 4, 16)),
        Case("T=1 (a token attends only to itself)", _qkv(rng, 2, 1, 2, 2, 4)),
        Case("large scores (needs the 1/sqrt(D) scale)", tuple(10 * a for a in _qkv(rng, 1, 5, 2, 2, 32))),
    ]


def _cases_gqa() -> list[Case]:
    rng = np.random.default_rng(7)
    return [
        Case("H=4 query heads, 2 KV heads", _qkv(rng, 2, 5, 4, 2, 8)),
        Case("H=6, 3 KV heads", _qkv(rng, 1, 7, 6, 3, 4)),
        Case("multi-query: H=4, 1 KV head", _qkv(rng, 2, 4, 4, 1, 8)),
        Case("plain multi-head: H=3, 3 KV heads", _qkv(rng, 1, 3, 3, 3, 4)),
    ]


# --------------------------------------------------------------------------------------- lesson 04


def _ref_rms_norm(x, scale, eps=1e-5):
    from tinyslm.model import rms_norm

    return np.asarray(rms_norm(np.asarray(x), np.asarray(scale), eps))


def _ref_layer_norm(x, scale, bias, eps=1e-5):
    from tinyslm.model import layer_norm

    return np.asarray(layer_norm(np.asarray(x), np.asarray(scale), None if bias is None else np.asarray(bias), eps))


def _ref_swiglu(x, w_gate, w_up, w_down):
    from flax import nnx

    from tinyslm.config import ModelConfig
    from tinyslm.model.block import MLP

    d_model, d_ff = w_gate.shape
    mlp = MLP(ModelConfig(preset="llama", d_model=d_model, d_ff=d_ff, n_heads=1), rngs=nnx.Rngs(0))
    mlp.gate.kernel = nnx.Param(np.asarray(w_gate))
    mlp.up.kernel = nnx.Param(np.asarray(w_up))
    mlp.down.kernel = nnx.Param(np.asarray(w_down))
    return np.asarray(mlp(np.asarray(x)))


def _ref_llama_param_count(vocab_size, d_model, n_layers, n_heads, n_kv_heads, d_ff, tie_embeddings=True):
    from tinyslm.config import ModelConfig
    from tinyslm.model import param_count

    return param_count(ModelConfig(
        preset="llama", vocab_size=vocab_size, d_model=d_model, n_layers=n_layers, n_heads=n_heads,
        n_kv_heads=n_kv_heads, d_ff=d_ff, tie_embeddings=tie_embeddings,
    ))


def _cases_rms_norm() -> list[Case]:
    rng = np.random.default_rng(8)
    return [
        Case("a vector, scale 1", (np.array([3.0, 4.0], np.float32), np.ones(2, np.float32))),
        Case("(B, T, D) with a learned scale", (rng.normal(size=(2, 3, 8)).astype(np.float32),
                                                rng.normal(size=8).astype(np.float32))),
        Case("large values", (1e3 * rng.normal(size=(4, 16)).astype(np.float32), np.ones(16, np.float32))),
        Case("all zeros (eps keeps it finite)", (np.zeros((2, 4), np.float32), np.ones(4, np.float32))),
        Case("eps=0.1", (rng.normal(size=(3, 4)).astype(np.float32), np.ones(4, np.float32)), {"eps": 0.1}),
    ]


def _cases_layer_norm() -> list[Case]:
    rng = np.random.default_rng(9)
    d = 8
    return [
        Case("a vector, no bias", (np.array([1.0, 2.0, 3.0, 6.0], np.float32), np.ones(4, np.float32), None)),
        Case("(B, T, D) with scale and bias", (rng.normal(size=(2, 3, d)).astype(np.float32),
                                               rng.normal(size=d).astype(np.float32), rng.normal(size=d).astype(np.float32))),
        Case("shifted input (mean 100)", (100 + rng.normal(size=(3, d)).astype(np.float32), np.ones(d, np.float32),
                                           np.zeros(d, np.float32))),
        Case("constant rows (eps keeps it finite)", (np.full((2, 4), 5.0, np.float32), np.ones(4, np.float32), None)),
    ]


def _cases_swiglu() -> list[Case]:
    rng = np.random.default_rng(10)

    def case(label, lead, d, f):
        return Case(label, (rng.normal(size=(*lead, d)).astype(np.float32), *(
            (rng.normal(size=shape) / np.sqrt(shape[0])).astype(np.float32) for shape in ((d, f), (d, f), (f, d)))))

    return [case("x (3, 4), d_ff=8", (3,), 4, 8), case("x (2, 5, 8), d_ff=16", (2, 5), 8, 16), case("one token", (1,), 6, 6)]


def _cases_llama_param_count() -> list[Case]:
    return [
        Case("a tiny model", (512, 128, 4, 4, 4, 352)),
        Case("grouped-query attention", (1000, 64, 2, 8, 2, 160)),
        Case("untied output head", (1000, 64, 2, 4, 4, 160), {"tie_embeddings": False}),
        Case("SmolLM2-135M", (49152, 576, 30, 9, 3, 1536)),
        Case("Llama 3.2 1B", (128256, 2048, 16, 32, 8, 8192)),
    ]


# --------------------------------------------------------------------------------------- lesson 05


def _ref_warmup_cosine_lr(step, lr, min_lr, warmup_steps, decay_steps):
    from tinyslm.config import TrainConfig
    from tinyslm.train import learning_rate_schedule

    cfg = TrainConfig(lr=lr, min_lr=min_lr, warmup_steps=warmup_steps, decay_steps=decay_steps, max_steps=decay_steps)
    return float(learning_rate_schedule(cfg)(step))


def _ref_cross_entropy(logits, targets, mask=None):
    from tinyslm.train import cross_entropy

    return float(cross_entropy(np.asarray(logits), np.asarray(targets), None if mask is None else np.asarray(mask)))


def _cases_warmup_cosine_lr() -> list[Case]:
    base = (1e-3, 1e-4, 100, 1000)
    return [
        Case("step 0 (start of warmup)", (0, *base)),
        Case("middle of warmup", (50, *base)),
        Case("end of warmup (the peak)", (100, *base)),
        Case("a quarter into the decay", (325, *base)),
        Case("halfway through the decay", (550, *base)),
        Case("last decay step", (999, *base)),
        Case("at decay_steps (the floor)", (1000, *base)),
        Case("after decay_steps (stays at the floor)", (5000, *base)),
        Case("no warmup", (0, 3e-4, 0.0, 0, 200)),
        Case("min_lr = 0", (150, 6e-4, 0.0, 20, 200)),
    ]


def _cases_cross_entropy() -> list[Case]:
    rng = np.random.default_rng(11)
    B, T, V = 2, 5, 7
    logits = rng.normal(size=(B, T, V)).astype(np.float32)
    targets = rng.integers(0, V, (B, T))
    mask = (rng.random((B, T)) > 0.4).astype(np.float32)
    mask[0, 0] = 1.0
    uniform = np.zeros((1, 3, 10), np.float32)
    return [
        Case("uniform logits: loss = ln(V)", (uniform, np.array([[0, 5, 9]]))),
        Case("random (B=2, T=5, V=7)", (logits, targets)),
        Case("huge logits (exp overflows unless you use log-sum-exp)", (100 * logits, targets)),
        Case("with a padding mask", (logits, targets, mask)),
        Case("an all-zero mask (nothing to average: 0)", (logits, targets, np.zeros((B, T), np.float32))),
    ]


# --------------------------------------------------------------------------------------- lesson 06


def _ref_top_p_filter(logits, p):
    from tinyslm.decode import TopP

    logits = np.asarray(logits, np.float32)
    return np.asarray(TopP(p)(logits, np.zeros(logits.shape, bool)))


def _ref_temperature_softmax(logits, temperature):
    from tinyslm.decode import Temperature

    logits = np.asarray(logits, np.float32)
    import jax

    return np.asarray(jax.nn.softmax(Temperature(temperature)(logits, np.zeros(logits.shape, bool)), axis=-1))


def _cases_top_p_filter() -> list[Case]:
    rng = np.random.default_rng(12)
    peaked = np.log(np.array([[0.5, 0.3, 0.1, 0.06, 0.04]], np.float32))
    return [
        Case("p=0.7 on probabilities [.5 .3 .1 .06 .04]", (peaked, 0.7)),
        Case("p=0.45: the top token alone is enough", (peaked, 0.45)),
        Case("p=0.81: needs three tokens", (peaked, 0.81)),
        Case("p=1.0 keeps everything", (peaked, 1.0)),
        Case("tiny p keeps only the most likely token", (rng.normal(size=(3, 10)).astype(np.float32), 1e-6)),
        Case("unsorted batch, p=0.9", (rng.normal(size=(4, 12)).astype(np.float32) * 2, 0.9)),
    ]


def _cases_temperature_softmax() -> list[Case]:
    rng = np.random.default_rng(13)
    x = rng.normal(size=(2, 6)).astype(np.float32)
    return [
        Case("temperature 1", (x, 1.0)),
        Case("temperature 0.5 (sharper)", (x, 0.5)),
        Case("temperature 2 (flatter)", (x, 2.0)),
        Case("very low temperature, large logits", (10 * x, 0.05)),
    ]


# --------------------------------------------------------------------------------------- catalogue


LESSONS: dict[str, Lesson] = {
    lesson.number: lesson
    for lesson in (
        Lesson("01", "tokenization", (
            Exercise("count_pairs", _ref_count_pairs, _cases_count_pairs),
            Exercise("merge", _ref_merge, _cases_merge),
            Exercise("train_bpe", _ref_train_bpe, _cases_train_bpe),
            Exercise("bpe_encode", _ref_bpe_encode, _cases_bpe_encode),
        )),
        Lesson("02", "embeddings_and_positions", (
            Exercise("embedding_lookup", _ref_embedding_lookup, _cases_embedding_lookup),
            Exercise("rope_frequencies", _ref_rope_frequencies, _cases_rope_frequencies, rtol=1e-5, atol=1e-7),
            Exercise("apply_rope", _ref_apply_rope, _cases_apply_rope, atol=1e-4),
        )),
        Lesson("03", "attention", (
            Exercise("softmax", _ref_softmax, _cases_softmax, atol=1e-6),
            Exercise("causal_mask", _ref_causal_mask, _cases_causal_mask),
            Exercise("causal_attention", _ref_attention, _cases_causal_attention, atol=1e-4),
            Exercise("grouped_query_attention", _ref_attention, _cases_gqa, atol=1e-4),
        )),
        Lesson("04", "the_transformer", (
            Exercise("rms_norm", _ref_rms_norm, _cases_rms_norm, atol=1e-4),
            Exercise("layer_norm", _ref_layer_norm, _cases_layer_norm, atol=1e-4),
            Exercise("swiglu_mlp", _ref_swiglu, _cases_swiglu, atol=1e-4),
            Exercise("llama_param_count", _ref_llama_param_count, _cases_llama_param_count),
        )),
        Lesson("05", "training", (
            Exercise("warmup_cosine_lr", _ref_warmup_cosine_lr, _cases_warmup_cosine_lr, atol=1e-9, rtol=1e-4),
            Exercise("cross_entropy", _ref_cross_entropy, _cases_cross_entropy, atol=1e-4, rtol=1e-4),
        )),
        Lesson("06", "inference_and_kv_cache", (
            Exercise("temperature_softmax", _ref_temperature_softmax, _cases_temperature_softmax, atol=1e-5),
            Exercise("top_p_filter", _ref_top_p_filter, _cases_top_p_filter, atol=1e-5),
        )),
    )
}


def get_lesson(lesson: str | int) -> Lesson:
    """Find a lesson by number (1, "1", "01"), folder name ("01_tokenization") or slug ("tokenization")."""
    key = str(lesson).strip()
    match = re.match(r"^(\d+)", key)
    if match and f"{int(match[1]):02d}" in LESSONS:
        return LESSONS[f"{int(match[1]):02d}"]
    for found in LESSONS.values():
        if key in (found.slug, found.folder):
            return found
    from tinyslm.errors import TinySLMError

    available = ", ".join(f"{n} ({l.slug})" for n, l in LESSONS.items())
    raise TinySLMError(f"no exercises for lesson {lesson!r}; lessons with exercises: {available}")


def exercise_names(lesson: str | int) -> list[str]:
    """The names of the functions lesson ``lesson`` asks for, in order."""
    return [e.name for e in get_lesson(lesson).exercises]


def lessons_dir() -> Path:
    """The course's ``lessons/`` folder: under the current directory, else next to the package."""
    for candidate in (Path.cwd() / "lessons", Path(__file__).resolve().parents[1] / "lessons"):
        if candidate.is_dir():
            return candidate
    from tinyslm.errors import TinySLMError

    raise TinySLMError(
        "cannot find the lessons/ folder: run from the tinyslm repository root, or pass the path of "
        "your exercises file explicitly"
    )


def default_exercises_path(lesson: str | int) -> Path:
    """``lessons/NN_topic/exercises.py`` for lesson ``lesson``."""
    return lessons_dir() / get_lesson(lesson).folder / "exercises.py"


def _import_file(path: Path):
    name = f"_tinyslm_exercises_{abs(hash(str(path.resolve())))}"
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    finally:
        sys.modules.pop(name, None)
    return module


def grade(lesson: str | int, exercises_path: str | Path | None = None) -> list[Result]:
    """Grade every exercise of ``lesson`` in ``exercises_path`` (default: the lesson's own file).

    Returns one :class:`Result` per exercise. Never raises for a mistake in the student's file:
    a syntax error or a failing import becomes a failed result that says so.
    """
    found = get_lesson(lesson)
    path = Path(exercises_path) if exercises_path is not None else default_exercises_path(found.number)
    if not path.is_file():
        return [Result(found.number, e.name, False, f"exercises file {path} not found") for e in found.exercises]
    try:
        module = _import_file(path)
    except Exception as err:  # noqa: BLE001 - SyntaxError, ImportError, anything at import time
        message = f"could not import {path}: {type(err).__name__}: {err}"
        return [Result(found.number, e.name, False, message) for e in found.exercises]
    return [_check_exercise(found.number, e, getattr(module, e.name, None)) for e in found.exercises]


def print_report(results: Sequence[Result], file=None) -> None:
    """Print one line per exercise (PASS/FAIL with the hint) and a total."""
    out = file or sys.stdout
    if not results:
        print("no exercises graded", file=out)
        return
    lesson = results[0].lesson
    print(f"Lesson {lesson} ({get_lesson(lesson).slug}):", file=out)
    for r in results:
        mark = "PASS" if r.passed else "FAIL"
        print(f"  [{mark}] {r.exercise}: {r.message}", file=out)
    passed = sum(r.passed for r in results)
    print(f"{passed}/{len(results)} exercises pass.", file=out)


def check(lesson: str | int, path: str | Path | None = None) -> int:
    """Grade, print the report, and return an exit code: 0 when every exercise passes, 1 otherwise."""
    results = grade(lesson, path)
    print_report(results)
    return 0 if results and all(r.passed for r in results) else 1


__all__ = ["Result", "grade", "print_report", "check", "exercise_names", "get_lesson", "LESSONS", "compare"]
