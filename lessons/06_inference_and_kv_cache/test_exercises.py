"""Grade this lesson's exercises: `pytest lessons/06_inference_and_kv_cache` (the same checks as `tinyslm check 06`)."""

from pathlib import Path

import pytest

from tinyslm.grader import exercise_names, grade

EXERCISES = Path(__file__).with_name("exercises.py")


@pytest.fixture(scope="module")
def results():
    return {r.exercise: r for r in grade("06", EXERCISES)}


@pytest.mark.parametrize("name", exercise_names("06"))
def test_exercise(results, name):
    result = results[name]
    assert result.passed, f"{name}: {result.message}"
