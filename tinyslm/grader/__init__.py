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

from tinyslm.grader import lesson01, lesson02, lesson03, lesson04, lesson05, lesson06
from tinyslm.grader import lesson07, lesson08, lesson09, lesson10, lesson12
from tinyslm.grader.core import (
    Case,
    Exercise,
    Lesson,
    Result,
    check,
    compare,
    default_exercises_path,
    exercise_names,
    get_lesson,
    grade,
    lessons_dir,
    print_report,
)

# --------------------------------------------------------------------------------------- catalogue


LESSONS: dict[str, Lesson] = {
    lesson.number: lesson
    for lesson in (lesson01.LESSON, lesson02.LESSON, lesson03.LESSON, lesson04.LESSON, lesson05.LESSON, lesson06.LESSON,
                   lesson07.LESSON, lesson08.LESSON, lesson09.LESSON, lesson10.LESSON, lesson12.LESSON)
}


__all__ = ["Result", "grade", "print_report", "check", "exercise_names", "get_lesson", "LESSONS", "compare"]
