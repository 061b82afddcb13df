"""Grade this lesson's exercises: `pytest lessons/01_tokenization` (the same checks as `tinyslm check 01`)."""

from pathlib import Path

import pytest

from tinyslm.grader import exercise_names, grade

EXERCISES = Path(__file__).with_name("exercises.py")


@pytest.fixture(scope="module")
def results():
    return {r.exercise: r for r in grade("01", EXERCISES)}


@pytest.mark.parametrize("name", exercise_names("01"))
def test_exercise(results, name):
    result = results[name]
    assert result.passed, f"{name}: {result.message}"
