"""Lets pytest grade the exercises: ``pytest lessons/03_attention`` runs the same checks as ``tinyslm check 03``.

Each lesson's ``exercises.py`` is collected directly, one test per exercise, so that no lesson needs
a test file of its own. The repository's own test run (``testpaths = ["tests"]``) never looks here.
"""

from __future__ import annotations

import pytest

from tinyslm.grader import Result, grade


def pytest_collect_file(parent: pytest.Collector, file_path):
    if file_path.name == "exercises.py":
        return LessonExercises.from_parent(parent, path=file_path)
    return None


class LessonExercises(pytest.File):
    """One lesson's exercises.py, graded once; each exercise becomes a test item."""

    def collect(self):
        lesson = self.path.parent.name[:2]  # "03_attention" -> "03"
        for result in grade(lesson, self.path):
            yield Exercise.from_parent(self, name=result.exercise, result=result)


class Exercise(pytest.Item):
    def __init__(self, *, result: Result, **kwargs):
        super().__init__(**kwargs)
        self.result = result

    def runtest(self) -> None:
        if not self.result.passed:
            raise ExerciseFailed(self.result.message)

    def repr_failure(self, excinfo, style=None) -> str:
        return f"{self.name}: {excinfo.value}" if excinfo.errisinstance(ExerciseFailed) else super().repr_failure(excinfo)

    def reportinfo(self):
        return self.path, None, f"exercise {self.name}"


class ExerciseFailed(Exception):
    """An exercise's answer differs from tinyslm's reference (the message is the grader's hint)."""
