"""Lesson 09 exercises: the loss a student learns from its teacher with.

Implement each function below with numpy (or jax.numpy), then check your work from the repository
root with

    tinyslm check 09            (or: pytest lessons/09_distillation)
"""

from __future__ import annotations

import numpy as np


def soft_targets(logits: np.ndarray, temperature: float) -> np.ndarray:
    """The softened distribution softmax(logits / T) over the last axis: logits (..., V) -> probabilities (..., V).

    T = 1 is the model's own distribution; a larger T flattens it and shows how the model ranks
    the unlikely tokens. Keep it numerically stable for huge logits.
    """
    raise NotImplementedError


def kl_divergence(teacher_logits: np.ndarray, student_logits: np.ndarray, temperature: float) -> float:
    """KL(p || q) between the teacher's p = softmax(teacher_logits / T) and the student's
    q = softmax(student_logits / T), summed over the vocabulary (last axis) and averaged over
    every other position: (B, T, V), (B, T, V) -> a float.

    KL(p || q) = sum_v p_v * (log p_v - log q_v). Compute the logs as log-softmax (subtract the
    log-sum-exp) rather than log(softmax(...)), so that huge logits give no NaN or infinity.
    """
    raise NotImplementedError


def kd_loss(student_logits: np.ndarray, teacher_logits: np.ndarray, targets: np.ndarray, temperature: float,
            alpha: float) -> float:
    """Hinton et al.'s distillation loss (2015), averaged over positions -> a float:

        (1 - alpha) * CE + alpha * T² * KL(teacher || student at temperature T)

    student_logits, teacher_logits (B, T, V); targets (B, T) integer token ids. CE is the ordinary
    mean cross-entropy of the student's *unsoftened* logits (temperature 1) against ``targets``.
    The T² keeps the distillation term's gradients the same size whatever the temperature.
    """
    raise NotImplementedError
