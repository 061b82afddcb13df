"""The grader's machinery: results, comparing values, grading a file and printing the report.

The lessons' exercises (reference solutions and inputs) live in ``lesson01.py`` ... and the catalogue
``LESSONS`` in the package's ``__init__``; this module knows nothing about any one lesson.
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


_GRADER_DIR = Path(__file__).parent  # frames in the grader's own files are not the student's


def _student_line(err: Exception) -> str:
    """' (line N of exercises.py)' for the innermost frame inside the student's file, if any."""
    frames = [f for f in traceback.extract_tb(err.__traceback__) if Path(f.filename).parent != _GRADER_DIR]
    return f" (line {frames[-1].lineno} of {Path(frames[-1].filename).name})" if frames else ""


def get_lesson(lesson: str | int) -> Lesson:
    """Find a lesson by number (1, "1", "01"), folder name ("01_tokenization") or slug ("tokenization")."""
    from tinyslm.grader import LESSONS  # the catalogue imports the lesson modules, which import this one

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
    for candidate in (Path.cwd() / "lessons", Path(__file__).resolve().parents[2] / "lessons"):
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
