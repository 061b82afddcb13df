"""Lesson 09, distillation (soft targets, KL divergence, the temperature-scaled KD loss): references and inputs."""

from __future__ import annotations

import numpy as np

from tinyslm.grader.core import Case, Exercise, Lesson

# --------------------------------------------------------------------------------------- lesson 09


def _ref_soft_targets(logits, temperature):
    from tinyslm.compress.distill import soft_targets

    return np.asarray(soft_targets(np.asarray(logits, np.float32), temperature))


def _ref_kl_divergence(teacher_logits, student_logits, temperature):
    from tinyslm.compress.distill import kl_divergence

    return float(kl_divergence(np.asarray(teacher_logits, np.float32), np.asarray(student_logits, np.float32),
                               temperature))


def _ref_kd_loss(student_logits, teacher_logits, targets, temperature, alpha):
    from tinyslm.compress.distill import distillation_loss

    return float(distillation_loss(np.asarray(student_logits, np.float32), np.asarray(teacher_logits, np.float32),
                                   np.asarray(targets), temperature=temperature, alpha=alpha))


def _logits(seed: int, shape: tuple[int, ...], scale: float = 3.0) -> np.ndarray:
    return (np.random.default_rng(seed).normal(size=shape) * scale).astype(np.float32)


def _cases_soft_targets() -> list[Case]:
    x = _logits(90, (2, 7))
    return [
        Case("temperature 1 (the plain softmax)", (x, 1.0)),
        Case("temperature 4 (flatter)", (x, 4.0)),
        Case("temperature 0.5 (sharper)", (x, 0.5)),
        Case("huge logits (keep it stable)", (100 * x, 2.0)),
        Case("a (B, T, V) batch", (_logits(91, (2, 3, 5)), 2.0)),
    ]


def _cases_kl_divergence() -> list[Case]:
    teacher, student = _logits(92, (2, 4, 9)), _logits(93, (2, 4, 9))
    return [
        Case("identical logits: zero", (teacher, teacher.copy(), 1.0)),
        Case("random logits, T=1", (teacher, student, 1.0)),
        Case("random logits, T=3", (teacher, student, 3.0)),
        Case("KL is not symmetric: the arguments swapped", (student, teacher, 2.0)),
        Case("huge logits (work in log space)", (40 * teacher, 40 * student, 1.0)),
    ]


def _cases_kd_loss() -> list[Case]:
    student, teacher = _logits(94, (2, 5, 11)), _logits(95, (2, 5, 11))
    targets = np.random.default_rng(96).integers(0, 11, (2, 5))
    return [
        Case("alpha=0: plain cross-entropy", (student, teacher, targets, 2.0, 0.0)),
        Case("alpha=1: the teacher alone, T=1", (student, teacher, targets, 1.0, 1.0)),
        Case("T=2, alpha=0.5 (remember the T² factor)", (student, teacher, targets, 2.0, 0.5)),
        Case("T=4, alpha=0.9", (student, teacher, targets, 4.0, 0.9)),
        Case("student equals teacher, T=1, alpha=1: zero", (teacher, teacher.copy(), targets, 1.0, 1.0)),
    ]


LESSON = Lesson("09", "distillation", (
    Exercise("soft_targets", _ref_soft_targets, _cases_soft_targets, atol=1e-5),
    Exercise("kl_divergence", _ref_kl_divergence, _cases_kl_divergence, atol=1e-4, rtol=1e-4),
    Exercise("kd_loss", _ref_kd_loss, _cases_kd_loss, atol=1e-4, rtol=1e-4),
))
